"""Dashboards as code: the committed JSON is the code's output, and every panel follows the rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

import dashboards
from components import config as stack_config
from components.grafana.config import FOLDERS
from dashboards import panels
from tests.conftest import load_sections

EXAMPLE = dashboards.render(stack_config.validate(load_sections()))
NAMES = [board.name for board in EXAMPLE]
QUERIES = [q for board in EXAMPLE for q in dashboards.panel_queries(board)]


def _panels(board: dashboards.Board) -> list[dict[str, Any]]:
    return dashboards._panels(json.loads(board.json))


def test_committed_files_are_exactly_the_dashboards() -> None:
    assert sorted(dashboards.committed()) == sorted(board.file for board in EXAMPLE), "run `make dashboards`"


@pytest.mark.parametrize("board", EXAMPLE, ids=NAMES)
def test_committed_json_matches_the_code(board: dashboards.Board) -> None:
    assert dashboards.committed().get(board.file) == board.json, (
        f"dashboards/{board.file} drifted: run `make dashboards`"
    )


@pytest.mark.parametrize("seed", ["1", "2"])
def test_rendering_does_not_depend_on_hash_order(seed: str) -> None:
    """Another process with another string-hash seed renders the committed JSON byte for byte."""
    code = (
        "import json, dashboards; from tests.conftest import load_sections; from components import config; "
        "print(json.dumps({b.file: b.json for b in dashboards.render(config.validate(load_sections()))}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": seed},
    )
    assert json.loads(done.stdout) == dashboards.committed()


def test_uids_are_fixed_and_unique() -> None:
    uids = [json.loads(board.json)["uid"] for board in EXAMPLE]
    assert uids == [board.uid for board in EXAMPLE]
    assert len(set(uids)) == len(uids)
    assert all(re.fullmatch(r"obs-[a-z]+", uid) for uid in uids)


@pytest.mark.parametrize("board", EXAMPLE, ids=NAMES)
def test_folder_is_one_the_component_creates(board: dashboards.Board) -> None:
    assert board.folder in FOLDERS


@pytest.mark.parametrize("board", EXAMPLE, ids=NAMES)
def test_panel_ids_are_unique_and_positions_on_the_grid(board: dashboards.Board) -> None:
    data = json.loads(board.json)
    ids = [p["id"] for p in data["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in data["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]


@pytest.mark.parametrize("board", EXAMPLE, ids=NAMES)
def test_every_panel_has_a_description_and_a_unit(board: dashboards.Board) -> None:
    for panel in _panels(board):
        assert panel.get("description"), f"{panel['title']}: say what the panel shows"
        if panel["type"] in ("timeseries", "stat", "bargauge"):
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: set a unit"


@pytest.mark.parametrize("board", EXAMPLE, ids=NAMES)
def test_status_panels_have_thresholds(board: dashboards.Board) -> None:
    for panel in _panels(board):
        if panel["type"] in ("stat", "bargauge"):
            steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            assert steps[0]["value"] is None and len(steps) >= 1, panel["title"]


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard}:{q.panel}:{i}" for i, q in enumerate(QUERIES)])
def test_query_ranges_follow_the_panel(query: dashboards.PanelQuery) -> None:
    """Range selectors are $__rate_interval (PromQL) or $__auto (LogQL); longer windows belong in rules."""
    ranges = re.findall(r"\[([^\]]+)\]", query.expr)
    allowed = "$__rate_interval" if query.datasource == "prometheus" else "$__auto"
    assert all(r == allowed for r in ranges), f"{query.expr}: use [{allowed}] or a recording rule"


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.dashboard}:{q.panel}:{i}" for i, q in enumerate(QUERIES)])
def test_datasources_are_the_provisioned_ones(query: dashboards.PanelQuery) -> None:
    assert query.datasource in ("prometheus", "loki")


def test_every_dashboard_has_queries() -> None:
    assert {q.dashboard for q in QUERIES} == set(NAMES)


def test_thresholds_come_from_the_stack_config(example_sections: dict[str, Any]) -> None:
    example_sections["backups"]["rpo"] = "36h"
    example_sections["alerting"]["thresholds"] = {"scrape_coverage_min": 0.99}
    boards = {b.name: b for b in dashboards.render(stack_config.validate(example_sections))}
    overview = {p["title"]: p for p in _panels(boards["overview"])}
    rpo_steps = overview["Backup age per protected guest"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in rpo_steps] == [None, 36 * 3600, 38 * 3600]
    coverage_steps = overview["Scrape coverage"]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in coverage_steps] == [None, 0.99]


def test_datasource_uids_match_the_component() -> None:
    from components.grafana import config as grafana_config

    assert {panels.PROMETHEUS_UID, panels.LOKI_UID, panels.ALERTMANAGER_UID} == set(grafana_config.DATASOURCE_UIDS)


def test_service_variable_drives_the_golden_signals() -> None:
    overview = json.loads(next(b for b in EXAMPLE if b.name == "overview").json)
    assert [v["name"] for v in overview["templating"]["list"]] == ["service"]
    golden = [
        q for q in QUERIES if q.dashboard == "overview" and q.panel in ("Traffic", "Errors", "Latency", "Saturation")
    ]
    assert len(golden) == 5 and all('service=~"$service"' in q.expr for q in golden)
