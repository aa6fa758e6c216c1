"""Scenario files: how simulated callees behave (contract section 4), plus mocked
responses for http_request nodes when a run should not touch the network."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine import codes
from engine.errors import FlowInvalid
from engine.fields import did_you_mean
from engine.load.yaml_reader import load_text
from engine.local.in_call import (
    Recording,
    in_call_behaviour,
    parse_now_at,
)
from engine.local.incoming import APP_URL, FLOW_ID
from engine.scalar_fields import phone_problem

RESULTS = ("answered", "busy", "no_answer", "failed", "machine")
_BEHAVIOUR_KEYS = ("result", "digits", "speech", "answer_after", "hangup_after", "sms", "drop", "record", "forward",
                   "conference")
SMS_RESULTS = ("sent", "failed")
HTTP_MOCK_KEYS = ("status", "json", "body", "headers", "error")
DROPPABLE = ("ring", "answer", "hangup", "action", "redirect")  # callbacks a behaviour may lose
APIS = ("Call", "Message")
_TOP_KEYS = ("default", "destinations", "http", "api", "numbers", "now")


@dataclass(frozen=True)
class Behaviour:
    """How one simulated callee behaves: the call's result, the digits it presses, when it
    answers and hangs up, and whether the Message API accepts SMS to it."""

    result: str = "answered"
    digits: tuple[str, ...] = ()  # one entry per GetDigits, in order; "" presses nothing
    answer_after: float = 0.0  # seconds of ringing before the result
    hangup_after: float | None = None  # the callee hangs up this long after answering
    sms: str = "sent"  # "failed": the Message API refuses messages to this destination
    drop: tuple[str, ...] = ()  # callbacks never delivered (lost on the way), e.g. ("hangup",)
    speech: tuple[str, ...] = ()  # what the caller says at each speech <GetInput>, in order; "" nothing
    record: Recording | None = None  # what the caller leaves at a <Record>; None: nothing
    forward: dict = field(default_factory=dict)  # forwarded number (<Dial>) -> one of FORWARD_RESULTS
    conference: dict = field(default_factory=dict)  # {members: already in the room, stay: seconds in it}


@dataclass(frozen=True)
class Refusal:
    """One API request the sandbox refuses before processing it: `status` (429, 503...) and
    the `Retry-After` seconds it sends, if any."""

    status: int = 503
    retry_after: float | None = None


@dataclass(frozen=True)
class HttpMock:
    """A mocked answer for an http_request node (by node name): status, body, headers."""

    status: int = 200
    body: object = None
    headers: dict = field(default_factory=dict)
    error: str | None = None  # e.g. "timeout": no response at all


@dataclass(frozen=True)
class Scenario:
    """How the sandbox's simulated world behaves (docs/testing.md): a default `Behaviour`,
    behaviours by destination, and `http_request` mocks by node name.

        Scenario()                                          # everyone answers
        Scenario(destinations={"+12025550111": Behaviour(result="busy")})
    """

    # A behaviour, or a tuple of them: one per call placed to the destination, in order (the
    # last for every call after), so a retried call can be busy first and answered next.
    default: Behaviour | tuple = Behaviour()
    destinations: dict = field(default_factory=dict)  # destination -> Behaviour (or a tuple of them)
    http: dict = field(default_factory=dict)  # node name -> HttpMock, or a tuple: one per request, in order
    api: dict = field(default_factory=dict)  # "Call" | "Message" -> (Refusal, ...): the first requests refused
    # Incoming calls (POST /sandbox/inbound): number dialled -> the answer URL of the
    # application it belongs to, or a flow id (served by the `serve --sandbox` it is in).
    numbers: dict = field(default_factory=dict)
    now: float | None = None  # the run's clock starts here (epoch seconds), else at the real time

    def behaviour_for(self, destination: str, nth: int = 0) -> Behaviour:
        """How `destination` behaves on the `nth` call placed to it (0: the first)."""
        return _nth(self.destinations.get(destination, self.default), nth)

    def http_mock(self, node: str, nth: int = 0) -> "HttpMock | None":
        """The mocked answer to the `nth` request node `node` makes (0: the first), if mocked."""
        return _nth(self.http.get(node), nth)


def _nth(found, nth: int):
    return found[min(nth, len(found) - 1)] if isinstance(found, tuple) else found


def parse_sequence(parse, doc, path, spec):
    """`parse(doc, path, spec)`, or for a list a tuple of them, one per attempt in order."""
    if not isinstance(spec, list):
        return parse(doc, path, spec)
    if not spec:
        doc.diag(path, codes.TOO_FEW_ITEMS, "a list needs at least one item (one per attempt, in order)")
        return parse(doc, path, {})
    return tuple(parse(doc, path + (i,), item) for i, item in enumerate(spec))


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; raises `FlowInvalid` with line:col diagnostics when it is wrong."""
    try:
        text = Path(path).read_bytes()
    except OSError as e:
        from engine.diagnostics import Diagnostic

        raise FlowInvalid([Diagnostic.of(codes.UNREADABLE, str(path), f"cannot read file: {e.strerror}")])
    return parse_scenario(text, str(path))


