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


def _severity_routes(severity: str, spec: SeverityRoute, mutes: tuple[str, ...]) -> list[Route]:
    common = {
        "group_by": spec.group_by,
        "group_wait": spec.group_wait,
        "group_interval": spec.group_interval,
        "repeat_interval": spec.repeat_interval,
        "mute_time_intervals": mutes,
    }
    routes = [
        Route(
            name=f"{severity}-{service}",
            matchers=(("severity", severity), ("service", service)),
            receivers=receivers,
            **common,  # type: ignore[arg-type]
        )
        for service, receivers in sorted(spec.by_service.items())
    ]
    routes.append(Route(name=severity, matchers=(("severity", severity),), receivers=spec.receivers, **common))  # type: ignore[arg-type]
    return routes


def routes(alerting: AlertingSection) -> tuple[Route, ...]:
    """Ordered routes: Watchdog, escalation, then critical/warning/info (service-specific first).

    Maintenance windows mute warning and info only: a critical alert is never muted by a window.
    """
    r = alerting.routing
    windows = tuple(w.name for w in alerting.maintenance_windows)
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
            matchers=(("alertname", ESCALATION_ALERT),),
            receivers=alerting.escalation.secondary_receivers,
            group_by=("alertname", "alert"),
            group_wait="0s",
            group_interval="1m",
            repeat_interval="30m",
        ),
    ]
    for severity in SEVERITIES:
        mutes = windows if severity != "critical" else ()
        out += _severity_routes(severity, getattr(r, severity), mutes)
    return tuple(out)


def receivers_for(alerting: AlertingSection, labels: dict[str, str]) -> tuple[str, ...]:
    """Receivers an alert with these labels reaches (the fallback is the warning default)."""
    for route in routes(alerting):
        if route.matches(labels):
            return route.receivers
    return alerting.routing.warning.receivers
