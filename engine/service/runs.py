"""The durable shell around the executor: `Service` drives runs, the store holds them.

Per event the shell does: load the run from the store -> `Executor.advance` -> save ->
perform the effects (a `Request` goes out through `engine.service.provider`, its `Response` is fed
back in: advance -> save -> ...) -> answer (the `ServeDocument` XML, if the request was a
callback). The save comes before any effect and before the answer, so a crash at any
point leaves the store with the truth; no run lives in process memory between requests
(an asyncio lock per run serialises handlers inside one process, the store's version
check across processes).

No API request is sent twice for one node execution. A run found waiting for the response
to a recorded request that nobody in this process is performing (the process died with the
request in flight, or the request timed out after it was written) is *in doubt*: it is not
resent; a callback of the call it placed proves it went through (the executor treats it
so); if none comes within the grace period the sweeper (engine/service/sweeper.py) fails
the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import Conflict, StoreError
from engine.events import (
    XML_KINDS,
    Callback,
    Expired,
    InboundCall,
    Request,
    Response,
    ServeDocument,
    Trigger,
)
from engine.executor import HANGUP_DOCUMENT, Effects, Executor
from engine.flow import Flow
from engine.node import RunEnvironment
from engine.service.observe import Observer, ended_steps
from engine.service.settings import Settings
from engine.service.store import IdempotencyKey, KeyedRun, Store, StoredRun
from engine.service.store_faults import save_patiently
from engine.state import RunState, iso

logger = logging.getLogger("callflow.server")  # one logger name for the whole service

EMPTY_DOCUMENT = "<Response></Response>"
REJECT_DOCUMENT = '<Response><Hangup reason="rejected"/></Response>'
SAVE_RETRIES = 10
_EVENT_NAMES = {Callback: "callback", Response: "response", Expired: "expired", Trigger: "trigger",
                InboundCall: "inbound"}


@dataclass
class LoadedFlow:
    """A flow as the service serves it: its executor, and when its file last changed."""

    flow: Flow
    executor: Executor
    created_on: str


class RunLocks:
    """One asyncio lock per run id that something in this process is working on."""

    def __init__(self):
        self._locks: dict[str, list] = {}  # run_id -> [lock, users]

    async def acquire(self, run_id: str) -> None:
        entry = self._locks.get(run_id)
        if entry is None:
            entry = self._locks[run_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            await entry[0].acquire()
        except BaseException:
            self._drop(run_id, entry)
            raise

    def release(self, run_id: str) -> None:
        entry = self._locks[run_id]
        entry[0].release()
        self._drop(run_id, entry)

    def _drop(self, run_id: str, entry: list) -> None:
        entry[1] -= 1
        if entry[1] == 0:
            del self._locks[run_id]

    def busy(self, run_id: str) -> bool:
        return run_id in self._locks

    @contextlib.asynccontextmanager
    async def hold(self, run_id: str):
        await self.acquire(run_id)
        try:
            yield
        finally:
            self.release(run_id)

    def __len__(self) -> int:
        return len(self._locks)


class Service:
    """Drives runs: the store is the truth, the executor decides, the provider performs."""

    def __init__(self, flows: dict[str, Flow], store: Store, provider, settings: Settings,
                 clock: Callable[[], float] = time.time):
        self.settings = settings
        self.env = RunEnvironment(public_url=settings.public_url, api_url=settings.provider.api_url,
                                  auth_id=settings.provider.auth_id or "MAXXXXXXXXXXXXXXXXXX")
        self.clock = clock
        self.flows = {fid: LoadedFlow(f, Executor(f, self.env, clock), _mtime_iso(f.path))
                      for fid, f in flows.items()}
        self.store = store
        self.provider = provider
        self.locks = RunLocks()
        self.tasks: set[asyncio.Task] = set()  # triggered runs' effects, going on after the answer
        self.observe = Observer()  # metrics (GET /metrics) and log lines
        # Reconciliation (engine/service/reconcile.py), this process's memory only: when to look
        # a run's call up again after a failed lookup, and since when the provider knows no call.
        self.reconcile_after: dict[str, float] = {}
        self.missing_since: dict[str, float] = {}

    async def drain(self, timeout: float = 10.0) -> None:
        """Let the effects in flight finish and their results be saved (at shutdown)."""
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    # -- entry points ----------------------------------------------------------------------------
    async def trigger(self, flow_id: str, payload: dict, key: IdempotencyKey | None = None) -> KeyedRun:
        """Start a run; return it once its first state is stored. Effects (the Call API
        request) go on in the background: the caller gets the run id at once. Under an
        idempotency `key` already used (within its lifetime) nothing starts: the answer is
        the run that holds the key (`created` False; the caller compares the fingerprint)."""
        entry = self.flows[flow_id]
        run_id = str(uuid.uuid4())
        state = entry.executor.new_run(run_id)
        effects = entry.executor.advance(state, Trigger(payload))
        await self.locks.acquire(run_id)
        try:
            if key is None:
                version, keyed = await self.store.create_run(state), KeyedRun(run_id, True, "")
            else:
                keyed, version = await self.store.create_run_once(state, key), 1
        except BaseException:
            self.locks.release(run_id)
            raise
        if not keyed.created or not any(isinstance(e, Request) for e in effects):
            self.locks.release(run_id)
            if keyed.created:
                self.observe.run_started(state, effects, payload)
            else:
                self.observe.trigger_replayed(flow_id, keyed.run_id, keyed.fingerprint == key.fingerprint)
            return keyed
        self.observe.run_started(state, effects, payload)
        task = asyncio.get_running_loop().create_task(self._continue(entry, state, version, effects))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return keyed

    async def _continue(self, entry: LoadedFlow, state: RunState, version: int, effects: list) -> None:
        try:
            await self.perform(entry, state, version, effects)
        except StoreError as e:  # waited out as long as we could: the run stays in doubt, not lost
            logger.warning("%s", e, extra={"event": "run.store_unavailable", "run_id": state.run_id,
                                           "flow": state.flow_id})
        except Exception:
            logger.exception("performing effects failed",
                             extra={"event": "run.error", "run_id": state.run_id, "flow": state.flow_id})
        finally:
            self.locks.release(state.run_id)

    async def inbound(self, flow_id: str, params: dict) -> str:
        """An incoming call's answer request: start a run (once per call); return the XML."""
        entry = self.flows.get(flow_id)
        if entry is None:
            return HANGUP_DOCUMENT
        if entry.flow.start_target(InboundCall) is None:
            return REJECT_DOCUMENT  # the flow takes no incoming calls: no run
        call_uuid = params.get("CallUUID") or ""
        # A provider retry (or a replay) of the answer request must not start a second run:
        # the same call gets the same run and the document already served for it.
        async with self.locks.hold(f"inbound:{call_uuid}"):
            existing = await self.store.find_by_call(call_uuid, flow_id) if call_uuid else None
            if existing is not None:
                return await self.callback(existing, 0, "answer", params)
            run_id = str(uuid.uuid4())
            state = entry.executor.new_run(run_id)
            effects = entry.executor.advance(state, InboundCall(params))
            async with self.locks.hold(run_id):
                version = await self.store.create_run(state)
                self.observe.run_started(state, effects)
                served = await self.perform(entry, state, version, effects)
        return served or HANGUP_DOCUMENT

    async def inbound_hangup(self, flow_id: str, params: dict) -> str:
        """The hangup of an incoming call (the application's hangup URL cannot name the run:
        the run is found by CallUUID)."""
        call_uuid = params.get("CallUUID")
        run_id = await self.store.find_by_call(call_uuid, flow_id) if call_uuid else None
        if run_id is None:
            return EMPTY_DOCUMENT
        return await self.callback(run_id, 0, "hangup", params)  # an incoming call is step 0's

    async def callback(self, run_id: str, seq: int, kind: str, params: dict, received: float | None = None) -> str:
        """Deliver a provider callback; return the XML to answer with. A callback that
        changes nothing (a replay, a provider's retry) is answered without a write.
        `received`: `time.perf_counter()` when the request came in (its latency's start)."""
        started = received or time.perf_counter()
        flow_id, changed = None, False
        async with self.locks.hold(run_id):
            stored = await self.store.load(run_id)
            if stored is None:
                return HANGUP_DOCUMENT
            flow_id = stored.state.flow_id
            entry = self.flows.get(flow_id)
            if entry is None:
                return HANGUP_DOCUMENT
            opened = _open_steps(stored.state)
            state, version, effects = await self.advance(entry, stored, Callback(kind, seq, params))
            changed = effects.changed
            steps = ended_steps(state, opened) if changed and logger.isEnabledFor(logging.INFO) else []
            served = await self.perform(entry, state, version, effects)
        self.observe.callback(run_id, flow_id, kind, seq, changed, time.perf_counter() - started, steps)
        if served is not None:
            return served
        return HANGUP_DOCUMENT if kind in XML_KINDS else EMPTY_DOCUMENT

    # -- the loop ----------------------------------------------------------------------------------
    async def advance(self, entry: LoadedFlow, stored: StoredRun, event,
                      patient: bool = False) -> tuple[RunState, int, Effects]:
        """`Executor.advance` + save; on a version conflict reload and apply the event again.
        An event that changed nothing is not saved (the version stays). `patient`: the
        event is the outcome of an effect already performed (a Response), so a store
        failure is waited out (`save_patiently`) rather than losing what happened."""
        started = time.perf_counter()
        state, version = stored.state, stored.version
        for _ in range(SAVE_RETRIES):
            opened = _open_steps(state)
            effects = entry.executor.advance(state, event)
            if not effects.changed:
                return state, version, effects
            try:
                version = await (save_patiently(self.store, state, version) if patient
                                 else self.store.save(state, version))
            except Conflict:
                fresh = await self.store.load(state.run_id)
                if fresh is None:
                    raise
                state, version = fresh.state, fresh.version
                continue
            self.observe.advanced(state, _EVENT_NAMES.get(type(event), "event"), opened, effects,
                                  time.perf_counter() - started)
            return state, version, effects
        raise Conflict(f"run {state.run_id}: gave up after {SAVE_RETRIES} conflicting saves")

    async def perform(self, entry: LoadedFlow, state: RunState, version: int, effects: list) -> str | None:
        """Perform effects until the run waits for the outside world; return the XML served."""
        served = None
        while effects:
            request = None
            for effect in effects:
                if isinstance(effect, ServeDocument):
                    served = effect.xml
                elif isinstance(effect, Request):
                    request = effect
            if request is None:
                break
            started = time.perf_counter()
            response = dataclasses.replace(await self.provider.perform(request), seq=request.seq)
            self.observe.provider_request(state, request, response, time.perf_counter() - started)
            if response.in_doubt:
                # It may have gone through: never resend. A callback may still prove it; else
                # the sweeper fails the node after the grace period.
                break
            state, version, effects = await self.advance(entry, StoredRun(state, version), response, patient=True)
        return served


def _open_steps(state: RunState) -> tuple[int | None, int]:
    """(the waiting step if it has not ended, the number of steps): what an event may end."""
    waiting, steps = state.waiting, state.steps
    seq = waiting.seq if waiting is not None and waiting.seq < len(steps) else None
    return (seq if seq is not None and steps[seq].ended_at is None else None), len(steps)


def service_of(request) -> Service:
    """The Service behind a starlette request (`create_app` puts it in `app.state`)."""
    return request.app.state.service


def _mtime_iso(path: str) -> str:
    try:
        ts = Path(path).stat().st_mtime
    except OSError:
        ts = time.time()
    return iso(ts)
