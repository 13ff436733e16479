"""The twin of the example homelab (tests/twin/twin.py): complete, quiet, one page per fault, and
durable across a restart of every host. Runs in order (one twin for the module); `make twin`.

Timings are shortened (tests/twin/twin.py): rule ``for`` and group timings / SPEEDUP. Each bound
below is derived from those: the rule's scaled ``for`` + one evaluation + one scrape + the route's
scaled group_wait, plus slack for two shared cores. Fails (never skips) without root,
debootstrap, systemd-nspawn or the network to Debian's mirror and PyPI.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from components.config import duration_seconds
from components.routing import ESCALATION_LABEL
from tests.twin import stack
from tests.twin.conftest import FIGURES
from tests.twin.twin import SPEEDUP, Twin
from tools.lab.sink import Notification

pytestmark = pytest.mark.twin

COVERAGE_BOUND = 300  # the issue: within 5 minutes of the install finishing
QUIET_SECONDS = 60  # the quiet 10 minutes of production rule and route timings at SPEEDUP 10
LAST_GROUP_INTERVAL = 30  # the warning route's 5m / SPEEDUP: a resolved notification comes within it
SLACK = 20  # seconds of scheduling slack on two shared cores
SETTLE = 15  # after the first page: > the critical group_interval (1m / SPEEDUP), so a second would show
CRITICAL_RECEIVERS = ("oncall-primary", "slack-critical")
# Alertmanager's --cluster.peer-timeout default (prometheus/alertmanager cmd/alertmanager/main.go,
# `cluster.peer-timeout` Default("15s")): the second Alertmanager of the cluster waits this long
# for the first to notify; with the first one dead that wait is on the path of every page.
PEER_TIMEOUT = 15
# The PBS collector's timer (components/render/pbs_collector.py, OnUnitActiveSec=5min) / SPEEDUP,
# plus its AccuracySec (30s / SPEEDUP).
COLLECTOR_PERIOD = 33
# How long a killed replica is watched after its page: past PrometheusNotificationsFailing's and
# AlertmanagerClusterDegraded's scaled `for` (10m and 5m / SPEEDUP) and a group interval.
REPLICA_WATCH = 90
# Fires by design from 1h after the install until the first on-call drill ("no on-call drill
# within 31d, or never", docs/alerting.md); it concerns no host, so no fault counts it.
BEFORE_FIRST_DRILL = {"OnCallDrillOverdue"}


def _wait(condition: Callable[[], Any], timeout: float, what: str, interval: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def twin() -> Iterator[Twin]:
    # A stopped run (CI's timeout) still powers the hosts off and removes their namespaces.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("twin: terminated"))
    running = Twin()
    try:
        running.create()
        running.provision()
        FIGURES["boot of 6 hosts (s)"] = round(running.timings["boot"], 1)
        FIGURES["install (s)"] = round(running.timings["provision"], 1)
        yield running
    finally:
        running.destroy()


def target_down_for(twin: Twin) -> str:
    """The `for` a node exporter's TargetDown holds (the stack's threshold)."""
    return twin.stack.config.alerting.thresholds.target_down_for  # type: ignore[union-attr]


def bound(twin: Twin, rule_for: str, group_wait: str = "15s") -> float:
    """The rule's scaled ``for`` and the route's scaled group_wait, one scrape and two evaluations,
    Alertmanager's peer timeout and the slack for two shared cores."""
    mon = twin.stack.config.monitoring  # type: ignore[union-attr]
    scaled = (duration_seconds(rule_for) + duration_seconds(group_wait)) / SPEEDUP
    cycle = duration_seconds(mon.scrape_interval) + 2 * duration_seconds(mon.evaluation_interval)
    return scaled + cycle + PEER_TIMEOUT + SLACK


