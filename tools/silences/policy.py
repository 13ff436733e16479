"""The silence policy, as pure functions (this module also runs on the monitoring host).

A silence is acceptable when it names an author and a reason, lasts at most ``max_duration``
(``maintenance_max_duration`` when the tool marked it for a configured maintenance window), does
not mute a protected alert and does not mute every critical alert. A silence is judged by what it
would mute, with Alertmanager's semantics: its matchers against the protected alerts' label sets
(a label an alert lacks is the empty string) and regexes as Go's RE2 compiles them, anchored
``^(?:...)$`` (prometheus/alertmanager pkg/labels/matcher.go, NewMatcher). Muting Watchdog may be
forced with a reason; muting SilencePolicyViolation or its escalation never. Forced, maintenance
and acknowledgement silences carry a marker the tool signs (docs/routing-and-silences.md).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # google-re2 (requirements.txt): RE2, the engine of Go's regexp that Alertmanager uses.
    re2: Any = importlib.import_module("re2")
except ImportError:  # Debian 12's python3 on the monitoring host has no RE2 binding
    re2 = None

MARK_TAG = "obs-silences"
CREATED_BY_SUFFIX = f" ({MARK_TAG})"
_MARK_RE = re.compile(rf"^\[{MARK_TAG}((?: [a-z]+(?:=[a-z][a-z0-9-]*)?)*) sig=([0-9a-f]{{16}})\] ?")
MIN_REASON_CHARS = 10
REASONS = ("no_reason", "too_long", "protected_alert", "all_critical")
# The alerts that report policy breaches: no silence may mute them, forced or not.
WATCHDOG, VIOLATION, ESCALATION = "Watchdog", "SilencePolicyViolation", "CriticalAlertUnacknowledged"
# Labels copied from an alert into obs_alert_acknowledged (contract in docs/metrics.md).
ACK_LABELS = ("alertname", "service", "instance", "job", "vmid", "target", "datastore", "job_type")
# Values a label that varies per alert (instance, job, ...) takes: a matcher accepting all of them
# only asks for the label to be there, which every alert of its kind has: no filter.
_SAMPLE_VALUES = (
    "x",
    "TargetDown",
    "critical",
    "10.0.10.11:9100",
    "node",
    "110",
    "git",
    "a b-c_d.e/f",
    "pbs-offsite:vm/110",
    "Ünïcødé ✓",
)
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
# Alertmanager's classic matcher syntax (pkg/labels/parse.go): name, operator, optionally quoted value.
_MATCHER_RE = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
# Without RE2 (the host), only regexes in this subset are evaluated with Python's re, where both
# engines agree; any other regex is undecidable and judged as matching everything (fail closed).
_PORTABLE_REGEX = re.compile(r"^(?:[A-Za-z0-9_.:/@ ,=-]|\\[.*+?()|\[\]{}^$\\/-]|[|()*+?^$]|\[[A-Za-z0-9_.:/ -]+\])*$")


class PolicyError(ValueError):
    """A silence the policy refuses; the message says why and how to proceed."""


class BadInputError(ValueError):
    """Input the tools cannot use (a matcher, a duration, a policy file): exit code 2."""


def parse_duration(text: str) -> int:
    match = _DURATION_RE.match(text)
    if not text or match is None or not any(match.groups()):
        raise BadInputError(f"'{text}' is not a duration: write e.g. 30m, 2h or 1d")
    units = (86400, 3600, 60, 1)
    return sum(int(g or 0) * u for g, u in zip(match.groups(), units, strict=True))


def _unquote(raw: str, text: str) -> str:
    """The matcher value with OpenMetrics escapes undone, as pkg/labels/parse.go ParseMatcher does."""
    quoted = raw.startswith('"')
    body = raw[1:] if quoted else raw
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i < len(body) - 1:
            nxt = body[i + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"':
            if not quoted or i < len(body) - 1:
                raise BadInputError(f"'{text}': the value has an unescaped double quote (write \\\")")
            quoted = False
        else:
            out.append(char)
        i += 1
    if quoted:
        raise BadInputError(f"'{text}': the value's closing double quote is missing")
    return "".join(out)


def _go_regex(value: str) -> Callable[[str], bool] | None:
    """The matcher's regex as Alertmanager compiles it, or None where it cannot be decided here."""
    anchored = "^(?:" + value + ")$"
    if re2 is not None:
        options = re2.Options()
        options.log_errors = False
        try:
            compiled = re2.compile(anchored, options)
        except re2.error as err:
            raise BadInputError(f"invalid regex {value!r}: {err}") from None
        return lambda s: compiled.search(s) is not None
    if _PORTABLE_REGEX.match(value) is None:
        return None
    try:
        portable = re.compile(anchored)
    except re.error:  # e.g. a scoped flag group RE2 allows: undecidable here, never "invalid"
        return None
    return lambda s: portable.search(s) is not None


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def __post_init__(self) -> None:
        if self.is_regex:
            _go_regex(self.value)  # refuse an invalid regex where it is written, not where it is used

    @classmethod
    def parse(cls, text: str) -> Matcher:
        match = _MATCHER_RE.match(text)
        if match is None:
            raise BadInputError(
                f"'{text}' is not a matcher: write label=value, label!=value, label=~regex or label!~regex"
            )
        name, op, raw = match.groups()
        return cls(name, _unquote(raw, text), is_regex="~" in op, is_equal=not op.startswith("!"))

    @property
    def decidable(self) -> bool:
        return not self.is_regex or _go_regex(self.value) is not None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Alertmanager semantics: a missing label is the empty string; regexes are anchored RE2.
        An undecidable regex (no RE2 here) matches: judged as muting, never as harmless."""
        actual = labels.get(self.name, "")
        if not self.is_regex:
            return (actual == self.value) == self.is_equal
        test = _go_regex(self.value)
        return True if test is None else test(actual) == self.is_equal

    def accepts_any_present(self) -> bool:
        """Whether the matcher only asks for the label to be there (or not even that)."""
        return all(self.matches({self.name: v}) for v in _SAMPLE_VALUES)

    def api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        return cls(str(data["name"]), str(data["value"]), bool(data.get("isRegex")), bool(data.get("isEqual", True)))

    def __str__(self) -> str:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        escaped = self.value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
        return f'{self.name}{op[(self.is_regex, self.is_equal)]}"{escaped}"'


def mutes(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether a silence with these matchers mutes an alert with these labels (all must match)."""
    return all(m.matches(labels) for m in matchers)


