"""Filters shared by the repository pages and the API."""

import django_filters

from portal.core.filters import SearchFilterSet, SortFilter
from registries.models import Repository, Tag


class RepositoryFilterSet(SearchFilterSet):
    """`?q=` matches part of the repository name; `?project=` narrows to one project; `?sort=` is name, tags,
    pulls, pulled or updated (`-` reverses). The rows must come from `with_tag_counts()`."""

    search_fields = ("name",)
    project = django_filters.CharFilter(field_name="project__name")
    sort = SortFilter(
        {"name": "name", "tags": "tag_count", "pulls": "pull_count", "pulled": "last_pulled", "updated": "updated"}
    )

    class Meta:
        model = Repository
        fields = ["q", "project", "sort"]


class TagFilterSet(SearchFilterSet):
    """`?q=` matches part of the tag name or digest; `?sort=` is name, size or pushed (`-` reverses)."""

    search_fields = ("name", "digest")
    sort = SortFilter({"name": "name", "size": "size", "pushed": "pushed_at"})

    class Meta:
        model = Tag
        fields = ["q", "sort"]
