"""Filters shared by the administration pages and the API."""

import re
from collections.abc import Iterable
from copy import deepcopy
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import F, Func, Q, QuerySet, TextField
from django.db.models.expressions import RawSQL
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field

from portal.core.models import AUDIT_OPERATIONS, AUDIT_RESOURCE_TYPES, AuditEvent, Group, Outcome, Source, User


class StrictBooleanSelect(forms.NullBooleanSelect):
    """The yes/no/any select, handing the field the value as sent so that the field can judge it."""

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        return data.get(name)


class StrictBooleanField(forms.NullBooleanField):
    """true, false or nothing; any other value is an error (the API answers 400) instead of being ignored."""

    widget = StrictBooleanSelect
    TRUE = frozenset({True, "true", "True", "1"})
    FALSE = frozenset({False, "false", "False", "0"})

    def to_python(self, value: Any) -> bool | None:
        if value in (None, "", "unknown"):
            return None
        if value in self.TRUE:
            return True
        if value in self.FALSE:
            return False
        raise ValidationError("Use true or false.", code="invalid")

    def validate(self, value: Any) -> None:
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    """A boolean filter that refuses values other than true and false."""

    field_class = StrictBooleanField


class FilterSet(django_filters.FilterSet):
    """The base of every FilterSet: boolean model fields filter strictly."""

    FILTER_DEFAULTS = deepcopy(django_filters.filterset.FILTER_FOR_DBFIELD_DEFAULTS)
    FILTER_DEFAULTS[models.BooleanField] = {"filter_class": StrictBooleanFilter}


class SortFilter(django_filters.OrderingFilter):
    """`?sort=key` (ascending) or `?sort=-key` (descending) by one of the list's sort keys, which map to fields.

    The primary key breaks ties, so pages of a sorted list never overlap. A key the list does not offer is a
    form error: the API answers 400 naming `sort`; the UI pages drop it and show their default order.
    """

    def __init__(self, keys: dict[str, str], **kwargs: Any) -> None:
        """`keys` maps each sort key the URL uses to the field (or annotation) it sorts by."""
        super().__init__(fields={field: key for key, field in keys.items()}, label="Sort", **kwargs)
        # The schema lists the empty key too: `?sort=` (and the empty items of "name,,") is accepted and means the
        # default order, as the lists' other filters document "" for "any".
        described = ", ".join(f"`{key}`" for key in keys)
        item = {
            "type": "string",
            "enum": ["", *sorted(value for value, _ in self.extra["choices"])],
            "description": f"Sort by {described}; a leading `-` reverses; empty is the default order.",
        }
        extend_schema_field(item)(self)

    def filter(self, qs: QuerySet, value: Any) -> QuerySet:
        keys = [key for key in value or () if key]  # "name,," names no more keys than "name"
        if not keys:
            return qs
        return qs.order_by(*(self.get_ordering_value(key) for key in keys), "pk")


def source_filter() -> django_filters.ChoiceFilter:
    """`?source=local|ldap`; empty means any (what the list pages send), so the schema lists it too."""
    choices = django_filters.ChoiceFilter(choices=Source.choices)
    return extend_schema_field({"type": "string", "enum": ["", *Source.values]})(choices)


class SearchFilterSet(FilterSet):
    """A FilterSet whose `?q=` matches part of any of its `search_fields` (the apps' list pages and API)."""

    search_fields: tuple[str, ...] = ()

    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        """Rows matching the text, stripped of surrounding spaces."""
        return queryset.filter(self.matches(value.strip()))

    def matches(self, text: str) -> Q:
        """Rows where any of the searched fields contains the text."""
        query = Q()
        for field in self.search_fields:
            query |= Q(**{f"{field}__icontains": text})
        return query


# Migration 0008's FTS5 trigram table of the AuditSearchText lines, on SQLite; it serves text of three characters or
# more without LIKE's wildcards and line breaks (those go through the plain LIKE, which reads every row).
SQLITE_SEARCH_TABLE = "portal_auditevent_search"
_FTS_SEARCHABLE = re.compile(r"[^%_\\\n]{3,}")
# Text in at least this many events, and in one event in 50 or more, is common: the newest page of its events is
# found sooner by reading the log newest first and testing each event (about 50 a hit) than by collecting every
# match from the index and sorting them by time (an operation's name: 50,000 of 300,000 events, 70 ms).
_COMMON_MATCHES = 1000
_COMMON_SHARE = 50


