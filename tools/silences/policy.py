"""The silence policy, as pure functions (stdlib only: this module also runs on the monitoring host).

A silence is acceptable when it names an author and a reason, lasts at most ``max_duration``
(``maintenance_max_duration`` when it declares a configured maintenance window), does not match a
protected alert (Watchdog) and does not match every critical alert. The last two may be forced
with a reason; forced silences are stamped in their comment so the check can tell them apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ACK_MARK = "[ack]"
MAINTENANCE_RE = re.compile(r"\[maintenance:([a-z][a-z0-9-]*)\]")
FORCED_RE = re.compile(r"\[forced: ([^\]]+)\]")
MIN_REASON_CHARS = 10
REASONS = ("no_reason", "too_long", "protected_alert", "all_critical")
# Labels copied from an alert into obs_alert_acknowledged (contract in docs/metrics.md).
ACK_LABELS = ("alertname", "service", "instance", "job", "vmid", "target", "datastore", "job_type")
# Values any label of any critical alert could take: a matcher accepting all of them is no filter.
_SAMPLE_VALUES = ("", "x", "TargetDown", "critical", "10.0.10.11:9100", "node", "110", "git", "a b-c_d.e/f")
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


class PolicyError(ValueError):
    """A silence the policy refuses; the message says why and how to proceed."""


def parse_duration(text: str) -> int:
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groups()):
        raise PolicyError(f"'{text}' is not a duration: write e.g. 30m, 2h or 1d")
    units = (86400, 3600, 60, 1)
    return sum(int(g or 0) * u for g, u in zip(match.groups(), units, strict=True))


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = re.fullmatch(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*', text)
        if match is None:
            raise PolicyError(
                f"'{text}' is not a matcher: write label=value, label!=value, label=~regex or label!~regex"
            )
        name, op, value = match.groups()
        return cls(name, value, is_regex="~" in op, is_equal=not op.startswith("!"))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Alertmanager semantics: a missing label is the empty string; regexes are anchored."""
        actual = labels.get(self.name, "")
        hit = re.fullmatch(self.value, actual) is not None if self.is_regex else actual == self.value
        return hit if self.is_equal else not hit

    def accepts_anything(self) -> bool:
        return all(self.matches({self.name: v}) for v in _SAMPLE_VALUES)

    def api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        return cls(str(data["name"]), str(data["value"]), bool(data.get("isRegex")), bool(data.get("isEqual", True)))

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        return f'{self.name}{op[(self.is_regex, self.is_equal)]}"{self.value}"'


@dataclass(frozen=True)
class Policy:
    max_duration: int
    maintenance_max_duration: int
    maintenance_windows: tuple[str, ...]
    # Label sets of alerts no silence may match (Watchdog): alertname plus the rule's static labels.
    protected: tuple[Mapping[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, path: Path) -> Policy:
        return cls.from_document(json.loads(path.read_text()))

    @classmethod
    def from_document(cls, data: Mapping[str, Any]) -> Policy:
        return cls(
            max_duration=int(data["max_duration_seconds"]),
            maintenance_max_duration=int(data["maintenance_max_duration_seconds"]),
            maintenance_windows=tuple(data["maintenance_windows"]),
            protected=tuple(data["protected"]),
        )


@dataclass(frozen=True)
class Finding:
    reason: str  # one of REASONS
    message: str
    forceable: bool


def matches_every_critical(matchers: Iterable[Matcher]) -> bool:
    """True when no matcher narrows the critical alerts down to some: every matcher is a no-op, accepts
    severity=critical, or only excludes (``!=``/``!~``: "every critical alert but X" still masks them)."""
    return all(
        m.accepts_anything() or not m.is_equal or (m.name == "severity" and m.matches({"severity": "critical"}))
        for m in matchers
    )


def review(
    policy: Policy,
    *,
    matchers: list[Matcher],
    duration_seconds: int,
    author: str,
    comment: str,
    protected: Iterable[Mapping[str, str]] = (),
) -> list[Finding]:
    """Everything wrong with a silence (empty list: acceptable). ``protected`` adds live label sets."""
    findings: list[Finding] = []
    reason_text = FORCED_RE.sub("", MAINTENANCE_RE.sub("", comment.replace(ACK_MARK, ""))).strip()
    if not author.strip() or len(reason_text.replace(" ", "")) < MIN_REASON_CHARS:
        findings.append(
            Finding("no_reason", f"name an author and give a reason of at least {MIN_REASON_CHARS} characters", False)
        )
    window = MAINTENANCE_RE.search(comment)
    declared = window is not None and window.group(1) in policy.maintenance_windows
    limit = policy.maintenance_max_duration if declared else policy.max_duration
    if duration_seconds > limit:
        hint = "" if declared else " (longer only for a declared maintenance window: --maintenance NAME)"
        findings.append(Finding("too_long", f"lasts {duration_seconds}s, more than the {limit}s allowed{hint}", False))
    for labels in (*policy.protected, *protected):
        if all(m.matches(labels) for m in matchers):
            findings.append(
                Finding("protected_alert", f"would silence {labels.get('alertname')}, which must always fire", True)
            )
            break
    if matchers and matches_every_critical(matchers):
        findings.append(Finding("all_critical", "would silence every critical alert", True))
    return findings


def blocking(findings: list[Finding], comment: str) -> list[Finding]:
    """Findings that still refuse the silence once a `[forced: reason]` stamp is taken into account."""
    forced = FORCED_RE.search(comment) is not None
    return [f for f in findings if not (f.forceable and forced)]


def ack_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: labels[k] for k in ACK_LABELS if labels.get(k)}


def exposition(samples: Iterable[tuple[str, Mapping[str, str], float]], helps: Mapping[str, tuple[str, str]]) -> str:
    """Prometheus text format; a label the alert does not carry is omitted, never written empty."""
    by_name: dict[str, dict[str, float]] = {}
    for name, labels, value in samples:
        rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        series = by_name.setdefault(name, {})
        # One series per label set: duplicates (alerts that agree on every label) keep the smallest.
        series[rendered] = min(value, series.get(rendered, value))
    lines: list[str] = []
    for name, (kind, text) in helps.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]
        for rendered, value in sorted(by_name.get(name, {}).items()):
            lines.append(f"{name}{{{rendered}}} {value:.15g}" if rendered else f"{name} {value:.15g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
