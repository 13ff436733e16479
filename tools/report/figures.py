"""The report's figures, computed from Prometheus range queries over the report window.

Every section samples its series at the window's step (5 minutes by default, never coarser than
Prometheus's 5-minute lookback for windows up to 38 days, so no alert episode or backup run falls
between two points). Counters are increased client-side from those points, with counter resets
(a restarted Alertmanager) handled the way `increase()` does, without its extrapolation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tools.report.prometheus import MAX_POINTS, Series

Point = tuple[float, float]
DAY = 86_400.0
LOOKBACK = 300.0

COVERAGE_RECORDED = "min(obs:scrape_coverage:ratio)"
COVERAGE_FROM_UP = "sum(up) / count(up)"
ALERTS_FIRING = 'ALERTS{alertstate="firing", alertname!="Watchdog"}'
NOTIFICATIONS_SENT = "alertmanager_notifications_total"
NOTIFICATIONS_FAILED = "alertmanager_notifications_failed_total"
# Per acknowledged critical alert, while it fires: seconds from firing to the ack (tools/silences).
ACK_SECONDS = "obs_alert_ack_seconds"
ONCALL_DRILL = "obs_oncall_drill_last_success_timestamp_seconds"
BACKUP_SUCCESS = "obs_backup_last_success_timestamp_seconds"
BACKUP_STATUS = "obs_backup_last_status"
DRILL_RUN = "obs_restore_drill_last_run_timestamp_seconds"
DRILL_STATUS = "obs_restore_drill_last_status"
DRILL_RTO = "obs_restore_drill_rto_seconds"
DRILL_RPO = "obs_restore_drill_rpo_seconds"
PBS_USED = "pbs_used"
PBS_SIZE = "pbs_size"


@dataclass(frozen=True)
class Window:
    start: float
    end: float
    step: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def nights(self) -> int:
        """Nightly backup runs a guest should have had in the window."""
        return max(1, round(self.seconds / DAY))

    def contains(self, t: float) -> bool:
        return self.start <= t <= self.end


def default_step(start: float, end: float) -> float:
    """The lookback (5 min) when it fits in Prometheus's point limit, else the finest that does."""
    return max(LOOKBACK, math.ceil((end - start) / MAX_POINTS / 60) * 60)


@dataclass(frozen=True)
class Budgets:
    coverage_target: float = 0.95
    rpo_seconds: float = DAY
    rto_seconds: float = 7_200.0
    mtta_seconds: float = 600.0


# --- helpers on points ------------------------------------------------------------------------


def increase(points: list[Point]) -> float:
    """Counter increase over the points: positive deltas, and the new value after a reset."""
    total = 0.0
    for (_, before), (_, after) in itertools.pairwise(points):
        total += after - before if after >= before else after
    return total


def episodes(points: list[Point], step: float) -> list[tuple[float, float]]:
    """Runs of consecutive points (a series present at every step): (first, last) timestamps."""
    runs: list[tuple[float, float]] = []
    for t, _ in points:
        if runs and t - runs[-1][1] <= step * 1.5:
            runs[-1] = (runs[-1][0], t)
        else:
            runs.append((t, t))
    return runs


def distinct_in_window(points: list[Point], window: Window) -> list[float]:
    """Distinct timestamp values (of a `*_timestamp_seconds` gauge) that fall inside the window."""
    return sorted({v for _, v in points if window.contains(v)})


def value_at(points: list[Point], t: float) -> float | None:
    """The value of the last point at or before t."""
    found = None
    for pt, v in points:
        if pt > t:
            break
        found = v
    return found


# --- sections ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coverage:
    query: str
    points: list[Point]
    target: float

    @property
    def mean(self) -> float | None:
        return float(np.mean([v for _, v in self.points])) if self.points else None

    @property
    def minimum(self) -> float | None:
        return min(v for _, v in self.points) if self.points else None

    @property
    def time_at_target(self) -> float | None:
        """Share of the window's points at or above the target."""
        if not self.points:
            return None
        return sum(1 for _, v in self.points if v >= self.target) / len(self.points)


@dataclass(frozen=True)
class AlertGroup:
    severity: str
    service: str
    episodes: int
    firing_seconds: float


@dataclass(frozen=True)
class AlertRow:
    alertname: str
    severity: str
    service: str
    episodes: int
    firing_seconds: float


@dataclass(frozen=True)
class Alerts:
    groups: list[AlertGroup]
    alerts: list[AlertRow]

    @property
    def total_episodes(self) -> int:
        return sum(g.episodes for g in self.groups)


@dataclass(frozen=True)
class Integration:
    name: str
    sent: float
    failed: float

    @property
    def failure_ratio(self) -> float | None:
        return self.failed / self.sent if self.sent else None


