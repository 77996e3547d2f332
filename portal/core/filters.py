"""Filters shared by the administration pages and the API."""

import django_filters
from django.db.models import Q, QuerySet

from portal.core.models import AuditEvent, Group, User


class SearchFilterSet(django_filters.FilterSet):
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


class AuditEventFilterSet(django_filters.FilterSet):
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


class UserFilterSet(django_filters.FilterSet):
    """`?q=` matches user name, full name, email or the name of one of the user's groups."""

    q = django_filters.CharFilter(method="search", label="Search")

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


class GroupFilterSet(django_filters.FilterSet):
    """`?q=` matches part of the group name."""

    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search")

    class Meta:
        model = Group
        fields = ["q", "source", "is_portal_admin"]