def settled(twin: Twin) -> None:
    """Only Watchdog active on both Alertmanagers, and no other notification for a group
    interval: pages of what came before (the install: agents come after the monitoring hosts)
    have been resolved and told."""

    expected = {"Watchdog", *BEFORE_FIRST_DRILL}

    def quiet() -> bool:
        if not all(firing_alertnames(twin, h) <= expected for h in stack.MONITORING):
            return False
        recent = since(twin, time.time() - LAST_GROUP_INTERVAL)
        return all(n.alertnames <= expected for n in recent)

    try:
        _wait(quiet, 180, "only Watchdog, and no other notification for a group interval")
    except AssertionError as err:
        firing = {h: sorted(firing_alertnames(twin, h) - expected) for h in stack.MONITORING}
        recent = [n.describe() for n in since(twin, time.time() - LAST_GROUP_INTERVAL) if n.alertnames - expected]
        raise AssertionError(f"{err}\nfiring: {firing}\nrecent notifications:\n" + "\n".join(recent)) from None


def up_everywhere(twin: Twin) -> bool:
    """Both replicas scrape every registered target, every scrape job is up, coverage is 1."""
    for host in stack.MONITORING:
        up = {(r["metric"]["job"], r["metric"]["instance"]): r["value"][1] for r in twin.query(host, "up")}
        coverage = twin.query(host, "obs:scrape_coverage:ratio")
        if not coverage or coverage[0]["value"][1] != "1" or set(up.values()) != {"1"}:
            return False
        if not twin.stack.registered() <= set(up):  # type: ignore[union-attr]
            return False
    return True


def firing_alertnames(twin: Twin, host: str) -> set[str]:
    alerts = twin.api(host, "alertmanager", "/api/v2/alerts", {"active": "true", "silenced": "false"})
    return {a["labels"]["alertname"] for a in alerts}


def since(twin: Twin, started: float) -> list[Notification]:
    return [n for n in twin.sink.notifications() if n.received_at >= started]  # type: ignore[union-attr]


def escalated(alert: dict[str, Any]) -> bool:
    """The escalation of a page nobody acknowledged within ack_timeout (1m at SPEEDUP 10): it leaves
    Prometheus named as the alert it escalates (components/render/prometheus.py), for the secondary."""
    return alert["labels"].get(ESCALATION_LABEL[0]) == ESCALATION_LABEL[1]


def firing_for(
    notes: list[Notification], alertname: str, instance: str, *, escalations: bool = False
) -> dict[str, int]:
    """Firing notifications per receiver that carry ``alertname`` on ``instance`` (the page, or
    with ``escalations`` its escalation)."""
    counts: dict[str, int] = {}
    for n in notes:
        if any(
            a["labels"].get("alertname") == alertname
            and a["labels"].get("instance") == instance
            and escalated(a) == escalations
            for a in n.alerts
            if a["status"] == "firing"
        ):
            counts[n.receiver] = counts.get(n.receiver, 0) + 1
    return counts


def test_coverage_is_complete_and_every_job_up_within_5_minutes(twin: Twin) -> None:
    _wait(lambda: up_everywhere(twin), COVERAGE_BOUND - (time.time() - twin.installed_at), "100% coverage")
    FIGURES["coverage after install (s)"] = round(time.time() - twin.installed_at, 1)
    FIGURES["registered targets scraped"] = f"{len(twin.stack.registered())}/{len(twin.stack.registered())}"  # type: ignore[union-attr]


def test_a_quiet_period_notifies_nothing_but_the_watchdog(twin: Twin) -> None:
    settled(twin)
    started = time.time()
    time.sleep(QUIET_SECONDS)
    others = [n.describe() for n in since(twin, started) if n.alertnames != {"Watchdog"}]
    assert others == [], "\n".join(others)
    watchdog = [n for n in since(twin, started) if n.receiver == "deadman"]
    assert watchdog, "no Watchdog heartbeat reached the dead-man's switch"
    FIGURES["quiet period (s, production minutes)"] = f"{QUIET_SECONDS} ({QUIET_SECONDS * SPEEDUP // 60})"


def test_a_guest_exporter_stopped_pages_once_per_receiver(twin: Twin) -> None:
    settled(twin)
    guest = twin.host("gitea")
    instance = f"{guest.address}:{twin.stack.config.monitoring.ports.node_exporter}"  # type: ignore[union-attr]
    started = time.time()
    assert guest.root_ssh("systemctl stop prometheus-node-exporter").returncode == 0
    try:
        limit = bound(twin, target_down_for(twin))
        fault_pages(twin, started, "TargetDown", instance, fault="exporter stopped", receivers=CRITICAL_RECEIVERS,
                    limit=limit)  # fmt: skip
        running = [r for h in stack.MONITORING for r in twin.query(h, 'up{job="prometheus"}')]
        assert len(running) == 4 and {r["value"][1] for r in running} == {"1"}, "both replicas must be running"
    finally:
        assert guest.root_ssh("systemctl start prometheus-node-exporter").returncode == 0
    _wait(lambda: up_everywhere(twin), 60, "the exporter scraped again")


