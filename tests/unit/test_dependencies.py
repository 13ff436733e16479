"""The dependency model (issue 13, defect 2): what the inventory derives, what `depends_on` adds,
what the config refuses, and the inhibit rules Alertmanager gets (checked by real amtool)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from components.render import alertmanager as am_render
from tests.support import metric_names


def asset(sections: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in sections["inventory"]["assets"] if a["name"] == name)


def index(sections: dict[str, Any], name: str) -> int:
    return next(i for i, a in enumerate(sections["inventory"]["assets"]) if a["name"] == name)


def upstreams(config: stack_config.StackConfig) -> dict[str, stack_inventory.Upstream]:
    return {u.name: u for u in stack_inventory.build(config).upstreams}


def test_a_pve_node_is_upstream_of_its_guests_and_of_what_needs_them(example_config) -> None:
    pve1 = upstreams(example_config)["pve1"]
    # gitea, dns1, scratch-dev run on pve1; nextcloud (on pve2, probed by name) still resolves
    # through dns2 on pve2, so pve1's outage does not explain it.
    assert pve1.dependent_assets == ("dns1", "gitea", "scratch-dev")
    assert pve1.targets == (("node", "10.0.10.11:9100"), ("pve", "10.0.10.11"))


def test_the_gateway_of_the_monitoring_network_is_upstream_of_everything_outside_it(example_config) -> None:
    router = upstreams(example_config)["router"]
    others = {a.name for a in example_config.assets} - {"router"}
    # ...and so of the resolvers' group: both resolvers sit behind it.
    assert set(router.dependent_assets) == others | {"resolvers:dns1:dns2"}


def test_the_prober_is_upstream_of_every_probe_job(example_config) -> None:
    prober = upstreams(example_config)["blackbox-mon-1"]
    assert prober.dependent_jobs == ("blackbox_http_2xx", "blackbox_icmp", "blackbox_tcp_connect")
    assert prober.targets == (("blackbox", "10.0.20.10:9115"),)
    assert prober.dependent_assets == ()


def test_depends_on_adds_what_the_inventory_cannot_know(example_sections) -> None:
    asset(example_sections, "homeassistant")["depends_on"] = ["mqtt"]
    mqtt = upstreams(stack_config.validate(example_sections))["mqtt"]
    assert mqtt.dependent_assets == ("homeassistant",)


def test_a_derived_edge_that_would_close_a_cycle_is_left_out(example_sections) -> None:
    """A virtual router on pve1: pve1's outage explains the router's, not the other way round."""
    asset(example_sections, "router")["depends_on"] = ["pve1"]
    found = upstreams(stack_config.validate(example_sections))
    assert "router" in found["pve1"].dependent_assets
    assert "pve1" not in found["router"].dependent_assets


def one_resolver(sections: dict[str, Any], monitoring_node: str = "pve1") -> dict[str, Any]:
    """The example with dns1 its only resolver (dns2 gone) and mon-1 on ``monitoring_node``."""
    sections["inventory"]["assets"] = [a for a in sections["inventory"]["assets"] if a["name"] != "dns2"]
    sections["monitoring"]["vm"]["dns"] = ["10.0.10.53"]
    sections["monitoring"]["hosts"][0]["node"] = monitoring_node
    return sections


def test_the_only_resolver_is_upstream_of_every_probe_naming_a_host(example_sections) -> None:
    found = upstreams(stack_config.validate(one_resolver(example_sections)))
    assert found["dns1"].dependent_assets == ("gitea", "nextcloud")
    # Transitive: nextcloud (on pve2) cannot be resolved without dns1, which runs on pve1.
    assert "nextcloud" in found["pve1"].dependent_assets


def test_several_resolvers_are_one_upstream_that_is_down_only_when_all_are(example_config) -> None:
    found = upstreams(example_config)
    group = found["resolvers:dns1:dns2"]
    assert group.members == ("dns1", "dns2")
    assert group.dependent_assets == ("gitea", "nextcloud")
    # Their DNS ports, not their hosts: a dead daemon in a running container resolves nothing.
    assert group.targets == (("blackbox_tcp_connect", "10.0.10.53:53"), ("blackbox_tcp_connect", "10.0.10.54:53"))
    assert (group.asset, group.service, group.tier) == ("resolvers:dns1:dns2", "dns", "critical")
    # One resolver alone explains nothing: neither is an upstream of its own.
    assert "dns1" not in found and "dns2" not in found


def test_a_group_is_explained_by_what_all_its_members_need(example_sections) -> None:
    """Both resolvers on pve1 (monitoring there too, so the config accepts it): pve1's outage
    explains the group's, and through it the probes by name on other nodes."""
    asset(example_sections, "dns2")["node"] = "pve1"
    example_sections["monitoring"]["hosts"][0]["node"] = "pve1"
    found = upstreams(stack_config.validate(example_sections))
    assert {"resolvers:dns1:dns2", "nextcloud"} <= set(found["pve1"].dependent_assets)
    assert "resolvers:dns1:dns2" not in found["pve2"].dependent_assets


