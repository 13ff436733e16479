"""A host that is down pages once: a real Alertmanager with the rendered inhibition rules mutes
the asset's other alerts (its probes, its other exporters' TargetDown) while the node exporter's
TargetDown fires, and nothing of another asset. Found by a twin of the example homelab booted as
systemd hosts: a powered-off guest paged twice per receiver (TargetDown and ServiceProbeFailed), a
killed replica once per exporter."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alertmanager as am_render
from tests.conftest import load_sections
from tools.lab import free_port

pytestmark = pytest.mark.e2e


def alert(alertname: str, job: str, asset: str, instance: str, **extra: str) -> dict[str, dict[str, str]]:
    labels = {"alertname": alertname, "job": job, "asset": asset, "instance": instance, **extra}
    return {"labels": labels | {"severity": "critical", "service": "dns"}}


def upstream_down(upstream: str, asset: str) -> dict[str, dict[str, str]]:
    """UpstreamDown as the rule labels it: upstream, asset, instance = the upstream's name, no job."""
    labels = {"alertname": "UpstreamDown", "upstream": upstream, "asset": asset, "instance": upstream}
    return {"labels": labels | {"severity": "critical", "service": "monitoring"}}


HOST_DOWN = alert("TargetDown", "node", "dns1", "10.0.10.53:9100")
MONITORING_HOST_DOWN = alert("TargetDown", "node", "mon-1", "10.0.20.10:9100")
ALERTS = {
    "a down monitoring host's own TargetDown": (MONITORING_HOST_DOWN, False),
    "the prober on a down monitoring host: its UpstreamDown": (upstream_down("blackbox-mon-1", "mon-1"), True),
    # pve3 is an upstream (its guests' alerts wait on it): its UpstreamDown is the page and mutes the
    # node's own TargetDown; the host-down inhibition must not mute it back.
    "a down PVE node's UpstreamDown still pages": (upstream_down("pve3", "pve3"), False),
    "a down PVE node's TargetDown, muted by its UpstreamDown": (
        alert("TargetDown", "node", "pve3", "10.0.10.13:9100"),
        True,
    ),
    "probe of the down host": (alert("ServiceProbeFailed", "blackbox_tcp_connect", "dns1", "10.0.10.53:53"), True),
    "other exporter of the down host": (alert("TargetDown", "pve", "dns1", "10.0.10.53"), True),
    "the host's own TargetDown": (HOST_DOWN, False),
    # Not a probe: every probe is muted while the prober's UpstreamDown (above) fires.
    "an exporter of another host": (alert("TargetDown", "blackbox", "gitea", "10.0.10.110:9115"), False),
    "watchdog": ({"labels": {"alertname": "Watchdog", "severity": "info", "asset": "dns1"}}, False),
}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager")
    assert binary, "prometheus-alertmanager not found: apt-get install prometheus-alertmanager"
    work: Path = tmp_path_factory.mktemp("inhibition")
    config = stack_config.validate(load_sections())
    rendered = am_render.document(config, stack_inventory.build(config))
    minimal = {
        "route": {"receiver": "sink"},
        "receivers": [{"name": "sink"}],
        "inhibit_rules": rendered["inhibit_rules"],
    }
    (work / "alertmanager.yml").write_text(yaml.safe_dump(minimal))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [binary, f"--config.file={work / 'alertmanager.yml'}", f"--storage.path={work}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "alertmanager did not get ready"
            time.sleep(0.2)
        payload = [a for a, _ in ALERTS.values()]
        requests.post(f"{url}/api/v2/alerts", json=payload, timeout=5).raise_for_status()
        time.sleep(1)  # inhibition is computed when the alerts are listed; let them be ingested
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.parametrize(("name", "inhibited"), [(n, i) for n, (_, i) in ALERTS.items()], ids=list(ALERTS))
def test_a_down_host_mutes_its_other_alerts_only(alertmanager: str, name: str, inhibited: bool) -> None:
    listed = requests.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
    labels = ALERTS[name][0]["labels"]
    (match,) = [a for a in listed if a["labels"] == labels]
    assert bool(match["status"]["inhibitedBy"]) is inhibited, match["status"]
