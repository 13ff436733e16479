"""Static critical path of a plan: what `pulumi up` must do one after another, read from plan.json.

    python -m tools.plan.critical_path [--plan build/plan/plan.json] [--threshold-change]

What this measures and what it does not: the engine runs a resource once everything it depends on
is done, so the longest chain of dependencies bounds the wall time of a first `up` from below,
however parallel the engine is. Each remote command (one SSH session on a host) counts 1, every
other resource 0 (keys, certificates and Grafana objects are local or one API call). The real
engine's timings (`make bench-up`) need the provider plugins, which cannot be installed here
(docs/dashboards.md, "Plan and up").

It prints the longest chain, the dependencies that make one host's commands wait on another
host's (independent hosts should install in parallel), and with ``--threshold-change`` plans
the example twice, once with one alert threshold changed, and counts the resources whose inputs
differ (what that `up` would touch).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

COMMAND = "command:remote:Command"


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    host: str | None  # the host a remote command runs on
    depends_on: tuple[str, ...]


def host_of(name: str, hosts: Iterable[str]) -> str | None:
    """The host a command's name is about (``dns1-agents-layout``, ``backups-hook-pve1-files``):
    its connection is a secret in plan.json, names are not. The longest matching name wins."""
    found = [h for h in hosts if f"-{h}-" in f"-{name}-"]
    return max(found, key=len) if found else None


def nodes(plan: dict[str, Any]) -> dict[str, Node]:
    inventory = plan.get("outputs", {}).get("inventory", {})
    hosts = [*inventory.get("managedHosts", []), *inventory.get("monitoringHosts", [])]
    return {
        r["name"]: Node(
            r["name"],
            r["type"],
            host_of(r["name"], hosts) if r["type"] == COMMAND else None,
            tuple(r["options"]["dependsOn"]),
        )
        for r in plan["resources"]
    }


def children(plan: dict[str, Any]) -> dict[str, list[str]]:
    by_parent: dict[str, list[str]] = {}
    for r in plan["resources"]:
        if r["parent"]:
            by_parent.setdefault(r["parent"], []).append(r["name"])
    return by_parent


def waits_on(plan: dict[str, Any]) -> dict[str, set[str]]:
    """name -> the resources it waits for: a dependency on a component means on all it contains."""
    kids = children(plan)

    def expand(name: str) -> set[str]:
        found = {name}
        for child in kids.get(name, []):
            found |= expand(child)
        return found

    return {
        r["name"]: set().union(*(expand(d) for d in r["options"]["dependsOn"])) if r["options"]["dependsOn"] else set()
        for r in plan["resources"]
    }


def longest_chain(graph: dict[str, Node], waits: dict[str, set[str]]) -> list[str]:
    """The chain of resources with the most remote commands, first to last."""

    @cache
    def best(name: str) -> tuple[int, tuple[str, ...]]:
        before = max((best(d) for d in waits.get(name, ()) if d in graph), default=(0, ()))
        weight = 1 if graph[name].type == COMMAND else 0
        return before[0] + weight, (*before[1], name)

    return list(max((best(n) for n in graph), default=(0, ()))[1])


def cross_host(graph: dict[str, Node], waits: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(command, dependency) pairs where a command on one host waits for a command on another."""
    return sorted(
        (name, dep)
        for name, node in graph.items()
        if node.host
        for dep in waits.get(name, ())
        if dep in graph and graph[dep].host and graph[dep].host != node.host
    )


def report(plan: dict[str, Any]) -> str:
    graph = nodes(plan)
    waits = waits_on(plan)
    chain = longest_chain(graph, waits)
    commands = [graph[n] for n in chain if graph[n].type == COMMAND]
    hosts = sorted({n.host for n in graph.values() if n.host})
    lines = [
        f"{len(graph)} resources, {sum(n.type == COMMAND for n in graph.values())} remote commands "
        f"on {len(hosts)} hosts",
        f"longest chain: {len(commands)} remote commands one after another ({len(chain)} resources):",
        *[f"  {graph[n].host or '-':<16} {graph[n].type:<40} {n}" for n in chain],
    ]
    pairs = cross_host(graph, waits)
    lines.append(f"commands waiting on another host's commands: {len(pairs)}")
    lines += [f"  {graph[a].host} {a}  waits on  {graph[b].host} {b}" for a, b in pairs]
    return "\n".join(lines)


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Resources added, removed, or with other inputs or options."""
    old = {(r["type"], r["name"]): r for r in before["resources"]}
    new = {(r["type"], r["name"]): r for r in after["resources"]}
    return sorted(
        name
        for key in old.keys() | new.keys()
        for name in [key[1]]
        if old.get(key, {}).get("inputs") != new.get(key, {}).get("inputs")
        or old.get(key, {}).get("options") != new.get(key, {}).get("options")
    )


def _plan(sections: dict[str, Any]) -> dict[str, Any]:
    from components import config as stack_config
    from tools.plan import engine

    config = stack_config.validate(sections)
    secrets = {key: f"placeholder-{key}" for key in config.secret_key_names()}
    result = engine.run("prod", sections, secrets)
    return {"resources": [r.as_plan() for r in result.resources], "outputs": result.outputs}


def threshold_change(root: Path) -> tuple[str, list[str]]:
    """Plan the example, and again with the filesystem-full threshold raised one point."""
    from components import config as stack_config

    sections, _ = stack_config.read_stack_file(root / "Pulumi.prod.yaml")
    varied = copy.deepcopy(sections)
    thresholds = varied["alerting"].setdefault("thresholds", {})
    old = stack_config.validate(sections).alerting.thresholds.filesystem_almost_full_ratio
    thresholds["filesystem_almost_full_ratio"] = new = round(old + 0.01, 2)
    what = f"alerting.thresholds.filesystem_almost_full_ratio {old} -> {new}"
    return what, changed(_plan(sections), _plan(varied))


def _print(lines: Iterable[str]) -> None:
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan.critical_path", description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=Path("build/plan/plan.json"))
    parser.add_argument("--threshold-change", action="store_true", help="also count what one threshold change touches")
    args = parser.parse_args(argv)
    if not args.plan.is_file():
        print(f"error: {args.plan} not found: run `make plan` first or pass --plan FILE", file=sys.stderr)
        return 2
    _print([report(json.loads(args.plan.read_text()))])
    if args.threshold_change:
        what, touched = threshold_change(Path(__file__).resolve().parents[2])
        _print([f"one threshold change ({what}) touches {len(touched)} resources:", *[f"  {n}" for n in touched]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
