"""Prometheus rule files shipped to the monitoring hosts.

Rules whose thresholds come from config are generated here (``GENERATED``: area -> renderer);
the committed rules/<area>.yml are their output for the example stack (a test fails on drift).
Hand-written rule files in rules/ that no renderer owns (recording rules without thresholds)
are shipped as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from components.config import StackConfig

RULES_DIR = Path(__file__).resolve().parents[3] / "rules"

GENERATED: dict[str, Callable[[StackConfig], str]] = {}


def rule_files(config: StackConfig) -> dict[str, str]:
    """File name (``availability.yml``) -> content, for this stack."""
    files = {f"{area}.yml": render(config) for area, render in GENERATED.items()}
    for path in sorted(RULES_DIR.glob("*.yml")):
        files.setdefault(path.name, path.read_text())
    return dict(sorted(files.items()))
