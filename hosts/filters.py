"""Filters shared by the hosts and containers pages and the API."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from hosts.models import Container, ContainerHost
from portal.core.filters import SearchFilterSet, SortFilter


class HostFilterSet(SearchFilterSet):
    """`?q=` matches part of a host's name, URL, engine version, last error, state or type."""

    search_fields = ("name", "url", "engine_version", "last_error", "state", "kind")

    class Meta:
        model = ContainerHost
        fields = ["q"]


class ContainerFilterSet(SearchFilterSet):
    """`?q=` matches part of the name, image, host, state or command, or the start of the id; `?host=` is a
    host's id or name; `?state=` one state; `?sort=` is name, image, host, state or created (`-` reverses)."""

    search_fields = ("name", "image", "host__name", "state", "command")
    host = django_filters.CharFilter(method="on_host")
    state = django_filters.CharFilter(field_name="state")
    sort = SortFilter({"name": "name", "image": "image", "host": "host__name", "state": "state", "created": "created"})

    class Meta:
        model = Container
        fields = ["q", "host", "state", "sort"]

    def matches(self, text: str) -> Q:
        """Containers with the text in any searched column, or whose id starts with it."""
        return super().matches(text) | Q(container_id__startswith=text.lower())

    def on_host(self, queryset: QuerySet[Container], name: str, value: str) -> QuerySet[Container]:
        """Containers on the host with that id or name."""
        text = value.strip()
        return queryset.filter(host__pk=int(text)) if text.isdigit() else queryset.filter(host__name=text)
