"""List pagination shared by every API endpoint: ?page= and ?page_size=."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """{"count", "next", "previous", "results"} pages of up to 500 rows."""

    page_size_query_param = "page_size"
    max_page_size = 500
