"""Logs (Loki): volume by host and service, error lines, ingestion rate against the target.

Stream labels are the ones Alloy sets on every managed host: ``host``, ``service``, ``level``.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from dashboards import Settings
from dashboards.panels import (
    LOKI,
    Panel,
    higher_is_worse,
    logql,
    logs_panel,
    new_dashboard,
    query_variable,
    timeseries_panel,
)

UID = "obs-logs"
FOLDER = "Logs"
STREAMS = '{service=~"$service", host=~"$host"}'
ERROR_LEVELS = 'level=~"(?i)(fatal|panic|critical|crit|alert|emerg|error|err)"'  # Alloy's level values
ERROR_STREAMS = f'{{service=~"$service", host=~"$host", {ERROR_LEVELS}}}'


def volume_by_host() -> Panel:
    return timeseries_panel(
        "Log lines by host",
        "Lines ingested per second for each host.",
        "short",
        [logql(f"sum by (host) (rate({STREAMS}[$__auto]))", "{{host}}")],
        minimum=0,
        stacked=True,
    )


def volume_by_service() -> Panel:
    return timeseries_panel(
        "Log lines by service",
        "Lines ingested per second for each service.",
        "short",
        [logql(f"sum by (service) (rate({STREAMS}[$__auto]))", "{{service}}")],
        minimum=0,
        stacked=True,
    )


def error_lines() -> Panel:
    return timeseries_panel(
        "Error lines",
        "Lines at error level or worse per service.",
        "short",
        [
            logql(
                f'sum by (service) (rate({{service=~"$service", host=~"$host", {ERROR_LEVELS}}}[$__auto]))',
                "{{service}}",
            )
        ],
        minimum=0,
    )


def ingestion_rate(s: Settings) -> Panel:
    target = s.loki_target_lines_per_second
    return timeseries_panel(
        "Ingestion rate against target",
        f"All lines per second reaching Loki; the platform is sized for {target} lines/s sustained.",
        "short",
        [logql('sum(rate({service=~".+"}[$__auto]))', "lines/s")],
        limits=higher_is_worse(target * 0.8, target),
        minimum=0,
    )


def recent_errors() -> Panel:
    return logs_panel(
        "Recent error lines",
        "The newest error lines of the selected hosts and services.",
        logql(ERROR_STREAMS),
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Logs", UID, "Loki: log volume, error lines and ingestion rate.")
        .with_variable(query_variable("service", "Service", "label_values(service)", datasource=LOKI))
        .with_variable(query_variable("host", "Host", 'label_values({service=~"$service"}, host)', datasource=LOKI))
        .with_row(dashboard_builder.Row("Volume"))
        .with_panel(volume_by_host())
        .with_panel(volume_by_service())
        .with_panel(error_lines())
        .with_panel(ingestion_rate(s))
        .with_row(dashboard_builder.Row("Error lines"))
        .with_panel(recent_errors())
    )
