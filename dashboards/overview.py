"""Overview: golden signals per service, scrape coverage, firing alerts, backups and drills.

The first dashboard on call: every panel answers "is something wrong, and where?" and links
to the detailed dashboards through the shared ``service`` variable.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder

from dashboards import Settings
from dashboards.panels import (
    GREEN,
    RED,
    Panel,
    bargauge_panel,
    higher_is_worse,
    lower_is_worse,
    new_dashboard,
    prom,
    query_variable,
    stat_panel,
    status_map,
    thresholds,
    timeseries_panel,
)

UID = "obs-overview"
FOLDER = "Overview"
SERVICE = 'service=~"$service"'
# The golden signals draw one line per service (25+ at 50 hosts): at one point per pixel a 24h
# view fetches ~40k points per query, and serialising and gzipping that answer, not evaluating
# the recorded series, is what the panel waits for (`make bench-dashboards`, docs/dashboards.md).
# 288 points: one per 5-minute window of the rules (rate5m, avg5m, max5m) at 24h, so each window
# is drawn once and none skipped; full resolution (one point per scrape) up to a 72-minute range.
GOLDEN_SIGNAL_POINTS = 288
FIRING_BY_SEVERITY = 'count by (severity) (ALERTS{alertstate="firing", alertname!="Watchdog"})'


def traffic() -> Panel:
    return timeseries_panel(
        "Traffic",
        "Network bytes in + out of the hosts of each service (5m rate, recorded).",
        "Bps",
        [prom(f"service:node_network_transmit_receive_bytes:rate5m{{{SERVICE}}}", "{{service}}")],
        width=6,
        max_points=GOLDEN_SIGNAL_POINTS,
    )


def errors() -> Panel:
    return timeseries_panel(
        "Errors",
        "Share of failed blackbox probes per service (5m average, recorded).",
        "percentunit",
        [prom(f"1 - service:probe_success:ratio_avg5m{{{SERVICE}}}", "{{service}}")],
        limits=higher_is_worse(0.01, 0.05),
        width=6,
        minimum=0,
        maximum=1,
        max_points=GOLDEN_SIGNAL_POINTS,
    )


def latency() -> Panel:
    return timeseries_panel(
        "Latency",
        "Slowest blackbox probe of each service (5m max, recorded).",
        "s",
        [prom(f"service:probe_duration_seconds:max5m{{{SERVICE}}}", "{{service}}")],
        limits=higher_is_worse(1, 2),
        width=6,
        minimum=0,
        max_points=GOLDEN_SIGNAL_POINTS,
    )


def saturation(s: Settings) -> Panel:
    return timeseries_panel(
        "Saturation",
        "Busiest host of each service: CPU utilisation and memory in use (recorded).",
        "percentunit",
        [
            prom(f"service:node_cpu_utilisation:max{{{SERVICE}}}", "cpu {{service}}"),
            prom(f"service:node_memory_utilisation:max{{{SERVICE}}}", "memory {{service}}"),
        ],
        limits=higher_is_worse(s.cpu_saturation_ratio * 0.8, s.cpu_saturation_ratio),
        width=6,
        minimum=0,
        maximum=1,
        max_points=GOLDEN_SIGNAL_POINTS,
    )


def coverage_now(s: Settings) -> Panel:
    return stat_panel(
        "Scrape coverage",
        f"Registered targets scraped successfully right now; the target is {s.coverage_target:.0%}.",
        "percentunit",
        [prom("obs:scrape_coverage:ratio", "coverage", instant=True)],
        limits=lower_is_worse(s.coverage_target),
        width=4,
    )


def coverage_history(s: Settings) -> Panel:
    return timeseries_panel(
        "Scrape coverage over time",
        f"The red line is the {s.coverage_target:.0%} target (ScrapeCoverageLow fires below it).",
        "percentunit",
        [prom("obs:scrape_coverage:ratio", "coverage")],
        limits=lower_is_worse(s.coverage_target),
        width=8,
        height=4,
        maximum=1,
    )


def firing_by_severity() -> Panel:
    return stat_panel(
        "Firing alerts",
        "Alerts firing now, by severity (Watchdog excluded: it always fires).",
        "short",
        [
            prom(
                'count by (severity) (ALERTS{alertstate="firing", alertname!="Watchdog"})', "{{severity}}", instant=True
            )
        ],
        limits=thresholds((None, GREEN), (1, RED)),
        width=6,
        no_value="0",
    )


def firing_history() -> Panel:
    return timeseries_panel(
        "Firing alerts over time",
        "Alerts firing, by severity.",
        "short",
        [prom(FIRING_BY_SEVERITY, "{{severity}}")],
        width=6,
        height=4,
        minimum=0,
        stacked=True,
    )


def backup_rpo(s: Settings) -> Panel:
    return bargauge_panel(
        "Backup age per protected guest",
        f"Newest good backup (vzdump hook or PBS snapshot); orange past the RPO ({s.rpo_seconds // 3600}h), "
        f"red past RPO + grace (BackupTooOld fires).",
        "s",
        [prom("time() - vmid:backup_last_success_timestamp_seconds:max", "vmid {{vmid}}", instant=True)],
        limits=higher_is_worse(s.rpo_seconds, s.rpo_seconds + s.rpo_grace_seconds),
        minimum=0,
    )


def restore_drills(s: Settings) -> Panel:
    return bargauge_panel(
        "Last successful restore drill",
        f"Time since each drill target last restored and verified; red past {s.drill_every_seconds // 86400} days.",
        "s",
        [prom("time() - obs_restore_drill_last_success_timestamp_seconds", "{{target}}", instant=True)],
        limits=higher_is_worse(s.drill_every_seconds * 0.75, s.drill_every_seconds),
        width=8,
        minimum=0,
    )


def restore_drill_status() -> Panel:
    return stat_panel(
        "Last drill result",
        "Outcome of each target's most recent restore drill.",
        "short",
        [prom("obs_restore_drill_last_status", "{{target}}", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map(),
        width=4,
        height=8,
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Overview", UID, "Golden signals per service, coverage, alerts, backups and restore drills.")
        .with_variable(query_variable("service", "Service", "label_values(up, service)"))
        .with_row(dashboard_builder.Row("Golden signals per service"))
        .with_panel(traffic())
        .with_panel(errors())
        .with_panel(latency())
        .with_panel(saturation(s))
        .with_row(dashboard_builder.Row("Coverage and alerts"))
        .with_panel(coverage_now(s))
        .with_panel(coverage_history(s))
        .with_panel(firing_by_severity())
        .with_panel(firing_history())
        .with_row(dashboard_builder.Row("Backups and restore drills"))
        .with_panel(backup_rpo(s))
        .with_panel(restore_drills(s))
        .with_panel(restore_drill_status())
    )
