"""One failure, one page, decided by a real Alertmanager with the rendered inhibit rules.

The firing sets are what Prometheus fires in each outage (the rules' own promtool cases in
rules/tests/incidents_test.yml prove that); here the real ``prometheus-alertmanager`` decides which
of them a receiver gets (tools/alert_quality/notify.py, the same replay the corpus is scored with).
"""

from __future__ import annotations

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from tools.alert_quality.notify import Alertmanager, LabelSet

pytestmark = pytest.mark.e2e


def _alert(name: str, **labels: str) -> LabelSet:
    return tuple(sorted({"alertname": name, **labels}.items()))


def _per_target(
    inventory: stack_inventory.Inventory, name: str, asset: str, severity: str | None, probes_only: bool = False
) -> list[LabelSet]:
    """Alert ``name`` for each of ``asset``'s scrape targets, labelled as its rule labels it
    (``severity`` None: the target's tier decides)."""
    return [
        _alert(
            name,
            asset=e.asset,
            job=e.job,
            instance=e.instance,
            service=e.service,
            tier=e.tier,
            severity=severity or stack_config.TIER_SEVERITY[e.tier],
        )
        for e in inventory.coverage
        if e.asset == asset and (not probes_only or e.job.startswith("blackbox_"))
    ]


def _target_down(inventory: stack_inventory.Inventory, asset: str, severity: str = "critical") -> list[LabelSet]:
    return _per_target(inventory, "TargetDown", asset, severity)


def _upstream(name: str, asset: str, service: str) -> LabelSet:
    return _alert(
        "UpstreamDown", upstream=name, instance=name, asset=asset, service=service, tier="critical", severity="critical"
    )


@pytest.fixture
def alertmanager(example_config: stack_config.StackConfig, example_inventory: stack_inventory.Inventory):
    with Alertmanager(example_config, example_inventory) as am:
        yield am


def test_a_router_reboot_pages_once(alertmanager: Alertmanager, example_inventory) -> None:
    page = _upstream("router", "router", "network")
    behind = [a for name in ("pve1", "gitea", "postgres", "nas", "dns1") for a in _target_down(example_inventory, name)]
    own = _alert(
        "ServiceProbeFailed",
        asset="router",
        job="blackbox_icmp",
        instance="10.0.10.1",
        service="network",
        tier="critical",
        severity="critical",
    )
    escalated = _alert(
        "CriticalAlertUnacknowledged",
        unacknowledged_alert="TargetDown",
        asset="gitea",
        job="node",
        instance="10.0.10.110:9100",
        service="git",
        tier="critical",
        severity="critical",
    )
    firing = {page, own, escalated, *behind}
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == {page}


def test_a_dead_pve_node_pages_once_and_its_page_still_escalates(alertmanager: Alertmanager, example_inventory) -> None:
    page = _upstream("pve1", "pve1", "proxmox")
    escalation = _alert(
        "CriticalAlertUnacknowledged",
        unacknowledged_alert="UpstreamDown",
        upstream="pve1",
        instance="pve1",
        asset="pve1",
        service="proxmox",
        tier="critical",
        severity="critical",
    )
    guests = [a for name in ("gitea", "dns1", "scratch-dev") for a in _target_down(example_inventory, name)]
    firing = {page, escalation, *guests, *_target_down(example_inventory, "pve1")}
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == {page, escalation}


def test_a_crashed_prober_pages_once_but_the_monitoring_hosts_other_alerts_still_page(
    alertmanager: Alertmanager, example_inventory
) -> None:
    page = _upstream("blackbox-mon-1", "mon-1", "monitoring")
    probes = [
        _alert(
            "TargetDown",
            asset=e.asset,
            job=e.job,
            instance=e.instance,
            service=e.service,
            tier=e.tier,
            severity="critical",
        )
        for e in example_inventory.coverage
        if e.job.startswith("blackbox")
    ]
    loki = _target_down(example_inventory, "mon-1")
    loki = [a for a in loki if ("job", "loki") in a]
    firing = {page, *probes, *loki}
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == {page, *loki}


def test_without_upstream_only_host_down_inhibits(alertmanager: Alertmanager, example_inventory) -> None:
    """gitea's own outage (its node is fine): no dependency inhibits anything, and gitea pages once,
    by its node exporter's TargetDown (alertmanager.HOST_DOWN_INHIBITION mutes its other targets)."""
    firing = set(_target_down(example_inventory, "gitea"))
    host_down = {a for a in firing if dict(a)["job"] == "node"}
    assert len(host_down) == 1 and len(firing) > 1, "gitea has a node exporter and other targets"
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == host_down


def _probe_failed(inventory: stack_inventory.Inventory, asset: str) -> list[LabelSet]:
    return _per_target(inventory, "ServiceProbeFailed", asset, None, probes_only=True)


def test_one_resolver_down_with_another_up_mutes_nothing_and_pages_for_itself(
    alertmanager: Alertmanager, example_inventory
) -> None:
    """dns1's DNS daemon dies; dns2 answers, so gitea's probe by name still passes and, were
    anything else failing beside it, nothing would explain it away: only dns1 pages."""
    dns1 = set(_probe_failed(example_inventory, "dns1"))
    unrelated = set(_probe_failed(example_inventory, "gitea"))  # a real gitea outage at the same time
    firing = dns1 | unrelated
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == firing


def test_all_resolvers_down_page_once_and_mute_the_probes_by_name(
    alertmanager: Alertmanager, example_inventory
) -> None:
    page = _upstream("resolvers:dns1:dns2", "resolvers:dns1:dns2", "dns")
    resolvers = [a for name in ("dns1", "dns2") for a in _probe_failed(example_inventory, name)]
    resolvers += [a for name in ("dns1", "dns2") for a in _target_down(example_inventory, name)]
    by_name = [a for name in ("gitea", "nextcloud") for a in _probe_failed(example_inventory, name)]
    firing = {page, *resolvers, *by_name}
    alertmanager.post(sorted(firing), [])
    assert alertmanager.active(firing) == {page}
