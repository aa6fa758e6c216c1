"""How fast a campaign may start runs, and when: the rate, the calling window, the pacing
arithmetic. Pure functions of stored numbers (no clock, no I/O): the service's pacing job
(engine/service/campaigns.py) and the offline `callflow campaign run` share them.

Pacing is a schedule (`next_at`, the earliest time of the next start, stored with the
campaign) smoothed to one start every 1/rate seconds, plus a hard cap: never more than
`rate` starts in any window of one second (`window_seconds`), counted from the rows' stored
start times, so that whichever process paces, and however late its ticks come, the cap
holds. A tick that comes late may catch up at most `lag` seconds of schedule (a pause, a
closed window or a full `max_in_flight` never turns into a burst afterwards).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nodes.business_hours import opening_table  # the same hours, parsed the same way

MAX_RATE = 1000.0  # starts per second; beyond, the store's commits are the limit anyway
_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:/\s*(s|sec|second|m|min|minute|h|hour))?\s*$", re.I)
_PER = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_rate(text: str | float | int) -> float:
    """`2/s`, `2`, `120/m`, `3600/h`, `0.5/s` -> starts per second; ValueError if not."""
    if isinstance(text, bool):
        raise ValueError("rate: a number of starts per second (2/s), per minute (120/m) or per hour (3600/h)")
    if isinstance(text, (int, float)):
        value, per = float(text), 1
    else:
        m = _RATE.match(str(text))
        if not m:
            raise ValueError(f"rate {text!r}: write it as 2/s, 120/m or 3600/h")
        value, per = float(m.group(1)), _PER[(m.group(2) or "s").lower()]
    rate = value / per
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate {text!r}: must be more than 0 and at most {MAX_RATE:g}/s")
    return rate


def window_seconds(rate: float) -> float:
    """The span the hard cap counts starts over: one second, or one start's worth below 1/s."""
    return max(1.0, 1.0 / rate)


def window_limit(rate: float) -> int:
    """Starts allowed within `window_seconds(rate)`."""
    return max(1, math.floor(rate * window_seconds(rate) + 1e-9))


def starts_allowed(rate: float, next_at: float, now: float, recent: int, in_flight: int,
                   max_in_flight: int | None) -> int:
    """How many runs may start now: due by the schedule, under the cap (`recent`: starts
    within `window_seconds` before now) and under `max_in_flight` (None: no bound)."""
    if now + 1e-6 < next_at:  # a tick due on the dot, give or take float rounding, is due
        return 0
    if next_at <= 0:  # never started: the first start, then the schedule from it
        next_at = now
    due = 1 + math.floor((now - max(next_at, now - lag(rate))) * rate + 1e-9)
    room = window_limit(rate) - recent
    if max_in_flight is not None:
        room = min(room, max_in_flight - in_flight)
    return max(0, min(due, room))


def lag(rate: float) -> float:
    """How much schedule a late tick may catch up: a tenth of a second (two pacing ticks), so
    that after a pause at most 1 + rate / 10 runs start at once."""
    return 0.1


def next_start(rate: float, next_at: float, now: float, started: int) -> float:
    """The schedule after `started` starts at `now`."""
    if started == 0:
        return next_at
    if next_at <= 0:
        next_at = now
    return max(next_at, now - lag(rate)) + started / rate


# -- the calling window (the `business_hours` node's format) --------------------------------------
@dataclass(frozen=True)
class Window:
    """When a campaign may start runs: `hours` per weekday (0 = Monday: list of (start
    minute, end minute)), never on `closed_on`, in `timezone`."""

    timezone: str
    hours: dict[int, tuple[tuple[int, int], ...]]
    closed_on: frozenset[date]

    def is_open(self, now: float) -> bool:
        local = datetime.fromtimestamp(now, timezone.utc).astimezone(ZoneInfo(self.timezone))
        if local.date() in self.closed_on:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self.hours.get(local.weekday(), ()))

    def to_json(self) -> dict:
        hours = {DAYS[d]: [f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in spans]
                 for d, spans in sorted(self.hours.items())}
        return {"timezone": self.timezone, "hours": hours, "closed_on": sorted(str(d) for d in self.closed_on)}


def parse_window(spec: dict, default_timezone: str = "UTC") -> Window:
    """A window from its spec (as the `business_hours` node takes it); ValueError naming
    the bad part."""
    if not isinstance(spec, dict):
        raise ValueError("window: a mapping with timezone, hours and closed_on")
    unknown = set(spec) - {"timezone", "hours", "closed_on"}
    if unknown:
        raise ValueError(f"window: unknown key {sorted(unknown)[0]!r} (timezone, hours, closed_on)")
    tz = spec.get("timezone") or default_timezone
    check_timezone(tz)
    hours_spec = spec.get("hours")
    if not isinstance(hours_spec, dict) or not hours_spec:
        raise ValueError("window.hours: a mapping of days to HH:MM-HH:MM, e.g. {mon-fri: 09:00-17:00}")
    problems: list[str] = []
    table = opening_table(hours_spec, lambda where, code, message, key=False: problems.append(
        f"window.hours.{'.'.join(map(str, where))}: {message}"))
    if problems:
        raise ValueError(problems[0])
    hours = {day: [(start, end) for start, end, _ in spans] for day, spans in table.items()}
    closed = set()
    for item in spec.get("closed_on") or []:
        try:
            closed.add(item if isinstance(item, date) else date.fromisoformat(str(item)))
        except ValueError:
            raise ValueError(f"window.closed_on: {item!r} is not a date (YYYY-MM-DD)") from None
    return Window(tz, {d: tuple(s) for d, s in hours.items()}, frozenset(closed))


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone {name!r}: not an IANA time zone name (e.g. Europe/London)") from None
    return str(name)