def fault_pages(
    twin: Twin,
    started: float,
    alertname: str,
    instance: str,
    *,
    fault: str,
    receivers: tuple[str, ...],
    limit: float,
    watch: float = SETTLE,
    also_quiet: tuple[str, ...] = (),
) -> dict[str, int]:
    """Wait for ``alertname`` on ``instance`` at every receiver, then ``watch``: firing
    notifications per receiver for the fault, and no other page about the faulted host (nor
    about the hosts in ``also_quiet``)."""
    _wait(
        lambda: set(firing_for(since(twin, started), alertname, instance)) >= set(receivers),
        limit,
        f"{alertname} on {instance} at {', '.join(receivers)}",
    )
    elapsed = round(time.time() - started, 1)
    time.sleep(watch)
    notes = since(twin, started)
    counts = firing_for(notes, alertname, instance)
    address = instance.split(":", maxsplit=1)[0]
    asset = next(h.name for h in stack.HOSTS if h.address == address)
    watched = {asset: address, **{name: stack.address(name) for name in also_quiet}}

    def about_the_hosts(alert: dict[str, Any]) -> bool:
        labels = alert["labels"]
        same = labels.get("alertname") == alertname and labels.get("instance") == instance
        host = labels.get("instance", "").rsplit(":", 1)[0]
        about = any(labels.get("asset") == a or host == ip for a, ip in watched.items())
        return not same and about and labels.get("alertname") not in BEFORE_FIRST_DRILL

    others = [n.describe() for n in notes if n.status == "firing" and any(map(about_the_hosts, n.alerts))]
    assert others == [], f"other pages about {', '.join(watched)} for one fault:\n" + "\n".join(others)
    assert counts == dict.fromkeys(receivers, 1), counts
    FIGURES[f"{fault}: {alertname}, time to notify (s, bound {limit:.0f})"] = elapsed
    FIGURES[f"{fault}: notifications per receiver"] = counts
    if escalation := firing_for(notes, alertname, instance, escalations=True):
        FIGURES[f"{fault}: escalated, unacknowledged (per receiver)"] = escalation
    return counts


def test_a_failed_backup_job_notifies_once(twin: Twin) -> None:
    settled(twin)
    pve1 = twin.host("pve1")
    instance = f"{pve1.address}:{twin.stack.config.monitoring.ports.node_exporter}"  # type: ignore[union-attr]
    started = time.time()
    twin.backup_job(110, ok=False)
    try:
        fault_pages(
            twin,
            started,
            "BackupJobFailed",
            instance,
            fault="backup job failed",
            receivers=("slack-ops",),
            limit=bound(twin, "0s", "30s"),
        )
    finally:
        twin.backup_job(110, ok=True)
    _wait(lambda: not twin.query("mon-1", 'ALERTS{alertname="BackupJobFailed"}'), 60, "BackupJobFailed resolved")


def test_a_filling_datastore_notifies_once(twin: Twin) -> None:
    """The PBS collector's textfile (pbs_size/pbs_used, read by the PBS host's node job) crosses
    the 85% threshold; the bound adds one collector period (its timer, scaled)."""
    settled(twin)
    pbs1 = twin.host("pbs1")
    instance = f"{pbs1.address}:{twin.stack.config.monitoring.ports.node_exporter}"  # type: ignore[union-attr]
    datastore = f'datastore="main",instance="{instance}",job="node"'
    size = float(twin.query("mon-1", f"pbs_size{{{datastore}}}")[0]["value"][1])
    used = float(twin.query("mon-1", f"pbs_used{{{datastore}}}")[0]["value"][1])
    # Over the 85% threshold, under node_exporter's 90% filesystem alert on the same disk.
    fill = int(size * 0.88 - used)
    started = time.time()
    assert pbs1.root_ssh(f"fallocate -l {fill} /mnt/datastore/main/twin-fill").returncode == 0
    try:
        limit = bound(twin, "15m", "30s") + COLLECTOR_PERIOD
        fault_pages(twin, started, "PbsDatastoreAlmostFull", instance, fault="datastore filling",
                    receivers=("slack-ops",), limit=limit)  # fmt: skip
    finally:
        pbs1.root_ssh("rm -f /mnt/datastore/main/twin-fill")
    _wait(lambda: not twin.query("mon-1", 'ALERTS{alertname="PbsDatastoreAlmostFull"}'), 90, "resolved")


