"""Filters shared by the scanning list pages and API list endpoints."""

import django_filters

from portal.core.filters import SearchFilterSet
from scanning.models import ImageFinding, Severity


class FindingFilterSet(SearchFilterSet):
    """`?q=` matches part of the vulnerability id or the package; `?severity=` keeps one severity."""

    search_fields = ("vulnerability", "package")
    severity = django_filters.ChoiceFilter(choices=Severity.choices)

    class Meta:
        model = ImageFinding
        fields = ["q", "severity"]
