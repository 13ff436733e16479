"""Regenerate the committed rules/<area>.yml from a stack's config (``make rules``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from components import config as stack_config

ROOT = Path(__file__).resolve().parents[2]


def load_stack(stack: str) -> stack_config.StackConfig:
    """The validated config of Pulumi.<stack>.yaml (raises ConfigError naming every problem)."""
    values = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return stack_config.validate({key.split(":", 1)[1]: value for key, value in values.items()})
