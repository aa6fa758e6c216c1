"""The sandbox provider: a callee simulation that behaves like Plivo, written once.

`SandboxCore` answers the Call and Message APIs as Plivo does and creates a
`SimulatedCall` per destination. A simulated call is sans-I/O: `SimulatedCall.run()` is a
generator that yields `Delay` and `Callback` items and receives, for callbacks that expect
XML, the response body. The embedded driver (`callflow run`, flow tests) hands callbacks
straight to the executor; the HTTP sandbox (`callflow sandbox`) posts them, signed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generator

from engine.errors import HttpError, PlivoXMLError
from engine.local.sandbox_verbs import VERBS, heard, input_timeout, play_verb
from engine.local.scenario import Behaviour, Refusal, Scenario
from engine.plivoxml import Element, parse

DESTINATION = re.compile(r"^(\+?[0-9]{7,15}|sips?:[^\s<>]+@[^\s<>]+)$")
SIP_HEADERS = re.compile(r"^[A-Za-z0-9]+=[A-Za-z0-9%]+(,[A-Za-z0-9]+=[A-Za-z0-9%]+)*$")
URL = re.compile(r"^https?://[^\s/?#]+[^\s]*$")
MAX_DOCUMENTS = 100  # answer + redirects/actions per call: a loop guard like the provider's
SPEAK_CHARS_PER_SECOND = 15.0
PLAY_SECONDS = 5.0

HANGUP = {  # result -> (CallStatus, HangupCause) of the hangup callback for an unanswered call
    "busy": ("busy", "USER_BUSY"),
    "no_answer": ("no-answer", "NO_ANSWER"),
    "failed": ("failed", "UNALLOCATED_NUMBER"),
}


@dataclass(frozen=True, slots=True)
class Delay:
    seconds: float


@dataclass(frozen=True, slots=True)
class Callback:
    kind: str  # ring | answer | fallback | hangup | action | redirect | confirm (a Dial's confirmSound)
    url: str
    method: str
    params: dict
    elapsed: float | None = None  # seconds since the answer when sent (Record, Dial, Conference)

    @property
    def expects_xml(self) -> bool:
        return self.kind in ("answer", "fallback", "action", "redirect", "confirm")


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class SimulatedCall:
    request: dict  # the Call API body
    destination: str
    behaviour: Behaviour
    request_uuid: str
    call_uuid: str = ""  # "": the request_uuid, as Plivo's API shows it for a call it placed
    log: dict = field(default_factory=dict)
    direction: str = "outbound"  # "inbound": a caller dialling the app's number
    account: str = "MAXXXXXXXXXXXXXXXXXX"  # the auth id, in recording URLs
    dial_record: str | None = None  # the action of a <Record startOnDialAnswer> for the next Dial
    speech_left: list = field(default_factory=list)  # what the callee will say at speech inputs, in order
    clock: Callable[[], float] = time.time
    # What the Call API's lookups show (engine/local/sandbox_lookups.py): queued -> ringing ->
    # in-progress -> ended, with the times of each step and how it ended.
    phase: str = "queued"
    created_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    duration: int = 0

    def __post_init__(self) -> None:
        self.call_uuid = self.call_uuid or self.request_uuid
        self.created_at = self.created_at or self.clock()
        self.log = {"call_uuid": self.call_uuid, "request_uuid": self.request_uuid, "to": self.destination,
                    "direction": self.direction,
                    "from": self.request.get("from"), "result": self.behaviour.result, "request": self.request,
                    "callbacks": [], "documents": [], "status": "queued", "hangup_cause": None, "error": None}

    # -- params as Plivo sends them ------------------------------------------------------------
    def _params(self, status: str, event: str) -> dict:
        p = {
            "CallUUID": self.call_uuid,
            "From": self.request.get("from", ""),
            "To": self.destination,
            "Direction": self.direction,
            "CallStatus": status,
            "Event": event,
            "RequestUUID": self.request_uuid,
            "ALegUUID": self.call_uuid,
            "ALegRequestUUID": self.request_uuid,
            "BillRate": "0.00300",
        }
        headers = self.request.get("sip_headers")
        if headers:
            for pair in headers.split(","):
                name, _, value = pair.partition("=")
                p[f"X-PH-{name}"] = value
        return p

    def _callback(self, kind: str, url_key: str, params: dict, url: str | None = None, method: str | None = None,
                  elapsed: float | None = None):
        url = url or self.request.get(url_key)
        if not url:
            return None
        method = (method or self.request.get(f"{url_key[:-4]}_method") or "POST").upper()
        cb = Callback(kind, url, method, params, elapsed)
        entry = {"kind": kind, "url": url, "method": method, "params": params}
        self.log["callbacks"].append(entry)
        if kind in self.behaviour.drop:  # lost on the way: the app never sees it
            entry["dropped"] = True
            return None
        return cb

    # -- the call ------------------------------------------------------------------------------------------
    def run(self) -> Generator[Delay | Callback, str | None, None]:
        b = self.behaviour
        self.phase = "ringing"
        ring = self._callback("ring", "ring_url", self._params("ringing", "Ring"))
        if ring:
            yield ring
        if b.answer_after:
            yield Delay(b.answer_after)
        detection = str(self.request.get("machine_detection", "")).lower()
        if b.result in HANGUP or (b.result == "machine" and detection == "hangup"):
            status, cause = HANGUP.get(b.result, ("completed", "MACHINE_DETECTED"))
            yield from self._hangup(status, cause, 0)
            return
        params = self._params("in-progress", "StartApp")
        if b.result == "machine" and detection in ("true", "1"):
            params["Machine"] = "true"
        self.log["status"] = self.phase = "in-progress"
        self.answered_at = self.clock()
        answer = self._callback("answer", "answer_url", params)
        reply = (yield answer) if answer else None
        if reply is None:  # the answer URL failed: Plivo asks the Call's fallback_url instead
            fallback = self._callback("fallback", "fallback_url", params)
            reply = (yield fallback) if fallback else None
        elapsed = 0.0
        digits = list(b.digits)
        self.speech_left = list(b.speech)
        documents = 0
        cause = "NORMAL_CLEARING"
        while True:
            documents += 1
            if reply is None:
                cause = "ANSWER_URL_ERROR" if documents == 1 else "ACTION_URL_ERROR"
                self.log["error"] = "the app did not answer with XML"
                break
            self.log["documents"].append(reply)
            try:
                doc = parse(reply)
            except PlivoXMLError as e:
                cause, self.log["error"] = "INVALID_ANSWER_XML", str(e)
                break
            if documents > MAX_DOCUMENTS:
                cause, self.log["error"] = "TOO_MANY_REDIRECTS", f"more than {MAX_DOCUMENTS} documents"
                break
            nxt, elapsed, hung_up = yield from self._play(doc.children, elapsed, digits)
            if hung_up:
                cause = hung_up
                break
            if nxt is None:
                break
            reply = yield nxt
        yield from self._hangup("completed", cause, elapsed)

    def _play(self, elements: tuple[Element, ...], elapsed: float, digits: list):
        """Execute elements; return (callback that fetches the next document, elapsed, hangup cause)."""
        limit = self.behaviour.hangup_after
        for el in elements:
            tag = el.tag
            attrs = dict(el.attrs)
            if tag == "Hangup":
                return None, elapsed, "NORMAL_CLEARING"
            if tag == "Redirect":
                return self._callback("redirect", "", self._params("in-progress", "Redirect"),
                                      url=el.text, method=attrs.get("method")), elapsed, None
            if tag in VERBS:  # Record, Dial, Conference: engine/local/sandbox_verbs.py
                fetch, elapsed = yield from play_verb(self, el, elapsed)
                if limit is not None and elapsed >= limit:
                    return None, limit, "NORMAL_CLEARING"  # the callee hung up meanwhile
                if fetch is not None:
                    return fetch, elapsed, None
                continue
            if tag in ("GetDigits", "GetInput"):
                elapsed = self._duration(el.children, elapsed)
                params = heard(self, el, digits)  # what the callee presses or says, or None
                if limit is not None and elapsed >= limit:
                    return None, limit, "NORMAL_CLEARING"
                if params:
                    action = attrs.get("action")
                    if action:
                        return self._callback("action", "", params, url=action,
                                              method=attrs.get("method")), elapsed, None
                else:
                    elapsed += input_timeout(el)
                continue
            elapsed = self._duration((el,), elapsed)
            if limit is not None and elapsed >= limit:
                return None, limit, "NORMAL_CLEARING"
        return None, elapsed, None
        yield  # a generator, so that callers can `yield from` it

    @staticmethod
    def _duration(elements, elapsed: float) -> float:
        for el in elements:
            attrs = dict(el.attrs)
            loop = max(int(attrs.get("loop", 1) or 1), 1)
            if el.tag == "Speak":
                elapsed += max(len(el.text or "") / SPEAK_CHARS_PER_SECOND, 1.0) * loop
            elif el.tag == "Play":
                elapsed += PLAY_SECONDS * loop
            elif el.tag == "Wait":
                elapsed += float(attrs.get("length", 1))
        return elapsed

    def _hangup(self, status: str, cause: str, duration: float):
        seconds = int(round(duration))
        params = self._params(status, "Hangup")
        params.update(HangupCause=cause, Duration=str(seconds), BillDuration=str(seconds))
        self.log["status"], self.log["hangup_cause"] = status, cause
        self.phase, self.ended_at, self.duration = "ended", self.clock(), seconds
        cb = self._callback("hangup", "hangup_url", params)
        if cb:
            yield cb


def inbound_call(caller: str, number: str, answer_url: str, hangup_url: str, behaviour: Behaviour,
                 headers: dict | None = None) -> SimulatedCall:
    """A caller dialling `number`, whose application answer URL is `answer_url`; `headers`
    are custom SIP headers the caller's endpoint sends (they arrive as X-PH-<name>)."""
    request = {"from": caller, "to": number, "answer_url": answer_url, "hangup_url": hangup_url}
    if headers:
        request["sip_headers"] = ",".join(f"{k}={v}" for k, v in headers.items())
    return SimulatedCall(request=request, destination=number, behaviour=behaviour, request_uuid=new_id(),
                         direction="inbound")


