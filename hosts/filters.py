"""Filters shared by the hosts and containers pages and the API."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from hosts.models import Container, ContainerHost


def _contains_any(fields: tuple[str, ...], text: str) -> Q:
    """Rows where any of the fields contains the text."""
    query = Q()
    for field in fields:
        query |= Q(**{f"{field}__icontains": text})
    return query


class HostFilterSet(django_filters.FilterSet):
    """`?q=` matches part of a host's name, URL, engine version, last error, state or type."""

    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = ContainerHost
        fields = ["q"]

    def search(self, queryset: QuerySet[ContainerHost], name: str, value: str) -> QuerySet[ContainerHost]:
        """Hosts with the text in any searched column."""
        fields = ("name", "url", "engine_version", "last_error", "state", "kind")
        return queryset.filter(_contains_any(fields, value.strip()))


class ContainerFilterSet(django_filters.FilterSet):
    """`?q=` matches part of the name, image, host, state or command, or the start of the id; `?host=` is a
    host's id or name; `?state=` one state."""

    q = django_filters.CharFilter(method="search", label="Search")
    host = django_filters.CharFilter(method="on_host")
    state = django_filters.CharFilter(field_name="state")

    class Meta:
        model = Container
        fields = ["q", "host", "state"]

    def search(self, queryset: QuerySet[Container], name: str, value: str) -> QuerySet[Container]:
        """Containers with the text in any searched column, or whose id starts with it."""
        text = value.strip()
        fields = ("name", "image", "host__name", "state", "command")
        return queryset.filter(_contains_any(fields, text) | Q(container_id__startswith=text.lower()))

    def on_host(self, queryset: QuerySet[Container], name: str, value: str) -> QuerySet[Container]:
        """Containers on the host with that id or name."""
        text = value.strip()
        return queryset.filter(host__pk=int(text)) if text.isdigit() else queryset.filter(host__name=text)
