"""Store failures the service waits out: a save that records what an effect already did.

When the provider has answered a request (the call is placed, the SMS sent) the answer
must reach the store, or the run would later be judged in doubt and failed although the
call went through. `save_patiently` retries such a save while the store is unavailable
(disk full, I/O error), backing off to one attempt a second, for up to `PATIENCE` seconds.
The run's lock is held meanwhile, so nothing else in this process moves the run; a
request that only reads or starts something answers 503 at once instead (engine/service/app.py).
"""

from __future__ import annotations

import asyncio
import logging
import time

from engine.errors import StoreUnavailable
from engine.state import RunState

logger = logging.getLogger("callflow.server")

PATIENCE = 300.0  # seconds: a disk filled by a runaway log is usually freed within minutes


async def save_patiently(store, state: RunState, version: int, lease=None, patience: float = PATIENCE) -> int:
    """`store.save(state, version, lease)`, retried while it raises StoreUnavailable (the same state:
    the event is applied once); raises the last StoreUnavailable after `patience` seconds."""
    deadline, delay, warned = time.monotonic() + patience, 0.05, False
    while True:
        try:
            return await store.save(state, version, lease)
        except StoreUnavailable as e:
            if time.monotonic() + delay > deadline:
                raise
            if not warned:
                logger.warning("run %s: %s; holding its update until the store is back", state.run_id, e)
                warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