def test_a_guest_powered_off_pages_once_per_receiver(twin: Twin) -> None:
    settled(twin)
    guest = twin.host("dns1")
    instance = f"{guest.address}:{twin.stack.config.monitoring.ports.node_exporter}"  # type: ignore[union-attr]
    started = time.time()
    twin.pve_power("lxc", 101, "shutdown")
    guest.power_off()
    try:
        limit = bound(twin, target_down_for(twin))
        fault_pages(twin, started, "TargetDown", instance, fault="guest powered off", receivers=CRITICAL_RECEIVERS,
                    limit=limit)  # fmt: skip
    finally:
        guest.boot()
        guest.wait_ssh()
        twin.pve_power("lxc", 101, "start")
    _wait(lambda: up_everywhere(twin), 90, "the guest scraped again")


def test_a_killed_monitoring_replica_pages_once_and_coverage_stays(twin: Twin) -> None:
    """mon-2 dies (its container killed): its node exporter's TargetDown pages once per critical
    receiver from the survivor; nothing else pages, neither about mon-2 (its other exporters,
    probes) nor about mon-1 (notifications it cannot deliver to mon-2's Alertmanager, a cluster
    of one); every target of the other hosts stays scraped by mon-1."""
    settled(twin)
    dead = twin.host("mon-2")
    instance = f"{dead.address}:{twin.stack.config.monitoring.ports.node_exporter}"  # type: ignore[union-attr]
    started = time.time()
    dead.crash()
    try:
        fault_pages(twin, started, "TargetDown", instance, fault="replica killed", receivers=CRITICAL_RECEIVERS,
                    limit=bound(twin, target_down_for(twin)), watch=REPLICA_WATCH, also_quiet=("mon-1",))  # fmt: skip
        others = {(job, inst) for job, inst in twin.stack.registered() if dead.address not in inst}  # type: ignore[union-attr]
        up = {(r["metric"]["job"], r["metric"]["instance"]) for r in twin.query("mon-1", "up == 1")}
        assert others <= up, f"the survivor lost targets: {sorted(others - up)}"
        FIGURES["replica killed: other hosts' targets scraped by the survivor"] = f"{len(others & up)}/{len(others)}"
    finally:
        dead.boot()
        dead.wait_ssh()
    _wait(lambda: up_everywhere(twin), 120, "both replicas scrape everything again")


def test_restart_of_the_whole_twin_loses_nothing_and_pages_nobody(twin: Twin) -> None:
    settled(twin)
    before = time.time()
    samples_before = twin.query("mon-1", "count(up)")[0]["value"][1]
    started = time.time()
    twin.restart()
    _wait(lambda: up_everywhere(twin), COVERAGE_BOUND, "100% coverage after the restart")
    FIGURES["restart: coverage back after (s)"] = round(time.time() - started, 1)
    time.sleep(SETTLE)
    for host in stack.MONITORING:
        # The samples from before the restart are still there: on the data disk, not lost.
        old = twin.api(host, "prometheus", "/api/v1/query", {"query": "count(up)", "time": str(before)})
        assert old["data"]["result"][0]["value"][1] == samples_before, host
        device = twin.host(host).root_ssh(f"stat -c %d /var/lib/prometheus {stack.DATA_MOUNT} /")
        prometheus_dev, data_dev, root_dev = device.stdout.split()
        assert prometheus_dev == data_dev != root_dev, f"{host}: /var/lib/prometheus is not on the data disk"
        assert any((twin.host(host).data_mountpoint / "prometheus").rglob("wal")), f"{host}: no TSDB on the image"
    pages = [n.describe() for n in since(twin, started) if n.status == "firing" and n.alertnames != {"Watchdog"}]
    assert pages == [], "pages after a clean restart:\n" + "\n".join(pages)
