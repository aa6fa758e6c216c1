"""The local shell: runs one flow to its end in this process, on the embedded sandbox.

`callflow run` and `callflow test` use it. It performs the executor's effects: provider
API requests go to the sandbox (no real call), http_request nodes get a mocked response
(or, only when asked for with `live_http=True`, `callflow run --http live`, go to the
network), and each simulated callback goes back into the executor.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlsplit

from engine.events import (
    CALLBACK_KINDS,
    Callback,
    CallbackKind,
    Finished,
    InboundCall,
    InboundMessage,
    Request,
    Response,
    ServeDocument,
    TimerFired,
    Trigger,
)
from engine.executor import Executor
from engine.flow import Flow
from engine.local.incoming import message_params
from engine.local.sandbox import Callback as SimCallback
from engine.local.sandbox import Delay, SandboxCore, SimulatedCall, inbound_call
from engine.local.sandbox_lookups import cdr
from engine.local.sandbox_verbs import input_timeout
from engine.local.scenario import Scenario
from engine.node import RunEnvironment
from engine.plivoxml import parse as parse_xml
from engine.retries import attempt_record
from engine.service.call_records import hangup_params
from engine.service.retry import REFUSED, RetryPolicy, retry_after
from engine.state import RunState, WaitReason

if TYPE_CHECKING:
    import httpx

MAX_RESPONSE_BYTES = 1024 * 1024
SANDBOX_ENV = RunEnvironment(public_url="http://127.0.0.1:8080", api_url="https://api.plivo.com",
                             auth_id="MAXXXXXXXXXXXXXXXXXX")


def parse_callback_url(url: str) -> tuple[str, int, str] | None:
    """(run_id, seq, kind) from a callback URL the environment minted, else None."""
    path = urlsplit(url).path
    parts = path.rstrip("/").split("/")
    if len(parts) < 4 or parts[-4] != "callbacks" or parts[-1] not in CALLBACK_KINDS:
        return None
    try:
        return parts[-3], int(parts[-2]), parts[-1]
    except ValueError:
        return None


def decode_body(response: "httpx.Response") -> object:
    if "json" in response.headers.get("content-type", ""):
        try:
            return response.json()
        except ValueError:
            pass
    return response.text


@dataclass(frozen=True)
class TimerDue:
    """What `on_progress` sees when the simulated clock reaches a durable timer: the node,
    its step, and the seconds since the run started (the trace's clock)."""

    node: str
    seq: int
    elapsed: float


class LocalRun:
    """One run of a flow on this machine: the executor driven against the embedded sandbox.

    The simulated callees behave as `scenario` says (every callee answers by default); XML
    documents are played by the sandbox's simulation; `http_request` nodes use the
    scenario's `http:` mocks; an unmocked request fails the node, saying how to mock it,
    unless `live_http=True` makes it for real (a default webhook URL must not be hit by a
    trial run). `on_progress(state, item)` sees every event and effect
    (the CLI's trace). The shell of `callflow run` and `callflow test`::

        state = LocalRun(flow, Scenario()).run({"to": "+12025550100"})
        state.status, state.path, state.requests, state.documents
    """

    def __init__(self, flow: Flow, scenario: Scenario | None = None, *, env: RunEnvironment = SANDBOX_ENV,
                 on_progress: Callable[[RunState, object], None] | None = None,
                 http: "httpx.Client | None" = None, live_http: bool = False, params: dict | None = None):
        self.flow = flow
        self.scenario = scenario or Scenario()
        self.env = env
        # Simulated time: the executor's clock is the simulated calls' clock (ringing, speech,
        # digit timeouts), not wall time, so a run with three 5 s timeouts takes 15 s.
        self.started = time.time() if self.scenario.now is None else self.scenario.now  # `now:` fixes it
        self.simulated = 0.0  # seconds since the run started, on the simulated calls' clock
        self.executor = Executor(flow, env, clock=lambda: self.started + self.simulated, params=params)
        self.sandbox = SandboxCore(self.scenario, auth_id=env.auth_id)
        shown = on_progress or (lambda state, item: None)
        redact = self.executor.redactor.redact  # what the trace shows never holds a secret
        self.on_progress = (lambda state, item: shown(state, redact(item))) if self.executor.redactor else shown
        self._http = http
        self.live_http = live_http  # real HTTP for unmocked http_request nodes (`--http live`)
        self._calls: list[SimulatedCall] = []
        self._requests_made: dict[str, int] = {}  # http_request node -> requests so far (its nth mock)

    def run(self, payload: dict, run_id: str | None = None) -> RunState:
        """A run started by a run request (the trigger's `http` outcome)."""
        state = self.executor.new_run(run_id or str(uuid.uuid4()))
        self._deliver(state, Trigger(payload))
        return self._finish(state)

    def run_inbound(self, caller: str, number: str, headers: dict | None = None,
                    run_id: str | None = None) -> RunState:
        """A run started by an incoming call (the trigger's `call` outcome), as `callflow serve`
        starts one from `/callbacks/inbound/{flow_id}`; the callee behaviour is the caller's."""
        state = self.executor.new_run(run_id or str(uuid.uuid4()))
        base = f"{self.env.public_url.rstrip('/')}/callbacks/inbound/{self.flow.id}"
        call = inbound_call(caller, number, base, f"{base}/hangup", self.scenario.behaviour_for(caller), headers)
        self.sandbox.calls.append(call)
        self._drive(state, call, inbound=True)
        return self._finish(state)

    def run_message(self, sender: str, number: str, text: str, run_id: str | None = None,
                    message_uuid: str | None = None) -> RunState:
        """A run started by an incoming SMS (the trigger's `message` outcome), as `callflow
        serve` starts one from `/callbacks/inbound-message/{flow_id}`: no call is up."""
        state = self.executor.new_run(run_id or str(uuid.uuid4()))
        event = InboundMessage(message_params(sender, number, text, message_uuid or str(uuid.uuid4())))
        self.on_progress(state, event)
        self._deliver(state, event)
        return self._finish(state)

    def _finish(self, state: RunState) -> RunState:
        while not state.finished:
            if self._calls:
                self._drive(state, self._calls.pop(0))
            elif not self._fire_timer(state):
                break
        while self._calls:  # legs still ringing after the run ended: let them hang up
            self._drive(state, self._calls.pop(0))
        self._reconcile(state)
        return state

    def _fire_timer(self, state: RunState) -> bool:
        """A run waiting on a durable timer: jump the simulated clock to when it is due and
        fire it (no sleeping: a 30-day wait takes no time). False if the run waits on none."""
        waiting = state.waiting
        if waiting is None or waiting.reason is not WaitReason.TIMER:
            return False
        self.simulated = max(self.simulated, (waiting.until or 0.0) - self.started)
        self.on_progress(state, TimerDue(waiting.node, waiting.seq, self.simulated))
        self._deliver(state, TimerFired(waiting.seq))
        return True

    def _reconcile(self, state: RunState) -> None:
        """Callbacks the scenario dropped (`drop:`): as `callflow serve` does for a call gone
        quiet (engine/service/reconcile.py), the ended call's record stands for its hangup."""
        call = state.call
        if state.finished or state.waiting is None or call is None or call.ended or call.legs != 1:
            return
        outputs = state.variables.get(call.node) if isinstance(state.variables.get(call.node), dict) else {}
        found = self.sandbox.find_call(call.uuid or str(outputs.get("request_uuid") or ""))
        if found is not None and found.phase == "ended":
            params = hangup_params(cdr(found, self.sandbox.auth_id), call.uuid)
            self._deliver(state, Callback(CallbackKind.HANGUP, call.seq, params))

    # -- effects -----------------------------------------------------------------------------
    def _deliver(self, state: RunState, event) -> str | None:
        """Apply `event` and perform what follows; the XML that answers it (the first served:
        a later one, served after a request, answers that document's Redirect)."""
        served = None
        queue = [event]
        while queue:
            effects = self.executor.advance(state, queue.pop(0))
            self.on_progress(state, None)
            for effect in effects:
                if isinstance(effect, ServeDocument):
                    served = effect.xml if served is None else served
                elif isinstance(effect, Request):
                    response = replace(self._perform(effect), seq=effect.seq)
                    self.on_progress(state, response)
                    queue.append(response)
                elif isinstance(effect, Finished):
                    pass
        return served

    def _perform(self, req: Request) -> Response:
        if req.provider:
            return self._provider_request(req)
        attempts: list[dict] = []
        while True:  # an http_request's `retry:` (engine/retries.py), in simulated time: no sleeping
            answer = self._web_request(req)
            later = retry_after({k.lower(): v for k, v in answer.headers.items()}, self.started + self.simulated)
            wait = req.retry.wait(len(attempts) + 1, answer.status, answer.failure, later) if req.retry else None
            if wait is None:
                final = (*attempts, attempt_record(answer.status, answer.error)) if attempts else ()
                return replace(answer, attempts=final)
            attempts.append(attempt_record(answer.status, answer.error, wait))
            self.simulated += wait

    def _web_request(self, req: Request) -> Response:
        """One attempt of an http_request: its next mock (one per request, in order), else live."""
        nth = self._requests_made[req.node] = self._requests_made.get(req.node, -1) + 1
        mock = self.scenario.http_mock(req.node, nth)
        if mock is not None:
            if mock.error:  # "timed out", "timeout": a timeout; anything else: no connection was made
                return Response(error=mock.error, failure="timeout" if "time" in mock.error.lower() else "connect")
            return Response(status=mock.status, headers=dict(mock.headers), body=mock.body)
        if not self.live_http:
            return Response(error=f"no mocked response for node {req.node!r}: mock it (http: {{{req.node}: "
                                  f"{{status: 200, json: {{...}}}}}} in the scenario or test case), or let "
                                  "`callflow run --http live` make the request; tests never use the network")
        return self._http_request(req)

    def _provider_request(self, req: Request) -> Response:
        """The Call or Message API of the embedded sandbox. The scenario's `api:` refusals are
        sent again as `callflow serve` does (engine/service/retry.py), in simulated time: no
        sleeping, and the backoff without its jitter, so that a run's record is reproducible."""
        api = "Call" if req.url.endswith("/Call/") else "Message"
        attempts: list[dict] = []
        policy = RetryPolicy()
        while (refusal := self.sandbox.refusal(api)) is not None:
            body = {"api_id": str(uuid.uuid4()), "error": "too many requests" if refusal.status == 429
                    else "service unavailable"}
            wait = max(refusal.retry_after or 0.0, min(policy.cap, policy.base * 2 ** len(attempts)))
            if refusal.status not in REFUSED or len(attempts) >= policy.retries:
                return Response(status=refusal.status, body=body, attempts=_with_final(attempts, refusal.status))
            attempts.append({"status": refusal.status, "retry_in": round(wait, 3)})
        if api == "Call":
            status, body, calls = self.sandbox.create_call(req.json)
            self._calls.extend(calls)
        else:
            status, body = self.sandbox.create_message(req.json)
        return Response(status=status, headers={"content-type": "application/json"}, body=body,
                        attempts=_with_final(attempts, status))

    def _http_request(self, req: Request) -> Response:
        import httpx  # only runs that reach an unmocked http_request pay for importing it

        client = self._http or httpx.Client(follow_redirects=False)
        try:
            method, url, headers, body = req.encode()  # the same bytes `callflow serve` sends
            # httpx's timeout bounds each read; the node's timeout bounds the whole exchange.
            deadline = time.monotonic() + req.timeout
            with client.stream(method, url, content=body, headers=headers, timeout=req.timeout) as r:
                chunks, size = [], 0
                for chunk in r.iter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return Response(status=r.status_code, error=f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("deadline")
                    chunks.append(chunk)
                r._content = b"".join(chunks)
                return Response(status=r.status_code, headers=dict(r.headers), body=decode_body(r))
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            return Response(error=f"{type(e).__name__}: {e}", failure="connect")
        except httpx.TimeoutException:
            return Response(error=f"timed out after {req.timeout:g} s", failure="timeout")
        except httpx.HTTPError as e:
            return Response(error=f"{type(e).__name__}: {e}")
        finally:
            if self._http is None:
                client.close()

    # -- the simulated callee -----------------------------------------------------------------------
    def _drive(self, state: RunState, call: SimulatedCall, inbound: bool = False) -> None:
        sim = call.run()
        start = self.simulated
        answered_at = None
        document, served_at = None, 0.0  # the XML the call plays, since when
        try:
            item = next(sim)
            while True:
                if isinstance(item, Delay):
                    self.simulated += item.seconds
                    item = next(sim)
                    continue
                if item.kind == "answer":
                    answered_at = self.simulated
                elif item.kind == "hangup":
                    duration = float(item.params.get("Duration") or 0)
                    self.simulated = max(self.simulated, (answered_at if answered_at is not None else start) + duration)
                elif item.elapsed is not None and answered_at is not None:  # a Record, Dial or Conference ended
                    self.simulated = max(self.simulated, answered_at + item.elapsed)
                elif document is not None and item.kind in ("action", "redirect"):
                    self.simulated = max(self.simulated, served_at + _seconds_until(document, item.kind))
                reply = self._callback(state, item, inbound)
                if item.expects_xml and reply is not None and item.kind != "confirm":
                    document, served_at = reply, self.simulated
                item = sim.send(reply if item.expects_xml else None)
        except StopIteration:
            pass

    def _callback(self, state: RunState, cb: SimCallback, inbound: bool) -> str | None:
        self.on_progress(state, cb)
        if inbound and cb.kind == "answer":  # the application's answer URL starts the run
            return self._deliver(state, InboundCall(dict(cb.params)))
        if inbound and cb.kind == "hangup":  # the application's hangup URL: the run's first call
            return self._deliver(state, Callback("hangup", 0, dict(cb.params)))
        target = parse_callback_url(cb.url)
        if target is None or target[0] != state.run_id:
            return None
        _, seq, kind = target
        return self._deliver(state, Callback(kind, seq, dict(cb.params)))


def _seconds_until(xml: str, kind: str) -> float:
    """How long the simulated call plays `xml` before it calls back with `kind`: until the
    digits are in (`action`), or through the input's timeout to the `<Redirect>`
    (`redirect`). The sandbox's own timing model (`SimulatedCall._duration`)."""
    try:
        elements = parse_xml(xml).children
    except Exception:  # noqa: BLE001 - an invalid document: the sandbox ends the call on it
        return 0.0
    seconds = 0.0
    for el in elements:
        if el.tag in ("GetDigits", "GetInput"):
            seconds = SimulatedCall._duration(el.children, seconds)
            if kind == "action":
                return seconds
            seconds += input_timeout(el)
        elif el.tag == "Redirect":
            return seconds
        else:
            seconds = SimulatedCall._duration((el,), seconds)
    return seconds


def run_record(state: RunState, runner: LocalRun) -> dict:
    record = state.record()
    record["sandbox"] = {"calls": [c.log for c in runner.sandbox.calls], "messages": runner.sandbox.messages}
    return record


def _with_final(attempts: list[dict], status: int) -> tuple:
    """Every attempt when there was more than one (as `Response.attempts`), else none."""
    return (*attempts, {"status": status}) if attempts else ()
