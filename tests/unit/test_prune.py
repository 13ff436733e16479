"""Prune simulator: PBS's documented semantics, worked examples and properties (hypothesis)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components import prune
from components.config import Retention
from components.prune import Snapshot

START = datetime(2026, 1, 1, 2, 0)


def nightly(days: int, end: datetime = datetime(2026, 3, 31, 2, 0)) -> list[Snapshot]:
    return [Snapshot(end - timedelta(days=n)) for n in range(days)]


def policy(**keep: int) -> Retention:
    return Retention(**{"keep_daily": None, **keep})


def kept_times(result: prune.PruneResult) -> list[str]:
    return [f"{s.time:%Y-%m-%d %H:%M}" for s in result.kept]


# --- worked examples from the PBS documentation and source -----------------------------------


def test_keep_last_keeps_newest_n() -> None:
    snaps = nightly(10)
    result = prune.prune(snaps, policy(keep_last=3))
    assert result.kept == tuple(sorted(snaps, reverse=True)[:3])


def test_keep_daily_keeps_latest_of_each_day() -> None:
    day = datetime(2026, 3, 10)
    snaps = [Snapshot(day.replace(hour=h)) for h in (1, 9, 17)] + [Snapshot(day - timedelta(days=1, hours=-3))]
    result = prune.prune(snaps, policy(keep_daily=2))
    assert kept_times(result) == ["2026-03-10 17:00", "2026-03-09 03:00"]


def test_days_without_backups_do_not_count() -> None:
    snaps = [s for i, s in enumerate(nightly(20)) if i not in (1, 2, 3)]
    result = prune.prune(snaps, policy(keep_daily=5))
    assert len(result.kept) == 5
    assert kept_times(result)[-1] == "2026-03-24 02:00"  # reaches back past the 3 empty days


def test_weeks_are_iso_weeks_monday_to_sunday() -> None:
    # Sun 2026-03-29 and Mon 2026-03-30 are in different ISO weeks; Mon..Sun 23-29 are one week.
    snaps = [Snapshot(datetime(2026, 3, d, 2)) for d in range(23, 31)]
    result = prune.prune(snaps, policy(keep_weekly=2))
    assert kept_times(result) == ["2026-03-30 02:00", "2026-03-29 02:00"]


def test_weekly_across_year_end_uses_iso_year() -> None:
    # 2026-12-31 (Thu) and 2027-01-01 (Fri) share ISO week 2026-W53.
    snaps = [Snapshot(datetime(2026, 12, 31, 2)), Snapshot(datetime(2027, 1, 1, 2))]
    result = prune.prune(snaps, policy(keep_weekly=5))
    assert kept_times(result) == ["2027-01-01 02:00"]


def test_later_options_only_reach_older_backups() -> None:
    # keep-last=3 keeps 3 snapshots of today; keep-daily=2 then skips today (covered) and keeps
    # the two days before it.
    today = datetime(2026, 3, 10)
    snaps = [Snapshot(today.replace(hour=h)) for h in (1, 2, 3, 4)]
    snaps += [Snapshot(today - timedelta(days=d)) for d in (1, 2, 3)]
    result = prune.prune(snaps, policy(keep_last=3, keep_daily=2))
    assert kept_times(result) == [
        "2026-03-10 04:00",
        "2026-03-10 03:00",
        "2026-03-10 02:00",
        "2026-03-09 00:00",
        "2026-03-08 00:00",
    ]
    assert result.reasons[result.kept[-1]] == "keep-daily"


def test_daily_weekly_monthly_combination() -> None:
    result = prune.prune(nightly(90), policy(keep_daily=7, keep_weekly=4, keep_monthly=3))
    reasons = [result.reasons[s] for s in result.kept]
    assert reasons.count("keep-daily") == 7
    assert reasons.count("keep-weekly") == 4
    # March is already covered by the daily ones; only January and February are left to keep.
    assert reasons.count("keep-monthly") == 2
    assert len(result.kept) + len(result.removed) == 90


def test_no_option_keeps_everything() -> None:
    snaps = nightly(12)
    result = prune.prune(snaps, policy())
    assert len(result.kept) == 12 and not result.removed


def test_protected_snapshot_survives_and_uses_no_slot() -> None:
    snaps = nightly(10)
    old = Snapshot(snaps[-1].time, protected=True)
    result = prune.prune([*snaps[:-1], old], policy(keep_daily=3))
    assert old in result.kept
    assert result.reasons[old] == "protected"
    assert sum(1 for s in result.kept if result.reasons[s] == "keep-daily") == 3


# --- properties ----------------------------------------------------------------------------

retentions = st.builds(
    Retention,
    keep_last=st.none() | st.integers(1, 5),
    keep_hourly=st.none() | st.integers(1, 30),
    keep_daily=st.none() | st.integers(1, 40),
    keep_weekly=st.none() | st.integers(1, 10),
    keep_monthly=st.none() | st.integers(1, 12),
    keep_yearly=st.none() | st.integers(1, 3),
)
snapshot_lists = st.lists(
    st.builds(
        Snapshot,
        time=st.integers(0, 400 * 24).map(lambda h: START + timedelta(hours=h)),
        protected=st.sampled_from([False, False, False, False, True]),
    ),
    min_size=1,
    max_size=60,
    unique_by=lambda s: s.time,
)


@settings(max_examples=150, deadline=None)
@given(snapshot_lists, retentions)
def test_newest_backup_is_always_kept(snaps: list[Snapshot], retention: Retention) -> None:
    result = prune.prune(snaps, retention)
    assert max(snaps) in result.kept


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.integers(0, 30), st.integers(0, 23))
def test_keep_daily_n_with_one_backup_a_day_keeps_last_n_days(n: int, extra: int, hour: int) -> None:
    snaps = nightly(n + extra, end=datetime(2026, 6, 30, hour, 0))
    result = prune.prune(snaps, policy(keep_daily=n))
    assert result.kept == tuple(sorted(snaps, reverse=True)[:n])


@settings(max_examples=100, deadline=None)
@given(snapshot_lists, retentions, st.randoms(use_true_random=False))
def test_result_does_not_depend_on_input_order(snaps: list[Snapshot], retention: Retention, rnd: random.Random) -> None:
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    assert prune.prune(snaps, retention) == prune.prune(shuffled, retention)


@settings(max_examples=100, deadline=None)
@given(snapshot_lists, retentions)
def test_protected_never_pruned_and_partition_is_complete(snaps: list[Snapshot], retention: Retention) -> None:
    result = prune.prune(snaps, retention)
    assert all(s in result.kept for s in snaps if s.protected)
    assert set(result.kept) | set(result.removed) == set(snaps)
    assert not set(result.kept) & set(result.removed)


# --- the plan's simulation -----------------------------------------------------------------


def test_simulated_history_has_missed_nights() -> None:
    now, history = prune.nightly_history("02:00")
    assert len(history) == prune.SIMULATED_DAYS - len(prune.MISSED_NIGHTS)
    assert now - max(history).time == timedelta(days=1)


@pytest.mark.parametrize(
    ("keep", "kept", "oldest_days", "gap_hours"),
    [
        ({"keep_daily": 30}, 30, 33, 48),
        ({"keep_daily": 30, "keep_weekly": 8, "keep_monthly": 6}, 38, 87, 168),
        ({"keep_last": 7}, 7, 8, 48),
    ],
    ids=["daily30", "daily30-weekly8-monthly6", "last7"],
)
def test_simulation_figures(keep: dict[str, int], kept: int, oldest_days: int, gap_hours: int) -> None:
    sim = prune.simulate("t", policy(**keep), "02:00")
    oldest = sim.result.oldest
    assert oldest is not None
    assert len(sim.result.kept) == kept
    assert (sim.now - oldest.time).days == oldest_days
    assert sim.worst_case_loss == timedelta(hours=gap_hours)


def test_plan_report_shows_policy_and_window(example_config) -> None:
    report = prune.plan_report(example_config)
    assert "### Prune simulation" in report
    assert "keep-daily=30,keep-weekly=8,keep-monthly=6" in report
    assert "| 38 of 86 |" in report
    assert "168h" in report


def test_chart_is_a_png(tmp_path, example_config) -> None:
    path = tmp_path / prune.CHART_NAME
    prune.write_chart(example_config, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 10_000
