"""List pagination shared by every API endpoint: ?page= and ?page_size=."""

from __future__ import annotations

import re
from typing import Any

from django.core.paginator import Paginator
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

_WHOLE_NUMBER = re.compile(r"[0-9]+")


class PageNumberPagination(pagination.PageNumberPagination):
    """{"count", "next", "previous", "results"} pages of up to 500 rows.

    `page` and `page_size` are whole numbers from 1 (a larger page size is cut to 500); anything else is a
    400 naming the parameter, as the schema says, rather than being quietly replaced by a default.
    """

    page_size_query_param = "page_size"
    max_page_size = 500
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
                parameter["description"] = f"Rows per page (default {self.page_size}, at most {self.max_page_size})."
        return parameters


def _positive_number(request: Request, name: str) -> int | None:
    """The query parameter as a whole number from 1, None when absent; a 400 for anything else."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not _WHOLE_NUMBER.fullmatch(values[0]) or int(values[0]) < 1:
        raise ValidationError({name: ["A whole number from 1 is required, given once."]})
    return int(values[0])
