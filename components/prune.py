"""Prune simulator: which backups a PBS/vzdump retention policy keeps (pure Python).

It follows Proxmox Backup Server's documented semantics (``docs/maintenance.rst``, implemented by
``compute_prune_info`` in ``pbs-datastore/src/prune.rs``):

- options are processed in the order keep-last, keep-hourly, keep-daily, keep-weekly,
  keep-monthly, keep-yearly, each over the snapshots sorted newest first;
- an option keeps the newest snapshot of each of the next N periods (hour, day, ISO week from
  Monday to Sunday, month, year) that holds a snapshot; periods without snapshots do not count;
- a period already covered by a snapshot an earlier option kept is skipped, so each option only
  reaches backups older than those already kept;
- protected snapshots are never pruned and do not use up a period;
- with no option set at all, everything is kept.

`make plan` uses :func:`plan_report` to show, for the configured policy and a simulated history of
nightly backups with a few missed nights, the restore points kept, the oldest one and the
worst-case data-loss window.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from components.config import Retention, StackConfig

PeriodOf = Callable[[datetime], object]

# Same order and period keys as PBS (strftime "%Y/%m/%d/%H", "%Y/%m/%d", "%G/%V", "%Y/%m", "%Y").
PERIODS: tuple[tuple[str, PeriodOf], ...] = (
    ("keep_last", lambda t: t),
    ("keep_hourly", lambda t: (t.year, t.month, t.day, t.hour)),
    ("keep_daily", lambda t: (t.year, t.month, t.day)),
    ("keep_weekly", lambda t: t.isocalendar()[:2]),
    ("keep_monthly", lambda t: (t.year, t.month)),
    ("keep_yearly", lambda t: t.year),
)


@dataclass(frozen=True, order=True)
class Snapshot:
    """One backup snapshot of a guest: when it was taken, and whether it is protected."""

    time: datetime
    protected: bool = False


@dataclass(frozen=True)
class PruneResult:
    kept: tuple[Snapshot, ...]
    removed: tuple[Snapshot, ...]
    reasons: dict[Snapshot, str]

    @property
    def oldest(self) -> Snapshot | None:
        return min(self.kept) if self.kept else None


def prune(snapshots: Iterable[Snapshot], retention: Retention) -> PruneResult:
    """Which snapshots the policy keeps and which it removes (newest first in both)."""
    ordered = sorted(set(snapshots), reverse=True)
    options = [(name, period, getattr(retention, name)) for name, period in PERIODS]
    if not any(keep for _, _, keep in options):
        return PruneResult(tuple(ordered), (), dict.fromkeys(ordered, "keep-all"))
    reasons: dict[Snapshot, str] = {s: "protected" for s in ordered if s.protected}
    decided: set[Snapshot] = set(reasons)
    for name, period_of, keep in options:
        if not keep:
            continue
        covered = {period_of(s.time) for s in ordered if reasons.get(s, "").startswith("keep")}
        chosen: set[object] = set()
        for snapshot in ordered:
            if snapshot in decided:
                continue
            period = period_of(snapshot.time)
            if period in covered:
                continue
            if period in chosen:
                decided.add(snapshot)  # an older snapshot of a period already kept: removed
                continue
            if len(chosen) >= keep:
                break
            chosen.add(period)
            decided.add(snapshot)
            reasons[snapshot] = name.replace("_", "-")
    kept = tuple(s for s in ordered if s in reasons)
    removed = tuple(s for s in ordered if s not in reasons)
    return PruneResult(kept, removed, reasons)


# ---------------------------------------------------------------------------------------------
# Simulation for the offline plan
# ---------------------------------------------------------------------------------------------

SIMULATED_DAYS = 90
# Nights (counted back from the newest) whose backup is missed in the simulated history.
MISSED_NIGHTS = (2, 11, 30, 57)
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})")


@dataclass(frozen=True)
class Simulation:
    """A policy applied to a nightly history, and what it means for recovery."""

    title: str
    policy: str
    now: datetime
    history: tuple[Snapshot, ...]
    result: PruneResult

    @property
    def worst_case_loss(self) -> timedelta:
        """Widest gap between neighbouring restore points (and from the newest to now)."""
        return _widest_gap([*sorted(s.time for s in self.result.kept), self.now])

    def widest_gap_within(self, days: int) -> timedelta:
        """Worst-case data loss for damage noticed within ``days``: widest gap among recent points."""
        recent = sorted(s.time for s in self.result.kept if self.now - s.time <= timedelta(days=days))
        return _widest_gap([*recent, self.now])

    @property
    def loss_within(self) -> timedelta:
        """Worst-case loss for anything noticed within a day: now minus the newest restore point."""
        return self.now - max(s.time for s in self.result.kept)


def _widest_gap(times: list[datetime]) -> timedelta:
    return max(b - a for a, b in itertools.pairwise(times))


def nightly_history(
    schedule: str, days: int = SIMULATED_DAYS, missed: Iterable[int] = MISSED_NIGHTS, end: datetime | None = None
) -> tuple[datetime, tuple[Snapshot, ...]]:
    """(now, snapshots): one backup a night at the schedule's time, minus the missed nights.

    ``now`` is the moment just before the next nightly backup: the worst time to need a restore.
    """
    match = _TIME_RE.search(schedule)
    hour, minute = (int(match.group(1)), int(match.group(2))) if match else (2, 0)
    last = (end or datetime(2026, 3, 31)).replace(hour=hour, minute=minute, second=0, microsecond=0)
    skip = set(missed)
    snapshots = tuple(Snapshot(last - timedelta(days=n)) for n in range(days) if n not in skip)
    return last + timedelta(days=1), snapshots


def simulate(title: str, retention: Retention, schedule: str) -> Simulation:
    now, history = nightly_history(schedule)
    return Simulation(title, retention.as_pve_string() or "keep-all", now, history, prune(history, retention))


def plan_simulations(config: StackConfig) -> list[Simulation]:
    """The backup job's retention and the prune job of the datastore the job writes to."""
    schedule = config.backups.schedule
    datastore = next(d for d in config.pbs.datastores if d.name == config.pbs.datastore)
    return [
        simulate("Backup job retention (prune-backups)", config.backups.retention, schedule),
        simulate(f"PBS prune job on datastore {datastore.name}", datastore.prune, schedule),
    ]


