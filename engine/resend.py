"""The request a run waits on, rebuilt from its state: what a shell sends for a run whose
request was recorded but never handed to a connection (the process that recorded it died
or stopped with it queued).

The executor records each request in `state.requests` before emitting it, but not all of it
(no headers: they may carry a webhook's secret, which must not enter the run record). The
node is pure, so running it again on the same state builds the same request; the rebuilt
request must match the record (method, URL, body) or it is not sent at all: a request built
from something that changed (a template reading the clock) is treated as in doubt, never
sent in a form the run did not record.
"""

from __future__ import annotations

from dataclasses import replace

from engine.errors import NodeFailed
from engine.events import Request
from engine.executor import Executor
from engine.node import Send
from engine.state import RunState, WaitReason


def pending_request(executor: Executor, state: RunState) -> Request | None:
    """The request `state` waits on, exactly as recorded; None when the run waits on none or
    the node builds something else now."""
    waiting = state.waiting
    if waiting is None or waiting.reason is not WaitReason.RESPONSE or not state.requests:
        return None
    spec = executor.flow.nodes.get(waiting.node)
    if spec is None or waiting.seq >= len(state.steps):
        return None
    scratch = RunState.from_json(state.to_json())  # the node must not touch the stored state
    try:
        action = spec.node_type.run(executor.context(spec, scratch, waiting.seq))
    except (NodeFailed, ValueError, TypeError):
        return None
    if not isinstance(action, Send):
        return None
    request = replace(action.request, seq=waiting.seq)
    return request if executor.redactor.redact(request.recorded(spec.name)) == state.requests[-1] else None

