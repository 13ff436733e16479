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
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
