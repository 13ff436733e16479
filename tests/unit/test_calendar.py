"""Calendar events held against the real parser: `systemd-analyze calendar` on this machine.

Soundness is what matters: a value accepted here lands in a timer or a PVE/PBS job, so systemd
must accept it too. The corpus is generated from the grammar's parts, valid and broken."""

from __future__ import annotations

import datetime
import itertools
import os
import random
import subprocess

import pytest

from components import calendar_event
from tests.support.metric_names import require_binary

WEEKDAYS = ["", "Mon", "sat", "Mon..Fri", "Tue,Thu", "Sunday", "Fri..Mon", "Mo", "Funday"]
DATES = [
    "",
    "*-*-*",
    "*-*-01..07",
    "2030-01-01",
    "*-02~03",
    "*-*-1/2",
    "*-13-01",
    "*-02-30",
    "*-*-32",
    "1-1",
    "*-*-*/0",
]
TIMES = ["", "02:00", "02:00:00", "*:0/15", "10:00:00.5", "25:00", "12:60", "0..23:00", "3", "02:00:60", "*:*/0"]
ZONES = ["", "UTC", "Europe/Berlin", "Mars/Base"]
SPECIAL = [
    "daily",
    "weekly",
    "monthly",
    "hourly",
    "quarterly",
    "semiannually",
    "Daily",
    "nightly",
    "",
    " daily",
    "02:00\nX",
]


def corpus(n: int = 600) -> list[str]:
    parts = itertools.product(WEEKDAYS, DATES, TIMES, ZONES)
    every = [" ".join(p for p in combo if p) for combo in parts]
    random.Random(7).shuffle(every)
    return sorted(set(every[:n] + SPECIAL))


def systemd_accepts(events: list[str]) -> dict[str, bool]:
    binary = require_binary("systemd-analyze")
    verdict = {}
    for event in events:
        if "\n" in event or not event.strip():
            verdict[event] = False
            continue
        done = subprocess.run([binary, "calendar", event], capture_output=True, text=True, check=False)
        verdict[event] = done.returncode == 0
    return verdict


def accepted(event: str) -> bool:
    try:
        calendar_event.check(event)
    except calendar_event.CalendarError:
        return False
    return True


def test_nothing_accepted_here_is_refused_by_systemd() -> None:
    events = corpus()
    real = systemd_accepts(events)
    false_accepts = [e for e in events if accepted(e) and not real[e]]
    assert false_accepts == []
    # And the grammar is not empty-handed: it takes most of what systemd takes.
    taken = [e for e in events if real[e]]
    assert sum(accepted(e) for e in taken) >= 0.8 * len(taken)


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ("*-02-30", "never happens"),
        ("2020-01-01 02:00", "in the past"),
        ("02:00\nOnCalendar=*:*", "one line"),
        ("soon", "not a weekday"),
    ],
    ids=["30-february", "past-year", "newline-injection", "garbage"],
)
def test_events_systemd_would_take_but_never_run_or_inject_are_refused(event: str, fragment: str) -> None:
    with pytest.raises(calendar_event.CalendarError, match=fragment):
        calendar_event.check(event)


GAP_CORPUS = [
    "02:00",
    "daily",
    "weekly",
    "monthly",
    "hourly",
    "sun 02:00",
    "mon..fri 02:00",
    "sat,sun 03:30",
    "*:0/15",
    "*-*-* 02,14:00",
    "*-*-01,15 04:00",
    "*-*~01 03:00",
    "quarterly",
    "0/6:30",
]


@pytest.mark.parametrize("event", GAP_CORPUS)
def test_longest_gap_matches_systemd_analyze(event: str) -> None:
    """The gaps between systemd's own next elapses, from a fixed base, in UTC."""
    run = subprocess.run(
        [require_binary("systemd-analyze"), "calendar", "--iterations=120", "--base-time=2025-12-31 23:59:59", event],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TZ": "UTC"},
    )
    assert run.returncode == 0, run.stderr
    stamps = [
        datetime.datetime.strptime(" ".join(line.split()[-3:-1]), "%Y-%m-%d %H:%M:%S")
        for line in run.stdout.splitlines()
        if line.strip().startswith(("Next elapse:", "Iter. #"))
    ]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
    assert len(gaps) == 119
    assert calendar_event.longest_gap_seconds(event) == max(gaps)


def test_a_zone_name_too_long_for_a_path_is_no_zone() -> None:
    """zoneinfo raises OSError (file name too long) for it: found by tools/fuzz_config."""
    with pytest.raises(calendar_event.CalendarError, match="time zone"):
        calendar_event.check("02:00 Europe/" + "y" * 300)