def parse_scenario(text: str | bytes, path: str = "<scenario>") -> Scenario:
    doc = load_text(text, path)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        doc.diag((), codes.WRONG_TYPE, "a scenario is a mapping with default, destinations and http")
        raise FlowInvalid(doc.diagnostics)
    for key in data:
        if key not in _TOP_KEYS:
            doc.diag((key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(_TOP_KEYS)})"
                     + did_you_mean(str(key), _TOP_KEYS), key=True)
    default = parse_sequence(parse_behaviour, doc, ("default",), data.get("default", "answered"))
    destinations = {}
    raw = data.get("destinations") or {}
    if not isinstance(raw, dict):
        doc.diag(("destinations",), codes.WRONG_TYPE, "destinations maps a number or SIP URI to a behaviour")
        raw = {}
    for dest, spec in raw.items():
        problem = phone_problem(str(dest))
        if problem:
            doc.diag(("destinations", dest), codes.INVALID_PHONE, problem, key=True)
        destinations[str(dest)] = parse_sequence(parse_behaviour, doc, ("destinations", dest), spec)
    mocks = {}
    raw_http = data.get("http") or {}
    if not isinstance(raw_http, dict):
        doc.diag(("http",), codes.WRONG_TYPE, "http maps an http_request node name to its mocked response")
        raw_http = {}
    for node, spec in raw_http.items():
        mocks[node] = parse_sequence(parse_http_mock, doc, ("http", node), spec)
    api = parse_api(doc, data.get("api"))
    numbers = parse_numbers(doc, data.get("numbers"))
    now = parse_now_at(doc, ("now",), data["now"]) if "now" in data else None
    if doc.diagnostics:
        raise FlowInvalid(doc.diagnostics)
    return Scenario(default=default, destinations=destinations, http=mocks, api=api, numbers=numbers, now=now)


def parse_numbers(doc, raw) -> dict:
    """`numbers: {"+12025551234": inbound-support}`: who answers an incoming call to each
    number, a flow id or an answer URL."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.diag(("numbers",), codes.WRONG_TYPE, "numbers maps a number to a flow id or an answer URL")
        return {}
    numbers = {}
    for number, target in raw.items():
        problem = phone_problem(str(number))
        if problem:
            doc.diag(("numbers", number), codes.INVALID_PHONE, problem, key=True)
        if not isinstance(target, str) or not (FLOW_ID.fullmatch(target) or APP_URL.fullmatch(target)):
            doc.diag(("numbers", number), codes.WRONG_TYPE,
                     f"{target!r} is neither a flow id nor an http(s) answer URL")
            continue
        numbers[str(number)] = target
    return numbers


def parse_api(doc, raw) -> dict:
    """`api: {Call: [429, 503, {status: 429, retry_after: 2}]}`: the first requests to each API
    are answered with these statuses (then as usual)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        doc.diag(("api",), codes.WRONG_TYPE, "api maps Call or Message to a list of refusals, e.g. {Call: [429, 503]}")
        return {}
    api = {}
    for name, entries in raw.items():
        if name not in APIS:
            doc.diag(("api", name), codes.UNKNOWN_KEY, f"unknown API {name!r} (expected {', '.join(APIS)})"
                     + did_you_mean(str(name), APIS), key=True)
            continue
        if not isinstance(entries, list):
            doc.diag(("api", name), codes.WRONG_TYPE, "a list of refusals: status codes or {status, retry_after}")
            continue
        api[name] = tuple(_refusal(doc, ("api", name, i), entry) for i, entry in enumerate(entries))
    return api


