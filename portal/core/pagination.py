"""List pagination: ?page= for bounded lists, ?cursor= (keyset) for lists that grow without bound, and the
keyset pages the UI's audit logs use.

A keyset page continues from the sort key of the row it starts after instead of skipping rows, so a page deep
in 300,000 audit events costs what the first one does, and no page counts the whole table.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db.models import Model, Q, QuerySet
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from portal.core.errors import NotFound

_WHOLE_NUMBER = re.compile(r"[0-9]+")
# Harbor's API caps its pages at 100 rows too; a larger page costs the server more than it saves the client.
MAX_PAGE_SIZE = 100
CURSOR_PARAM = "cursor"
INVALID_CURSOR = "No such page of this list: follow a next or previous link (their cursors are the only ones)."


class PageNumberPagination(pagination.PageNumberPagination):
    """{"count", "next", "previous", "results"} pages of up to 100 rows, for lists that stay small.

    `page` and `page_size` are whole numbers from 1 (a larger page size is cut to 100); anything else is a
    400 naming the parameter, as the schema says, rather than being quietly replaced by a default.
    """

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = ()

    def get_page_size(self, request: Request) -> int:
        size = _positive_number(request, self.page_size_query_param)
        return min(size, self.max_page_size) if size else self.page_size

    def get_page_number(self, request: Request, paginator: Paginator) -> int:
        return _positive_number(request, self.page_query_param) or 1

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = page_size_description(self.page_size)
        return parameters


def page_size_description(default: int) -> str:
    """What the schema says of ?page_size=."""
    return f"Rows per page (default {default}, at most {MAX_PAGE_SIZE}; a larger value is cut to {MAX_PAGE_SIZE})."


def _positive_number(request: Request, name: str) -> int | None:
    """The query parameter as a whole number from 1, None when absent; a 400 for anything else."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not _WHOLE_NUMBER.fullmatch(values[0]) or int(values[0]) < 1:
        raise ValidationError({name: ["A whole number from 1 is required, given once."]})
    return int(values[0])


class InvalidCursor(ValueError):
    """A cursor that this list did not hand out (edited, cut short, or from another list)."""


@dataclass
class KeysetPage:
    """One page of rows in the queryset's order, with the cursors of the pages before and after it."""

    rows: list[Any]
    previous_cursor: str | None
    next_cursor: str | None

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def keyset_ordering(queryset: QuerySet) -> tuple[str, ...]:
    """The order a keyset list walks: the queryset's, which must end on the primary key so that it is total."""
    ordering = tuple(queryset.query.order_by or queryset.model._meta.ordering)
    if not ordering or ordering[-1].lstrip("-") not in ("id", "pk"):
        raise ValueError(f"{queryset.model.__name__} needs an ordering ending on id to be paged by keyset")
    return ordering