def _common_on_sqlite(phrase: str) -> bool:
    """Whether the FTS5 phrase matches at least _COMMON_MATCHES events and 1 in _COMMON_SHARE of them; counting
    stops there, so this costs about a millisecond whatever the answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT MAX(id) FROM portal_auditevent")
        enough = max(_COMMON_MATCHES, (cursor.fetchone()[0] or 0) // _COMMON_SHARE)
        cursor.execute(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {SQLITE_SEARCH_TABLE} WHERE text MATCH %s LIMIT %s)",
            [phrase, enough],
        )
        return cursor.fetchone()[0] >= enough


class AuditSearchText(Func):
    """The text `?q=` searches in an audit event: user, operation, resource type and name, project and address.

    One expression, the columns a line each (so a search never matches across two of them), which PostgreSQL
    finds through the trigram index of migration 0007 on exactly `UPPER(<this>)`: change one, change both.
    """

    output_field = TextField()
    COLUMNS = ("username", "action", "resource_type", "resource_name", "project_name", "client_address")

    def __init__(self) -> None:
        super().__init__(*(F(column) for column in self.COLUMNS))

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:  # SQLite
        return self._lines(compiler, connection, "char(10)", "COALESCE({}, '')")

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, list[Any]]:
        return self._lines(compiler, connection, "chr(10)", "COALESCE(HOST({}), '')")

    def _lines(self, compiler: Any, connection: Any, newline: str, address: str) -> tuple[str, list[Any]]:
        parts, params = [], []
        for expression in self.get_source_expressions():
            sql, expression_params = compiler.compile(expression)
            parts.append(sql)
            params.extend(expression_params)
        parts[-1] = address.format(parts[-1])
        return "(" + f" || {newline} || ".join(parts) + ")", params


DATE_OR_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?"
)


class DateOrTimeField(forms.Field):
    """A date (YYYY-MM-DD, what a date input sends) or an RFC 3339 date and time with its offset; empty is none."""

    default_error_messages = {"invalid": "Enter a date (2030-01-31) or a date and time (2030-01-31T12:00:00Z)."}

    def to_python(self, value: Any) -> date | datetime | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not DATE_OR_DATE_TIME.fullmatch(text):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            if len(text) == len("2030-01-31"):
                return date.fromisoformat(text)
            # A leap second (:60) is the end of its minute to the database, which has none.
            text = re.sub(r"(T[0-9]{2}:[0-9]{2}):60", r"\1:59.999999", text.upper())
            return _utc(datetime.fromisoformat(re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)))
        except ValueError as exc:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from exc


def _utc(moment: datetime) -> datetime:
    """The moment in UTC; one that UTC cannot hold (year 1 east of Greenwich, 9999 west) at the calendar's end."""
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC) if moment.year == 1 else datetime.max.replace(tzinfo=UTC)


