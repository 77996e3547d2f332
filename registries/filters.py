"""Filters shared by the repository pages and the API."""

import django_filters
from django.db.models import QuerySet

from registries.models import Repository, Tag


class RepositoryFilterSet(django_filters.FilterSet):
    """`?q=` matches part of the repository name; `?project=` narrows to one project."""

    q = django_filters.CharFilter(method="search", label="Search")
    project = django_filters.CharFilter(field_name="project__name")

    class Meta:
        model = Repository
        fields = ["q", "project"]

    def search(self, queryset: QuerySet[Repository], name: str, value: str) -> QuerySet[Repository]:
        """Repositories whose name contains the text."""
        return queryset.filter(name__icontains=value.strip())


class TagFilterSet(django_filters.FilterSet):
    """`?q=` matches part of the tag name or digest."""

    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Tag
        fields = ["q"]

    def search(self, queryset: QuerySet[Tag], name: str, value: str) -> QuerySet[Tag]:
        """Tags whose name or digest contains the text."""
        value = value.strip()
        return queryset.filter(name__icontains=value) | queryset.filter(digest__icontains=value)
