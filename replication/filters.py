"""Filters shared by the replication list pages and API list endpoints."""

from __future__ import annotations

import django_filters

from portal.core.filters import FilterSet, SearchFilterSet, SortFilter
from portal.core.models import JobState
from replication.models import Endpoint, Execution, Rule, Task


class EndpointFilterSet(SearchFilterSet):
    """`?q=` matches part of an endpoint's name or URL; `?sort=` is name or url (`-` reverses)."""

    search_fields = ("name", "url")
    sort = SortFilter({"name": "name", "url": "url"})

    class Meta:
        model = Endpoint
        fields = ["q", "sort"]


class RuleFilterSet(SearchFilterSet):
    """`?q=` matches part of a rule's name or description; `?project=`, `?endpoint=` (names) and `?enabled=`;
    `?sort=` is name, project, endpoint, trigger or enabled (`-` reverses; disabled rules sort first)."""

    search_fields = ("name", "description")
    project = django_filters.CharFilter(field_name="project__name")
    endpoint = django_filters.CharFilter(field_name="endpoint__name")
    sort = SortFilter(
        {
            "name": "name",
            "project": "project__name",
            "endpoint": "endpoint__name",
            "trigger": "trigger",
            "enabled": "enabled",
        }
    )

    class Meta:
        model = Rule
        fields = ["q", "project", "endpoint", "enabled", "sort"]


class ExecutionFilterSet(FilterSet):
    """`?rule=` (a rule's name) and `?state=` (the state of the execution's job)."""

    rule = django_filters.CharFilter(field_name="rule__name")
    state = django_filters.ChoiceFilter(field_name="job__state", choices=JobState.choices)

    class Meta:
        model = Execution
        fields = ["rule", "state"]


class TaskFilterSet(FilterSet):
    """`?state=` (the state of the task's job)."""

    state = django_filters.ChoiceFilter(field_name="job__state", choices=JobState.choices)

    class Meta:
        model = Task
        fields = ["state"]
