"""On-call drill: a synthetic critical alert through the real Alertmanager routing, timed to its ack.

The alert goes to Alertmanager's API like Prometheus sends alerts, so it takes the production
route (severity=critical: on-call + Slack critical). Whoever is on call acknowledges it with
`silences ack -m drill=<id> ...`; the drill records when and how fast. Standard library and
requests only: it runs from a monthly timer on the monitoring host.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tools.silences import write_textfile
from tools.silences.api import Alertmanager, iso, parse_time
from tools.silences.policy import BadInputError, Matcher, exposition, read_marks

ALERTNAME = "OnCallDrill"
TEXTFILE_NAME = "obs_oncall_drill.prom"
HELP = {
    "obs_oncall_drill_last_run_timestamp_seconds": ("gauge", "When the last on-call drill started"),
    "obs_oncall_drill_last_success_timestamp_seconds": ("gauge", "When an on-call drill was last acknowledged"),
    "obs_oncall_drill_success": ("gauge", "1 if the last on-call drill was acknowledged in time"),
    "obs_oncall_drill_ack_seconds": ("gauge", "Time to acknowledge in the last successful on-call drill"),
}


@dataclass(frozen=True)
class DrillResult:
    drill_id: str
    started: float
    acked: bool
    ack_seconds: float | None


def drill_alert(drill_id: str, start: datetime, ends: datetime, runbook_url: str) -> dict[str, object]:
    return {
        "labels": {"alertname": ALERTNAME, "severity": "critical", "service": "monitoring", "drill": drill_id},
        "annotations": {
            "summary": f"On-call drill {drill_id}: acknowledge this alert",
            "description": (
                f"A drill, not an outage. Acknowledge it: silences ack -m drill={drill_id} "
                '--author <you> --comment "on-call drill acknowledged"'
            ),
            "runbook_url": runbook_url,
        },
        "startsAt": iso(start),
        "endsAt": iso(ends),
    }


def _is_ack(silence: dict[str, Any]) -> bool:
    """An acknowledgement the silences tool signed (a comment typed to look like one is not)."""
    try:
        matchers = [Matcher.from_api(m) for m in silence["matchers"]]
    except (BadInputError, KeyError, TypeError):
        return False
    return read_marks(str(silence.get("comment", "")), matchers, str(silence.get("createdBy", "")))[0].ack


def _ack_time(am: Alertmanager, drill_id: str) -> float | None:
    """When the drill alert's acknowledgement silence started, if it has one."""
    acks = {s["id"]: s for s in am.silences() if s["status"].get("state") == "active" and _is_ack(s)}
    for alert in am.alerts():
        if alert["labels"].get("drill") == drill_id:
            times = [parse_time(acks[i]["startsAt"]).timestamp() for i in alert["status"]["silencedBy"] if i in acks]
            if times:
                return min(times)
    return None


def run(
    am: Alertmanager,
    ack_timeout: float,
    runbook_url: str,
    poll: float = 5,
    progress: Callable[[str], None] = print,
) -> DrillResult:
    start = datetime.now(UTC)
    drill_id = start.strftime("%Y%m%dT%H%M%SZ")
    # endsAt past the timeout: Alertmanager keeps it firing without re-sends; resolved explicitly below.
    alert = drill_alert(drill_id, start, start + timedelta(seconds=ack_timeout + 300), runbook_url)
    am.post_alerts([alert])
    progress(f"drill {drill_id}: critical alert sent; waiting up to {ack_timeout:.0f}s for its acknowledgement")
    deadline = time.monotonic() + ack_timeout
    next_report = time.monotonic() + 60
    acked_at: float | None = None
    while time.monotonic() < deadline:
        acked_at = _ack_time(am, drill_id)
        if acked_at is not None:
            break
        if time.monotonic() >= next_report:
            progress(f"drill {drill_id}: still waiting ({deadline - time.monotonic():.0f}s left)")
            next_report += 60
        time.sleep(poll)
    alert["endsAt"] = iso(datetime.now(UTC))
    am.post_alerts([alert])  # resolve it either way: a drill must not page the secondary tier
    if acked_at is None:
        progress(f"drill {drill_id}: NOT acknowledged within {ack_timeout:.0f}s")
        return DrillResult(drill_id, start.timestamp(), False, None)
    seconds = max(0.0, acked_at - start.timestamp())
    progress(f"drill {drill_id}: acknowledged after {seconds:.0f}s")
    return DrillResult(drill_id, start.timestamp(), True, seconds)


def previous_value(path: Path, metric: str) -> float | None:
    """A metric's value in the drill's previous textfile (the last success survives a failed drill)."""
    if not path.exists():
        return None
    match = re.search(rf"^{metric} (\S+)$", path.read_text(), re.MULTILINE)
    return float(match.group(1)) if match else None


def textfile(result: DrillResult, previous: Path) -> str:
    last_success = (
        result.started if result.acked else previous_value(previous, "obs_oncall_drill_last_success_timestamp_seconds")
    )
    ack_seconds = result.ack_seconds if result.acked else previous_value(previous, "obs_oncall_drill_ack_seconds")
    samples: list[tuple[str, dict[str, str], float]] = [
        ("obs_oncall_drill_last_run_timestamp_seconds", {}, result.started),
        ("obs_oncall_drill_success", {}, 1 if result.acked else 0),
    ]
    if last_success is not None:
        samples.append(("obs_oncall_drill_last_success_timestamp_seconds", {}, last_success))
    if ack_seconds is not None:
        samples.append(("obs_oncall_drill_ack_seconds", {}, ack_seconds))
    return exposition(samples, HELP)


def record(result: DrillResult, directory: Path) -> Path:
    return write_textfile(directory, TEXTFILE_NAME, textfile(result, directory / TEXTFILE_NAME))
