"""Every metric a dashboard panel (or template variable) queries exists somewhere real.

Known names (tests/support/metric_names.py): what the real node_exporter, blackbox_exporter,
Prometheus and Alertmanager binaries expose (started here, scraped by a real Prometheus), the
documented pve- and PBS-exporter lists in tests/fixtures, the recording rules in rules/, and the
obs_* metrics in docs/metrics.md. A name in none of them is a typo or an undocumented metric.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

import dashboards
from components import config as stack_config
from tests.conftest import load_sections
from tests.support import metric_names

BOARDS = dashboards.render(stack_config.validate(load_sections()))

_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


def prometheus_exprs(board: dashboards.Board) -> list[str]:
    """PromQL of every panel target and every Prometheus template variable of a dashboard."""
    exprs = [q.expr for q in dashboards.panel_queries(board) if q.datasource == "prometheus"]
    for variable in json.loads(board.json).get("templating", {}).get("list", []):
        if variable.get("datasource", {}).get("type") == "prometheus":
            match = _LABEL_VALUES.match(variable["query"])
            assert match, f"{board.name}: variable {variable['name']} is not label_values(selector, label)"
            exprs.append(match.group("selector"))
    return exprs


def unknown_names(exprs: list[str], known: frozenset[str]) -> dict[str, list[str]]:
    found = {expr: sorted(metric_names.expr_metric_names(expr) - known) for expr in exprs}
    return {expr: names for expr, names in found.items() if names}


@pytest.fixture(scope="module")
def known() -> frozenset[str]:
    return metric_names.known_metric_names()


@pytest.mark.parametrize("board", BOARDS, ids=[b.name for b in BOARDS])
def test_every_metric_a_dashboard_uses_is_real(board: dashboards.Board, known: frozenset[str]) -> None:
    assert not unknown_names(prometheus_exprs(board), known)


def test_the_check_catches_a_made_up_metric(known: frozenset[str]) -> None:
    exprs = ['rate(node_cpu_seconds_totl{mode="idle"}[$__rate_interval])', "up"]
    assert unknown_names(exprs, known) == {exprs[0]: ["node_cpu_seconds_totl"]}


def test_variable_selectors_are_checked_too() -> None:
    overview = next(b for b in BOARDS if b.name == "overview")
    assert "up" in prometheus_exprs(overview)


def test_every_metric_the_dashboard_rules_read_is_real(known: frozenset[str]) -> None:
    doc = yaml.safe_load((metric_names.RULES_DIR / "dashboards.yml").read_text())
    exprs = [rule["expr"] for group in doc["groups"] for rule in group["rules"]]
    assert not unknown_names(exprs, known)