def keyset_page(queryset: QuerySet, cursor: str | None, size: int) -> KeysetPage:
    """The page after (or, for a cursor handed out as `previous`, before) the cursor's row; the first without one.

    Raises InvalidCursor for a cursor this list did not hand out. The ordering fields must not be null.
    """
    ordering = keyset_ordering(queryset)
    backwards = False
    if cursor:
        values, backwards = decode_cursor(cursor, queryset.model, ordering)
        queryset = queryset.filter(_beyond(ordering, values, backwards))
    walk = [_reversed(field) for field in ordering] if backwards else list(ordering)
    rows = list(queryset.order_by(*walk)[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    if not rows:
        return KeysetPage(rows, None, None)
    # Coming back from a later page there is always a later one; going on from an earlier, always an earlier.
    has_previous = more if backwards else cursor is not None
    has_next = (not backwards and more) or (backwards and cursor is not None)
    return KeysetPage(
        rows,
        encode_cursor(_key(rows[0], ordering), backwards=True) if has_previous else None,
        encode_cursor(_key(rows[-1], ordering), backwards=False) if has_next else None,
    )


def _reversed(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


def _key(row: Model, ordering: Sequence[str]) -> list[Any]:
    """The row's values of the ordering fields."""
    return [getattr(row, "pk" if field.lstrip("-") == "pk" else field.lstrip("-")) for field in ordering]


def _beyond(ordering: Sequence[str], values: Sequence[Any], backwards: bool) -> Q:
    """Rows after the key in the ordering (before it when going backwards).

    (a, b) after (x, y) is `a <= x AND (a < x OR (a = x AND b < y))` for descending fields: the leading bound
    lets an index on (a, b) start at the key instead of filtering every row in front of it.
    """
    later = Q()
    equal: dict[str, Any] = {}
    for field, value in zip(ordering, values, strict=True):
        name = field.lstrip("-")
        lookup = "lt" if field.startswith("-") != backwards else "gt"
        later |= Q(**equal, **{f"{name}__{lookup}": value})
        equal[name] = value
    first = ordering[0]
    bound = "lte" if first.startswith("-") != backwards else "gte"
    return Q(**{f"{first.lstrip('-')}__{bound}": values[0]}) & later


def encode_cursor(values: Sequence[Any], backwards: bool) -> str:
    """An opaque cursor for the page after (or before) the row with these ordering values."""
    key = [value.isoformat() if isinstance(value, datetime) else value for value in values]
    data = json.dumps({"before" if backwards else "after": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, model: type[Model], ordering: Sequence[str]) -> tuple[list[Any], bool]:
    """The ordering values and direction of a cursor; InvalidCursor when it is not one this list handed out."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor(cursor) from exc
    if not isinstance(data, dict) or len(data) != 1 or not data.keys() <= {"before", "after"}:
        raise InvalidCursor(cursor)
    backwards = "before" in data
    key = data["before" if backwards else "after"]
    if not isinstance(key, list) or len(key) != len(ordering):
        raise InvalidCursor(cursor)
    return [_field_value(model, field, value, cursor) for field, value in zip(ordering, key, strict=True)], backwards


def _field_value(model: type[Model], field: str, value: Any, cursor: str) -> Any:
    """The cursor's value as the field's Python value (an aware datetime, an int, ...)."""
    name = field.lstrip("-")
    try:
        model_field = model._meta.pk if name == "pk" else model._meta.get_field(name)
    except FieldDoesNotExist as exc:
        raise InvalidCursor(cursor) from exc
    if value is None or isinstance(value, (dict, list, bool)):
        raise InvalidCursor(cursor)
    try:
        python = model_field.to_python(value)
        if isinstance(python, datetime):
            # A naive time is not one this list handed out; one past the calendar's ends cannot be compared.
            if python.tzinfo is None:
                raise InvalidCursor(cursor)
            python.astimezone(UTC)
        elif isinstance(python, int) and not -(2**63) <= python < 2**63:
            raise InvalidCursor(cursor)
    except (DjangoValidationError, TypeError, ValueError, OverflowError) as exc:
        raise InvalidCursor(cursor) from exc
    return python


class CursorPagination(pagination.BasePagination):
    """{"next", "previous", "results"} pages of up to 100 rows, newest first, for lists that grow without bound.

    `?cursor=` is the opaque value of a `next` or `previous` link (any other is a 404, as a page number past the
    last page is); `?page_size=` as for every list. There is no
    `count`: counting a large table on every page is what made the audit log slow, and a client walks the
    list by following `next` until it is null.
    """

    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    page_size = api_settings.PAGE_SIZE
    page: KeysetPage
    request: Request

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        size = min(_positive_number(request, self.page_size_query_param) or self.page_size, self.max_page_size)
        cursors = request.query_params.getlist(CURSOR_PARAM)
        if len(cursors) > 1:
            raise ValidationError({CURSOR_PARAM: ["Give the cursor once."]})
        try:
            self.page = keyset_page(queryset, cursors[0] if cursors else None, size)
        except InvalidCursor as exc:
            # As for a page number past the last page: the page the client asks for is not there.
            raise NotFound(INVALID_CURSOR, {CURSOR_PARAM: [INVALID_CURSOR]}) from exc
        return self.page.rows

    def get_paginated_response(self, data: Any) -> Response:
        links = {"next": self._link(self.page.next_cursor), "previous": self._link(self.page.previous_cursor)}
        return Response({**links, "results": data})

    def _link(self, cursor: str | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, CURSOR_PARAM, cursor)

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The page of older rows; null on the last page."},
                "previous": {**link, "description": "The page of newer rows; null on the first page."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": CURSOR_PARAM,
                "required": False,
                "in": "query",
                "description": "Where the page starts: the cursor of a `next` or `previous` link; none for the newest.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": page_size_description(self.page_size),
                "schema": {"type": "integer", "minimum": 1},
            },
        ]