@dataclass(frozen=True)
class Policy:
    max_duration: int
    maintenance_max_duration: int
    maintenance_windows: tuple[str, ...]
    # Label sets of alerts no silence may mute (Watchdog, SilencePolicyViolation and its escalation):
    # alertname plus the rule's static labels and the stack's external labels.
    protected: tuple[Mapping[str, str], ...] = field(default_factory=tuple)
    # Label sets of the critical alert rules (alertname plus static labels): what "every critical" is.
    critical: tuple[Mapping[str, str], ...] = field(default_factory=tuple)

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise BadInputError(
                f"cannot read the policy file {path}: {err.strerror}: pass --policy FILE or --stack NAME"
            ) from None
        except (UnicodeDecodeError, ValueError) as err:
            raise BadInputError(
                f"the policy file {path} is not JSON ({err}): re-render it with the Pulumi program"
            ) from None
        return cls.from_document(data, str(path))

    @classmethod
    def from_document(cls, data: Any, source: str = "the policy") -> Policy:
        try:
            return cls(
                max_duration=int(data["max_duration_seconds"]),
                maintenance_max_duration=int(data["maintenance_max_duration_seconds"]),
                maintenance_windows=tuple(str(w) for w in data["maintenance_windows"]),
                protected=_label_sets(data["protected"]),
                critical=_label_sets(data.get("critical", [])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise BadInputError(
                f"{source} is not a silence policy document ({type(err).__name__}: {err}): "
                "re-render it with the Pulumi program"
            ) from None

    def all_protected(self, live: Iterable[Mapping[str, str]] = ()) -> list[Mapping[str, str]]:
        """Every protected label set; SilencePolicyViolation and its escalation whatever the config says."""
        declared = [*self.protected, *live]
        external = {k: v for k, v in (self.protected[0] if self.protected else {}).items() if k == "cluster"}
        floor = [
            {**external, "alertname": VIOLATION, "severity": "critical", "service": "monitoring", "reason": reason}
            for reason in REASONS
        ] + [
            {
                **external,
                "alertname": ESCALATION,
                "severity": "critical",
                "service": "monitoring",
                "unacknowledged_alert": VIOLATION,
                "reason": reason,
            }
            for reason in REASONS
        ]
        return declared + floor


def _label_sets(items: Any) -> tuple[Mapping[str, str], ...]:
    sets = tuple({str(k): str(v) for k, v in dict(item).items()} for item in items)
    if any("alertname" not in s for s in sets):
        raise ValueError("every label set needs an alertname")
    return sets


def is_unforceable(labels: Mapping[str, str]) -> bool:
    """The policy's own alarm and its escalation: muting them hides every other breach."""
    return labels.get("alertname") == VIOLATION or labels.get("unacknowledged_alert") == VIOLATION


@dataclass(frozen=True)
class Marks:
    """What the tool vouches for in a silence it created (verified, never read from free text)."""

    ack: bool = False
    maintenance: str | None = None
    forced: bool = False

    def words(self) -> str:
        words = (["ack"] if self.ack else []) + ([f"maintenance={self.maintenance}"] if self.maintenance else [])
        return " ".join(words + (["forced"] if self.forced else []))


def _signature(marks: Marks, matchers: Sequence[Matcher], created_by: str, body: str) -> str:
    canonical = json.dumps(
        [MARK_TAG, marks.words(), sorted(json.dumps(m.api(), sort_keys=True) for m in matchers), created_by, body],
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def mark(marks: Marks, matchers: Sequence[Matcher], created_by: str, body: str) -> str:
    """The comment of a silence the tool creates: a signed marker, then the author's words."""
    words = marks.words()
    prefix = f"[{MARK_TAG}{' ' + words if words else ''} sig={_signature(marks, matchers, created_by, body)}]"
    return f"{prefix} {body}"


def read_marks(comment: str, matchers: Sequence[Matcher], created_by: str) -> tuple[Marks, str]:
    """The marks a silence really carries and its free text. A marker typed by hand, copied from another
    silence or left on an edited one does not verify: the silence then has no marks at all."""
    match = _MARK_RE.match(comment)
    if match is None:
        return Marks(), comment
    body = comment[match.end() :]
    words = match.group(1).split()
    maintenance = next((w.split("=", 1)[1] for w in words if w.startswith("maintenance=")), None)
    marks = Marks(ack="ack" in words, maintenance=maintenance, forced="forced" in words)
    if marks.words() != " ".join(words) or _signature(marks, matchers, created_by, body) != match.group(2):
        return Marks(), comment
    return marks, body


@dataclass(frozen=True)
class Finding:
    reason: str  # one of REASONS
    message: str
    forceable: bool


def matches_every_critical(matchers: Iterable[Matcher], critical: Iterable[Mapping[str, str]] = ()) -> bool:
    """Whether the silence mutes every critical alert: its positive matchers (``!=``/``!~`` only
    exclude: "every critical alert but X" still masks them) accept every critical rule's labels,
    and a matcher on a label that varies per alert (instance, ...) asks no more than its presence."""
    positive = [m for m in matchers if m.is_equal]
    rules = list(critical) or [{"severity": "critical"}]
    return all(all(m.matches(rule) if m.name in rule else m.accepts_any_present() for m in positive) for rule in rules)


def review(
    policy: Policy,
    *,
    matchers: list[Matcher],
    duration_seconds: int,
    author: str,
    reason: str,
    marks: Marks = Marks(),
    protected: Iterable[Mapping[str, str]] = (),
) -> list[Finding]:
    """Everything wrong with a silence (empty list: acceptable). ``protected`` adds live label sets."""
    findings: list[Finding] = []
    if not author.strip() or len(reason.replace(" ", "")) < MIN_REASON_CHARS:
        findings.append(
            Finding("no_reason", f"name an author and give a reason of at least {MIN_REASON_CHARS} characters", False)
        )
    declared = marks.maintenance is not None and marks.maintenance in policy.maintenance_windows
    limit = policy.maintenance_max_duration if declared else policy.max_duration
    if duration_seconds > limit:
        hint = "" if declared else " (longer only for a declared maintenance window: --maintenance NAME)"
        findings.append(Finding("too_long", f"lasts {duration_seconds}s, more than the {limit}s allowed{hint}", False))
    muted = [labels for labels in policy.all_protected(protected) if mutes(matchers, labels)]
    if muted:
        never = [labels for labels in muted if is_unforceable(labels)]
        named = (never or muted)[0]
        what = named.get("unacknowledged_alert", "") and f" (escalating {named['unacknowledged_alert']})"
        findings.append(
            Finding(
                "protected_alert",
                f"would silence {named.get('alertname')}{what}, which must always fire",
                not never,
            )
        )
    if matchers and matches_every_critical(matchers, policy.critical):
        findings.append(Finding("all_critical", "would silence every critical alert", True))
    return findings


def blocking(findings: list[Finding], marks: Marks) -> list[Finding]:
    """Findings that still refuse the silence once a verified forced mark is taken into account."""
    return [f for f in findings if not (f.forceable and marks.forced)]


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
