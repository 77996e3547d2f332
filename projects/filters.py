"""Filters shared by the project list page and the API."""

from django.db.models import Case, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce, Lower

from portal.core.filters import SearchFilterSet, SortFilter
from projects.models import Membership, Project


class ProjectFilterSet(SearchFilterSet):
    """`?q=` matches part of the name; `?public=` narrows to public or private projects."""

    search_fields = ("name",)

    class Meta:
        model = Project
        fields = ["public"]


class MemberFilterSet(SearchFilterSet):
    """`?q=` matches part of a member's user or group name; `?sort=` is name, type or role (`-` reverses)."""

    sort = SortFilter({"name": "sort_name", "type": "sort_type", "role": "role"})

    class Meta:
        model = Membership
        fields = ["q", "sort"]

    def __init__(self, data: object = None, queryset: QuerySet[Membership] | None = None, **kwargs: object) -> None:
        # The name and type a member is sorted by, whether it is a user or a group.
        if queryset is not None:
            queryset = queryset.annotate(
                sort_name=Lower(Coalesce("user__username", "group__name")),
                sort_type=Case(When(user__isnull=False, then=Value("user")), default=Value("group")),
            )
        super().__init__(data, queryset, **kwargs)

    def matches(self, text: str) -> Q:
        """Members whose user or group name contains the text."""
        return Q(user__username__icontains=text) | Q(group__name__icontains=text)
