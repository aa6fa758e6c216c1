"""No dead air under `callflow serve`: the Redirect a run serves before a request it makes
during a call (engine/executor.py), answered once the request is done.

The callback that reaches the request is answered at once with the document built so far
(`Service.answer`: the request goes on in the background, holding the run's lock). The
provider then posts the document's Redirect; `answer_redirect` holds that callback until
the document that follows the request is stored, without the run's lock (a Redirect never
changes the run, so it needs no write): woken by this process's own save of the run
(`Saves`), else by polling the store every `POLL_SECONDS` (the run may be another
process's, on PostgreSQL). Held `HOLD_SECONDS` at most, it is then answered with a
keep-alive (a second of silence and the same Redirect: the executor's `_still_busy`): well
inside the time a provider waits on a URL (the sandbox gives up after 15 s, Plivo uses the
answer URL's fallback after 60 s), so a webhook of up to 60 s never drops the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from engine.events import Callback, CallbackKind, Request, ServeDocument
from engine.executor import HANGUP_DOCUMENT

HOLD_SECONDS = 10.0  # how long a Redirect waits on its request before a keep-alive answers it
POLL_SECONDS = 0.2  # how often the store is read meanwhile (a save in this process wakes it at once)


class Saves:
    """Wakes the Redirects waiting on a run in this process when it saves the run."""

    def __init__(self):
        self._waits: dict[str, list] = {}  # run_id -> [event, waiters]

    def saved(self, run_id: str) -> None:
        wait = self._waits.pop(run_id, None)
        if wait is not None:
            wait[0].set()

    async def next(self, run_id: str, timeout: float) -> None:
        """Return at the run's next save here, or after `timeout` seconds."""
        wait = self._waits.setdefault(run_id, [asyncio.Event(), 0])
        wait[1] += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait[0].wait(), timeout)
        finally:
            wait[1] -= 1
            if not wait[1] and self._waits.get(run_id) is wait:
                del self._waits[run_id]  # nobody waits any more: keep no event for the run


def served_before_request(effects) -> str | None:
    """The document `effects` serve before a request (the caller must hear it while the
    request runs: answer with it at once), else None."""
    served = None
    for effect in effects:
        if isinstance(effect, ServeDocument):
            served = effect.xml
        elif isinstance(effect, Request):
            return served
    return None


async def answer_redirect(service, run_id: str, seq: int, params: dict) -> tuple[str, str | None]:
    """(the XML that answers the Redirect callback of step `seq`, the run's flow): the
    document stored for it, once there is one, or a keep-alive after `service.redirect_hold`
    seconds. Reads the store; never writes it."""
    key = f"{seq}:{CallbackKind.REDIRECT}"
    deadline = time.monotonic() + service.redirect_hold
    stored = await service.store.load(run_id)
    entry = await service.flow_of(stored.state) if stored is not None else None
    if entry is None:
        return HANGUP_DOCUMENT, None
    while True:
        state = stored.state
        remaining = deadline - time.monotonic()
        pending = not state.finished and key not in state.served and state.answering == key
        if not pending or remaining <= 0:
            # The replay, the keep-alive, or the answer to a stale URL: the executor says which.
            effects = entry.executor.advance(state, Callback(CallbackKind.REDIRECT, seq, params))
            return next((e.xml for e in effects if isinstance(e, ServeDocument)), HANGUP_DOCUMENT), state.flow_id
        await service.saves.next(run_id, min(POLL_SECONDS, remaining))
        stored = await service.store.load(run_id) or stored


async def answer(service, entry, state, version: int, effects: list, held) -> str | None:
    """Perform `effects` of a provider request being answered (its handler `held` the run's
    lock); the XML to answer with. A document served before a request is answered at once:
    the request goes on in the background, and the lock with it (released once the run
    waits again), so that no other event of the run slips in between."""
    early = served_before_request(effects)
    if early is None:
        return await service.perform(entry, state, version, effects)
    held.hand_over()
    service.background(service.perform_holding(entry, state, version, effects))
    return early
