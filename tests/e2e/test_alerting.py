"""End to end on real servers: Prometheus -> Alertmanager -> receivers, with the rendered configs.

Timings are the production ones divided by SPEEDUP (tests/e2e/conftest.py). These tests FAIL when
prometheus/alertmanager/exporter binaries are missing (the lab raises LabError).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from components import routing
from tools import oncall_drill, silences
from tools.lab import Lab
from tools.silences.__main__ import main as silences_cli
from tools.silences.api import Alertmanager
from tools.silences.from_config import policy as policy_from_config
from tools.silences.policy import Matcher, PolicyError

pytestmark = pytest.mark.e2e

FOR_SECONDS = 14  # target_down_for 3m30s / SPEEDUP
# CriticalAlertUnacknowledged's expression (rules/meta.yml) without its `for`, for the node's TargetDown.
UNACKNOWLEDGED = (
    'ALERTS{alertname="TargetDown",alertstate="firing",job="blackbox"} unless on(alertname, service, instance, job, '
    "vmid, target, datastore, job_type) obs_alert_acknowledged"
)
SETTLE = 8  # > group_wait (1s) + group_interval (4s) and > resend delay (4s) + group_wait: a duplicate shows


def target_down(lab: Lab) -> dict[str, list[str]]:
    """receiver -> statuses (firing/resolved) of the notifications carrying the node's TargetDown."""
    seen: dict[str, list[str]] = defaultdict(list)
    for n in lab.sink.notifications("TargetDown"):
        for alert in n.alerts:
            if (
                alert["labels"].get("alertname") == "TargetDown"
                and alert["labels"].get("instance") == lab.node_instance
            ):
                seen[n.receiver].append(alert["status"])
    return dict(seen)


def expected_receivers(lab: Lab) -> set[str]:
    labels = next(
        a["labels"]
        for n in lab.sink.notifications("TargetDown")
        for a in n.alerts
        if a["labels"]["alertname"] == "TargetDown"
    )
    return set(routing.receivers_for(lab.config.alerting, labels))


def wait_statuses(lab: Lab, status: str, timeout: float) -> bool:
    def every_receiver_has(_: object) -> bool:
        seen = target_down(lab)
        return bool(seen) and set(seen) >= expected_receivers(lab) and all(status in v for v in seen.values())

    return lab.sink.wait_for(every_receiver_has, timeout)


def node_down_seen(lab: Lab) -> bool:
    return bool(lab.query(f'up{{job="node",instance="{lab.node_instance}"}} == 0'))


def test_exporter_down_notifies_right_receivers_once_then_resolves(lab: Lab) -> None:
    lab.stop_process("node_exporter")
    assert wait_statuses(lab, "firing", timeout=30), f"no TargetDown notification: {target_down(lab)}"
    assert expected_receivers(lab) == {"oncall-primary", "slack-critical"}  # critical tier pages
    lab.start_process("node_exporter")
    assert wait_statuses(lab, "resolved", timeout=30), f"no resolved notification: {target_down(lab)}"
    time.sleep(SETTLE)
    assert target_down(lab) == {r: ["firing", "resolved"] for r in expected_receivers(lab)}


def test_blip_shorter_than_for_notifies_nobody(lab: Lab) -> None:
    lab.stop_process("node_exporter")
    assert lab.wait_until(lambda: node_down_seen(lab), timeout=10), "Prometheus never saw the blip"
    lab.start_process("node_exporter")
    assert lab.wait_until(lambda: not node_down_seen(lab), timeout=10)
    time.sleep(FOR_SECONDS + SETTLE)
    assert target_down(lab) == {}
    assert not lab.query('ALERTS{alertname="TargetDown",alertstate="firing"}')


