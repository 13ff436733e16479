"""Alerting & on-call: what fires, what was sent and failed, acknowledgement, silences, Watchdog."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from dashboards import Settings
from dashboards.panels import (
    GREEN,
    RED,
    Panel,
    higher_is_worse,
    new_dashboard,
    prom,
    stat_panel,
    status_map,
    table_panel,
    thresholds,
    timeseries_panel,
)

UID = "obs-alerting"
FOLDER = "Alerting"
FIRING = 'ALERTS{alertstate="firing", alertname!="Watchdog"}'


def watchdog() -> Panel:
    return stat_panel(
        "Watchdog",
        "Always firing while the pipeline works; NOT FIRING means Prometheus rules or Alertmanager are broken "
        "(the dead-man's switch will page too).",
        "short",
        [prom('count(ALERTS{alertname="Watchdog", alertstate="firing"})', "watchdog", instant=True)],
        limits=thresholds((None, RED), (1, GREEN)),
        mappings=status_map("FIRING", "NOT FIRING"),
        width=6,
        no_value="NOT FIRING",
    )


def firing_by_severity() -> Panel:
    return timeseries_panel(
        "Firing alerts by severity",
        "Alerts firing over time (Watchdog excluded).",
        "short",
        [prom(f"count by (severity) ({FIRING})", "{{severity}}")],
        width=18,
        height=6,
        minimum=0,
        stacked=True,
    )


def firing_table() -> Panel:
    return table_panel(
        "Firing now",
        "Every alert firing now with its labels.",
        [prom(FIRING, "{{alertname}}", instant=True).format(PromQueryFormat.TABLE)],
        width=24,
    )


def notifications_sent() -> Panel:
    return timeseries_panel(
        "Notifications sent",
        "Notifications Alertmanager sent, per integration (slack, webhook, email, ...).",
        "reqps",
        [prom("sum by (integration) (rate(alertmanager_notifications_total[$__rate_interval]))", "{{integration}}")],
        minimum=0,
    )


def notifications_failed() -> Panel:
    return timeseries_panel(
        "Notifications failed",
        "Failed sends per integration (Alertmanager) and alerts Prometheus could not deliver to Alertmanager.",
        "reqps",
        [
            prom(
                "sum by (integration) (rate(alertmanager_notifications_failed_total[$__rate_interval]))",
                "{{integration}}",
            ),
            prom("sum(rate(prometheus_notifications_errors_total[$__rate_interval]))", "prometheus -> alertmanager"),
        ],
        limits=thresholds((None, GREEN), (0.001, RED)),
        minimum=0,
    )


def mtta(s: Settings) -> Panel:
    return timeseries_panel(
        "Time to acknowledge",
        f"Seconds from firing to acknowledgement per alert (obs_alert_ack_seconds); "
        f"CriticalAlertUnacknowledged escalates after {s.ack_timeout_seconds // 60} minutes.",
        "s",
        [
            prom("avg(obs_alert_ack_seconds)", "mean (MTTA)"),
            prom("max(obs_alert_ack_seconds)", "slowest"),
        ],
        limits=higher_is_worse(s.ack_timeout_seconds * 0.5, s.ack_timeout_seconds),
        minimum=0,
    )


def escalations() -> Panel:
    return timeseries_panel(
        "Escalations",
        "Critical alerts unacknowledged past the timeout, routed to the secondary on-call tier.",
        "short",
        [prom('count(ALERTS{alertname="CriticalAlertUnacknowledged", alertstate="firing"})', "escalated")],
        limits=thresholds((None, GREEN), (1, RED)),
        minimum=0,
    )


def silences() -> Panel:
    return timeseries_panel(
        "Silences and policy violations",
        "Active and pending silences, and silences that break the policy (too long, masking Watchdog or "
        "every critical alert).",
        "short",
        [
            prom('max(alertmanager_silences{state="active"})', "active"),
            prom('max(alertmanager_silences{state="pending"})', "pending"),
            prom("max(obs_silence_policy_violations)", "policy violations"),
        ],
        minimum=0,
    )


def oncall_drill(s: Settings) -> Panel:
    return stat_panel(
        "Last on-call drill",
        f"Time since a synthetic critical alert last went through the pipeline and was acknowledged; "
        f"red past {s.oncall_drill_every_seconds // 86400} days.",
        "s",
        [prom("time() - max(obs_oncall_drill_last_success_timestamp_seconds)", "drill", instant=True)],
        limits=higher_is_worse(s.oncall_drill_every_seconds * 0.8, s.oncall_drill_every_seconds),
        width=6,
        no_value="never",
    )


def pipeline_health() -> Panel:
    return timeseries_panel(
        "Rule evaluation and Alertmanager cluster",
        "Failed rule evaluations (should be 0) and Alertmanager cluster members seen by each peer.",
        "short",
        [
            prom("sum(rate(prometheus_rule_evaluation_failures_total[$__rate_interval]))", "rule eval failures/s"),
            prom("min(alertmanager_cluster_members)", "alertmanager peers"),
        ],
        minimum=0,
    )


def build(s: Settings) -> dashboard_builder.Dashboard:
    return (
        new_dashboard("Alerting & on-call", UID, "Firing alerts, notifications, acknowledgement, silences.")
        .with_row(dashboard_builder.Row("Now"))
        .with_panel(watchdog())
        .with_panel(firing_by_severity())
        .with_panel(firing_table())
        .with_row(dashboard_builder.Row("Delivery"))
        .with_panel(notifications_sent())
        .with_panel(notifications_failed())
        .with_row(dashboard_builder.Row("Acknowledgement and silences"))
        .with_panel(mtta(s))
        .with_panel(escalations())
        .with_panel(silences())
        .with_panel(pipeline_health())
        .with_panel(oncall_drill(s))
    )
