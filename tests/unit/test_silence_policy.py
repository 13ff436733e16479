"""The silence policy as pure functions: judged by what a silence mutes, with Alertmanager's semantics
(Go RE2 regexes anchored ^(?:...)$, its matcher grammar), marks the tool signs, what the check writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tools import silences
from tools.silences import policy as policy_module
from tools.silences.from_config import policy as policy_from_config
from tools.silences.policy import (
    BadInputError,
    Marks,
    Matcher,
    PolicyError,
    blocking,
    exposition,
    mark,
    matches_every_critical,
    read_marks,
    review,
)

REASON = "disk swap on the NAS, ticket OPS-42"


@pytest.fixture
def policy(example_config):
    return policy_from_config(example_config)


def test_policy_from_example_config(policy) -> None:
    assert (policy.max_duration, policy.maintenance_max_duration) == (86400, 7 * 86400)
    assert policy.maintenance_windows == ("sunday-patching",)
    assert dict(policy.protected[0]) == {
        "alertname": "Watchdog",
        "severity": "info",
        "service": "monitoring",
        "cluster": "homelab",
    }
    backup_too_old = [dict(c) for c in policy.critical if c.get("alertname") == "BackupTooOld"]
    assert backup_too_old and all(c["severity"] == "critical" for c in backup_too_old)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=TargetDown", Matcher("alertname", "TargetDown")),
        ('instance!="a:1"', Matcher("instance", "a:1", is_equal=False)),
        ('alertname=~"Host.*"', Matcher("alertname", "Host.*", is_regex=True)),
        ("job!~node|pbs", Matcher("job", "node|pbs", is_regex=True, is_equal=False)),
        ('  summary = "say \\"hi\\"\\nthere"  ', Matcher("summary", 'say "hi"\nthere')),
        ('path="C:\\dir"', Matcher("path", "C:\\dir")),
        ("colon:name=x", Matcher("colon:name", "x")),
        ('empty=""', Matcher("empty", "")),
    ],
    ids=["equal", "not-equal", "regex", "not-regex", "escapes", "spurious-backslash", "colon-in-name", "empty"],
)
def test_matcher_parse_follows_alertmanager_grammar(text, expected) -> None:
    assert Matcher.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just words", "is not a matcher"),
        ('a="b"c"', "unescaped double quote"),
        ('a="open', "closing double quote is missing"),
        ('a=b"', "unescaped double quote"),
        ('alertname=~"(unclosed"', "invalid regex"),
        ('alertname=~"a{2,1}"', "invalid regex"),
        ('alertname=~"(?=lookahead)"', "invalid regex"),
        ('alertname=~"\\\\1"', "invalid regex"),
    ],
    ids=[
        "no-operator",
        "quote-inside",
        "unterminated",
        "stray-quote",
        "unclosed-group",
        "bad-repeat",
        "lookahead",
        "backref",
    ],
)
def test_matcher_parse_refuses(text, message) -> None:
    with pytest.raises(BadInputError, match=message):
        Matcher.parse(text)


@pytest.mark.parametrize(
    ("matcher", "value", "hit"),
    [
        ('alertname=~"[[:alpha:]]+"', "Watchdog", True),
        ('alertname=~"[[:alpha:]]+"', "Watch dog", False),
        ('a=~"a)|(b"', "axyz", True),  # Go compiles ^(?:a)|(b)$: unanchored on the right
        ('a=~"a|b"', "ab", False),  # the group keeps alternatives anchored
        ('a=~"\\pL+"', "Ünï", True),
        ('a=~".*"', "line\nbreak", False),  # . does not match \n without (?s)
        ('a!~".+"', "", True),  # a missing label is the empty string
        ('a!="x"', "", True),
    ],
    ids=[
        "posix-class",
        "posix-class-space",
        "unbalanced-alternation",
        "anchored-group",
        "unicode-class",
        "dot-newline",
        "absent-label",
        "absent-not-equal",
    ],
)
def test_matching_is_alertmanagers(matcher, value, hit) -> None:
    assert Matcher.parse(matcher).matches({"a": value, "alertname": value} if value else {}) is hit


@pytest.mark.parametrize(
    ("matchers", "every"),
    [
        (['severity="critical"'], True),
        (['severity=~"critical|warning"'], True),
        (['severity="critical"', 'alertname=~".*"'], True),
        (['alertname!="TargetDown"'], True),
        (['alertname=~"[[:alpha:]]+"'], True),
        (['instance=~".+"'], True),
        (['severity=~".+"'], True),
        (['severity="critical"', 'alertname="TargetDown"'], False),
        (['instance="10.0.10.110:9100"'], False),
        (['severity="warning"'], False),
        (['alertname=~"Backup.*"'], False),
    ],
    ids=[
        "severity-only",
        "severity-regex",
        "plus-match-all",
        "negative-only",
        "posix-class-names",
        "instance-present",
        "severity-present",
        "named",
        "instance",
        "warning-only",
        "backup-alerts",
    ],
)
def test_matches_every_critical(policy, matchers, every) -> None:
    assert matches_every_critical([Matcher.parse(m) for m in matchers], policy.critical) is every


def _marks(**kwargs: Any) -> Marks:
    return Marks(**kwargs)


CASES = [
    ("ok", ['alertname="HostMemoryPressure"'], 7200, "alice", REASON, Marks(), set(), set()),
    ("no-author", ['alertname="HostMemoryPressure"'], 7200, " ", REASON, Marks(), {"no_reason"}, {"no_reason"}),
    ("short-reason", ['alertname="HostMemoryPressure"'], 7200, "alice", "fix", Marks(), {"no_reason"}, {"no_reason"}),
    ("too-long", ['alertname="HostMemoryPressure"'], 2 * 86400, "alice", REASON, Marks(), {"too_long"}, {"too_long"}),
    (
        "maintenance-allows-longer",
        ['alertname="HostMemoryPressure"'],
        3 * 86400,
        "alice",
        REASON,
        Marks(maintenance="sunday-patching"),
        set(),
        set(),
    ),
    (
        "undeclared-window",
        ['alertname="HostMemoryPressure"'],
        3 * 86400,
        "alice",
        REASON,
        Marks(maintenance="whenever"),
        {"too_long"},
        {"too_long"},
    ),
    (
        "maintenance-cap",
        ['alertname="HostMemoryPressure"'],
        8 * 86400,
        "alice",
        REASON,
        Marks(maintenance="sunday-patching"),
        {"too_long"},
        {"too_long"},
    ),
    ("watchdog", ['alertname="Watchdog"'], 3600, "alice", REASON, Marks(), {"protected_alert"}, {"protected_alert"}),
    (
        "regex-hits-watchdog",
        ['alertname=~"W.*"'],
        3600,
        "alice",
        REASON,
        Marks(),
        {"protected_alert"},
        {"protected_alert"},
    ),
    (
        "posix-class-mutes-all",
        ['alertname=~"[[:alpha:]]+"'],
        3600,
        "alice",
        REASON,
        Marks(forced=True),
        {"protected_alert", "all_critical"},
        {"protected_alert"},  # it mutes SilencePolicyViolation: never forceable
    ),
    (
        "all-but-watchdog",
        ['alertname=~".+"', "alertname!=Watchdog"],
        3600,
        "alice",
        REASON,
        Marks(forced=True),
        {"protected_alert", "all_critical"},
        {"protected_alert"},
    ),
    ("instance-present", ['instance=~".+"'], 3600, "alice", REASON, Marks(), {"all_critical"}, {"all_critical"}),
    (
        "severity-present",
        ['severity=~".+"'],
        3600,
        "alice",
        REASON,
        Marks(),
        {"protected_alert", "all_critical"},
        {"protected_alert", "all_critical"},
    ),
    (
        "policy-alarm-by-service",
        ['service="monitoring"', 'severity="critical"'],
        3600,
        "alice",
        REASON,
        Marks(forced=True),
        {"protected_alert"},
        {"protected_alert"},
    ),
    (
        "escalation-of-the-alarm",
        ['alertname="CriticalAlertUnacknowledged"'],
        3600,
        "alice",
        REASON,
        Marks(forced=True),
        {"protected_alert"},
        {"protected_alert"},
    ),
    (
        "all-critical",
        ['severity="critical"'],
        3600,
        "alice",
        REASON,
        Marks(),
        {"all_critical", "protected_alert"},
        {"all_critical", "protected_alert"},
    ),
    (
        "forced-all-critical-but-the-alarm",
        ['severity="critical"', 'service!="monitoring"'],
        3600,
        "alice",
        REASON,
        Marks(forced=True),
        {"all_critical"},
        set(),
    ),
    (
        "force-does-not-lift-duration",
        ['alertname="Watchdog"'],
        2 * 86400,
        "alice",
        REASON,
        Marks(forced=True),
        {"protected_alert", "too_long"},
        {"too_long"},
    ),
    ("one-host", ['instance="10.0.10.110:9100"'], 3600, "alice", REASON, Marks(), set(), set()),
    (
        "monitoring-maintenance-leaving-the-alarm",  # the form docs/routing-and-silences.md gives
        ['service="monitoring"', 'alertname!~"Watchdog|SilencePolicyViolation|CriticalAlertUnacknowledged"'],
        3600,
        "alice",
        REASON,
        Marks(),
        set(),
        set(),
    ),
    (
        "one-host-every-alert",
        ['instance="10.0.10.110:9100"', 'alertname=~".+"'],
        3600,
        "alice",
        REASON,
        Marks(),
        set(),
        set(),
    ),
]


@pytest.mark.parametrize("case", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_review(policy, case) -> None:
    matchers, seconds, author, reason, marks, found, blocked = case
    findings = review(
        policy,
        matchers=[Matcher.parse(m) for m in matchers],
        duration_seconds=seconds,
        author=author,
        reason=reason,
        marks=marks,
    )
    assert {f.reason for f in findings} == found
    assert {f.reason for f in blocking(findings, marks)} == blocked


def test_live_protected_label_set_counts(policy) -> None:
    live = [{"alertname": "Watchdog", "severity": "info", "service": "monitoring", "zone": "attic"}]
    matchers = [Matcher.parse('zone="attic"'), Matcher.parse('severity="info"')]
    findings = review(policy, matchers=matchers, duration_seconds=3600, author="alice", reason=REASON, protected=live)
    assert {f.reason for f in findings} == {"protected_alert"}


MATCHERS = [Matcher("alertname", "HostMemoryPressure")]


@pytest.mark.parametrize(
    ("comment", "created_by", "matchers", "expected"),
    [
        (
            mark(Marks(forced=True), MATCHERS, "alice (obs-silences)", REASON),
            "alice (obs-silences)",
            MATCHERS,
            Marks(forced=True),
        ),
        (
            mark(Marks(ack=True, maintenance="sunday-patching"), MATCHERS, "bob (obs-silences)", REASON),
            "bob (obs-silences)",
            MATCHERS,
            Marks(ack=True, maintenance="sunday-patching"),
        ),
        ("[forced: storm of duplicates] " + REASON, "alice", MATCHERS, Marks()),
        ("[maintenance:sunday-patching] " + REASON, "alice", MATCHERS, Marks()),
        ("[ack] " + REASON, "alice", MATCHERS, Marks()),
        ("[obs-silences forced sig=0123456789abcdef] " + REASON, "alice (obs-silences)", MATCHERS, Marks()),
        (
            mark(Marks(forced=True), MATCHERS, "alice (obs-silences)", REASON),
            "alice (obs-silences)",
            [Matcher("severity", "critical")],
            Marks(),
        ),
        (mark(Marks(forced=True), MATCHERS, "alice (obs-silences)", REASON), "mallory", MATCHERS, Marks()),
        (
            mark(Marks(forced=True), MATCHERS, "alice (obs-silences)", REASON) + " edited",
            "alice (obs-silences)",
            MATCHERS,
            Marks(),
        ),
    ],
    ids=[
        "signed-forced",
        "signed-ack-maintenance",
        "typed-forced",
        "typed-maintenance",
        "typed-ack",
        "made-up-signature",
        "copied-to-other-matchers",
        "copied-by-someone-else",
        "comment-edited",
    ],
)
def test_marks_verify_only_when_the_tool_signed_them(comment, created_by, matchers, expected) -> None:
    assert read_marks(comment, matchers, created_by)[0] == expected


def test_without_re2_unportable_regexes_count_as_muting(monkeypatch, policy) -> None:
    """Debian's python3 on the host has no RE2: a regex Python might read otherwise is judged as
    muting everything (flagged), one in the portable subset is evaluated."""
    monkeypatch.setattr(policy_module, "re2", None)
    posix = Matcher("alertname", "[[:alpha:]]+", is_regex=True)
    assert not posix.decidable and posix.matches({"alertname": "x y"})
    named = Matcher("alertname", "Host(Memory|Disk).*", is_regex=True)
    assert named.decidable and not named.matches({"alertname": "Watchdog"})
    findings = review(policy, matchers=[posix], duration_seconds=60, author="a", reason=REASON)
    assert {f.reason for f in findings} == {"protected_alert", "all_critical"}


def test_exposition_omits_missing_labels_and_merges_twins() -> None:
    text = exposition(
        [
            ("obs_alert_ack_seconds", {"alertname": "TargetDown", "instance": 'a"b'}, 120.0),
            ("obs_alert_ack_seconds", {"alertname": "TargetDown", "instance": 'a"b'}, 60.0),
            ("obs_silences_active", {}, 1764190000.123),
        ],
        {"obs_alert_ack_seconds": ("gauge", "h"), "obs_silences_active": ("gauge", "h")},
    )
    assert 'obs_alert_ack_seconds{alertname="TargetDown",instance="a\\"b"} 60\n' in text
    assert text.count("obs_alert_ack_seconds{") == 1
    assert "obs_silences_active 1764190000.123\n" in text


class FakeAlertmanager:
    """Alertmanager's API v2 as the tools use it, with Alertmanager's matching for silencedBy."""

    def __init__(self, alerts: list[dict[str, str]]) -> None:
        self.labels = alerts
        self.store: dict[str, dict[str, Any]] = {}
        self.expired: list[str] = []

    def alerts(self) -> list[dict[str, Any]]:
        out = []
        for i, labels in enumerate(self.labels):
            by = [
                sid
                for sid, s in self.store.items()
                if silences.policy.mutes(map(Matcher.from_api, s["matchers"]), labels)
            ]
            out.append(
                {
                    "labels": labels,
                    "fingerprint": f"fp{i}",
                    "startsAt": "2026-12-01T10:00:00.000Z",
                    "status": {"state": "suppressed" if by else "active", "silencedBy": by},
                }
            )
        return out

    def silences(self) -> list[dict[str, Any]]:
        return list(self.store.values())

    def create_silence(self, matchers: list[Matcher], duration: timedelta, author: str, comment: str) -> str:
        now = datetime(2026, 12, 1, 10, 5, tzinfo=UTC)
        sid = f"s{len(self.store)}"
        self.store[sid] = {
            "id": sid,
            "matchers": [m.api() for m in matchers],
            "startsAt": now.isoformat(),
            "endsAt": (now + duration).isoformat(),
            "createdBy": author,
            "comment": comment,
            "status": {"state": "active"},
        }
        return sid

    def expire_silence(self, silence_id: str) -> None:
        self.expired.append(silence_id)
        self.store.pop(silence_id)


WATCHDOG = {"alertname": "Watchdog", "severity": "info", "service": "monitoring", "cluster": "homelab"}
VIOLATION = {
    "alertname": "SilencePolicyViolation",
    "severity": "critical",
    "service": "monitoring",
    "cluster": "homelab",
    "reason": "protected_alert",
    "role": "primary",  # a target label the rule's aggregation keeps
}


def test_create_signs_forced_silences_and_the_check_honours_them(policy) -> None:
    am = FakeAlertmanager([WATCHDOG])
    sid = silences.create(
        am,
        policy,
        matchers=[Matcher("alertname", "Watchdog")],
        duration="1h",
        author="alice",
        comment=REASON,
        force_reason="replacing the dead-man service",
    )
    stored = am.store[sid]
    assert stored["createdBy"] == "alice (obs-silences)" and stored["comment"].startswith("[obs-silences forced sig=")
    text = silences.check(am, policy, now=0, log=lambda _: None)
    assert 'obs_silence_policy_violations{reason="protected_alert"} 0' in text
    assert "obs_silences_forced 1" in text


def test_a_typed_forced_comment_is_a_violation(policy) -> None:
    am = FakeAlertmanager([WATCHDOG])
    am.create_silence(
        [Matcher("alertname", "Watchdog")], timedelta(hours=1), "alice", "[forced: trust me, I am sure] " + REASON
    )
    text = silences.check(am, policy, now=0, log=lambda _: None)
    assert 'obs_silence_policy_violations{reason="protected_alert"} 1' in text
    assert "obs_silences_forced 0" in text


@pytest.mark.parametrize(
    "matchers",
    [
        [Matcher("alertname", ".+", is_regex=True), Matcher("alertname", "Watchdog", is_equal=False)],
        [Matcher("role", "primary")],  # only the live alert's labels tell: Alertmanager's silencedBy
        [Matcher("alertname", "[[:alpha:]]+Violation", is_regex=True)],
    ],
    ids=["all-but-watchdog", "by-a-live-label", "posix-class"],
)
def test_the_check_expires_silences_muting_the_policy_alarm(policy, matchers) -> None:
    am = FakeAlertmanager([WATCHDOG, VIOLATION])
    keep = am.create_silence([Matcher("alertname", "HostMemoryPressure")], timedelta(hours=1), "bob", REASON)
    bad = am.create_silence(matchers, timedelta(hours=1), "mallory", "made in the UI for reasons")
    logged: list[str] = []
    silences.check(am, policy, now=0, log=logged.append)
    assert am.expired == [bad] and keep in am.store
    assert "muted SilencePolicyViolation" in logged[0]


def test_the_policy_alarm_cannot_be_acknowledged(policy) -> None:
    am = FakeAlertmanager([VIOLATION])
    with pytest.raises(PolicyError, match="SilencePolicyViolation, which must always fire"):
        silences.acknowledge(
            am,
            policy,
            selectors=[Matcher("alertname", "SilencePolicyViolation")],
            fingerprint=None,
            duration="1h",
            author="alice",
            comment="looking at it, OPS-9",
        )
    assert am.store == {}


def test_re2_is_installed_where_silences_are_created() -> None:
    """The controller judges with RE2 (requirements.txt pins google-re2); only the host falls back."""
    assert policy_module.re2 is not None, "google-re2 missing: pip install -r requirements.txt -c constraints.txt"


def _upstream_down(upstream: str, service: str) -> dict[str, str]:
    """UpstreamDown as Alertmanager holds it (rules/availability.yml: instance is the upstream's name)."""
    return {
        "alertname": "UpstreamDown",
        "severity": "critical",
        "service": service,
        "upstream": upstream,
        "instance": upstream,
        "asset": upstream,
        "tier": "critical",
        "cluster": "homelab",
    }


def test_an_acknowledged_upstream_page_writes_the_series_the_escalation_joins_on(policy) -> None:
    """The escalation joins on ACK_LABELS, which hold no `upstream`: the upstream's name reaches
    the series as `instance`, so acking one upstream's page does not count for another's
    (rules/tests/meta_test.yml replays the join)."""
    am = FakeAlertmanager([_upstream_down("resolvers:dns1:dns2", "dns"), _upstream_down("pve1", "proxmox")])
    silences.acknowledge(
        am,
        policy,
        selectors=[Matcher("upstream", "resolvers:dns1:dns2")],
        fingerprint=None,
        duration="1h",
        author="alice",
        comment="DNS down, rolling back the blocklist",
    )
    text = silences.check(am, policy, now=0, log=lambda _: None)
    acked = [line for line in text.splitlines() if line.startswith("obs_alert_acknowledged{")]
    assert acked == ['obs_alert_acknowledged{alertname="UpstreamDown",instance="resolvers:dns1:dns2",service="dns"} 1']
