"""Silences and acknowledgements through Alertmanager's API, held to the silence policy.

Operations used by the CLI (``python -m tools.silences``), the on-call drill and the tests.
The standard library, requests and (where installed) google-re2: the package also runs on the
monitoring host (timer), whose Debian python3 has no RE2 binding (policy.py says how it judges there).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from tools.silences.api import Alertmanager, parse_time
from tools.silences.policy import (
    CREATED_BY_SUFFIX,
    REASONS,
    BadInputError,
    Finding,
    Marks,
    Matcher,
    Policy,
    PolicyError,
    ack_labels,
    blocking,
    exposition,
    is_unforceable,
    mark,
    parse_duration,
    read_marks,
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
    return [a["labels"] for a in alerts if a["labels"].get("alertname") in names or is_unforceable(a["labels"])]


def author_of(created_by: str) -> str:
    return created_by.removesuffix(CREATED_BY_SUFFIX)


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
        raise BadInputError("give at least one matcher (-m label=value)")
    if maintenance is not None and maintenance not in policy.maintenance_windows:
        raise BadInputError(
            f"unknown maintenance window {maintenance!r}: declare it in alerting.maintenance_windows "
            f"(declared: {', '.join(policy.maintenance_windows) or 'none'})"
        )
    if force_reason is not None and len(force_reason.strip()) < 10:
        raise BadInputError("--force needs a reason of at least 10 characters")
    seconds = parse_duration(duration)
    marks = Marks(ack=ack, maintenance=maintenance, forced=force_reason is not None)
    body = comment.strip() + (f" (forced: {force_reason.strip()})" if force_reason else "")
    created_by = author.strip() + CREATED_BY_SUFFIX
    findings = blocking(
        review(
            policy,
            matchers=matchers,
            duration_seconds=seconds,
            author=author,
            reason=comment.strip(),
            marks=marks,
            protected=_live_protected(policy, am.alerts()),
        ),
        marks,
    )
    if findings:
        lines = [f"refused: {f.message}" + (" (override: --force REASON)" if f.forceable else "") for f in findings]
        raise PolicyError("\n".join(lines))
    return am.create_silence(matchers, timedelta(seconds=seconds), created_by, mark(marks, matchers, created_by, body))


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


@dataclass(frozen=True)
class Judged:
    """An active silence as the policy sees it: its verified marks and what is wrong with it."""

    silence: Mapping[str, Any]
    marks: Marks
    findings: tuple[Finding, ...]
    decidable: bool  # every regex could be evaluated here (always, where RE2 is installed)

    @property
    def blocking(self) -> list[Finding]:
        return blocking(list(self.findings), self.marks)

    @property
    def mutes_the_alarm(self) -> bool:
        return any(f.reason == "protected_alert" and not f.forceable for f in self.findings)


def judge(silence: Mapping[str, Any], policy: Policy, live: list[Mapping[str, str]]) -> Judged:
    try:
        matchers = [Matcher.from_api(m) for m in silence["matchers"]]
    except BadInputError as err:  # Alertmanager took it, RE2 here does not: judged as muting everything
        finding = Finding("protected_alert", f"cannot be judged ({err}): treated as muting everything", False)
        return Judged(silence, Marks(), (finding,), False)
    created_by = str(silence.get("createdBy", ""))
    marks, body = read_marks(str(silence.get("comment", "")), matchers, created_by)
    findings = review(
        policy,
        matchers=matchers,
        duration_seconds=int((parse_time(silence["endsAt"]) - parse_time(silence["startsAt"])).total_seconds()),
        author=author_of(created_by),
        reason=body,
        marks=marks,
        protected=live,
    )
    return Judged(silence, marks, tuple(findings), all(m.decidable for m in matchers))


def judge_active(silences: list[dict[str, Any]], alerts: list[dict[str, Any]], policy: Policy) -> list[Judged]:
    live = _live_protected(policy, alerts)
    return [judge(s, policy, live) for s in silences if s["status"]["state"] == "active"]


def audit(
    silences: list[dict[str, Any]], alerts: list[dict[str, Any]], policy: Policy
) -> list[tuple[dict[str, Any], list[Finding]]]:
    """Active silences that break the policy (not excused by a verified --force), with what is wrong."""
    return [(dict(j.silence), j.blocking) for j in judge_active(silences, alerts, policy) if j.blocking]


def _muting_the_alarm(judged: list[Judged], alerts: list[dict[str, Any]]) -> set[str]:
    """Silences muting SilencePolicyViolation or its escalation: by Alertmanager's own verdict on the
    live alerts (silencedBy), and by the policy's where every regex could be evaluated here."""
    ids = {str(j.silence["id"]) for j in judged if j.mutes_the_alarm and j.decidable}
    ids |= {str(i) for a in alerts if is_unforceable(a["labels"]) for i in a["status"].get("silencedBy", [])}
    return ids


def check(am: Alertmanager, policy: Policy, now: float | None = None, log: Any = print) -> str:
    """The policy check's textfile: acknowledgement series, policy violations, silence counts. A silence
    muting the policy's own alarm is expired: SilencePolicyViolation cannot be silenced in effect."""
    now = time.time() if now is None else now
    alerts = am.alerts()
    judged = judge_active(am.silences(), alerts, policy)
    expired = _muting_the_alarm(judged, alerts)
    for silence_id in sorted(expired):
        am.expire_silence(silence_id)
        log(f"expired silence {silence_id}: it muted SilencePolicyViolation or its escalation")
    judged = [j for j in judged if str(j.silence["id"]) not in expired]
    acks = {j.silence["id"]: j.silence for j in judged if j.marks.ack}
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
    for j in judged:
        for finding in j.blocking:
            violations[finding.reason] += 1
    samples += [("obs_silence_policy_violations", {"reason": r}, n) for r, n in violations.items()]
    samples.append(("obs_silences_active", {}, len(judged)))
    samples.append(("obs_silences_forced", {}, sum(1 for j in judged if j.marks.forced)))
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