class SandboxCore:
    """Plivo's Call and Message APIs, answered as Plivo answers them."""

    def __init__(self, scenario: Scenario | None = None, auth_id: str = "MAXXXXXXXXXXXXXXXXXX",
                 auth_token: str = "sandbox-token"):
        self.scenario = scenario or Scenario()
        self.auth_id = auth_id
        self.auth_token = auth_token
        self.calls: list[SimulatedCall] = []
        self.messages: list[dict] = []  # sent through the Message API
        self.inbound_messages: list[dict] = []  # delivered to apps (POST /sandbox/inbound-message)
        self.placed: dict[str, int] = {}  # destination -> calls placed to it (a scenario's nth behaviour)
        self._refusals = {api: list(entries) for api, entries in self.scenario.api.items()}

    def refusal(self, api: str) -> Refusal | None:
        """The scenario's next refusal of a request to `api` ("Call" or "Message"), if any:
        the sandbox answers it with that status before looking at the request."""
        pending = self._refusals.get(api)
        return pending.pop(0) if pending else None

    def find_call(self, uuid_: str) -> SimulatedCall | None:
        """The call with this CallUUID or RequestUUID (the newest, should both match)."""
        for call in reversed(self.calls):
            if uuid_ in (call.call_uuid, call.request_uuid):
                return call
        return None

    def authorized(self, account: str, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), self.auth_id.encode())
        ok_password = hmac.compare_digest(password.encode(), self.auth_token.encode())
        return ok_user and ok_password and account == self.auth_id

    def create_call(self, body: dict) -> tuple[int, dict, list[SimulatedCall]]:
        try:
            destinations = self._check_call(body)
        except HttpError as e:
            return e.status, {"api_id": new_id(), "error": e.message}, []
        calls = []
        for dest in destinations:
            nth = self.placed[dest] = self.placed.get(dest, -1) + 1
            call = SimulatedCall(request=dict(body), destination=dest, behaviour=self.scenario.behaviour_for(dest, nth),
                                 request_uuid=new_id(), account=self.auth_id)
            calls.append(call)
        self.calls.extend(calls)
        uuids = [c.request_uuid for c in calls]
        return 201, {"message": "call fired", "request_uuid": uuids[0] if len(uuids) == 1 else uuids,
                     "api_id": new_id()}, calls

    def _check_call(self, body: dict) -> list[str]:
        if not isinstance(body, dict):
            raise HttpError(400, "invalid request body")
        for key in ("from", "to", "answer_url"):
            if not body.get(key):
                raise HttpError(400, f"{key} parameter is missing")
        for key in ("answer_url", "hangup_url", "ring_url", "fallback_url"):
            if key in body and not URL.match(str(body[key])):
                raise HttpError(400, f"{key} is not a valid URL")
        src = str(body["from"])
        if not DESTINATION.match(src):
            raise HttpError(400, "invalid from number")
        destinations = str(body["to"]).split("<")
        if len(destinations) > 1000:
            raise HttpError(400, "too many destinations: at most 1000")
        for dest in destinations:
            if not DESTINATION.match(dest):
                raise HttpError(400, f"invalid destination {dest!r}")
            if dest.lstrip("+") == src.lstrip("+"):
                raise HttpError(400, "src and destination cannot be the same")
        headers = body.get("sip_headers")
        if headers is not None and not SIP_HEADERS.match(str(headers)):
            raise HttpError(400, "invalid sip_headers: expected name=value pairs of A-Z a-z 0-9, joined by ','")
        name = body.get("caller_name")
        if name is not None and len(str(name)) > 50:
            raise HttpError(400, "caller_name must be at most 50 characters")
        return destinations

    def create_message(self, body: dict) -> tuple[int, dict]:
        if not isinstance(body, dict):
            return 400, {"api_id": new_id(), "error": "invalid request body"}
        for key in ("src", "dst", "text"):
            if not body.get(key):
                return 400, {"api_id": new_id(), "error": f"{key} parameter is missing"}
        for dst in str(body["dst"]).split("<"):
            if self.scenario.behaviour_for(dst).sms == "failed":
                return 400, {"api_id": new_id(), "error": f"{dst} is not a valid destination for messages"}
        uuid_ = new_id()
        self.messages.append({"message_uuid": uuid_, "request": dict(body)})
        return 202, {"message": "message(s) queued", "message_uuid": [uuid_], "api_id": new_id()}
