"""An incoming call under `callflow serve`: its answer request starts a run (once per call),
its hangup is delivered to that run (engine/service/callbacks.py's signed routes call these).

Once per call: a provider's retry (or a replay) of the answer request finds the run its
CallUUID already started and is answered with that run's document; across processes the
store's unique inbound CallUUID refuses a second run (`RunExists`), answered the same way.
"""

from __future__ import annotations

import uuid

from engine.errors import RunExists
from engine.events import InboundCall, Request
from engine.executor import HANGUP_DOCUMENT
from engine.service.redirects import answer
from engine.service.runs import EMPTY_DOCUMENT, Service

REJECT_DOCUMENT = '<Response><Hangup reason="rejected"/></Response>'  # a flow that takes no incoming calls


async def inbound(service: Service, flow_id: str, params: dict) -> str:
    """An incoming call's answer request: start a run (once per call); return the XML."""
    entry = service.flows.get(flow_id)
    if entry is None:
        return HANGUP_DOCUMENT
    if entry.flow.start_target(InboundCall) is None:
        return REJECT_DOCUMENT  # the flow takes no incoming calls: no run
    call_uuid = params.get("CallUUID") or ""
    # A provider retry (or a replay) of the answer request must not start a second run:
    # the same call gets the same run and the document already served for it.
    async with service.locks.hold(f"inbound:{call_uuid}"):
        existing = await service.store.find_by_call(call_uuid, flow_id) if call_uuid else None
        if existing is not None:
            return await service.callback(existing, 0, "answer", params)
        run_id = str(uuid.uuid4())
        state = entry.executor.new_run(run_id)
        effects = entry.executor.advance(state, InboundCall(params))
        sends = any(isinstance(e, Request) for e in effects)
        async with service.locks.hold(run_id) as held:
            try:
                version = await service.store.create_run(state, service.lease() if sends else None)
            except RunExists:  # another process (or flow) started the call's run first: its document
                existing = await service.store.find_by_call(call_uuid)
                if existing is None:
                    raise
                return await service.callback(existing, 0, "answer", params)
            service.observe.run_started(state, effects)
            served = await answer(service, entry, state, version, effects, held)
    return served or HANGUP_DOCUMENT


async def inbound_hangup(service: Service, flow_id: str, params: dict) -> str:
    """The hangup of an incoming call (the application's hangup URL cannot name the run:
    the run is found by CallUUID)."""
    call_uuid = params.get("CallUUID")
    run_id = await service.store.find_by_call(call_uuid, flow_id) if call_uuid else None
    if run_id is None:
        return EMPTY_DOCUMENT
    return await service.callback(run_id, 0, "hangup", params)  # an incoming call is step 0's
