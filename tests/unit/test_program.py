"""The program's resource tree under the mock engine: every DESIGN.md component is declared."""

from __future__ import annotations

import pytest

from components.render import prometheus
from tools.plan import engine

COMPONENT_TYPES = [
    "obsstack:proxmox:Vm",
    "obsstack:proxmox:Storage",
    "obsstack:proxmox:BackupPlan",
    "obsstack:pbs:Server",
    "obsstack:monitoring:Pki",
    "obsstack:monitoring:Host",
    "obsstack:monitoring:Agents",
    "obsstack:grafana:Config",
    "obsstack:drill:RestoreDrills",
]


@pytest.mark.parametrize("type_", COMPONENT_TYPES, ids=lambda t: t.split(":", 1)[1])
def test_every_component_is_declared(example_plan: engine.PlanResult, type_: str) -> None:
    assert example_plan.find(type_=type_), f"{type_} missing from the resource tree"


def test_agents_on_every_managed_host(example_plan: engine.PlanResult, example_inventory) -> None:
    names = {r.name for r in example_plan.find(type_="obsstack:monitoring:Agents")}
    assert names == {f"{a.name}-agents" for a in example_inventory.managed_hosts}


def test_outputs_are_exported(example_plan: engine.PlanResult) -> None:
    assert set(example_plan.outputs) >= {"inventory", "endpoints", "restoreDrill"}


def test_every_file_is_rendered_once_per_plan(run_program, monkeypatch: pytest.MonkeyPatch) -> None:
    """Components share one rendering of the stack: per-host re-rendering made plans quadratic."""
    calls = []
    original = prometheus.files
    monkeypatch.setattr(prometheus, "files", lambda *args: calls.append(1) or original(*args))
    run_program()
    assert len(calls) == 1
