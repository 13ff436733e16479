"""Repository files the render stage ships or reads, loaded once at import.

Renderers stay pure functions of (config, inventory): what they take from the repository (the
hand-written rule files, the lock file, the sources of the tools that run on the hosts) is data
here, read before any rendering starts.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "rules"


def _read(*relative: str) -> dict[str, str]:
    return {rel: (ROOT / rel).read_text() for rel in relative}


def _python_package(directory: str) -> list[str]:
    return [f"{directory}/{p.name}" for p in sorted((ROOT / directory).glob("*.py"))]


# rules/<name>.yml -> content, for every committed rule file (the generated ones are re-rendered).
COMMITTED_RULES = {p.name: p.read_text() for p in sorted(RULES_DIR.glob("*.yml"))}
CONSTRAINTS = (ROOT / "constraints.txt").read_text()
# Relative path -> content of the tools shipped to the monitoring hosts (they import nothing else).
DRILL_TOOL = _read("tools/__init__.py", *_python_package("tools/restore_drill"))
ALERTING_TOOLS = _read(
    "tools/__init__.py",
    "tools/silences/__init__.py",
    "tools/silences/__main__.py",
    "tools/silences/api.py",
    "tools/silences/policy.py",
    "tools/oncall_drill/__init__.py",
    "tools/oncall_drill/__main__.py",
)
# prometheus-pve-exporter and its dependencies, each wheel hash-pinned (components/render/pve_exporter.py).
PVE_EXPORTER_LOCK = (ROOT / "requirements-pve-exporter.txt").read_text()