class TimeBoundFilter(django_filters.Filter):
    """Events from (`end=False`) or up to (`end=True`) a moment; a date means the whole day on the portal's clock."""

    field_class = DateOrTimeField

    def __init__(self, *args: Any, end: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.end = end

    def filter(self, queryset: QuerySet, value: date | datetime | None) -> QuerySet:
        if value is None:
            return queryset
        if isinstance(value, datetime):
            return queryset.filter(**{f"{self.field_name}__{'lte' if self.end else 'gte'}": value})
        if not self.end:
            return queryset.filter(**{f"{self.field_name}__gte": _day_start(value)})
        if value == date.max:
            return queryset
        return queryset.filter(**{f"{self.field_name}__lt": _day_start(value + timedelta(days=1))})


def _day_start(day: date) -> datetime:
    """Midnight of the day on the portal's clock, in UTC."""
    return _utc(timezone.make_aware(datetime.combine(day, time.min)))


def time_bound(description: str, *, end: bool, **kwargs: Any) -> TimeBoundFilter:
    """A from (or, with `end`, to) date or moment; empty means none (what the list pages send)."""
    bound = TimeBoundFilter(end=end, **kwargs)
    formats = [{"format": "date"}, {"format": "date-time"}, {"maxLength": 0}]
    return extend_schema_field({"type": "string", "anyOf": formats, "description": description})(bound)


def choice_filter(choices: Iterable[tuple[str, str]], description: str, **kwargs: Any) -> django_filters.ChoiceFilter:
    """One of the choices; empty means any (what the list pages send), so the schema lists it too."""
    choices = list(choices)
    choice = django_filters.ChoiceFilter(choices=choices, **kwargs)
    schema = {"type": "string", "enum": ["", *(value for value, _ in choices)], "description": description}
    return extend_schema_field(schema)(choice)


def _named(values: Iterable[str]) -> list[tuple[str, str]]:
    """Choices of identifiers, shown as words."""
    return [(value, value.replace("_", " ")) for value in values]


def _text(placeholder: str, kind: str = "text") -> forms.TextInput:
    """A text box of the Logs pages' filters."""
    return forms.TextInput(
        attrs={"type": kind, "placeholder": placeholder, "class": "clr-input", "autocomplete": "off"}
    )


_SELECT = forms.Select(attrs={"class": "clr-select"})
_DATE = forms.TextInput(attrs={"type": "date", "class": "clr-input"})


class AuditEventFilterSet(FilterSet):
    """The Logs pages' and `/audit-logs`' filters: exact user, operation, resource type, project and result, a
    time range, and `?q=` for text anywhere in user, operation, resource, project or address.

    Each exact filter has an index ordered like the list (AuditEvent.Meta.indexes), so any of them answers
    from one index scan however large the log grows.
    """

    q = django_filters.CharFilter(
        method="search",
        label="Search",
        widget=_text("Filter Logs", "search"),
        help_text="Text in the user, operation, resource type or name, project or client address, in any case.",
    )
    user = django_filters.CharFilter(
        field_name="username", label="User", widget=_text("User"), help_text="The user name, exactly."
    )
    operation = choice_filter(
        _named(AUDIT_OPERATIONS),
        "The operation.",
        field_name="action",
        label="Operation",
        empty_label="Any operation",
        widget=_SELECT,
    )
    resource_type = choice_filter(
        _named(AUDIT_RESOURCE_TYPES),
        "The kind of resource operated on.",
        label="Resource type",
        empty_label="Any resource type",
        widget=_SELECT,
    )
    project = django_filters.CharFilter(
        field_name="project_name",
        label="Project",
        widget=_text("Project"),
        help_text="The project's name, exactly; required unless the caller is a Management Portal administrator.",
    )
    outcome = choice_filter(Outcome.choices, "How it ended.", label="Result", empty_label="Any result", widget=_SELECT)
    since = time_bound(
        "From this date (its start on the portal's clock) or RFC 3339 date and time on.",
        end=False,
        field_name="time",
        label="From",
        widget=_DATE,
    )
    until = time_bound(
        "Up to this date (its whole day on the portal's clock) or RFC 3339 date and time.",
        end=True,
        field_name="time",
        label="To",
        widget=_DATE,
    )

    class Meta:
        model = AuditEvent
        fields = ["q", "user", "operation", "resource_type", "project", "outcome", "since", "until"]

    def search(self, queryset: QuerySet[AuditEvent], name: str, value: str) -> QuerySet[AuditEvent]:
        """Events whose text contains the value, whatever its case."""
        value = value.strip()
        if not value:
            return queryset
        plain = queryset.alias(search_text=AuditSearchText()).filter(search_text__icontains=value)
        if connection.vendor != "sqlite" or not _FTS_SEARCHABLE.fullmatch(value):
            return plain
        # The FTS5 trigram table of migration 0008 finds a phrase as a substring, ignoring case, from its index
        # (MATCH: 2.5x faster than its LIKE). Common ASCII text reads the log by time instead: same answer, since
        # SQLite's LIKE ignores ASCII case as the trigram index does.
        phrase = '"' + value.replace('"', '""') + '"'
        if value.isascii() and _common_on_sqlite(phrase):
            return plain
        return queryset.filter(pk__in=RawSQL(f"SELECT rowid FROM {SQLITE_SEARCH_TABLE} WHERE text MATCH %s", [phrase]))


class UserFilterSet(FilterSet):
    """`?q=` matches user name, full name, email or the name of one of the user's groups."""

    q = django_filters.CharFilter(method="search", label="Search")
    source = source_filter()

    class Meta:
        model = User
        fields = ["q", "source", "is_active", "is_portal_admin"]

    def search(self, queryset: QuerySet[User], name: str, value: str) -> QuerySet[User]:
        """Users matching the text in any of their names."""
        value = value.strip()
        matches = Q(username__icontains=value) | Q(email__icontains=value) | Q(wharf_groups__name__icontains=value)
        for word in value.split():
            matches |= Q(first_name__icontains=word) | Q(last_name__icontains=word)
        return queryset.filter(matches).distinct()


class GroupFilterSet(FilterSet):
    """`?q=` matches part of the group name."""

    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search")
    source = source_filter()

    class Meta:
        model = Group
        fields = ["q", "source", "is_portal_admin"]
