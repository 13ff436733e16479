"""Regenerate the committed rules/<area>.yml from a stack's config (``make rules``)."""

from __future__ import annotations

from pathlib import Path

from components import config as stack_config

ROOT = Path(__file__).resolve().parents[2]


def load_stack(stack: str) -> stack_config.StackConfig:
    """The validated config of Pulumi.<stack>.yaml (raises ConfigError naming every problem)."""
    return stack_config.load_file(ROOT / f"Pulumi.{stack}.yaml")