def _refusal(doc, path, entry) -> Refusal:
    spec = entry if isinstance(entry, dict) else {"status": entry}
    for key in spec:
        if key not in ("status", "retry_after"):
            doc.diag(path + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected status, retry_after)"
                     + did_you_mean(str(key), ("status", "retry_after")), key=True)
    status = spec.get("status", 503)
    where = path if not isinstance(entry, dict) else path + ("status",)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        doc.diag(where, codes.WRONG_TYPE, f"{status!r} is not an HTTP error status (400-599)")
        status = 503
    wait = spec.get("retry_after")
    if wait is not None and (isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0):
        doc.diag(path + ("retry_after",), codes.WRONG_TYPE, "retry_after is a number of seconds")
        wait = None
    return Refusal(status=status, retry_after=wait)


def parse_behaviour(doc, path, spec) -> Behaviour:
    if isinstance(spec, str):
        spec = {"result": spec}
    if not isinstance(spec, dict):
        doc.diag(path, codes.WRONG_TYPE, f"a behaviour is one of {', '.join(RESULTS)} or a mapping")
        return Behaviour()
    for key in spec:
        if key not in _BEHAVIOUR_KEYS:
            doc.diag(path + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected {', '.join(_BEHAVIOUR_KEYS)})"
                     + did_you_mean(str(key), _BEHAVIOUR_KEYS), key=True)
    result = spec.get("result", "answered")
    if result not in RESULTS:
        doc.diag(path + ("result",), codes.INVALID_CHOICE, f"{result!r} is not one of: {', '.join(RESULTS)}")
        result = "answered"
    digits = spec.get("digits")
    if digits is None:
        digits = ()
    elif isinstance(digits, (str, int)) and not isinstance(digits, bool):
        digits = (str(digits),)
    elif isinstance(digits, list) and all(isinstance(d, (str, int)) for d in digits):
        digits = tuple(str(d) for d in digits)
    else:
        doc.diag(path + ("digits",), codes.WRONG_TYPE, "digits is a string of keys or a list, one per prompt")
        digits = ()
    sms = spec.get("sms", "sent")
    if sms not in SMS_RESULTS:
        doc.diag(path + ("sms",), codes.INVALID_CHOICE, f"{sms!r} is not one of: {', '.join(SMS_RESULTS)}")
        sms = "sent"
    drop = spec.get("drop") or []
    if isinstance(drop, str):
        drop = [drop]
    if not isinstance(drop, list) or any(d not in DROPPABLE for d in drop):
        doc.diag(path + ("drop",), codes.INVALID_CHOICE, f"drop lists callbacks to lose: {', '.join(DROPPABLE)}")
        drop = []
    timing = {}
    for key in ("answer_after", "hangup_after"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            doc.diag(path + (key,), codes.WRONG_TYPE, f"{key} is a number of seconds")
            value = None
        timing[key] = value
    return Behaviour(result=result, digits=digits, answer_after=float(timing["answer_after"] or 0),
                     hangup_after=timing["hangup_after"], sms=sms, drop=tuple(drop), **in_call_behaviour(doc, path, spec))


def parse_http_mock(doc, path, spec) -> HttpMock:
    if not isinstance(spec, dict):
        doc.diag(path, codes.WRONG_TYPE, "a mocked response is a mapping: status, json or body, headers")
        return HttpMock()
    for key in spec:
        if key not in HTTP_MOCK_KEYS:
            doc.diag(path + (key,), codes.UNKNOWN_KEY, f"unknown key {key!r} (expected status, json, body, "
                     "headers, error)" + did_you_mean(str(key), HTTP_MOCK_KEYS), key=True)
    status = spec.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        doc.diag(path + ("status",), codes.WRONG_TYPE, "status is an HTTP status code")
        status = 200
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict):
        doc.diag(path + ("headers",), codes.WRONG_TYPE, "headers maps a header name to its value")
        headers = {}
    error = spec.get("error")
    if error is not None and not isinstance(error, str):
        doc.diag(path + ("error",), codes.WRONG_TYPE, "error is text: why no response came (e.g. timeout)")
        error = None
    body = spec["json"] if "json" in spec else spec.get("body")
    return HttpMock(status=status, body=body, headers={str(k): str(v) for k, v in headers.items()}, error=error)