def test_alertmanager_restart_while_firing_delivers_once(lab: Lab) -> None:
    # Down before Alertmanager could notify: Prometheus re-sends it to the restarted one.
    lab.stop_process("alertmanager")
    lab.stop_process("node_exporter")
    assert lab.wait_until(lambda: bool(lab.query('ALERTS{alertname="TargetDown",alertstate="firing"}')), timeout=30), (
        "TargetDown never fired in Prometheus"
    )
    lab.start_process("alertmanager")
    assert wait_statuses(lab, "firing", timeout=30), f"not delivered after restart: {target_down(lab)}"
    # Restarted after it notified: its notification log survives, so nothing is sent twice. The log
    # records a notification once the receiver has answered: give it that moment before SIGTERM.
    time.sleep(1)
    lab.restart_process("alertmanager")
    time.sleep(SETTLE)
    assert target_down(lab) == {r: ["firing"] for r in expected_receivers(lab)}


def test_silence_suppresses_then_expires(lab: Lab) -> None:
    am = Alertmanager(lab.url("alertmanager"))
    silence_seconds = 24  # outlasts `for` (14s) plus a scrape and an evaluation
    silences.create(
        am,
        policy_from_config(lab.config),
        matchers=[Matcher("alertname", "TargetDown"), Matcher("instance", lab.node_instance)],
        duration=f"{silence_seconds}s",
        author="e2e",
        comment="planned exporter restart in the e2e test",
    )
    started = time.monotonic()
    lab.stop_process("node_exporter")

    def suppressed() -> bool:
        return any(
            a["labels"]["alertname"] == "TargetDown" and a["status"]["state"] == "suppressed" for a in am.alerts()
        )

    assert lab.wait_until(suppressed, timeout=silence_seconds - 2), "the alert never reached Alertmanager muted"
    assert target_down(lab) == {}, "delivered despite the silence"
    assert wait_statuses(lab, "firing", timeout=30), "not delivered after the silence expired"
    assert time.monotonic() - started >= silence_seconds


def test_policy_violating_silence_is_refused_and_check_reports(lab: Lab) -> None:
    textfiles = lab.textfile_dir
    am = Alertmanager(lab.url("alertmanager"))
    policy = policy_from_config(lab.config)
    assert lab.wait_until(lambda: any(a["labels"]["alertname"] == "Watchdog" for a in am.alerts()), timeout=20)
    for matchers in ([Matcher("severity", "critical")], [Matcher("service", "monitoring")]):
        with pytest.raises(PolicyError, match="refused"):
            silences.create(am, policy, matchers=matchers, duration="1h", author="e2e", comment="too broad a silence")
    code = silences_cli(
        [
            *("--alertmanager", lab.url("alertmanager"), "--stack", "prod", "create", "-m", "severity=critical"),
            *("--duration", "1h", "--author", "e2e", "--comment", "would mask every critical alert"),
        ]
    )
    assert code == 1
    assert am.silences() == []  # nothing was created by the refused requests

    # Someone bypasses the CLI (amtool, the UI): the policy check reports it.
    from datetime import timedelta

    outside = [Matcher("severity", "critical"), Matcher("service", "monitoring", is_equal=False)]
    am.create_silence(outside, timedelta(hours=30), "someone", "x")
    # One that would mute SilencePolicyViolation itself: the check expires it (Alertmanager's verdict).
    alarm = am.create_silence([Matcher("alertname", "[[:alpha:]]+", is_regex=True)], timedelta(hours=1), "someone", "x")
    # An acknowledgement is what the check turns into obs_alert_acknowledged / obs_alert_ack_seconds.
    # The blackbox exporter goes down (node_exporter must stay up: it serves the check's textfile).
    lab.stop_process("blackbox")
    blackbox = lab.registered_instance("blackbox")
    assert lab.wait_until(lambda: any(a["labels"].get("instance") == blackbox for a in am.alerts()), timeout=30), (
        "TargetDown never reached Alertmanager"
    )
    silences.acknowledge(
        am,
        policy,
        selectors=[Matcher("alertname", "TargetDown"), Matcher("instance", blackbox)],
        fingerprint=None,
        duration="1h",
        author="e2e",
        comment="looking into the exporter, OPS-1",
    )
    assert (
        silences_cli(
            [*("--alertmanager", lab.url("alertmanager"), "--stack", "prod"), "check", "--textfile-dir", str(textfiles)]
        )
        == 0
    )
    assert alarm not in {s["id"] for s in am.silences() if s["status"]["state"] == "active"}
    audit = [*("--alertmanager", lab.url("alertmanager"), "--stack", "prod"), "audit"]
    assert silences_cli(audit) == 1  # lists the bypassing silence and why it breaks the policy
    text = (textfiles / "obs_alerts.prom").read_text()
    for line in (
        'obs_silence_policy_violations{reason="all_critical"} 1',
        'obs_silence_policy_violations{reason="too_long"} 1',
        'obs_silence_policy_violations{reason="no_reason"} 1',
        "obs_silence_policy_check_up 1",
        "obs_silences_active 2",
        f'obs_alert_acknowledged{{alertname="TargetDown",instance="{blackbox}",job="blackbox",service="monitoring"}} 1',
    ):
        assert line + "\n" in text, text
    assert f'obs_alert_ack_seconds{{alertname="TargetDown",instance="{blackbox}"' in text
    # Scraped by node_exporter, the ack matches its alert the way CriticalAlertUnacknowledged joins.
    assert lab.wait_until(lambda: bool(lab.query('obs_alert_acknowledged{alertname="TargetDown"}')), timeout=15)
    assert lab.query(UNACKNOWLEDGED) == []


