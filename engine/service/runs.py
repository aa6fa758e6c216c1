"""The durable shell around the executor: `Service` drives runs, the store holds them.

Per event the shell does: load the run from the store -> `Executor.advance` -> save ->
perform the effects (a `Request` goes out through `engine.service.provider`, its `Response` is fed
back in: advance -> save -> ...) -> answer (the `ServeDocument` XML, if the request was a
callback). The save comes before any effect and before the answer, so a crash at any
point leaves the store with the truth; no run lives in process memory between requests
(an asyncio lock per run serialises handlers inside one process, the store's version
check across processes).

No API request is sent twice for one node execution, and none recorded is lost. A request
goes through three states: *recorded* (in the saved state, the run leased to this process:
`Lease`), *sent* (`store.mark_sent`, awaited right before it is written to a connection),
answered (its Response saved, the lease cleared). A recorded request nobody sent (this
process died or stopped with it queued) is sent by whichever process claims the run once
the lease is free (`send_unsent`; rebuilt by `engine.resend`). A sent request whose answer
never came is *in doubt*: never resent; a callback of the call it placed proves it went
through (the executor treats it so); else the sweeper (engine/service/sweeper.py) fails the
node after the grace period. Triggers are refused (429, `QueueFull`) while this process
holds `CALLFLOW_MAX_QUEUED` requests unanswered; at a stop (`drain`) what is still queued
is handed back (leases released: another process sends it at once), what is in flight
finishes.
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

from engine.errors import Conflict, HandedBack, QueueFull, StoreError
from engine.events import (
    XML_KINDS,
    Callback,
    CallbackKind,
    Expired,
    InboundCall,
    InboundMessage,
    Request,
    Response,
    ServeDocument,
    TimerFired,
    Trigger,
)
from engine.executor import HANGUP_DOCUMENT, Effects, Executor
from engine.flow import Flow
from engine.load.params_file import values_for
from engine.node import RunEnvironment
from engine.resend import pending_request
from engine.service.deploy import Revisions, flow_for_run
from engine.service.observe import Observer, ended_steps
from engine.service.redirects import HOLD_SECONDS, Saves, answer, answer_redirect
from engine.service.run_locks import RunLocks
from engine.service.settings import Settings
from engine.service.store import (
    Claim,
    IdempotencyKey,
    KeyedRun,
    Lease,
    Store,
    StoredRun,
)
from engine.service.store_faults import save_patiently
from engine.state import RunState, iso

logger = logging.getLogger("callflow.server")  # one logger name for the whole service

EMPTY_DOCUMENT = "<Response></Response>"
SAVE_RETRIES = 10
_EVENT_NAMES = {Callback: "callback", Response: "response", Expired: "expired", Trigger: "trigger",
                InboundCall: "inbound", InboundMessage: "message", TimerFired: "timer"}


@dataclass
class LoadedFlow:
    """A flow as the service serves it: its executor, when its file last changed, and when
    this process loaded this revision."""

    flow: Flow
    executor: Executor
    created_on: str
    loaded_at: str = ""


class Service:
    """Drives runs: the store is the truth, the executor decides, the provider performs."""

    def __init__(self, flows: dict[str, Flow], store: Store, provider, settings: Settings,
                 clock: Callable[[], float] = time.time, params: dict | None = None):
        self.settings = settings
        self.env = RunEnvironment(public_url=settings.public_url, api_url=settings.provider.api_url,
                                  auth_id=settings.provider.auth_id or "MAXXXXXXXXXXXXXXXXXX")
        self.clock = clock
        # Deploys (engine/service/deploy.py): the parameters file's values, where a reload
        # reads from, and the older revisions runs still finish on.
        self.param_file_values = params or {}
        self.flows_dir, self.params_path, self.allow_invalid = ".", None, False
        self.reload_lock = asyncio.Lock()
        self.revisions = Revisions()
        self.refused_reload: dict | None = None  # the last reload refused, until one applies
        self.flows = {fid: self.loaded(f) for fid, f in flows.items()}
        self.store = store
        self.provider = provider
        self.locks = RunLocks()
        self.saves = Saves()  # wakes the Redirects held on a run (engine/service/redirects.py)
        self.redirect_hold = HOLD_SECONDS
        self.tasks: set[asyncio.Task] = set()  # triggered runs' effects, going on after the answer
        self.observe = Observer()  # metrics (GET /metrics) and log lines
        # Reconciliation (engine/service/reconcile.py), this process's memory only: when to look
        # a run's call up again after a failed lookup, and since when the provider knows no call.
        self.reconcile_after: dict[str, float] = {}
        self.missing_since: dict[str, float] = {}
        # Requests in doubt (engine/service/in_doubt.py): when to look again, since when absent.
        self.doubt_after: dict[str, float] = {}
        self.absent_since: dict[str, float] = {}
        self.owner = settings.owner  # the name on this process's leases
        self.unanswered = 0  # runs whose requests this process performs in the background
        self.stopping = False  # set by `drain`: nothing more is handed to a connection
        self.handed_back = 0  # requests taken back unsent

    def loaded(self, flow: Flow) -> LoadedFlow:
        """`flow` ready to serve, with the param values this deployment gives it."""
        executor = Executor(flow, self.env, self.clock, params=values_for(flow, self.param_file_values))
        return LoadedFlow(flow, executor, _mtime_iso(flow.path), iso(time.time()))

    async def flow_of(self, state: RunState) -> LoadedFlow | None:
        """The flow `state`'s run goes on with: the revision it started on."""
        return await flow_for_run(self, state)

    def lease(self) -> Lease:
        """This process's hold on a run it is about to work on outside a request handler."""
        return Lease(self.owner, self.clock() + self.settings.lease_seconds)

    async def drain(self, timeout: float = 10.0) -> None:
        """At a stop: requests still queued are handed back (their leases released, so any
        process sends them at once), those in flight finish and their results are saved."""
        self.stopping = True
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)
        with contextlib.suppress(StoreError):
            await self.store.release(self.owner)
        if self.handed_back:
            logger.warning("stopping: %d queued request(s) handed back unsent (any process sends them)",
                           self.handed_back, extra={"event": "service.handed_back", "count": self.handed_back})

    async def claim(self, kind: Claim, older_than: float = 0.0, limit: int = 100) -> list[str]:
        """Lease up to `limit` runs of `kind` to this process (`Store.claim`)."""
        now = self.clock()
        run_ids = await self.store.claim(kind, now=now, older_than=older_than, owner=self.owner,
                                         lease_until=now + self.settings.lease_seconds, limit=limit)
        self.observe.metrics.claimed(kind.value, len(run_ids))
        return run_ids

    async def release(self, run_ids: list[str]) -> None:
        """Let go of what a job claimed (a run it moved was saved without a lease already)."""
        if run_ids:
            await self.store.release(self.owner, run_ids)

    async def let_go(self, run_id: str) -> None:
        """Release this process's lease on `run_id` (its work here is over, unfinished)."""
        with contextlib.suppress(StoreError):
            await self.store.release(self.owner, [run_id])

    # -- entry points ----------------------------------------------------------------------------
    async def trigger(self, flow_id: str, payload: dict, key: IdempotencyKey | None = None,
                      start: InboundMessage | None = None) -> KeyedRun:
        """Start a run; return it once its first state is stored. Effects (the Call API
        request) go on in the background: the caller gets the run id at once. Under an
        idempotency `key` already used (within its lifetime) nothing starts: the answer is
        the run that holds the key (`created` False; the caller compares the fingerprint).
        `start`: an incoming SMS starts the run instead of the run request (no call up
        either, engine/service/messages.py)."""
        if self.unanswered >= self.settings.max_queued or self.stopping:
            self.observe.metrics.trigger_refused(flow_id)
            raise QueueFull(1.0)
        entry = self.flows[flow_id]
        run_id = str(uuid.uuid4())
        state = entry.executor.new_run(run_id)
        effects = entry.executor.advance(state, start or Trigger(payload))
        sends = _requests(effects)
        lease = self.lease() if sends else None
        self.unanswered += 1  # its place in the queue, taken before any await (the check above is racy otherwise)
        await self.locks.acquire(run_id)
        try:
            if key is None:
                version, keyed = await self.store.create_run(state, lease), KeyedRun(run_id, True, "")
            else:
                keyed, version = await self.store.create_run_once(state, key, lease), 1
        except BaseException:
            self.unanswered -= 1
            self.locks.release(run_id)
            raise
        if not keyed.created or not sends:
            self.unanswered -= 1
            self.locks.release(run_id)
            if keyed.created:
                self.observe.run_started(state, effects, payload)
            else:
                self.observe.trigger_replayed(flow_id, keyed.run_id, keyed.fingerprint == key.fingerprint)
            return keyed
        self.observe.run_started(state, effects, payload)
        self.background(self.perform_holding(entry, state, version, effects), counted=True)
        return keyed

    def background(self, work, counted: bool = False) -> None:
        """Run `work` (a run's requests, performed after the answer) as a task counted in
        `unanswered` (`counted`: already), awaited by `drain`."""
        if not counted:
            self.unanswered += 1
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)

        def done(task) -> None:
            self.unanswered -= 1
            self.tasks.discard(task)

        task.add_done_callback(done)

    async def perform_holding(self, entry: LoadedFlow, state: RunState, version: int, effects: list) -> None:
        """`perform`, in the background, holding the run's lock (handed to it); then release it."""
        try:
            await self.perform(entry, state, version, effects)
        except StoreError as e:  # waited out as long as we could: its lease runs out, the sweeper takes it
            logger.warning("%s", e, extra={"event": "run.store_unavailable", "run_id": state.run_id,
                                           "flow": state.flow_id})
        except Exception:
            logger.exception("performing effects failed",
                             extra={"event": "run.error", "run_id": state.run_id, "flow": state.flow_id})
            await self.let_go(state.run_id)
        finally:
            self.locks.release(state.run_id)

    async def send_unsent(self, run_id: str) -> None:
        """Send the request a run recorded and nobody sent (`Claim.UNSENT`: this process
        holds its lease), and go on with the run; a request that cannot be rebuilt exactly
        as recorded is marked sent instead (in doubt: never sent in another form)."""
        try:
            async with self.locks.hold(run_id):
                stored = await self.store.load(run_id)
                entry = await self.flow_of(stored.state) if stored is not None else None
                if entry is None or stored.state.waiting is None:
                    return
                request = pending_request(entry.executor, stored.state)
                if request is None:
                    logger.warning("run %s: its unsent request cannot be rebuilt as recorded: in doubt", run_id)
                    await self.store.mark_sent(run_id, stored.state.waiting.seq, self.owner)
                    return
                await self.perform(entry, stored.state, stored.version, [request])
        finally:
            await self.let_go(run_id)

    async def callback(self, run_id: str, seq: int, kind: str, params: dict, received: float | None = None) -> str:
        """Deliver a provider callback; return the XML to answer with. A callback that
        changes nothing (a replay, a provider's retry) is answered without a write.
        `received`: `time.perf_counter()` when the request came in (its latency's start)."""
        started = received or time.perf_counter()
        if kind == CallbackKind.REDIRECT:  # held until its document is stored; never a write, so no lock
            served, flow_id = await answer_redirect(self, run_id, seq, params)
            self.observe.callback(run_id, flow_id, kind, seq, False, time.perf_counter() - started, [])
            return served
        flow_id, changed = None, False
        async with self.locks.hold(run_id) as held:
            stored = await self.store.load(run_id)
            if stored is None:
                return HANGUP_DOCUMENT
            flow_id = stored.state.flow_id
            entry = await self.flow_of(stored.state)
            if entry is None:
                return HANGUP_DOCUMENT
            opened = _open_steps(stored.state)
            state, version, effects = await self.advance(entry, stored, Callback(kind, seq, params))
            changed = effects.changed
            steps = ended_steps(state, opened) if changed and logger.isEnabledFor(logging.INFO) else []
            served = await answer(self, entry, state, version, effects, held)
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
            lease = self.lease() if _requests(effects) else None  # we perform them next
            try:
                version = await (save_patiently(self.store, state, version, lease) if patient
                                 else self.store.save(state, version, lease))
            except Conflict:
                fresh = await self.store.load(state.run_id)
                if fresh is None:
                    raise
                state, version = fresh.state, fresh.version
                continue
            self.saves.saved(state.run_id)
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
            response = await self._send(state.run_id, request)
            if response is None:  # handed back unsent (a stop, a lost lease): whoever claims the run sends it
                break
            self.observe.provider_request(state, request, response, time.perf_counter() - started)
            if response.in_doubt:
                # It may have gone through: never resend. A callback may still prove it; else
                # the sweeper fails the node after the grace period (once the lease is free).
                await self.let_go(state.run_id)
                break
            state, version, effects = await self.advance(entry, StoredRun(state, version), response, patient=True)
        return served


    async def _send(self, run_id: str, request: Request) -> Response | None:
        """`request` through the provider, marked sent right before it is written; None when
        it was handed back instead (this process is stopping, or lost the run's lease)."""
        seq = request.seq

        async def handing(sent: bool) -> bool:
            if sent and self.stopping:
                return False
            return await self.store.mark_sent(run_id, seq, self.owner, sent)

        try:
            return dataclasses.replace(await self.provider.perform(request, handing), seq=seq)
        except HandedBack:
            self.handed_back += 1
            self.observe.metrics.handed_back()
            return None


def _requests(effects) -> bool:
    return any(isinstance(e, Request) for e in effects)


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
