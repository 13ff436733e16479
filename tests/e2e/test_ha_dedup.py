"""Two replicas, one page: two real Prometheus servers with the rendered external labels and
alert_relabel_configs of a two-host stack fire the same alert into one real Alertmanager (the
rendered routes, receivers pointed at the lab's webhook sink). Alertmanager must hold one alert
and every receiver must get exactly one notification carrying it.

Without the relabeling each replica's copy keeps its own `replica` label: two alerts in the
group, so a doubled page. About 20 s; loopback ports only, everything stops at the end.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components import routing
from components.render import alertmanager as am_render
from components.render import prometheus as prom_render
from tests.conftest import load_sections
from tests.e2e.conftest import SPEEDUP
from tests.unit.monitoring_helpers import with_replicas
from tools.lab import Lab, free_port

pytestmark = pytest.mark.e2e

ALERT = "HADedupProbe"
LABELS = {"alertname": ALERT, "severity": "critical", "service": "monitoring"}
# After the first notification: > resend delay (4s, so both replicas have re-sent) + the critical
# route's group_interval (4s at SPEEDUP), so a second alert in the group would have been notified.
SETTLE = 10


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _notifications_sent(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^prometheus_notifications_sent_total\{[^}]*\} (\S+)$", text, re.M))


class Replica:
    """One Prometheus with a monitoring host's rendered external labels and alert relabeling."""

    def __init__(self, name: str, rendered: dict[str, Any], alertmanager: str, workdir: Path) -> None:
        self.name, self.workdir, self.port = name, workdir, free_port()
        workdir.mkdir(parents=True)
        rule = {"alert": ALERT, "expr": "vector(1)", "labels": {k: v for k, v in LABELS.items() if k != "alertname"}}
        (workdir / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "ha", "rules": [rule]}]}))
        config = {
            "global": {
                "evaluation_interval": "1s",  # 15s / SPEEDUP
                "external_labels": rendered["global"]["external_labels"],
            },
            "alerting": {
                # What the renderer ships (absent on the old renderer: the test then shows the double page).
                "alert_relabel_configs": rendered["alerting"].get("alert_relabel_configs", []),
                "alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}],
            },
            "rule_files": ["rules.yml"],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, binary: str) -> None:
        log = (self.workdir / "prometheus.log").open("ab")
        argv = [
            binary,
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--rules.alert.resend-delay=4s",  # 1m / SPEEDUP, as the lab runs it
        ]
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[tuple[Lab, list[Replica]]]:
    config = stack_config.validate(with_replicas(load_sections(), 2))
    inventory = stack_inventory.build(config)
    # The lab's Alertmanager only: the rendered alertmanager.yml, receivers -> its webhook sink.
    lab = Lab(config, speedup=SPEEDUP, workdir=tmp_path / "alertmanager")
    lab.workdir.mkdir(parents=True)
    replicas = [
        Replica(
            node.name,
            yaml.safe_load(prom_render.render(config, inventory, node)),
            f"127.0.0.1:{lab.ports['alertmanager']}",
            tmp_path / node.name,
        )
        for node in inventory.monitoring
    ]
    assert len({r.name for r in replicas}) == 2
    lab.sink.start()
    try:
        (lab.workdir / "alertmanager.yml").write_text(am_render.dump(lab.alertmanager_config()))
        lab.start_process("alertmanager")
        for replica in replicas:
            replica.start(lab.binaries["prometheus"])
        yield lab, replicas
    finally:
        for replica in replicas:
            replica.stop()
        lab.stop()


def test_two_replicas_firing_the_same_alert_page_once(ha: tuple[Lab, list[Replica]]) -> None:
    lab, replicas = ha
    # Both replicas really send: otherwise a single notification would prove nothing.
    for replica in replicas:
        _wait(lambda r=replica: _notifications_sent(r.url) > 0, 30, f"{replica.name} to send its alert")
    expected = set(routing.receivers_for(lab.config.alerting, LABELS))
    assert expected, "the probe alert must page someone"

    def every_receiver_notified(_: object) -> bool:
        return {n.receiver for n in lab.sink.notifications(ALERT)} >= expected

    assert lab.sink.wait_for(every_receiver_notified, timeout=20), lab.sink.notifications()
    time.sleep(SETTLE)
    for replica in replicas:  # both kept re-sending during the settle time
        assert _notifications_sent(replica.url) >= 2, replica.name

    by_receiver: dict[str, list[list[dict[str, str]]]] = {}
    for n in lab.sink.notifications(ALERT):
        by_receiver.setdefault(n.receiver, []).append([a["labels"] for a in n.alerts])
    assert set(by_receiver) == expected
    for receiver, notifications in by_receiver.items():
        assert len(notifications) == 1, f"{receiver} got {len(notifications)} notifications: {notifications}"
        assert len(notifications[0]) == 1, f"{receiver}'s page carries {len(notifications[0])} alerts"

    # Alertmanager itself holds one alert: the replicas' copies were identical.
    held = requests.get(f"{lab.url('alertmanager')}/api/v2/alerts", timeout=5).json()
    held = [a for a in held if a["labels"]["alertname"] == ALERT]
    assert len(held) == 1, [a["labels"] for a in held]
    assert "replica" not in held[0]["labels"] and held[0]["labels"]["cluster"] == lab.config.cluster
