"""rules/meta.yml: the alerting pipeline watching itself (heartbeat, delivery, silences, acknowledgements)."""

from __future__ import annotations

from components import routing
from components.config import StackConfig
from components.inventory import Inventory
from components.render.rules.builders import ACK_LABELS, META_FOR, Rule, alert, dump, record, seconds


def _alert_count_records() -> list[Rule]:
    return [record("obs:alerts_firing:count", 'count by (severity) (ALERTS{alertstate="firing"})')]


def _watchdog(config: StackConfig) -> Rule:
    return alert(
        config,
        "Watchdog",
        "vector(1)",
        hold="0s",
        severity="info",
        service="monitoring",
        summary="Alerting pipeline heartbeat (always firing)",
        description=(
            "Always firing, routed to the dead-man's-switch receiver every "
            f"{config.alerting.routing.watchdog_repeat_interval}. When the heartbeat stops, Prometheus, "
            "Alertmanager or the path between them is down."
        ),
    )


def _rule_evaluation_failures(config: StackConfig) -> Rule:
    return alert(
        config,
        "PrometheusRuleEvaluationFailures",
        "increase(prometheus_rule_evaluation_failures_total[5m]) > 0",
        hold=META_FOR,
        severity="critical",
        service="monitoring",
        summary="Prometheus fails to evaluate rule group {{ $labels.rule_group }}",
        description=(
            "Rules in {{ $labels.rule_group }} have failed to evaluate for "
            f"{META_FOR}: the alerts they define cannot fire."
        ),
    )


def _prometheus_notifications_failing(config: StackConfig) -> Rule:
    """Errors towards an Alertmanager that is itself down are that Alertmanager's TargetDown
    (muted, with everything else of its host, by the host-down inhibition when its host died):
    counted here they paged about the healthy replica that keeps trying, once a replica had been
    dead for META_FOR (found by the twin, tests/twin: a killed replica paged twice). The
    ``alertmanager`` label is the URL Prometheus posts to, ``<scheme>://<host:port>/api/v2/alerts``
    (prometheus/prometheus notifier/notifier.go, alertmanagerLabel and the v2 API path), whose
    host:port is the alertmanager job's instance (components/render/prometheus.py lists the same
    addresses in both). Dropped alerts are counted only when no Alertmanager took them
    (notifier.go: ``if !n.sendAll(alerts...) { n.metrics.dropped.Add(...) }``; sendAll is true when
    one succeeded), so that branch still fires when every Alertmanager is unreachable."""
    return alert(
        config,
        "PrometheusNotificationsFailing",
        """
        max without (alertmanager_address) (
          label_replace(
            increase(prometheus_notifications_errors_total[5m]) > 0,
            "alertmanager_address", "$1", "alertmanager", "[a-z]+://([^/]+)/.*"
          )
          unless on(alertmanager_address)
          label_replace(up{job="alertmanager"} == 0, "alertmanager_address", "$1", "instance", "(.+)")
        )
        or
        increase(prometheus_notifications_dropped_total[5m]) > 0
        """,
        hold=META_FOR,
        severity="critical",
        service="monitoring",
        summary="Prometheus cannot deliver alerts to Alertmanager",
        description=(
            "Prometheus on {{ $labels.instance }} has been failing or dropping alert notifications to "
            f"Alertmanager{{{{ with $labels.alertmanager }}}} {{{{ . }}}}{{{{ end }}}} for {META_FOR}."
        ),
    )


def _alertmanager_notifications_failing(config: StackConfig) -> Rule:
    return alert(
        config,
        "AlertmanagerNotificationsFailing",
        "increase(alertmanager_notifications_failed_total[5m]) > 0",
        hold=META_FOR,
        severity="critical",
        service="monitoring",
        summary="Alertmanager fails to notify via {{ $labels.integration }}",
        description=(
            "Alertmanager on {{ $labels.instance }} has failed to deliver notifications through the "
            f"{{{{ $labels.integration }}}} integration for {META_FOR}: people are not being told."
        ),
    )


def _alertmanager_cluster_degraded(config: StackConfig) -> Rule:
    """A member that is down is named by its asset (one alert per down Alertmanager), so when its
    whole host died the host-down inhibition mutes this with the rest of that host; the survivors'
    member count, labelled with their own asset, counts only while every Alertmanager is up (a
    gossip split): it paged about the healthy replica when its peer was killed (found by the twin,
    tests/twin). Fewer Alertmanagers up than replicas with none down: one is not scraped at all."""
    replicas = config.monitoring.replicas
    return alert(
        config,
        "AlertmanagerClusterDegraded",
        f"""
        (
          alertmanager_cluster_members < {replicas} and on(job, instance) alertmanager_cluster_enabled == 1
          unless on() (up{{job="alertmanager"}} == 0)
        )
        or
        max by (asset) (up{{job="alertmanager"}} == 0)
        or
        ((count(up{{job="alertmanager"}} == 1) or vector(0)) < {replicas} unless on() (up{{job="alertmanager"}} == 0))
        """,
        hold="5m",
        severity="warning",
        service="monitoring",
        summary=f"Alertmanager cluster has fewer than {replicas} healthy members",
        description=(
            f"The stack runs {replicas} Alertmanager replica(s) but fewer are up or clustered: "
            "notifications may be duplicated or lost on the next failure."
        ),
    )


