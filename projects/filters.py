"""Filters shared by the project list page and the API."""

from portal.core.filters import SearchFilterSet
from projects.models import Project


class ProjectFilterSet(SearchFilterSet):
    """`?q=` matches part of the name; `?public=` narrows to public or private projects."""

    search_fields = ("name",)

    class Meta:
        model = Project
        fields = ["public"]
