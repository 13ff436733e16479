"""The silence policy as pure functions: what is refused, what may be forced, what the check writes."""

from __future__ import annotations

import pytest

from tools.silences import stamp
from tools.silences.from_config import policy as policy_from_config
from tools.silences.policy import Matcher, PolicyError, blocking, exposition, matches_every_critical, review

REASON = "disk swap on the NAS, ticket OPS-42"


@pytest.fixture
def policy(example_config):
    return policy_from_config(example_config)


def test_policy_from_example_config(policy) -> None:
    assert (policy.max_duration, policy.maintenance_max_duration) == (86400, 7 * 86400)
    assert policy.maintenance_windows == ("sunday-patching",)
    assert {"alertname": "Watchdog"}.items() <= dict(policy.protected[0]).items()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alertname=TargetDown", Matcher("alertname", "TargetDown")),
        ('instance!="a:1"', Matcher("instance", "a:1", is_equal=False)),
        ('alertname=~"Host.*"', Matcher("alertname", "Host.*", is_regex=True)),
        ("job!~node|pbs", Matcher("job", "node|pbs", is_regex=True, is_equal=False)),
    ],
    ids=["equal", "not-equal", "regex", "not-regex"],
)
def test_matcher_parse(text, expected) -> None:
    assert Matcher.parse(text) == expected


def test_matcher_parse_rejects_garbage() -> None:
    with pytest.raises(PolicyError, match="is not a matcher"):
        Matcher.parse("just words")


@pytest.mark.parametrize(
    ("matchers", "every"),
    [
        (['severity="critical"'], True),
        (['severity=~"critical|warning"'], True),
        (['severity="critical"', 'alertname=~".*"'], True),
        (['alertname!="TargetDown"'], True),
        (['severity="critical"', 'alertname="TargetDown"'], False),
        (['instance="10.0.10.110:9100"'], False),
        (['severity="warning"'], False),
    ],
    ids=["severity-only", "severity-regex", "plus-match-all", "negative-only", "named", "instance", "warning-only"],
)
def test_matches_every_critical(matchers, every) -> None:
    assert matches_every_critical([Matcher.parse(m) for m in matchers]) is every


CASES = [
    ("ok", ['alertname="HostMemoryPressure"'], 7200, "alice", REASON, set(), set()),
    ("no-author", ['alertname="HostMemoryPressure"'], 7200, " ", REASON, {"no_reason"}, {"no_reason"}),
    ("short-reason", ['alertname="HostMemoryPressure"'], 7200, "alice", "fix", {"no_reason"}, {"no_reason"}),
    ("too-long", ['alertname="HostMemoryPressure"'], 2 * 86400, "alice", REASON, {"too_long"}, {"too_long"}),
    (
        "maintenance-allows-longer",
        ['alertname="HostMemoryPressure"'],
        3 * 86400,
        "alice",
        "[maintenance:sunday-patching] " + REASON,
        set(),
        set(),
    ),
    (
        "undeclared-window",
        ['alertname="HostMemoryPressure"'],
        3 * 86400,
        "alice",
        "[maintenance:whenever] " + REASON,
        {"too_long"},
        {"too_long"},
    ),
    (
        "maintenance-cap",
        ['alertname="HostMemoryPressure"'],
        8 * 86400,
        "alice",
        "[maintenance:sunday-patching] " + REASON,
        {"too_long"},
        {"too_long"},
    ),
    ("watchdog", ['alertname="Watchdog"'], 3600, "alice", REASON, {"protected_alert"}, {"protected_alert"}),
    ("regex-hits-watchdog", ['alertname=~"W.*"'], 3600, "alice", REASON, {"protected_alert"}, {"protected_alert"}),
    ("all-critical", ['severity="critical"'], 3600, "alice", REASON, {"all_critical"}, {"all_critical"}),
    (
        "forced-all-critical",
        ['severity="critical"'],
        3600,
        "alice",
        "[forced: storm of duplicates during DC move] " + REASON,
        {"all_critical"},
        set(),
    ),
    (
        "force-does-not-lift-duration",
        ['alertname="Watchdog"'],
        2 * 86400,
        "alice",
        "[forced: replacing the dead-man service] " + REASON,
        {"protected_alert", "too_long"},
        {"too_long"},
    ),
]


@pytest.mark.parametrize("case", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_review(policy, case) -> None:
    matchers, seconds, author, comment, found, blocked = case
    findings = review(
        policy, matchers=[Matcher.parse(m) for m in matchers], duration_seconds=seconds, author=author, comment=comment
    )
    assert {f.reason for f in findings} == found
    assert {f.reason for f in blocking(findings, comment)} == blocked


def test_live_protected_label_set_counts(policy) -> None:
    live = [{"alertname": "Watchdog", "severity": "info", "service": "monitoring"}]
    matchers = [Matcher.parse('service="monitoring"'), Matcher.parse('severity="info"')]
    findings = review(policy, matchers=matchers, duration_seconds=3600, author="alice", comment=REASON, protected=live)
    assert {f.reason for f in findings} == {"protected_alert"}


def test_stamp_marks_ack_maintenance_and_force() -> None:
    assert stamp(" why ", "sunday-patching", "because ] reasons", ack=True) == (
        "[ack] [maintenance:sunday-patching] [forced: because ) reasons] why"
    )


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