def _silence_policy_violation(config: StackConfig) -> Rule:
    return alert(
        config,
        "SilencePolicyViolation",
        # Every monitoring host's check sees the cluster's shared silences: one alert per reason,
        # not one per host (with two replicas `instance` would make it two pages).
        "max without (instance, job, asset, service, tier) (obs_silence_policy_violations) > 0",
        hold="0s",
        severity="critical",
        service="monitoring",
        summary="{{ $value }} active silence(s) break the silence policy",
        description=(
            "The silence policy check found active silences that are too long, lack an author or reason, "
            "or match Watchdog or every critical alert: critical alerts may be masked. "
            "List them with `tools/silences audit`."
        ),
    )


def _silence_policy_check_stale(config: StackConfig) -> Rule:
    check_every = config.alerting.silence_policy.check_every
    return alert(
        config,
        "SilencePolicyCheckStale",
        f"""
        time() - obs_silence_policy_check_last_run_timestamp_seconds > {5 * seconds(check_every)}
        or
        obs_silence_policy_check_up == 0
        or
        absent(obs_silence_policy_check_last_run_timestamp_seconds)
        """,
        hold=META_FOR,
        severity="warning",
        service="monitoring",
        summary="The silence policy check is not running or cannot read Alertmanager",
        description=(
            f"The policy check (every {check_every}) has not completed a run for "
            f"{META_FOR}: SilencePolicyViolation and CriticalAlertUnacknowledged work on stale data, "
            "so a masking silence or an unacknowledged page could go unnoticed."
        ),
    )


def _critical_alert_unacknowledged(config: StackConfig) -> Rule:
    ack_timeout = config.alerting.escalation.ack_timeout
    return alert(
        config,
        "CriticalAlertUnacknowledged",
        f"""
        max without (alertstate) (
          label_replace(
            ALERTS{{alertstate="firing", severity="critical", alertname!="CriticalAlertUnacknowledged"}},
            "unacknowledged_alert", "$1", "alertname", "(.+)"
          )
        )
        unless on({", ".join(ACK_LABELS)}) obs_alert_acknowledged
        """,
        hold=ack_timeout,
        severity="critical",
        service="{{ $labels.service }}",
        labels={routing.ESCALATION_LABEL[0]: routing.ESCALATION_LABEL[1]},
        summary="{{ $labels.unacknowledged_alert }} has been firing for " + ack_timeout + " unacknowledged",
        description=(
            "Critical alert {{ $labels.unacknowledged_alert }}{{ with $labels.instance }} on {{ . }}{{ end }} "
            f"has fired for {ack_timeout} without an acknowledgement (`tools/silences ack`): "
            "escalating to the secondary on-call tier."
        ),
    )


def _oncall_drill_overdue(config: StackConfig) -> Rule:
    every = config.alerting.thresholds.oncall_drill_every
    return alert(
        config,
        "OnCallDrillOverdue",
        f"""
        time() - obs_oncall_drill_last_success_timestamp_seconds > {seconds(every)}
        or
        absent(obs_oncall_drill_last_success_timestamp_seconds)
        """,
        hold="1h",
        severity="warning",
        service="monitoring",
        summary="No successful on-call drill within " + every,
        description=(
            f"tools/oncall_drill has not completed a drill (synthetic critical alert acknowledged end to end) "
            f"within {every}: the paging path is unproven."
        ),
    )


def _oncall_drill_failed(config: StackConfig) -> Rule:
    return alert(
        config,
        "OnCallDrillFailed",
        "obs_oncall_drill_success == 0",
        hold="0s",
        severity="warning",
        service="monitoring",
        summary="The last on-call drill was not acknowledged in time",
        description=(
            "tools/oncall_drill's synthetic critical page was not acknowledged within "
            f"{config.alerting.escalation.ack_timeout}: a real page may go unanswered. Check the on-call "
            "receivers and who is on call."
        ),
    )


def render(config: StackConfig, inventory: Inventory) -> str:
    alerts = [
        _watchdog(config),
        _rule_evaluation_failures(config),
        _prometheus_notifications_failing(config),
        _alertmanager_notifications_failing(config),
        _alertmanager_cluster_degraded(config),
        _silence_policy_violation(config),
        _silence_policy_check_stale(config),
        _critical_alert_unacknowledged(config),
        _oncall_drill_overdue(config),
        _oncall_drill_failed(config),
    ]
    return dump("meta", _alert_count_records() + alerts)
