"""The metric-name helper itself: it must see real names and reject made-up ones."""

from __future__ import annotations

import pytest

from tests.support import metric_names


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        pytest.param("up == 0", {"up"}, id="bare"),
        pytest.param(
            'sum by (job, instance) (rate(node_cpu_seconds_total{mode="idle"}[5m] offset 1h))',
            {"node_cpu_seconds_total"},
            id="aggregation-labels-range-offset",
        ),
        pytest.param(
            "obs:registered_target:info unless on(job, instance) up",
            {"obs:registered_target:info", "up"},
            id="recording-rule-and-on-list",
        ),
        pytest.param(
            'label_replace(pve_guest_info, "vmid", "$1", "id", "qemu/(.+)") * 1e6 > bool time()',
            {"pve_guest_info"},
            id="strings-numbers-functions",
        ),
        pytest.param(
            "x_total / ignoring(code) group_left(tier) y_total",
            {"x_total", "y_total"},
            id="group-left-ignoring",
        ),
    ],
)
def test_expr_metric_names(expr: str, expected: set[str]) -> None:
    assert metric_names.expr_metric_names(expr) == expected


def test_fixture_names_cover_the_exporters_we_rely_on() -> None:
    names = metric_names.fixture_metric_names()
    for name in ("pve_up", "pve_guest_info", "pve_not_backed_up_info", "pbs_size", "pbs_snapshot_vm_last_timestamp"):
        assert name in names
    assert "pve_made_up_metric" not in names


def test_real_binaries_expose_the_names_rules_use() -> None:
    names = metric_names.exporter_metric_names()
    for name in (
        "up",
        "ALERTS",
        "node_filesystem_avail_bytes",
        "node_textfile_scrape_error",
        "probe_success",
        "probe_ssl_earliest_cert_expiry",
        "prometheus_rule_evaluation_failures_total",
        "alertmanager_notifications_failed_total",
        "alertmanager_cluster_members",
    ):
        assert name in names, name
    assert "node_made_up_metric" not in names


def test_documented_obs_names_come_from_metrics_md() -> None:
    assert "obs_alert_acknowledged" in metric_names.documented_obs_metric_names()
