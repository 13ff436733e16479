"""Calendar events as systemd.time(7) defines them ("CALENDAR EVENTS"), checked before they land in
a timer unit (``OnCalendar=``) or a PVE/PBS job schedule, whose calendar events follow the same
syntax for what this program uses (weekdays, ``*-*-*`` dates, ``hh:mm[:ss]`` times, repetitions
and the shorthands). The grammar is small; tests/unit/test_calendar.py holds it against
``systemd-analyze calendar`` over a generated corpus: nothing accepted here is refused there.

[WEEKDAY[..WEEKDAY][,...]] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [TIMEZONE], or a shorthand.
Each date/time component is ``*`` or a comma list of ``N``, ``N..M``, each with an optional
``/STEP``; ``~`` before the day counts from the end of the month.
"""

from __future__ import annotations

import calendar
import datetime
import itertools
import re
import zoneinfo

SHORTHANDS = frozenset(
    ("minutely", "hourly", "daily", "monthly", "weekly", "yearly", "annually", "quarterly", "semiannually")
)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY = r"(?:" + "|".join(f"{d[:3]}(?:{d[3:]})?" for d in WEEKDAYS) + r")"
_WEEKDAYS = re.compile(rf"{_WEEKDAY}(?:\.\.{_WEEKDAY})?(?:,{_WEEKDAY}(?:\.\.{_WEEKDAY})?)*", re.IGNORECASE)
_ITEM = r"\d+(?:\.\.\d+)?(?:/\d+)?"
_COMPONENT = rf"(?:\*(?:/\d+)?|{_ITEM}(?:,{_ITEM})*)"
_DATE = re.compile(rf"(?:(?P<year>{_COMPONENT})-)?(?P<month>{_COMPONENT})(?P<sep>[-~])(?P<day>{_COMPONENT})")
_SECOND = r"(?:\*(?:/\d+)?|\d+(?:\.\d+)?(?:\.\.\d+)?(?:/\d+(?:\.\d+)?)?(?:,\d+(?:\.\d+)?(?:\.\.\d+)?)*)"
_TIME = re.compile(rf"(?P<hour>{_COMPONENT}):(?P<minute>{_COMPONENT})(?::(?P<second>{_SECOND}))?")
_BOUNDS = {
    "year": (1970, 2199),
    "month": (1, 12),
    "day": (1, 31),
    "hour": (0, 23),
    "minute": (0, 59),
    "second": (0, 59.999999),
}


class CalendarError(ValueError):
    pass


def _within(component: str, name: str) -> None:
    low, high = _BOUNDS[name]
    for item in component.split(","):
        bounds, _, step = item.partition("/")
        if step and float(step) == 0:
            raise CalendarError(f"{name} {item!r} repeats every 0")
        if bounds == "*":
            continue
        values = [float(v) for v in bounds.split("..")]
        if any(not low <= v <= high for v in values) or values != sorted(values):
            raise CalendarError(f"{name} {item!r} is outside {low}..{high} (or runs backwards)")