@dataclass(frozen=True)
class Mtta:
    acknowledgements: float
    seconds: float | None
    target_seconds: float


@dataclass(frozen=True)
class OncallDrills:
    successes: list[float]
    last_success: float | None
    age_seconds: float | None


@dataclass(frozen=True)
class GuestBackups:
    vmid: str
    node: str
    storage: str
    successes: int
    nights: int
    last_status: float | None
    last_age_seconds: float | None
    max_age_seconds: float | None
    ages: list[Point] = field(repr=False)

    @property
    def success_rate(self) -> float:
        return min(1.0, self.successes / self.nights)

    def within(self, rpo_seconds: float) -> bool:
        return self.max_age_seconds is not None and self.max_age_seconds <= rpo_seconds


@dataclass(frozen=True)
class DrillRun:
    timestamp: float
    status: float | None
    rto_seconds: float | None
    rpo_seconds: float | None

    def within(self, budgets: Budgets) -> bool:
        """Restored, verified, and within both the RTO and the RPO budget."""
        return (
            self.status == 1
            and self.rto_seconds is not None
            and self.rto_seconds <= budgets.rto_seconds
            and self.rpo_seconds is not None
            and self.rpo_seconds <= budgets.rpo_seconds
        )


@dataclass(frozen=True)
class DrillTarget:
    target: str
    runs: list[DrillRun]

    @property
    def successes(self) -> int:
        return sum(1 for r in self.runs if r.status == 1)

    @property
    def last(self) -> DrillRun | None:
        return self.runs[-1] if self.runs else None

    @property
    def max_rto_seconds(self) -> float | None:
        values = [r.rto_seconds for r in self.runs if r.rto_seconds is not None]
        return max(values) if values else None


@dataclass(frozen=True)
class Datastore:
    name: str
    size: float | None
    used: list[Point]
    slope_per_day: float | None

    @property
    def used_now(self) -> float | None:
        return self.used[-1][1] if self.used else None

    @property
    def usage(self) -> float | None:
        return self.used_now / self.size if self.size and self.used_now is not None else None

    @property
    def days_to_full(self) -> float | None:
        """At the window's linear growth rate; None when it is not growing."""
        if self.size is None or self.used_now is None or not self.slope_per_day or self.slope_per_day <= 0:
            return None
        return max(0.0, (self.size - self.used_now) / self.slope_per_day)


@dataclass(frozen=True)
class Report:
    prometheus: str
    window: Window
    budgets: Budgets
    coverage: Coverage
    alerts: Alerts
    notifications: list[Integration]
    mtta: Mtta
    oncall: OncallDrills
    backups: list[GuestBackups]
    drills: list[DrillTarget]
    datastores: list[Datastore]


# --- queries -----------------------------------------------------------------------------------


class RangeSource(Protocol):
    """What the report needs from Prometheus (tools.report.prometheus.Prometheus)."""

    url: str

    def range(self, query: str, start: float, end: float, step: float) -> list[Series]: ...


