"""The recording rules the dashboards read: valid, unit-tested, and every one used by a panel."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

import dashboards
from components import config as stack_config
from tests.conftest import load_sections

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "rules" / "dashboards.yml"
TESTS = ROOT / "rules" / "tests" / "dashboards_test.yml"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool not found: apt-get install prometheus"
    return path


def test_rules_are_valid() -> None:
    result = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_unit_tests_pass() -> None:
    result = subprocess.run([_promtool(), "test", "rules", str(TESTS)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _records() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["record"] for group in doc["groups"] for rule in group["rules"]]


def test_every_recording_rule_is_tested() -> None:
    tested = TESTS.read_text()
    assert all(re.search(rf"expr: {re.escape(name)}\b", tested) for name in _records())


def test_every_recording_rule_serves_a_dashboard_or_another_rule() -> None:
    boards = dashboards.render(stack_config.validate(load_sections()))
    exprs = [q.expr for board in boards for q in dashboards.panel_queries(board)]
    exprs += [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    unused = [name for name in _records() if not any(name in expr for expr in exprs if not expr.startswith(name + " "))]
    assert not unused, f"recording rules no panel reads: {unused}"
