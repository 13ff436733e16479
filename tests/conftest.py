"""Shared fixtures: the example stack, and the real program run under a recording mock engine."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from components import config as stack_config
from components import inventory as stack_inventory
from tools.plan import engine

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_STACK = ROOT / "Pulumi.prod.yaml"


def load_sections(path: Path = EXAMPLE_STACK) -> dict[str, Any]:
    sections, _ = stack_config.read_stack_file(path)
    return sections


def distinct_secrets(config: stack_config.StackConfig) -> dict[str, str]:
    """Secret values no renderer could produce by accident, to grep for leaks."""
    return {key: f"S3CR3T-{key}-7f1c9e" for key in config.secret_key_names()}


@pytest.fixture
def example_sections() -> dict[str, Any]:
    """A fresh deep copy of the example stack's sections (safe to mutate)."""
    return copy.deepcopy(load_sections())


@pytest.fixture
def example_config(example_sections: dict[str, Any]) -> stack_config.StackConfig:
    return stack_config.validate(example_sections)


@pytest.fixture
def example_inventory(example_config: stack_config.StackConfig) -> stack_inventory.Inventory:
    return stack_inventory.build(example_config)


RunProgram = Callable[..., engine.PlanResult]


@pytest.fixture
def run_program() -> RunProgram:
    """Run the real __main__.py under the recording mock engine for a config (default: example)."""

    def run(sections: dict[str, Any] | None = None, secrets: dict[str, str] | None = None) -> engine.PlanResult:
        sections = copy.deepcopy(sections) if sections is not None else load_sections()
        config = stack_config.validate(sections)
        return engine.run("prod", sections, secrets if secrets is not None else distinct_secrets(config))

    return run


@pytest.fixture(scope="session")
def example_plan() -> engine.PlanResult:
    """The example stack planned once per session (read-only)."""
    sections = load_sections()
    return engine.run("prod", sections, distinct_secrets(stack_config.validate(sections)))
