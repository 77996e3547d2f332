"""Filters shared by the project list page and the API."""

import django_filters
from django.db.models import QuerySet

from projects.models import Project


class ProjectFilterSet(django_filters.FilterSet):
    """`?q=` matches part of the name; `?public=` narrows to public or private projects."""

    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Project
        fields = ["public"]

    def search(self, queryset: QuerySet[Project], name: str, value: str) -> QuerySet[Project]:
        """Projects whose name contains the text."""
        return queryset.filter(name__icontains=value.strip())
