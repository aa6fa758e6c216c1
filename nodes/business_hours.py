"""business_hours: open or closed, by the local time of an IANA time zone.

    Hours:
      type: business_hours
      timezone: America/New_York
      hours: {mon-fri: "09:00-17:00", sat: ["10:00-12:00", "13:00-15:00"]}
      closed_on: ["2026-12-25"]

Days not listed are closed; a range ends before its end minute ("09:00-17:00" is open at
16:59, closed at 17:00; "24:00" ends at midnight). Zones come from the standard library's
`zoneinfo` with the `tzdata` package behind it, so they work where the system has no zone
files. The time is the step's start on the run's clock: the real clock under `callflow
serve`, the fixed `now:` of a scenario or flow test case (`callflow run --now`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine import codes
from engine.fields import ListOf, MapOf
from engine.node import Context, Next, NodeType
from engine.registry import register
from engine.scalar_fields import Text

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])$")


def zone(name: str) -> ZoneInfo | None:
    """The zone named `name`, or None when there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def parse_days(key: str) -> list[int] | str:
    """`mon-fri` -> [0..4]; `sat` -> [5]; `fri-mon` wraps round the week. Text: what is wrong."""
    first, sep, last = key.lower().partition("-")
    if first not in DAYS or (sep and last not in DAYS):
        return f"{key!r} is not a day or day range: write mon, tue, wed, thu, fri, sat, sun or e.g. mon-fri"
    start, end = DAYS.index(first), DAYS.index(last if sep else first)
    return [(start + i) % 7 for i in range((end - start) % 7 + 1)]


def parse_range(text: str) -> tuple[int, int] | str:
    """"09:00-17:30" -> (540, 1050) minutes of the day; text: what is wrong."""
    m = RANGE.match(text)
    if not m:
        return f"{text!r} is not a range of hours: write HH:MM-HH:MM, e.g. 09:00-17:00"
    start, end = int(m[1]) * 60 + int(m[2]), int(m[3]) * 60 + int(m[4])
    if end > 24 * 60:
        return f"{text!r} ends after 24:00"
    if start >= end:
        return (f"{text!r} ends before it starts: a range runs within one day (split one across "
                "midnight into two days' ranges)")
    return start, end


def opening_table(hours: dict, problem=lambda where, code, message, key=False: None) -> dict[int, list[tuple]]:
    """weekday -> [(start, end, text)], each problem sent to `problem(where, code, message, key)`
    (`key`: the day key itself is wrong, not its value)."""
    table: dict[int, list[tuple]] = {}
    for key, ranges in hours.items():
        days = parse_days(str(key))
        if isinstance(days, str):
            problem((key,), codes.INVALID_HOURS, days, True)
            continue
        listed = ranges if isinstance(ranges, list) else [ranges]
        for i, text in enumerate(listed):
            where = (key, i) if isinstance(ranges, list) else (key,)
            span = parse_range(str(text))
            if isinstance(span, str):
                problem(where, codes.INVALID_HOURS, span)
                continue
            clash = next(((day, other) for day in days for start, end, other in table.get(day, ())
                          if span[0] < end and start < span[1]), None)
            if clash:  # once per range, naming the first day it clashes on
                problem(where, codes.OVERLAPPING_HOURS, f"{text!r} overlaps {clash[1]!r} on {DAYS[clash[0]]}")
            for day in days:
                table.setdefault(day, []).append((*span, text))
    return table


@register
class BusinessHours(NodeType):
    name = "business_hours"
    summary = "Open or closed, by the local time in an IANA time zone (weekly hours, closed dates)."
    fields = {
        "timezone": Text(required=True, templated=False,
                         description="IANA time zone name, e.g. America/New_York."),
        "hours": MapOf(required=True, templated=False, value=ListOf(item=Text(templated=False), one_or_many=True),
                       description='Day or day range (mon-fri, sat...) -> "HH:MM-HH:MM" or a list of them.'),
        "closed_on": ListOf(templated=False, item=Text(templated=False),
                            description="Local dates (YYYY-MM-DD) closed all day: holidays."),
    }
    outcomes = ("open", "closed")
    outputs = ("local_time", "weekday")

    def default_outcome(self, config):
        return None

    def check(self, config, path, report):
        name = config.get("timezone")
        if isinstance(name, str) and zone(name) is None:
            report.error(path + ("timezone",), codes.UNKNOWN_TIMEZONE,
                         f"{name!r} is not an IANA time zone (e.g. America/New_York, Europe/Paris, UTC)")
        hours = config.get("hours")
        if isinstance(hours, dict):
            opening_table(hours, lambda where, code, message, key=False: report.error(
                path + ("hours",) + where, code, message, key=key))
        for i, day in enumerate(config.get("closed_on") or ()):
            try:
                date.fromisoformat(day)
                ok = len(day) == 10
            except (TypeError, ValueError):
                ok = False
            if not ok:
                report.error(path + ("closed_on", i), codes.INVALID_HOURS,
                             f"{day!r} is not a date: write YYYY-MM-DD, e.g. 2026-12-25")

    def run(self, ctx: Context):
        local = datetime.fromtimestamp(ctx.now, zone(ctx.value("timezone")))  # `now:` fixes it in tests
        outputs = {"local_time": local.isoformat(timespec="seconds"), "weekday": DAYS[local.weekday()]}
        if local.date().isoformat() in (ctx.value("closed_on") or ()):
            return Next("closed", outputs)
        minute = local.hour * 60 + local.minute
        spans = opening_table(ctx.value("hours")).get(local.weekday(), ())
        is_open = any(start <= minute < end for start, end, _ in spans)
        return Next("open" if is_open else "closed", outputs)