def test_an_acknowledgement_keeps_the_alerts_service(lab: Lab) -> None:
    """The ack series are scraped from the monitoring host's node_exporter, whose target labels
    say service="monitoring": without relabelling, the alert's service became exported_service
    and CriticalAlertUnacknowledged, which joins on service, never saw an ack of another service."""
    ack = 'obs_alert_acknowledged{alertname="TargetDown",instance="10.0.30.11:9100",job="node",service="git"} 1\n'
    (lab.textfile_dir / "obs_ack_test.prom").write_text(ack)
    try:
        assert lab.wait_until(lambda: bool(lab.query('obs_alert_acknowledged{instance="10.0.30.11:9100"}')), timeout=20)
        (series,) = lab.query('obs_alert_acknowledged{instance="10.0.30.11:9100"}')
        assert series["metric"]["service"] == "git", series["metric"]
        assert "exported_service" not in series["metric"] and series["metric"]["job"] == "node"
    finally:
        (lab.textfile_dir / "obs_ack_test.prom").unlink()


def test_oncall_drill_pages_waits_for_ack_and_records(lab: Lab, tmp_path) -> None:
    am = Alertmanager(lab.url("alertmanager"))
    results: list[oncall_drill.DrillResult] = []
    drill = threading.Thread(
        target=lambda: results.append(oncall_drill.run(am, 30, "runbook", poll=0.2, progress=print))
    )
    drill.start()
    assert lab.sink.wait_for(lambda ns: any("OnCallDrill" in n.alertnames for n in ns), timeout=15), "drill never paged"
    assert {n.receiver for n in lab.sink.notifications("OnCallDrill")} <= {"oncall-primary", "slack-critical"}
    silences.acknowledge(
        am,
        policy_from_config(lab.config),
        selectors=[Matcher("alertname", "OnCallDrill")],
        fingerprint=None,
        duration="10m",
        author="e2e",
        comment="on-call drill acknowledged",
    )
    drill.join(timeout=30)
    assert results and results[0].acked and results[0].ack_seconds is not None
    oncall_drill.record(results[0], tmp_path)
    first = (tmp_path / oncall_drill.TEXTFILE_NAME).read_text()
    assert "obs_oncall_drill_success 1\n" in first
    assert f"obs_oncall_drill_last_success_timestamp_seconds {results[0].started:.15g}\n" in first

    # Nobody answers the next drill: it fails, and the last success is kept.
    missed = oncall_drill.run(am, 1, "runbook", poll=0.2, progress=print)
    oncall_drill.record(missed, tmp_path)
    second = (tmp_path / oncall_drill.TEXTFILE_NAME).read_text()
    assert not missed.acked and "obs_oncall_drill_success 0\n" in second
    assert f"obs_oncall_drill_last_success_timestamp_seconds {results[0].started:.15g}\n" in second
