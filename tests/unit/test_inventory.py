"""Pure derivations: scrape targets, the backup set, drill targets and the coverage register."""

from __future__ import annotations

from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory


def test_every_managed_host_has_a_node_exporter_target(example_config, example_inventory) -> None:
    node_job = example_inventory.job("node")
    by_asset = {t.asset: t for t in node_job.targets}
    for asset in example_config.assets:
        if asset.is_host and asset.managed:
            target = by_asset[asset.name]
            assert target.labels == {"asset": asset.name, "service": asset.service, "tier": asset.tier}
            assert target.address == f"{asset.address}:9100"
    assert "mon-1" in by_asset, "the monitoring host watches itself"


def test_every_asset_is_registered(example_config, example_inventory) -> None:
    assert set(example_inventory.registered_assets) >= {a.name for a in example_config.assets}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("http_2xx", {"https://git.lab.example.net/api/healthz", "https://10.0.10.1/"}),
        ("tcp_connect", {"10.0.10.53:53", "10.0.10.40:2049"}),
        ("icmp", {"10.0.10.40", "10.0.10.1"}),
    ],
    ids=["http", "tcp", "icmp"],
)
def test_probes_become_blackbox_jobs(example_inventory, module: str, expected: set[str]) -> None:
    job = example_inventory.job(f"blackbox_{module}")
    assert job.probe_module == module and job.metrics_path == "/probe"
    assert expected <= {t.address for t in job.targets}


def test_pve_exporter_is_multi_target(example_inventory) -> None:
    job = example_inventory.job("pve")
    assert job.metrics_path == "/pve" and job.exporter == "127.0.0.1:9221"
    assert {t.asset for t in job.targets} == {"pve1", "pve2", "pve3"}


def test_protected_guests_are_backed_up_guests(example_inventory) -> None:
    names = {g.name for g in example_inventory.protected}
    assert "scratch-dev" not in names, "backup: false opts out"
    assert {"gitea", "postgres", "dns1", "jellyfin"} <= names
    assert all(g.kind in ("vm", "lxc") for g in example_inventory.protected)


def test_all_except_selection(example_sections: dict[str, Any]) -> None:
    example_sections["backups"].update(selection="all_except", exclude=["jellyfin", "scratch-dev"])
    inventory = stack_inventory.build(stack_config.validate(example_sections))
    names = {g.name for g in inventory.protected}
    assert names.isdisjoint({"jellyfin", "scratch-dev"})
    assert {"gitea", "dns1", "mqtt"} <= names


def test_drill_targets(example_inventory) -> None:
    targets = {t.name: t for t in example_inventory.drill_targets}
    assert set(targets) == {"gitea", "nextcloud", "postgres"}
    assert targets["postgres"].rto_seconds == 3600
    assert targets["gitea"].canary_paths == ("/etc", "/var/lib/gitea")


def test_two_replicas_scrape_each_other(example_sections: dict[str, Any]) -> None:
    example_sections["monitoring"].update(
        replicas=2,
        hosts=[
            *example_sections["monitoring"]["hosts"],
            {"name": "mon-2", "vmid": 201, "node": "pve3", "address": "10.0.20.11/24"},
        ],
    )
    inventory = stack_inventory.build(stack_config.validate(example_sections))
    assert [m.replica for m in inventory.monitoring] == ["mon-1", "mon-2"]
    assert {t.address for t in inventory.job("alertmanager").targets} == {"10.0.20.10:9093", "10.0.20.11:9093"}
