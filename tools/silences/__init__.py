"""Silences and acknowledgements through Alertmanager's API, held to the silence policy.

Operations used by the CLI (``python -m tools.silences``), the on-call drill and the tests.
Only the standard library and requests: the package also runs on the monitoring host (timer).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from tools.silences.api import Alertmanager, parse_time
from tools.silences.policy import (
    ACK_MARK,
    FORCED_RE,
    REASONS,
    Finding,
    Matcher,
    Policy,
    PolicyError,
    ack_labels,
    blocking,
    exposition,
    parse_duration,
    review,
)

TEXTFILE_NAME = "obs_alerts.prom"
HELP = {
    "obs_alert_acknowledged": ("gauge", "1 per firing critical alert muted by an acknowledgement silence"),
    "obs_alert_ack_seconds": ("gauge", "Seconds from the alert starting to fire to its acknowledgement"),
    "obs_silence_policy_violations": ("gauge", "Active silences breaking the silence policy (not forced), by reason"),
    "obs_silences_active": ("gauge", "Active silences"),
    "obs_silences_forced": ("gauge", "Active silences created with --force (policy overridden with a reason)"),
    "obs_silence_policy_check_up": ("gauge", "1 if the last policy check could read Alertmanager"),
    "obs_silence_policy_check_last_run_timestamp_seconds": ("gauge", "When the policy check last ran"),
}


def _live_protected(policy: Policy, alerts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, str]]:
    """Label sets of protected alerts as Alertmanager holds them right now (e.g. the real Watchdog)."""
    names = {p.get("alertname") for p in policy.protected}
    return [a["labels"] for a in alerts if a["labels"].get("alertname") in names]


def stamp(comment: str, maintenance: str | None, force_reason: str | None, ack: bool = False) -> str:
    parts = [ACK_MARK] if ack else []
    if maintenance:
        parts.append(f"[maintenance:{maintenance}]")
    if force_reason:
        parts.append(f"[forced: {force_reason.replace(']', ')')}]")
    return " ".join([*parts, comment.strip()])


def create(
    am: Alertmanager,
    policy: Policy,
    *,
    matchers: list[Matcher],
    duration: str,
    author: str,
    comment: str,
    maintenance: str | None = None,
    force_reason: str | None = None,
    ack: bool = False,
) -> str:
    """Create a silence the policy accepts; raise PolicyError (nothing created) otherwise."""
    if not matchers:
        raise PolicyError("give at least one matcher (-m label=value)")
    if maintenance is not None and maintenance not in policy.maintenance_windows:
        raise PolicyError(
            f"unknown maintenance window {maintenance!r}: declare it in alerting.maintenance_windows "
            f"(declared: {', '.join(policy.maintenance_windows) or 'none'})"
        )
    if force_reason is not None and len(force_reason.strip()) < 10:
        raise PolicyError("--force needs a reason of at least 10 characters")
    seconds = parse_duration(duration)
    full_comment = stamp(comment, maintenance, force_reason, ack)
    findings = blocking(
        review(
            policy,
            matchers=matchers,
            duration_seconds=seconds,
            author=author,
            comment=full_comment,
            protected=_live_protected(policy, am.alerts()),
        ),
        full_comment,
    )
    if findings:
        lines = [f"refused: {f.message}" + (" (override: --force REASON)" if f.forceable else "") for f in findings]
        raise PolicyError("\n".join(lines))
    return am.create_silence(matchers, timedelta(seconds=seconds), author, full_comment)


def acknowledge(
    am: Alertmanager,
    policy: Policy,
    *,
    selectors: list[Matcher],
    fingerprint: str | None,
    duration: str,
    author: str,
    comment: str,
) -> list[str]:
    """Silence each firing alert the selectors (or fingerprint) pick, by all its labels: an acknowledgement."""
    targets = [
        a
        for a in am.alerts()
        if (fingerprint is None or a["fingerprint"] == fingerprint) and all(m.matches(a["labels"]) for m in selectors)
    ]
    if not targets:
        raise PolicyError("no firing alert matches: list them with `silences alerts`")
    ids = []
    for alert in targets:
        matchers = [Matcher(k, v) for k, v in sorted(alert["labels"].items())]
        ids.append(create(am, policy, matchers=matchers, duration=duration, author=author, comment=comment, ack=True))
    return ids


def audit(
    silences: list[dict[str, Any]], alerts: list[dict[str, Any]], policy: Policy
) -> list[tuple[dict[str, Any], list[Finding]]]:
    """Active silences that break the policy (not excused by --force), with what is wrong."""
    live = _live_protected(policy, alerts)
    out = []
    for s in silences:
        if s["status"]["state"] != "active":
            continue
        findings = review(
            policy,
            matchers=[Matcher.from_api(m) for m in s["matchers"]],
            duration_seconds=int((parse_time(s["endsAt"]) - parse_time(s["startsAt"])).total_seconds()),
            author=s.get("createdBy", ""),
            comment=s["comment"],
            protected=live,
        )
        if blocking(findings, s["comment"]):
            out.append((s, blocking(findings, s["comment"])))
    return out


def check(am: Alertmanager, policy: Policy, now: float | None = None) -> str:
    """The policy check's textfile: acknowledgement series, policy violations, silence counts."""
    now = time.time() if now is None else now
    alerts = am.alerts()
    silences = [s for s in am.silences() if s["status"]["state"] == "active"]
    acks = {s["id"]: s for s in silences if ACK_MARK in s.get("comment", "")}
    samples: list[tuple[str, Mapping[str, str], float]] = []
    for alert in alerts:
        labels = alert["labels"]
        ack_ids = [i for i in alert["status"].get("silencedBy", []) if i in acks]
        if labels.get("severity") != "critical" or not ack_ids:
            continue
        acked_at = min(parse_time(acks[i]["startsAt"]).timestamp() for i in ack_ids)
        series = ack_labels(labels)
        samples.append(("obs_alert_acknowledged", series, 1))
        samples.append(
            ("obs_alert_ack_seconds", series, max(0.0, acked_at - parse_time(alert["startsAt"]).timestamp()))
        )
    violations = dict.fromkeys(REASONS, 0)
    for _, findings in audit(silences, alerts, policy):
        for finding in findings:
            violations[finding.reason] += 1
    samples += [("obs_silence_policy_violations", {"reason": r}, n) for r, n in violations.items()]
    samples.append(("obs_silences_active", {}, len(silences)))
    samples.append(("obs_silences_forced", {}, sum(1 for s in silences if FORCED_RE.search(s["comment"]))))
    samples.append(("obs_silence_policy_check_up", {}, 1))
    samples.append(("obs_silence_policy_check_last_run_timestamp_seconds", {}, now))
    return exposition(samples, HELP)


def check_failed(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return exposition(
        [
            ("obs_silence_policy_check_up", {}, 0),
            ("obs_silence_policy_check_last_run_timestamp_seconds", {}, now),
        ],
        {k: HELP[k] for k in ("obs_silence_policy_check_up", "obs_silence_policy_check_last_run_timestamp_seconds")},
    )


def write_textfile(directory: Path, name: str, text: str) -> Path:
    """Atomically replace directory/name (node_exporter never reads a half-written file)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    target = directory / name
    os.replace(tmp, target)
    return target
