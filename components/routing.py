"""The routing spec: which receivers get an alert, from its labels. One source for both engines.

Alertmanager's alertmanager.yml and Grafana's notification policy are both rendered from
:func:`routes`; :func:`receivers_for` is the reference semantics the tests hold both to.
Routes are tried in order; the first whose matchers all hold decides (no fan-out between routes:
a route with several receivers notifies all of them).
"""

from __future__ import annotations

from dataclasses import dataclass

from components.config import AlertingSection, SeverityRoute

WATCHDOG = "Watchdog"
ESCALATION_ALERT = "CriticalAlertUnacknowledged"
# The escalation's label (rules/meta.yml). Prometheus' alert_relabel_configs rename the escalation
# to the alert it escalates (components/render/prometheus.py), so every silence of an alert, a
# maintenance silence scoped by alertname included, also mutes its escalation; routes find it by this.
ESCALATION_LABEL = ("escalation", "unacknowledged")
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Route:
    name: str
    matchers: tuple[tuple[str, str], ...]  # (label, value) equality matchers, all must hold
    receivers: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait: str
    group_interval: str
    repeat_interval: str
    mute_time_intervals: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(label) == value for label, value in self.matchers)


def _mutes(alerting: AlertingSection, severity: str, service: str | None) -> tuple[str, ...]:
    """Maintenance windows muting this route: never for critical; a window naming services mutes
    only the routes of those services."""
    if severity == "critical":
        return ()
    return tuple(
        w.name
        for w in alerting.maintenance_windows
        if not w.services or (service is not None and service in w.services)
    )


def _severity_routes(alerting: AlertingSection, severity: str) -> list[Route]:
    spec: SeverityRoute = getattr(alerting.routing, severity)
    timing = {
        "group_by": spec.group_by,
        "group_wait": spec.group_wait,
        "group_interval": spec.group_interval,
        "repeat_interval": spec.repeat_interval,
    }
    # A service needs its own route when it has its own receivers or its own maintenance window.
    windowed = {s for w in alerting.maintenance_windows for s in w.services} if severity != "critical" else set()
    routes = [
        Route(
            name=f"{severity}-{service}",
            matchers=(("severity", severity), ("service", service)),
            receivers=spec.by_service.get(service, spec.receivers),
            mute_time_intervals=_mutes(alerting, severity, service),
            **timing,  # type: ignore[arg-type]
        )
        for service in sorted(set(spec.by_service) | windowed)
    ]
    routes.append(
        Route(
            name=severity,
            matchers=(("severity", severity),),
            receivers=spec.receivers,
            mute_time_intervals=_mutes(alerting, severity, None),
            **timing,  # type: ignore[arg-type]
        )
    )
    return routes


def routes(alerting: AlertingSection) -> tuple[Route, ...]:
    """Ordered routes: Watchdog, escalation, then critical/warning/info (service-specific first).

    Maintenance windows mute warning and info only: a critical alert is never muted by a window.
    """
    r = alerting.routing
    out = [
        Route(
            name="watchdog",
            matchers=(("alertname", WATCHDOG),),
            receivers=(r.watchdog_receiver,),
            group_by=("alertname",),
            group_wait="0s",
            group_interval="1m",
            repeat_interval=r.watchdog_repeat_interval,
        ),
        Route(
            name="escalation",
            matchers=(ESCALATION_LABEL,),
            receivers=alerting.escalation.secondary_receivers,
            group_by=("alertname", "unacknowledged_alert", "service", "instance"),  # one page per ignored alert
            group_wait="0s",
            group_interval="1m",
            repeat_interval="30m",
        ),
    ]
    for severity in SEVERITIES:
        out += _severity_routes(alerting, severity)
    return tuple(out)


def receivers_for(alerting: AlertingSection, labels: dict[str, str]) -> tuple[str, ...]:
    """Receivers an alert with these labels reaches (the fallback is the warning default)."""
    for route in routes(alerting):
        if route.matches(labels):
            return route.receivers
    return alerting.routing.warning.receivers
