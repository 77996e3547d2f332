"""Charts as data: what a page hands templates/components/chart.html to draw with Chart.js and to list as a table.

A chart is drawn by static/wharf/charts.js from its json_script data; the same numbers are a table under
it, which the script hides visually once the chart is drawn (screen readers still read it, and with
JavaScript off the table is what people see). Series values are numbers; `display` formats them for
the table and the canvas's summary (bytes as "1.2 MB", percentages with their sign).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.utils import timezone

Number = int | float | None

# Clarity's status colours, so a chart's outcomes look like the badges beside it.
SUCCESS_COLOUR = "#2f8400"
FAILURE_COLOUR = "#c21d00"
INFO_COLOUR = "#0072a3"
WARNING_COLOUR = "#c25400"
NEUTRAL_COLOUR = "#8c8c8c"


def plain(value: Number) -> str:
    """A number as the table shows it by default."""
    if value is None:
        return "no data"
    return f"{value:g}" if isinstance(value, float) else str(value)


def size(value: Number) -> str:
    """Bytes as "1.2 MB"."""
    return "no data" if value is None else str(filesizeformat(value))


def percent(value: Number) -> str:
    """A share as "12.5 %"."""
    return "no data" if value is None else f"{value:g} %"


@dataclass
class Series:
    """One line, or one set of bars, of a chart."""

    label: str
    values: list[Number]
    colour: str = INFO_COLOUR
    # For a doughnut: a colour per value.
    colours: list[str] = field(default_factory=list)


@dataclass
class Chart:
    """A chart's kind, labels and series; `data()` is what charts.js draws, `rows()` the table of the same numbers."""

    id: str
    kind: str  # "line", "bar" or "doughnut"
    title: str
    labels: list[str]
    series: list[Series]
    axis: str = ""
    stacked: bool = False
    display: Callable[[Number], str] = plain
    # Which axis unit charts.js formats ticks in: "bytes", "percent" or "" (plain numbers).
    unit: str = ""

    @property
    def data_id(self) -> str:
        """The id of the json_script element holding the data."""
        return f"{self.id}-data"

    @property
    def is_empty(self) -> bool:
        """True when no series has a value to draw."""
        return not any(value for series in self.series for value in series.values)

    def data(self) -> dict[str, Any]:
        """The JSON charts.js reads."""
        return {
            "kind": self.kind,
            "labels": self.labels,
            "axis": self.axis,
            "stacked": self.stacked,
            "unit": self.unit,
            "series": [
                {"label": s.label, "values": s.values, "colour": s.colour, "colours": s.colours} for s in self.series
            ],
        }

    def rows(self) -> list[tuple[str, list[str]]]:
        """(label, formatted value of each series) per label: the table under the chart."""
        return [(label, [self.display(s.values[i]) for s in self.series]) for i, label in enumerate(self.labels)]

    def summary(self) -> str:
        """One sentence with the numbers, for the canvas's aria-label: each slice, the latest point, or totals."""
        if self.kind == "doughnut":
            values = self.series[0].values if self.series else []
            parts = [f"{label} {self.display(value)}" for label, value in zip(self.labels, values, strict=False)]
        elif self.kind == "line":
            parts = [f"{s.label} now {self.display(_last(s.values))}" for s in self.series]
        else:
            parts = [f"{s.label} {self.display(sum(v or 0 for v in s.values))} in total" for s in self.series]
        return f"{self.title}: " + ", ".join(parts) + "."


def _last(values: list[Number]) -> Number:
    """The newest value that is known."""
    return next((value for value in reversed(values) if value is not None), None)


def last_days(days: int, today: datetime.date | None = None) -> list[datetime.date]:
    """The `days` dates ending today (UTC), oldest first."""
    today = today or timezone.now().astimezone(datetime.UTC).date()
    return [today - datetime.timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def per_day(counts: Iterable[tuple[datetime.date, Number]], days: list[datetime.date]) -> list[Number]:
    """The value of each day (0 for a day with none), from (day, value) pairs."""
    by_day: dict[datetime.date, Number] = {}
    for day, value in counts:
        by_day[day] = (by_day.get(day) or 0) + (value or 0)
    return [by_day.get(day, 0) for day in days]
