"""The hosts' charts: a host's CPU and memory over the last hour (its samples), and containers per state."""

from __future__ import annotations

import datetime

from django.db.models import Count, QuerySet
from django.utils import timezone

from hosts.models import Container, ContainerHost, ContainerState, HostSample
from portal.core.charts import (
    FAILURE_COLOUR,
    INFO_COLOUR,
    NEUTRAL_COLOUR,
    SUCCESS_COLOUR,
    WARNING_COLOUR,
    Chart,
    Series,
    percent,
    size,
)

# The window of the host page's usage charts.
USAGE_WINDOW = datetime.timedelta(hours=1)
STATE_COLOURS = {
    ContainerState.RUNNING: SUCCESS_COLOUR,
    ContainerState.PAUSED: WARNING_COLOUR,
    ContainerState.RESTARTING: INFO_COLOUR,
    ContainerState.DEAD: FAILURE_COLOUR,
}


def usage_charts(host: ContainerHost) -> tuple[Chart, Chart] | None:
    """The host's CPU share and memory used over the last hour, one point per collection; None without samples."""
    since = timezone.now() - USAGE_WINDOW
    samples = list(HostSample.objects.filter(host=host, time__gte=since).order_by("time"))
    if not samples:
        return None
    labels = [f"{timezone.localtime(sample.time):%H:%M:%S}" for sample in samples]
    cpu = Chart(
        id="host-cpu-chart",
        kind="line",
        title="CPU used by the containers, last hour (share of the host)",
        labels=labels,
        axis="Time",
        series=[Series("CPU", [sample.cpu_percent for sample in samples])],
        display=percent,
        unit="percent",
    )
    memory = Chart(
        id="host-memory-chart",
        kind="line",
        title="Memory used by the containers, last hour",
        labels=labels,
        axis="Time",
        series=[
            Series("Used", [sample.memory_used_bytes for sample in samples], SUCCESS_COLOUR),
            Series("Host memory", [sample.memory_total_bytes for sample in samples], NEUTRAL_COLOUR),
        ],
        display=size,
        unit="bytes",
    )
    return cpu, memory


def containers_by_state(containers: QuerySet[Container], chart_id: str = "container-state-chart") -> Chart:
    """How many of these containers are in each state (removed ones left out): one grouped query."""
    counts = dict(
        containers.exclude(state=ContainerState.REMOVED)
        .order_by()
        .values_list("state")
        .annotate(count=Count("id"))
        .values_list("state", "count")
    )
    states = [state for state in ContainerState if state != ContainerState.REMOVED and counts.get(state)]
    return Chart(
        id=chart_id,
        kind="doughnut",
        title="Containers per state",
        labels=[state.label for state in states],
        axis="State",
        series=[
            Series(
                "Containers",
                [counts[state] for state in states],
                colours=[STATE_COLOURS.get(state, NEUTRAL_COLOUR) for state in states],
            )
        ],
    )