def _age(now: datetime, then: datetime) -> str:
    return f"{(now - then).days}d"


def _hours(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.0f}h"


def plan_report(config: StackConfig) -> str:
    """Markdown section for plan.md (also printed by `make plan`)."""
    sims = plan_simulations(config)
    first = sims[0]
    days = config.backups.retention_days
    lines = [
        "### Prune simulation",
        "",
        f"{SIMULATED_DAYS} nights of backups at `{config.backups.schedule}` with {len(MISSED_NIGHTS)} missed "
        f"nights ({', '.join(f'{n} nights ago' for n in MISSED_NIGHTS)}); 'now' is just before the next backup, "
        f"{first.now:%Y-%m-%d %H:%M}. Promise: {config.backups.retention_days} days of nightly restore points, "
        f"RPO {config.backups.rpo}.",
        "",
        f"![prune simulation]({CHART_NAME})",
        "",
        "The worst-case data-loss window is the widest gap between neighbouring restore points: what is lost "
        "when damage is noticed late and the newest clean point is the older side of that gap.",
        "",
        f"| policy | restore points kept | oldest | newest-to-now | widest gap, last {days}d | "
        "worst-case data-loss window |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for sim in sims:
        oldest = sim.result.oldest
        assert oldest is not None  # a non-empty history always keeps its newest snapshot
        lines.append(
            f"| {sim.title}: `{sim.policy}` | {len(sim.result.kept)} of {len(sim.history)} | "
            f"{oldest.time:%Y-%m-%d} ({_age(sim.now, oldest.time)} old) | {_hours(sim.loss_within)} | "
            f"{_hours(sim.widest_gap_within(days))} | {_hours(sim.worst_case_loss)} |"
        )
    lines.append("")
    for sim in sims:
        lines.append(f"<details><summary>{sim.title}: kept restore points</summary>")
        lines.append("")
        lines += [
            f"- {s.time:%Y-%m-%d %a %H:%M} ({_age(sim.now, s.time)} old) {sim.result.reasons[s]}"
            for s in sim.result.kept
        ]
        lines += ["", "</details>", ""]
    return "\n".join(lines)


CHART_NAME = "prune-simulation.png"


def write_chart(config: StackConfig, path: Path) -> None:
    """A timeline per policy: the simulated nightly backups, the missed nights and what is kept."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import dates
    from matplotlib import pyplot as plt

    sims = plan_simulations(config)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.9 * len(sims)), dpi=110)
    for row, sim in enumerate(sims):
        y = len(sims) - row
        history = dates.date2num([s.time for s in sim.history])
        kept = dates.date2num([s.time for s in sim.result.kept])
        missed = dates.date2num([sim.now - timedelta(days=n + 1) for n in MISSED_NIGHTS])
        ax.scatter(history, [y] * len(history), marker="|", color="#bbbbbb", s=120)
        ax.scatter(kept, [y] * len(kept), marker="o", color="#1f77b4", s=28, zorder=3)
        ax.scatter(missed, [y] * len(missed), marker="x", color="#d62728", s=40, zorder=3)
    ax.xaxis_date()
    ax.set_yticks([len(sims) - i for i in range(len(sims))], [f"{s.title}\n{s.policy}" for s in sims], fontsize=8)
    ax.set_ylim(0.4, len(sims) + 0.6)
    ax.set_title(
        f"Restore points kept after {SIMULATED_DAYS} nights (blue: kept, grey: pruned, red x: missed night)",
        fontsize=9,
    )
    ax.grid(axis="x", alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summary_lines(config: StackConfig) -> list[str]:
    """Short text for the terminal."""
    lines = [f"Prune simulation ({SIMULATED_DAYS} nights of backups, {len(MISSED_NIGHTS)} missed):"]
    for sim in plan_simulations(config):
        oldest = sim.result.oldest
        assert oldest is not None
        lines.append(
            f"  {sim.title}: {len(sim.result.kept)} restore points kept, oldest {oldest.time:%Y-%m-%d} "
            f"({_age(sim.now, oldest.time)} old), worst-case data-loss window {_hours(sim.worst_case_loss)}"
        )
    return lines
