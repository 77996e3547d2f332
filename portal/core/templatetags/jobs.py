"""The one job panel: `{% job_panel job panel_url %}` shows a job's state, progress, log and Stop button."""

from __future__ import annotations

from typing import Any

from django import template

from portal.core.jobs import may_manage
from portal.core.models import Job

register = template.Library()

# The panel shows the newest lines; the whole log is in the API (GET /api/v1/jobs/{id}).
PANEL_LOG_LINES = 200


@register.inclusion_tag("components/job_panel.html", takes_context=True)
def job_panel(context: dict[str, Any], job: Job, panel_url: str) -> dict[str, Any]:
    """The panel of `job`, polling `panel_url` every 2 seconds until the job ends."""
    request = context.get("request")
    user = getattr(request, "user", None)
    newest = list(job.log_lines.order_by("-id")[: PANEL_LOG_LINES + 1])
    hidden = len(newest) > PANEL_LOG_LINES
    return {
        "job": job,
        "panel_url": panel_url,
        "log": "".join(line.stamped() for line in reversed(newest[:PANEL_LOG_LINES])),
        "log_cut": hidden,
        "can_stop": not job.is_finished and not job.stop_requested and user is not None and may_manage(user, job),
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("components/job_state.html")
def job_state(job: Job) -> dict[str, Any]:
    """The job's state as a coloured label ("Stopping" while a stop is awaited)."""
    return {"job": job}