class Collector:
    """Runs the queries of one report window against one Prometheus."""

    def __init__(self, prometheus: RangeSource, window: Window, budgets: Budgets) -> None:
        self.prom = prometheus
        self.window = window
        self.budgets = budgets

    def range(self, query: str) -> list[Series]:
        return self.prom.range(query, self.window.start, self.window.end, self.window.step)

    def coverage(self) -> Coverage:
        for query in (COVERAGE_RECORDED, COVERAGE_FROM_UP):
            series = self.range(query)
            if series and series[0].points:
                return Coverage(query, series[0].points, self.budgets.coverage_target)
        return Coverage(COVERAGE_FROM_UP, [], self.budgets.coverage_target)

    def alerts(self) -> Alerts:
        rows: dict[tuple[str, str, str], AlertRow] = {}
        for s in self.range(ALERTS_FIRING):
            runs = episodes(s.points, self.window.step)
            firing = sum(last - first + self.window.step for first, last in runs)
            key = (s.label("alertname"), s.label("severity", "none"), s.label("service", "none"))
            old = rows.get(key, AlertRow(*key, 0, 0.0))
            rows[key] = AlertRow(*key, old.episodes + len(runs), old.firing_seconds + firing)
        groups: dict[tuple[str, str], AlertGroup] = {}
        for row in rows.values():
            group = groups.get((row.severity, row.service), AlertGroup(row.severity, row.service, 0, 0.0))
            groups[(row.severity, row.service)] = AlertGroup(
                row.severity, row.service, group.episodes + row.episodes, group.firing_seconds + row.firing_seconds
            )
        severity_order = {"critical": 0, "warning": 1, "info": 2}
        return Alerts(
            groups=sorted(groups.values(), key=lambda g: (severity_order.get(g.severity, 9), g.service)),
            alerts=sorted(rows.values(), key=lambda r: (-r.episodes, r.alertname, r.service)),
        )

    def _increase_by(self, query: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for s in self.range(query):
            totals[s.label(label)] = totals.get(s.label(label), 0.0) + increase(s.points)
        return totals

    def notifications(self) -> list[Integration]:
        sent = self._increase_by(NOTIFICATIONS_SENT, "integration")
        failed = self._increase_by(NOTIFICATIONS_FAILED, "integration")
        names = sorted(set(sent) | set(failed))
        return [Integration(name, sent.get(name, 0.0), failed.get(name, 0.0)) for name in names]

    def mtta(self) -> Mtta:
        """One acknowledgement per episode of an `obs_alert_ack_seconds` series (an alert re-firing
        and acknowledged again is a new episode), valued at its first point."""
        acks = [
            first_value
            for s in self.range(ACK_SECONDS)
            for first, _ in episodes(s.points, self.window.step)
            if (first_value := value_at(s.points, first)) is not None
        ]
        return Mtta(len(acks), sum(acks) / len(acks) if acks else None, self.budgets.mtta_seconds)

    def oncall(self) -> OncallDrills:
        series = [s for s in self.range(ONCALL_DRILL) if s.points]
        points = [p for s in series for p in s.points]
        last = max((s.points[-1][1] for s in series), default=None)
        return OncallDrills(
            successes=distinct_in_window(points, self.window),
            last_success=last,
            age_seconds=self.window.end - last if last is not None else None,
        )

    def backups(self) -> list[GuestBackups]:
        def key(s: Series) -> tuple[str, str, str]:
            return (s.label("vmid"), s.label("node"), s.label("storage"))

        status = {key(s): s.points for s in self.range(BACKUP_STATUS)}
        guests = []
        for s in self.range(BACKUP_SUCCESS):
            ages = [(t, t - v) for t, v in s.points]
            last_status = status.get(key(s))
            guests.append(
                GuestBackups(
                    *key(s),
                    successes=len(distinct_in_window(s.points, self.window)),
                    nights=self.window.nights,
                    last_status=last_status[-1][1] if last_status else None,
                    last_age_seconds=self.window.end - s.points[-1][1] if s.points else None,
                    max_age_seconds=max((a for _, a in ages), default=None),
                    ages=ages,
                )
            )
        return sorted(guests, key=lambda g: (int(g.vmid) if g.vmid.isdigit() else 0, g.vmid, g.node, g.storage))

    def drills(self) -> list[DrillTarget]:
        def by_target(query: str) -> dict[str, list[Point]]:
            return {s.label("target"): s.points for s in self.range(query)}

        runs, status, rto, rpo = (by_target(q) for q in (DRILL_RUN, DRILL_STATUS, DRILL_RTO, DRILL_RPO))
        targets = []
        for target, points in sorted(runs.items()):
            found = []
            for run in distinct_in_window(points, self.window):
                # the first point that shows this run carries its outcome
                seen = next(t for t, v in points if v == run)
                found.append(
                    DrillRun(
                        run,
                        value_at(status.get(target, []), seen),
                        value_at(rto.get(target, []), seen),
                        value_at(rpo.get(target, []), seen),
                    )
                )
            targets.append(DrillTarget(target, found))
        return targets

    def datastores(self) -> list[Datastore]:
        sizes = {s.label("datastore"): s.points[-1][1] for s in self.range(PBS_SIZE) if s.points}
        stores = []
        for s in self.range(PBS_USED):
            slope = None
            if len(s.points) >= 2:
                t = np.array([p[0] for p in s.points]) - s.points[0][0]
                v = np.array([p[1] for p in s.points])
                # whole bytes per day: a flat datastore's fit is 0, not a rounding error that "fills" it
                slope = float(round(np.polyfit(t / DAY, v, 1)[0]))
            stores.append(Datastore(s.label("datastore"), sizes.get(s.label("datastore")), s.points, slope))
        return sorted(stores, key=lambda d: d.name)


# Report field -> (what the progress line says, how to compute it)
SECTIONS: dict[str, tuple[str, Callable[[Collector], object]]] = {
    "coverage": ("scrape coverage", Collector.coverage),
    "alerts": ("alerts by severity and service", Collector.alerts),
    "notifications": ("notifications", Collector.notifications),
    "mtta": ("time to acknowledge", Collector.mtta),
    "oncall": ("on-call drills", Collector.oncall),
    "backups": ("backups per guest", Collector.backups),
    "drills": ("restore drills", Collector.drills),
    "datastores": ("PBS datastores", Collector.datastores),
}