def test_a_resolver_outside_the_inventory_leaves_names_to_no_upstream(example_sections) -> None:
    """1.1.1.1's health is unknown: the stack cannot tell when names stop resolving."""
    example_sections["monitoring"]["vm"]["dns"] = ["10.0.10.53", "1.1.1.1"]
    found = upstreams(stack_config.validate(example_sections))
    assert not [name for name in found if "dns" in name]
    assert "gitea" in found["pve1"].dependent_assets  # its own node still explains it


def test_a_resolver_nothing_watches_leaves_the_group_out(example_sections) -> None:
    """dns2 unmanaged and unprobed: dns1 failing alone must not look like every resolver failing."""
    asset(example_sections, "dns2").update(managed=False, probes=[])
    found = upstreams(stack_config.validate(example_sections))
    assert not [name for name in found if name.startswith("resolvers:")]


def test_resolvers_on_one_node_are_accepted_when_the_monitoring_host_shares_it(example_sections) -> None:
    """Losing that node loses the monitoring host too (the dead-man's switch pages): nothing new."""
    stack_config.validate(one_resolver(example_sections, monitoring_node="pve1"))


def _refused(sections: dict[str, Any]) -> str:
    with pytest.raises(stack_config.ConfigError) as err:
        stack_config.validate(sections)
    return str(err.value)


REFUSED: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    (
        "unknown-asset",
        lambda s: asset(s, "gitea").update(depends_on=["postgress"]),
        "inventory.assets[{gitea}].depends_on[0]",
        "unknown asset 'postgress'",
    ),
    (
        "itself",
        lambda s: asset(s, "gitea").update(depends_on=["gitea"]),
        "inventory.assets[{gitea}].depends_on[0]",
        "cannot depend on itself",
    ),
    (
        "cycle-through-placement",
        lambda s: asset(s, "pve1").update(depends_on=["dns1"]),
        "inventory.assets[{pve1}].depends_on",
        "dependency cycle pve1 -> dns1 -> pve1",
    ),
    (
        "resolvers-on-one-node",
        lambda s: asset(s, "dns2").update(node="pve1"),
        "monitoring.vm.dns",
        "every resolver (dns1, dns2) runs on PVE node pve1: losing pve1 leaves mon-1 (on pve2) unable to resolve",
    ),
    (
        "only-resolver-on-another-node",
        lambda s: one_resolver(s, monitoring_node="pve2"),
        "monitoring.vm.dns",
        "add a resolver on another node or outside the cluster",
    ),
    (
        "upstream-cannot-fire-first",
        lambda s: s["alerting"].update(thresholds={"target_down_for": "30s", "probe_failed_for": "30s"}),
        "alerting.thresholds.target_down_for",
        "must fire before the alerts it suppresses",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bad_dependencies_are_refused_with_their_path(
    example_sections, mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    positions = {name: index(example_sections, name) for name in ("gitea", "pve1")}
    mutate(example_sections)
    text = _refused(example_sections)
    assert f"obsstack:{path.format(**positions)}" in text
    assert message in text


def test_inhibitions_mute_dependents_and_the_upstreams_own_alerts_but_not_its_page(example_config) -> None:
    rules = am_render.document(example_config)["inhibit_rules"]
    pve1 = [r for r in rules if 'upstream="pve1"' in r.get("source_matchers", [])]
    assert [r["target_matchers"] for r in pve1] == [
        ['asset=~"dns1|gitea|scratch-dev"'],
        ['asset="pve1"', 'alertname!="UpstreamDown"', 'unacknowledged_alert!="UpstreamDown"'],
    ]
    prober = [r["target_matchers"] for r in rules if 'upstream="blackbox-mon-1"' in r.get("source_matchers", [])]
    assert prober[0] == ['job=~"blackbox_http_2xx|blackbox_icmp|blackbox_tcp_connect"']


def test_the_resolver_group_mutes_probes_by_name_and_both_resolvers_pages(example_config) -> None:
    """Matching the members' assets mutes their TargetDown and their own UpstreamDown, if any
    (one page); the group's page carries the group's name as asset, so it is never muted by it."""
    rules = am_render.document(example_config)["inhibit_rules"]
    group = [r["target_matchers"] for r in rules if 'upstream="resolvers:dns1:dns2"' in r.get("source_matchers", [])]
    assert group == [['asset=~"gitea|nextcloud"'], ['asset=~"dns1|dns2"']]


def test_amtool_accepts_the_rendered_inhibit_rules(example_config, example_inventory, tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(am_render.render(example_config, example_inventory))
    amtool = metric_names.require_binary("amtool")
    done = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(am_render.document(example_config)['inhibit_rules'])} inhibit rules" in done.stdout
