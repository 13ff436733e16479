"""The pieces of `make bench-dashboards` that decide what is measured (the run itself is a benchmark)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import dashboards
from components import config as stack_config
from components import inventory as stack_inventory
from tests.conftest import load_sections
from tools.bench_dashboards import synthetic
from tools.bench_dashboards.__main__ import (
    RecordingRule,
    _rule_groups,
    grafana_interval,
    inline,
    levels,
    overlapping_blocks,
    panel_step,
    rate_interval,
    shortcuts,
    substitute,
)
from tools.bench_plan import synthetic_sections

RULES = {
    "instance:x:rate5m": ("rate(x_total[5m])", None),
    "service:x:max": ("max by (service) (instance:x:rate5m)", None),
    "vmid:y:max": ('max by (vmid) (label_replace(y, "vmid", "$1", "vm_id", "(.+)"))', None),
}


@pytest.mark.parametrize(
    ("range_s", "width", "expected"),
    [(86400, 1920, 60), (3600, 1920, 15), (86400, 800, 120), (7 * 86400, 1920, 300)],
    ids=["24h-1920px", "1h-min-interval", "24h-800px", "7d-1920px"],
)
def test_grafana_interval(range_s: int, width: int, expected: int) -> None:
    assert grafana_interval(range_s, width, 15) == expected


def test_rate_interval_is_grafanas() -> None:
    assert rate_interval(60, 15) == 75
    assert rate_interval(15, 15) == 60


def test_substitute_sets_every_selector_to_all() -> None:
    expr = 'rate(a{asset=~"$asset", id=~"node/(${node:regex})"}[$__rate_interval])'
    assert substitute(expr, 60, 75) == 'rate(a{asset=~".*", id=~"node/(.*)"}[75s])'


def test_inline_expands_nested_rules_and_keeps_replacements_literal() -> None:
    assert inline('1 - service:x:max{service=~".*"}', RULES) == "1 - (max by (service) ((rate(x_total[5m]))))"
    assert inline("time() - vmid:y:max", RULES).endswith('"vmid", "$1", "vm_id", "(.+)")))')


def test_inline_moves_a_narrowing_selector_onto_the_raw_series() -> None:
    assert inline('service:x:max{service="git"}', RULES) == '(max by (service) ((rate(x_total{service="git"}[5m]))))'
    rules = {"instance:c:rate5m": ('1 - avg without (cpu, mode) (rate(c{job="node", mode="idle"}[5m]))', None)}
    got = inline('instance:c:rate5m{job="node", asset=~"h\\-1"}', rules)
    assert got == '(1 - avg without (cpu, mode) (rate(c{job="node", mode="idle", asset=~"h\\-1"}[5m])))'


def test_levels_put_dependencies_first() -> None:
    assert levels(RULES) == [["instance:x:rate5m", "vmid:y:max"], ["service:x:max"]]


def test_inline_drops_a_matcher_the_rule_already_applies() -> None:
    rules = {"instance:z:ratio": ('1 - z{job="node"}', None)}
    assert inline('instance:z:ratio{job="node", asset=~".*"}', rules) == '(1 - z{job="node"})'


def test_substitute_uses_a_variables_default_value() -> None:
    expr = 'up{asset=~"$asset", service=~"$service"}'
    assert substitute(expr, 60, 75, {"asset": r"host\-00"}) == r'up{asset=~"host\-00", service=~".*"}'


REGISTER = [
    RecordingRule("obs:registered_target:info", "vector(1)", (("instance", "a:9100"), ("job", "node")), None),
    RecordingRule("obs:registered_target:info", "vector(1)", (("instance", "b:9100"), ("job", "node")), None),
    RecordingRule("obs:scrape_coverage:ratio", "count(obs:registered_target:info and up == 1)", (), None),
]


def test_the_register_stays_data_when_queries_are_spelled_out() -> None:
    assert shortcuts(REGISTER) == {"obs:scrape_coverage:ratio": ("count(obs:registered_target:info and up == 1)", None)}


def test_every_register_entry_is_backfilled() -> None:
    (group,) = _rule_groups(["obs:registered_target:info"], REGISTER)
    assert [rule["labels"]["instance"] for rule in group["rules"]] == ["a:9100", "b:9100"]


BenchStack = tuple[stack_config.StackConfig, stack_inventory.Inventory, list[synthetic.Series]]


@pytest.fixture(scope="module")
def bench_stack() -> BenchStack:
    config = stack_config.validate(synthetic_sections(12))
    inventory = stack_inventory.build(config)
    return config, inventory, [series for series, _ in synthetic.stack_series(config, inventory, 0)]


def _labels(series: synthetic.Series) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', series.labels))


def test_every_registered_target_reports_up_with_its_labels(bench_stack: BenchStack) -> None:
    _, inventory, series = bench_stack
    up = [_labels(s) for s in series if s.name == "up"]
    got = {(lab["job"], lab["instance"], lab["asset"], lab["service"], lab["tier"]) for lab in up}
    assert got == {(e.job, e.instance, e.asset, e.service, e.tier) for e in inventory.coverage}


def test_pve_exporter_reports_every_guest_once_per_pve_node(bench_stack: BenchStack) -> None:
    config, _, series = bench_stack
    info = [_labels(s) for s in series if s.name == "pve_guest_info"]
    guests = {lab["id"] for lab in info}
    assert len(info) == len(guests) * len(config.pve_nodes())
    assert {lab["instance"] for lab in info} == {str(n.address) for n in config.pve_nodes()}
    assert all(set(lab) >= {"id", "node", "name", "type", "template", "tags"} for lab in info)


def test_no_series_repeats_a_label(bench_stack: BenchStack) -> None:
    _, _, series = bench_stack
    repeated = [s for s in series if len(re.findall(r'(\w+)="', s.labels)) != len(_labels(s))]
    assert not repeated


def test_a_panels_minimum_interval_reaches_the_bench() -> None:
    """Backup durations change once a night: their panel steps 15 minutes, and the bench queries it so."""
    boards = dashboards.render(stack_config.validate(load_sections()))
    steps = {q.panel: q.min_interval for b in boards for q in dashboards.panel_queries(b)}
    assert steps["Backup duration"] == "15m"
    assert steps["Backup duration"] != steps["Datastore usage and 30-day forecast"]


def test_a_panels_max_data_points_set_the_benchs_step() -> None:
    """The Overview's golden signals ask for 288 points: over 24h Grafana steps 5 minutes there,
    1 minute (the 1920px width) elsewhere, and the panel's minimum interval still wins."""
    boards = dashboards.render(stack_config.validate(load_sections()))
    steps = {(q.dashboard, q.panel): panel_step(q, 1920, 15) for b in boards for q in dashboards.panel_queries(b)}
    assert steps["overview", "Saturation"] == 300
    assert steps["overview", "Scrape coverage over time"] == 60
    assert steps["backups", "Backup duration"] == 900


def _block(data: Path, name: str, start: int, end: int) -> None:
    (data / name).mkdir()
    (data / name / "meta.json").write_text(json.dumps({"minTime": start, "maxTime": end}))


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([(0, 10), (10, 20)], 0),
        ([(0, 10), (5, 20)], 1),
        ([(0, 100), (10, 20), (30, 40)], 2),
    ],
    ids=["adjacent", "one-overlap", "inside-a-long-block"],
)
def test_overlapping_blocks_counts_what_promtools_rule_backfill_leaves(
    tmp_path: Path, spans: list[tuple[int, int]], expected: int
) -> None:
    for i, (start, end) in enumerate(spans):
        _block(tmp_path, f"BLOCK{i}", start, end)
    _block(tmp_path, "BLOCKX.tmp-for-deletion", 0, 100)  # being deleted: not a block any more
    assert overlapping_blocks(tmp_path) == expected