def check(text: str) -> str:
    """``text`` if it is a calendar event; CalendarError saying what is wrong otherwise."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise CalendarError("must be one line (no newline or control character)")
    words = text.split(" ")
    if "" in words:
        raise CalendarError("is empty or has extra spaces")
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return text
    found = []
    if _WEEKDAYS.fullmatch(words[0]):
        _weekday_ranges_run_forward(words[0])
        found.append(words.pop(0))
    if words and (date := _DATE.fullmatch(words[0])):
        for part in ("year", "month", "day"):
            if date[part]:
                _within(date[part], part)
        _happens(date)
        found.append(words.pop(0))
    if words and (time := _TIME.fullmatch(words[0])):
        _within(time["hour"], "hour")
        _within(time["minute"], "minute")
        if time["second"]:
            _within(time["second"], "second")
        found.append(words.pop(0))
    if found and words and (words[0] == "UTC" or _is_zone(words[0])):
        words.pop(0)
    if words or not found:
        what = words[0] if words else text
        raise CalendarError(f"{what!r} is not a weekday, date (YYYY-MM-DD), time (hh:mm[:ss]) or time zone")
    return text


def _weekday_ranges_run_forward(spec: str) -> None:
    """``Fri..Mon`` is refused by systemd: a range runs from Monday towards Sunday."""
    for item in spec.lower().split(","):
        first, _, last = item.partition("..")
        if last and WEEKDAYS.index(_day(first)) > WEEKDAYS.index(_day(last)):
            raise CalendarError(f"weekday range {item!r} runs backwards: write it from Monday towards Sunday")


def _day(word: str) -> str:
    return next(d for d in WEEKDAYS if d.startswith(word[:3]))


def _happens(date: re.Match[str]) -> None:
    """A date systemd accepts but that never comes (30 February, a year gone by) is refused."""
    month, day, year = date["month"], date["day"], date["year"]
    if month.isdigit() and day.isdigit() and date["sep"] == "-":
        longest = calendar.monthrange(2024, int(month))[1]  # 2024 is a leap year: 29 February exists
        if int(day) > longest:
            raise CalendarError(f"{month}-{day} never happens: month {month} has at most {longest} days")
    if year and year.isdigit() and int(year) < datetime.datetime.now(datetime.UTC).year:
        raise CalendarError(f"year {year} is in the past: the job would never run")


def _is_zone(word: str) -> bool:
    if "/" not in word:
        return False
    try:
        zoneinfo.ZoneInfo(word)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a path
        return False
    return True


# ---- how often an event elapses (for budgets: an RPO shorter than the job's gap cannot be met) ----

_EXPANDED = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
}
_SPAN_DAYS = 800  # two years and more: every yearly, leap-day or 31st-of-month event recurs in it


def longest_gap_seconds(text: str) -> float:
    """The longest time between two elapses of a valid calendar event (minute resolution), over the
    next two years from a fixed start; ``inf`` when it elapses at most once in them."""
    words = _EXPANDED.get(check(text).lower(), text).split(" ")
    weekdays = _weekday_set(words.pop(0)) if _WEEKDAYS.fullmatch(words[0]) else set(range(7))
    date = _DATE.fullmatch(words[0]) if words else None
    if date:
        words.pop(0)
    time = _TIME.fullmatch(words[0]) if words else None
    minutes = sorted(
        h * 60 + m
        for h in _values(time["hour"] if time else "0", 0, 23)
        for m in _values(time["minute"] if time else "0", 0, 59)
    )
    start = datetime.date(2026, 1, 1)
    days = [
        n
        for n in range(_SPAN_DAYS)
        if _date_matches(start + datetime.timedelta(days=n), date)
        and (start + datetime.timedelta(days=n)).weekday() in weekdays
    ]
    elapses = [d * 1440 + m for d in days for m in minutes]
    if len(elapses) < 2:
        return float("inf")
    return 60.0 * max(b - a for a, b in itertools.pairwise(elapses))


def _weekday_set(spec: str) -> set[int]:
    found: set[int] = set()
    for item in spec.lower().split(","):
        first, _, last = item.partition("..")
        low = WEEKDAYS.index(_day(first))
        found.update(range(low, WEEKDAYS.index(_day(last)) + 1) if last else [low])
    return found


def _values(component: str, low: int, high: int) -> set[int]:
    """The integers in low..high a component (``*``, ``N``, ``N..M``, each with ``/STEP``) names."""
    found: set[int] = set()
    for item in component.split(","):
        bounds, _, step = item.partition("/")
        first, _, last = bounds.partition("..")
        begin = low if first == "*" else int(float(first))
        end = high if first == "*" or (step and not last) else int(float(last or first))
        found.update(range(begin, end + 1, int(float(step)) if step else 1))
    return {v for v in found if low <= v <= high}


def _date_matches(day: datetime.date, date: re.Match[str] | None) -> bool:
    if date is None:
        return True
    if date["year"] and day.year not in _values(date["year"], 1970, 2199):
        return False
    if day.month not in _values(date["month"], 1, 12):
        return False
    if date["sep"] == "~":  # days counted back from the month's end: ~1 is the last day
        last = calendar.monthrange(day.year, day.month)[1]
        return last - day.day + 1 in _values(date["day"], 1, 31)
    return day.day in _values(date["day"], 1, 31)
