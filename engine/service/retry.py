"""When the provider's API refuses a request before processing it, when to send it again.

Only answers that say "not processed" are resent: 429 (too many requests) and 503 (service
unavailable), and a connection that could not be made at all (`NotSent`). Anything that may
have been processed (a 500, a timeout after the request was written, a dropped connection)
is never resent: the in-doubt rule of docs/design.md.

The wait before attempt n+1 is the larger of the answer's `Retry-After` (delta-seconds or an
HTTP date) and a capped exponential backoff with "equal jitter" (half fixed, half random, so
that many runs refused together do not come back together). Attempts are bounded in number
(`CALLFLOW_PROVIDER_RETRIES` resends, default 4) and in time (`CALLFLOW_PROVIDER_RETRY_SECONDS`,
default 30, counted from the first attempt: a wait that would end past it is not taken, and
the last refusal is the answer).

A hand-written loop rather than `tenacity`: tenacity fits (async, Retry-After through a
custom wait), but its per-call machinery measured ~38 us CPU on a path that costs ~140 us
per Call request in all, paid by every request even when none is refused (this loop:
~1 us); the policy is a few lines either way.

`web_with_retries` is the other loop here: an http_request node's own `retry:` (what it names
is the flow author's choice, engine/retries.py), not the provider's refusals.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Awaitable, Callable

from engine.events import Request, Response
from engine.retries import attempt_record

REFUSED = frozenset({429, 503})  # "not processed": safe to send again
DEFAULT_RETRIES = 4
DEFAULT_RETRY_SECONDS = 30.0
BACKOFF_BASE = 0.5  # seconds before the first resend (before jitter)
BACKOFF_CAP = 8.0  # the longest backoff between two attempts (Retry-After may ask for more)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and for how long a refused provider request is sent again."""

    retries: int = DEFAULT_RETRIES  # resends after the first attempt
    total_seconds: float = DEFAULT_RETRY_SECONDS  # all attempts and waits, from the first
    base: float = BACKOFF_BASE
    cap: float = BACKOFF_CAP

    @classmethod
    def from_env(cls, environ=os.environ) -> RetryPolicy:
        """CALLFLOW_PROVIDER_RETRIES and CALLFLOW_PROVIDER_RETRY_SECONDS; ValueError when wrong."""
        raw = environ.get("CALLFLOW_PROVIDER_RETRIES") or str(DEFAULT_RETRIES)
        if not raw.isdigit():
            raise ValueError(f"CALLFLOW_PROVIDER_RETRIES: {raw!r} is not a whole number (0 turns retries off)")
        raw_seconds = environ.get("CALLFLOW_PROVIDER_RETRY_SECONDS") or str(DEFAULT_RETRY_SECONDS)
        try:
            seconds = float(raw_seconds)
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds < float("inf"):
            raise ValueError(f"CALLFLOW_PROVIDER_RETRY_SECONDS: {raw_seconds!r} is not a number of seconds")
        return cls(retries=int(raw), total_seconds=seconds)

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """The wait after the `attempt`-th refusal (1-based), Retry-After aside."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def retry_after(headers: dict[str, str], now: float) -> float | None:
    """The `Retry-After` header in seconds from `now` (0 for a date in the past), or None when
    absent or unreadable. `headers` has lower-case names."""
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)  # delta-seconds (lenient: a fraction is taken as given)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
        return max(seconds, 0.0)
    return seconds if 0 <= seconds < float("inf") else None


def http_date(timestamp: float) -> str:
    """`timestamp` as an HTTP date (RFC 9110 IMF-fixdate), for tests and the sandbox."""
    return email.utils.format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


async def web_with_retries(req: Request, once: Callable[[], Awaitable[Response]]) -> Response:
    """An http_request node's request (`once()` makes one attempt), made again as its
    `retry:` says (engine/retries.py): the run waits here, under its lease, at most a minute
    between two attempts. The answer lists every attempt when there was more than one."""
    attempts: list[dict] = []
    while True:
        answer = await once()
        later = retry_after(answer.headers, time.time())
        wait = req.retry.wait(len(attempts) + 1, answer.status, answer.failure, later) if req.retry else None
        if wait is None:
            if not attempts:
                return answer
            return replace(answer, attempts=(*attempts, attempt_record(answer.status, answer.error)))
        attempts.append(attempt_record(answer.status, answer.error, wait))
        await asyncio.sleep(wait)
