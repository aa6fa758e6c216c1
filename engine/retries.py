"""`retry:` on nodes: the check of `retry.on` that call_out and http_request share, and for
http_request which answers make the request again, and after how long.

    retry: {attempts: 3, interval: 2, on: [connect, 429, 503]}

The node puts an `HttpRetry` on its `Request`; the shell that performs it (`callflow run`
and flow tests in `engine/local/run.py`, on the simulated clock; `callflow serve` in
`engine/service/provider.py`, sleeping) sends it again while `wait` says so, and the one
`Response` it feeds back lists every attempt (`Response.attempts`, kept in the run record
beside the request). Retries are the shell's, inside one step, rather than durable timers
between steps: they last seconds (at most `MAX_WAIT` between two attempts), and during a
call no timer can hold the call's document while the caller waits.

The entries of `on`: `connect` (no connection could be made: nothing was sent), `timeout`
(no complete answer in time: it may have been processed), `5xx` (any 500-599 answer), or
an HTTP status code from 400 to 599. A `Retry-After` (429, 503) is honoured: the wait is
the larger of it and `interval`; one asking for more than `MAX_WAIT` ends the retries (the
answer stands) rather than calling back sooner than asked.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from engine import codes
from engine.fields import Field, ListOf, Record
from engine.scalar_fields import Integer

CLASSES = ("connect", "timeout", "5xx")  # failure classes `on` may name beside status codes
DEFAULT_ON = ("connect", 429, 502, 503, 504)
MAX_ATTEMPTS = 10
MAX_INTERVAL = 60.0
MAX_WAIT = 60.0  # seconds between two attempts at most, Retry-After included


def retry_field(*, counts: str, interval: Field, on_item: Field, on: str, description: str) -> Record:
    """The `retry:` mapping of a node: `attempts` (what `counts`, 1 to MAX_ATTEMPTS), its
    `interval` field, and `on`, a list of `on_item`s."""
    return Record(fields={
        "attempts": Integer(required=True, minimum=1, maximum=MAX_ATTEMPTS, templated=False,
                            description=f"{counts} at most, the first included (1-{MAX_ATTEMPTS})."),
        "interval": interval,
        "on": ListOf(item=on_item, min_items=1, description=on),
    }, description=description)


def check_retry_on(config: dict, path: tuple, report, problem: Callable[[object], str | None]) -> None:
    """Report each entry of the node's `retry.on` for which `problem(entry)` says why it
    cannot be one (`retry-on`, at the entry)."""
    retry = config.get("retry")
    on = retry.get("on") if isinstance(retry, dict) else None
    for i, entry in enumerate(on if isinstance(on, list) else ()):
        why = problem(entry)
        if why:
            report.error(path + ("retry", "on", i), codes.RETRY_ON, why)


def on_problem(entry) -> str | None:
    """Why `entry` cannot be an entry of `on`, or None when it can."""
    if isinstance(entry, str) and entry in CLASSES:
        return None
    if isinstance(entry, int) and not isinstance(entry, bool) and 400 <= entry <= 599:
        return None
    return (f"retry on {entry!r}: not a class ({', '.join(CLASSES)}) nor an HTTP status code from "
            "400 to 599 (write it unquoted: 503)")


@dataclass(frozen=True, slots=True)
class HttpRetry:
    """How often and on what an http_request is made again."""

    attempts: int  # requests at most, the first included
    interval: float = 1.0  # seconds between two attempts, at least
    on: tuple = DEFAULT_ON

    def covers(self, status: int, failure: str | None) -> bool:
        """Does an answer with `status` (0: none came) and `failure` ("connect", "timeout",
        None) call for another attempt?"""
        if not status:
            return failure is not None and failure in self.on
        return status in self.on or ("5xx" in self.on and 500 <= status <= 599)

    def wait(self, made: int, status: int, failure: str | None, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt, after `made` attempts of which the last
        got `status`/`failure` (and this `Retry-After`, in seconds); None: that answer stands."""
        if made >= self.attempts or not self.covers(status, failure):
            return None
        wait = max(self.interval, retry_after or 0.0)
        return wait if wait <= MAX_WAIT else None


def attempt_record(status: int, error: str | None, retry_in: float | None = None) -> dict:
    """One attempt as the run record lists it: `{"status": 503, "retry_in": 2.0}`, or
    `{"error": "...", "retry_in": ...}` when no answer came; the last has no `retry_in`."""
    entry: dict = {"status": status} if status else {"error": error}
    if retry_in is not None:
        entry["retry_in"] = round(retry_in, 3)
    return entry
