"""Filters shared by the repository pages and the API."""

import django_filters

from portal.core.filters import SearchFilterSet, SortFilter
from registries.models import Repository, Tag


class RepositoryFilterSet(SearchFilterSet):
    """`?q=` matches part of the repository name; `?project=` narrows to one project."""

    search_fields = ("name",)
    project = django_filters.CharFilter(field_name="project__name")

    class Meta:
        model = Repository
        fields = ["q", "project"]


class TagFilterSet(SearchFilterSet):
    """`?q=` matches part of the tag name or digest; `?sort=` is name, size or pushed (`-` reverses)."""

    search_fields = ("name", "digest")
    sort = SortFilter({"name": "name", "size": "size", "pushed": "pushed_at"})

    class Meta:
        model = Tag
        fields = ["q", "sort"]
