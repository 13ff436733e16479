"""The pieces of `make bench-dashboards` that decide what is measured (the run itself is a benchmark)."""

from __future__ import annotations

import pytest

from tools.bench_dashboards.__main__ import grafana_interval, inline, levels, rate_interval, substitute

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
