"""Filters shared by the administration pages and the API."""

from copy import deepcopy
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema_field

from portal.core.models import AuditEvent, Group, Source, User


class StrictBooleanSelect(forms.NullBooleanSelect):
    """The yes/no/any select, handing the field the value as sent so that the field can judge it."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class StrictBooleanField(forms.NullBooleanField):
    """true, false or nothing; any other value is an error (the API answers 400) instead of being ignored."""

    widget = StrictBooleanSelect
    TRUE = frozenset({True, "true", "True", "1"})
    FALSE = frozenset({False, "false", "False", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, "", "unknown"):
            return None
        if value in self.TRUE:
            return True
        if value in self.FALSE:
            return False
        raise ValidationError("Use true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    """A boolean filter that refuses values other than true and false."""

    field_class = StrictBooleanField


class FilterSet(django_filters.FilterSet):
    """The base of every FilterSet: boolean model fields filter strictly."""

    FILTER_DEFAULTS = deepcopy(django_filters.filterset.FILTER_FOR_DBFIELD_DEFAULTS)
    FILTER_DEFAULTS[models.BooleanField] = {"filter_class": StrictBooleanFilter}


def source_filter() -> django_filters.ChoiceFilter:
    """`?source=local|ldap`; empty means any (what the list pages send), so the schema lists it too."""
    choices = django_filters.ChoiceFilter(choices=Source.choices)
    return extend_schema_field({"type": "string", "enum": ["", *Source.values]})(choices)


class SearchFilterSet(FilterSet):
    """A FilterSet whose `?q=` matches part of any of its `search_fields` (the apps' list pages and API)."""

    search_fields: tuple[str, ...] = ()

    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Rows matching the text, stripped of surrounding spaces."""
        return queryset.filter(self.matches(value.strip()))

    def matches(self, text: str) -> Q:
        """Rows where any of the searched fields contains the text."""
        query = Q()
        for field in self.search_fields:
            query |= Q(**{f"{field}__icontains": text})
        return query


class AuditEventFilterSet(FilterSet):
    """`?q=` matches user, action, resource, project or address; `?project=` one project's events."""

    q = django_filters.CharFilter(method="search", label="Filter logs")
    project = django_filters.CharFilter(field_name="project_name")
    outcome = django_filters.CharFilter()

    class Meta:
        model = AuditEvent
        fields = ["q", "project", "outcome"]

    def search(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet[AuditEvent]:
        """Events where any text column contains the value."""
        value = value.strip()
        return queryset.filter(
            Q(username__icontains=value)
            | Q(action__icontains=value)
            | Q(resource_type__icontains=value)
            | Q(resource_name__icontains=value)
            | Q(project_name__icontains=value)
            | Q(client_address__startswith=value)
        )


class UserFilterSet(FilterSet):
    """`?q=` matches user name, full name, email or the name of one of the user's groups."""

    q = django_filters.CharFilter(method="search", label="Search")
    source = source_filter()

    class Meta:
        model = User
        fields = ["q", "source", "is_active", "is_portal_admin"]

    def search(self, queryset: QuerySet[User], name: str, value: str) -> QuerySet[User]:
        """Users matching the text in any of their names."""
        value = value.strip()
        matches = Q(username__icontains=value) | Q(email__icontains=value) | Q(wharf_groups__name__icontains=value)
        for word in value.split():
            matches |= Q(first_name__icontains=word) | Q(last_name__icontains=word)
        return queryset.filter(matches).distinct()


class GroupFilterSet(FilterSet):
    """`?q=` matches part of the group name."""

    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search")
    source = source_filter()

    class Meta:
        model = Group
        fields = ["q", "source", "is_portal_admin"]
