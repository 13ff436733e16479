"""The static critical path of a plan: longest chain, cross-host waits, what a change touches."""

from __future__ import annotations

from typing import Any

import pytest

from tools.plan.critical_path import changed, cross_host, host_of, longest_chain, nodes, waits_on

COMMAND = "command:remote:Command"


def resource(
    name: str, depends_on: tuple[str, ...] = (), type_: str = COMMAND, parent: str | None = None
) -> dict[str, Any]:
    return {
        "type": type_,
        "name": name,
        "parent": parent,
        "inputs": {"create": name},
        "options": {"dependsOn": list(depends_on)},
    }


def plan(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resources": list(resources),
        "outputs": {"inventory": {"managedHosts": ["pve1", "pve10"], "monitoringHosts": ["mon-1"]}},
    }


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("pve1-agents-layout", "pve1"),
        ("pve10-agents-layout", "pve10"),
        ("backups-hook-pve1-files", "pve1"),
        ("grafana-folder", None),
    ],
    ids=["prefix", "longer-name-wins", "inside", "no-host"],
)
def test_host_of(name: str, host: str | None) -> None:
    assert host_of(name, ["pve1", "pve10", "mon-1"]) == host


def test_longest_chain_counts_remote_commands() -> None:
    p = plan(
        resource("pve1-a"),
        resource("pve1-b", ("pve1-a",)),
        resource("key", type_="tls:index/privateKey:PrivateKey"),
        resource("pve1-c", ("pve1-b", "key")),
        resource("pve10-a", ("key",)),
    )
    assert longest_chain(nodes(p), waits_on(p)) == ["pve1-a", "pve1-b", "pve1-c"]


def test_a_dependency_on_a_component_waits_for_its_children_and_is_flagged_across_hosts() -> None:
    p = plan(
        resource("pve1-agents", type_="obsstack:monitoring:HostAgents"),
        resource("pve1-agents-apply", parent="pve1-agents"),
        resource("pve10-agents-apply", ("pve1-agents",)),
    )
    graph, waits = nodes(p), waits_on(p)
    assert waits["pve10-agents-apply"] == {"pve1-agents", "pve1-agents-apply"}
    assert cross_host(graph, waits) == [("pve10-agents-apply", "pve1-agents-apply")]


def test_changed_lists_added_removed_and_modified() -> None:
    before = plan(resource("same"), resource("edited"), resource("gone"))
    edited = resource("edited")
    edited["inputs"] = {"create": "other"}
    after = plan(resource("same"), edited, resource("new"))
    assert changed(before, after) == ["edited", "gone", "new"]
