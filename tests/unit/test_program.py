"""The program's resource tree under the mock engine: every DESIGN.md component is declared."""

from __future__ import annotations

import pulumi
import pytest

from components import aliases
from components import render as stack_render
from components.render import prometheus, rules
from tools.plan import engine

COMPONENT_TYPES = [
    "obsstack:proxmox:ProxmoxVm",
    "obsstack:proxmox:BackupStorage",
    "obsstack:proxmox:BackupPlan",
    "obsstack:pbs:PbsServer",
    "obsstack:monitoring:InternalCa",
    "obsstack:monitoring:MonitoringHost",
    "obsstack:monitoring:HostAgents",
    "obsstack:grafana:GrafanaConfig",
    "obsstack:drill:RestoreDrills",
]


@pytest.mark.parametrize("type_", COMPONENT_TYPES, ids=lambda t: t.split(":", 1)[1])
def test_every_component_is_declared(example_plan: engine.PlanResult, type_: str) -> None:
    assert example_plan.find(type_=type_), f"{type_} missing from the resource tree"


def test_agents_on_every_managed_host(example_plan: engine.PlanResult, example_inventory) -> None:
    names = {r.name for r in example_plan.find(type_="obsstack:monitoring:HostAgents")}
    assert names == {f"{a.name}-agents" for a in example_inventory.managed_hosts}


def test_outputs_are_exported(example_plan: engine.PlanResult) -> None:
    assert set(example_plan.outputs) >= {"inventory", "endpoints", "restoreDrill"}


@pytest.fixture
def nothing_rendered_yet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Renders are cached by equal (config, inventory): an earlier test's would be reused."""
    monkeypatch.setattr(stack_render, "_RENDERED", [])


@pytest.mark.usefixtures("nothing_rendered_yet")
def test_rules_are_rendered_once_per_plan(run_program, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    for area, render in list(rules.GENERATED.items()):
        monkeypatch.setitem(
            rules.GENERATED, area, lambda c, i, area=area, render=render: calls.append(area) or render(c, i)
        )
    run_program()
    assert sorted(calls) == sorted(rules.GENERATED)


@pytest.mark.usefixtures("nothing_rendered_yet")
def test_every_file_is_rendered_once_per_plan(run_program, monkeypatch: pytest.MonkeyPatch) -> None:
    """Components share one rendering of the stack: per-host re-rendering made plans quadratic."""
    calls = []
    original = prometheus.files
    monkeypatch.setattr(prometheus, "files", lambda *args: calls.append(1) or original(*args))
    run_program()
    assert len(calls) == 1


def component_classes() -> dict[str, type]:
    """Every ComponentResource class in components/, by class name."""
    import importlib
    import pkgutil

    import components

    found: dict[str, type] = {}
    for module in pkgutil.walk_packages(components.__path__, "components."):
        for value in vars(importlib.import_module(module.name)).values():
            if (
                isinstance(value, type)
                and issubclass(value, pulumi.ComponentResource)
                and value.__module__ == module.name
            ):
                found[value.__name__] = value
    return found


def test_type_tokens_are_named_after_their_classes(example_plan: engine.PlanResult) -> None:
    tokens = {r.type for r in example_plan.resources if r.type.startswith("obsstack:")}
    assert {t.rsplit(":", 1)[1] for t in tokens} == set(component_classes())


@pytest.mark.parametrize(("new", "old"), sorted(aliases.PREVIOUS_TYPES.items()), ids=lambda t: t.rsplit(":", 1)[-1])
def test_a_renamed_component_carries_its_previous_type_as_an_alias(
    example_plan: engine.PlanResult, new: str, old: str
) -> None:
    declared = example_plan.find(type_=new)
    assert declared
    for r in declared:
        assert {a["spec"]["type"] for a in r.options.get("aliases", [])} == {old}
