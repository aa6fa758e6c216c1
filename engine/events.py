"""What goes into the executor (events) and what comes out of it (effects).

The executor never does I/O: a shell (the `callflow run` runner, the HTTP service, the
flow-test harness) performs each effect and feeds the result back in as an event:

    effects = executor.advance(state, Trigger({"to": "+12025550100"}))
    # perform each Request, feed back Response(..., seq=request.seq); answer the callback
    # being handled with the ServeDocument's XML; Finished says the run is over.

Events: `Trigger` (a run request), `InboundCall` (an incoming call), `InboundMessage` (an
incoming SMS), `Response` (the result
of a `Request`), `Callback` (a provider callback), `Expired` (the shell's deadline),
`TimerFired` (a durable timer is due).
Effects: `Request` (make this HTTP request), `ServeDocument` (answer the callback with
this XML), `Finished` (the run completed or failed); `advance` returns them as `Effects`.
"""

from __future__ import annotations

import json as jsonlib
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Mapping, NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    from engine.retries import HttpRetry


class CallbackKind(StrEnum):
    """The provider callbacks a run mints URLs for (`.../callbacks/{run}/{seq}/{kind}`).

    A str enum: `CallbackKind.ANSWER == "answer"`, so shells may pass the URL's text."""

    ANSWER = "answer"
    HANGUP = "hangup"
    RING = "ring"
    DIGITS = "digits"
    NO_INPUT = "no_input"
    RECORD = "record"  # a <Record>'s action: the recording is done
    DIAL = "dial"  # a <Dial>'s action: the forwarded call is over (or never connected)
    CONFERENCE = "conference"  # a <Conference>'s action: the caller left the room
    # A <Redirect> the run served before a request made during the call (no dead air): it is
    # answered with the document built once the request is done.
    REDIRECT = "redirect"
    # Side callbacks while a document plays: they answer or note something, the run waits on.
    CONFIRM = "confirm"  # a <Dial>'s confirmSound: what the forwarded callee hears first
    DIAL_RECORD = "dial_record"  # a <Record startOnDialAnswer>'s recording of the bridged call
    CONFERENCE_EVENT = "conference_event"  # a <Conference>'s callbackUrl: a member entered, left...


CALLBACK_KINDS: frozenset[str] = frozenset(CallbackKind)
SUMMARY_CHARS = 200  # of a response body in the run record
# The callbacks the provider answers with an XML document (the others take an empty body).
XML_KINDS: frozenset[str] = frozenset({CallbackKind.ANSWER, CallbackKind.DIGITS, CallbackKind.NO_INPUT,
                                       CallbackKind.RECORD, CallbackKind.DIAL, CallbackKind.CONFERENCE,
                                       CallbackKind.CONFIRM, CallbackKind.REDIRECT})


MAX_PAYLOAD_KEYS = 100  # keys in one payload
MAX_KEY_LENGTH = 128  # characters of a payload key
MAX_VALUE_LENGTH = 4096  # characters of a text value (a 64 KiB body caps the whole payload too)
MAX_WHOLE = 2**63  # whole numbers are 64-bit signed: what a database column and most JSON clients keep


def payload_problems(payload: Mapping, *, allow_null: bool = True) -> list[tuple[Any, str]]:
    """What is wrong with a run request's payload: (key, message) per bad value, in order.

    Payload values are scalars: text, numbers, booleans and (unless `allow_null` is false)
    null, which reads as absent. Everything in a payload must be storable and showable back
    as JSON: keys are text of at most 128 characters, text values at most 4,096; neither
    holds NUL or a lone surrogate (`\\ud800`, not Unicode text); numbers are finite
    (`1e999` reads as infinity) and whole numbers fit 64 bits; at most 100 keys. The one
    rule for the run API, `callflow run`, flow tests and a trigger's static payload:

        >>> payload_problems({"to": "+1202", "n": [1]})
        [('n', "payload value 'n' must be text, a number or a boolean")]
    """
    problems = []
    for index, (key, value) in enumerate(payload.items()):
        if index == MAX_PAYLOAD_KEYS:
            problems.append((key, f"too many payload keys (more than {MAX_PAYLOAD_KEYS}, from {_shown(key)})"))
            break
        problem = _key_problem(key) or _value_problem(key, value, allow_null)
        if problem:
            problems.append((key, problem))
    return problems


def _shown(key) -> str:
    """A key as a message names it: quoted, escaped, at most 40 characters."""
    text = repr(key) if not isinstance(key, str) or len(key) <= 40 else repr(key[:40]) + "..."
    return text.encode("ascii", "backslashreplace").decode()


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not Unicode text)"
    return None


def _key_problem(key) -> str | None:
    if not isinstance(key, str):
        return f"payload key {_shown(key)} must be text"
    if len(key) > MAX_KEY_LENGTH:
        return f"payload key {_shown(key)} is longer than {MAX_KEY_LENGTH} characters"
    problem = _text_problem(key)
    return f"payload key {_shown(key)} {problem}" if problem else None


def _value_problem(key, value, allow_null: bool) -> str | None:
    name = f"payload value {_shown(key)}"
    if isinstance(value, (dict, list)) or (value is None and not allow_null):
        return f"{name} must be text, a number or a boolean"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name} must be a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -MAX_WHOLE <= value < MAX_WHOLE:
        return f"{name} is out of range (whole numbers fit 64 bits)"
    if isinstance(value, str):
        if len(value) > MAX_VALUE_LENGTH:
            return f"{name} is longer than {MAX_VALUE_LENGTH} characters"
        problem = _text_problem(value)
        return f"{name} {problem}" if problem else None
    return None


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trigger:
    """A run request (HTTP trigger): the dynamic payload, key -> scalar value."""

    payload: dict


@dataclass(frozen=True, slots=True)
class InboundCall:
    """A provider's answer request for an incoming call: its form parameters (From, To,
    CallUUID, X-PH-* headers...)."""

    params: dict


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A provider's incoming-message webhook (an SMS to a number of the flow's): its form
    parameters (From, To, Text, Type, MessageUUID). No call is up on the run it starts."""

    params: dict


@dataclass(frozen=True, slots=True)
class Response:
    """The result of a Request effect. `error` is set when no HTTP response came back."""

    status: int = 0
    headers: dict = field(default_factory=dict)
    body: Any = None  # parsed JSON when JSON, else text
    error: str | None = None
    in_doubt: bool = False  # the request may or may not have reached the far end (crash)
    failure: str | None = None  # with `error`: "connect" (no connection made) or "timeout" (engine.retries)
    seq: int | None = None  # the step whose Request this answers (None: whichever waits)
    # Every attempt when the provider refused the request before processing it (429, 503)
    # and it was sent again: ({"status": 429, "retry_in": 1.0}, ..., {"status": 201}).
    attempts: tuple = ()

    def summary(self) -> dict:
        """What the run record keeps of it (beside its request): the status, why no response
        came, and the body cut to `SUMMARY_CHARS` (the whole body is the node's outputs)."""
        out: dict = {"status": self.status}
        if self.error:
            out["error"] = self.error
        if self.body is not None and self.body != "":
            text = self.body if isinstance(self.body, str) else jsonlib.dumps(
                self.body, ensure_ascii=False, separators=(",", ":"), default=str)
            out["body"] = text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1] + "\u2026"
        return out


@dataclass(frozen=True, slots=True)
class Callback:
    """A provider callback for this run: `seq` is the step that minted the URL, `params`
    the callback's form parameters."""

    kind: CallbackKind
    seq: int
    params: dict


@dataclass(frozen=True, slots=True)
class Expired:
    """The run has waited `seconds` for a provider callback that never came (lost callbacks,
    a provider outage): the shell's deadline, so that no run waits forever."""

    seconds: float


@dataclass(frozen=True, slots=True)
class TimerFired:
    """The durable timer the run set at step `seq` may be due (the shell's clock says so).
    It moves the run only if the run still waits on that timer and the executor's clock has
    reached `Waiting.until`: firing twice, late or for another step changes nothing."""

    seq: int


StartEvent = Trigger | InboundCall | InboundMessage  # the events that start a run
Event = Trigger | InboundCall | InboundMessage | Response | Callback | Expired | TimerFired


# -- effects -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP request to make, then feed back a Response event.

    `provider` requests go to the telephony API; the shell adds its credentials (they never
    enter the run state or its record).
    """

    node: str
    method: str
    url: str
    json: Any = None
    form: dict | None = None
    params: dict | None = None
    headers: dict | None = None
    timeout: float = 10.0
    provider: bool = False
    seq: int = -1  # the step that made it (set by the executor); its Response carries it back
    retry: "HttpRetry | None" = None  # http_request `retry:`: the shell makes it again (engine.retries)

    def recorded(self, node: str) -> dict:
        """The request as the run record keeps it (`state.requests`): node, method, URL with
        its params, JSON or form body; never the headers (they may carry a secret)."""
        url = f"{self.url}{'&' if '?' in self.url else '?'}{urlencode(self.params)}" if self.params else self.url
        entry = {"node": node, "method": self.method, "url": url, "json": self.json}
        if self.form is not None:
            entry["form"] = self.form
        return entry

    def encode(self) -> EncodedRequest:
        """The request as it goes on the wire, one rule for every shell (`callflow run` sends
        it with httpx, `callflow serve` with aiohttp):

        * the method upper-cased;
        * `params`, when given, replace the URL's query (as httpx 0.28 does: `{}` clears it),
          form-urlencoded; a list value repeats its key; True/False/None are
          `true`/`false`/empty (httpx's rule);
        * a `json` body compact UTF-8, ASCII-escaped for `provider` requests (as Plivo's SDK
          sends them); a `form` body form-urlencoded (same value rule); else no body (None);
        * the headers as given (a later name replaces an earlier one, case-insensitively),
          after a `Content-Type` for the body that a given header overrides.

        Pure: it neither resolves nor checks the host. Raises ValueError for a JSON body
        holding NaN or an infinity.

        >>> Request("n", "get", "https://x.example/a?old=1", params={"q": "a b"}).encode().url
        'https://x.example/a?q=a+b'
        """
        url = self.url
        if self.params is not None:
            url = urlunsplit(urlsplit(url)._replace(query=urlencode(_form_pairs(self.params))))
        if self.json is not None:
            body = jsonlib.dumps(self.json, ensure_ascii=self.provider, separators=(",", ":"),
                                 allow_nan=False).encode()
            headers = {"Content-Type": "application/json"}
        elif self.form is not None:
            body = urlencode(_form_pairs(self.form)).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
        else:
            body, headers = None, {}
        for name, value in (self.headers or {}).items():
            folded = name.lower()
            for same in [h for h in headers if h.lower() == folded]:
                del headers[same]
            headers[name] = value
        return EncodedRequest(self.method.upper(), url, headers, body)


class EncodedRequest(NamedTuple):
    """`Request.encode()`: what a shell hands its HTTP client."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def _form_pairs(values: dict) -> list[tuple[str, str]]:
    pairs = []
    for key, value in values.items():
        for item in value if isinstance(value, (list, tuple)) else (value,):
            text = "true" if item is True else "false" if item is False else "" if item is None else str(item)
            pairs.append((str(key), text))
    return pairs


@dataclass(frozen=True, slots=True)
class ServeDocument:
    """The XML answer to the callback being handled (the shell returns it as the body)."""

    xml: str


@dataclass(frozen=True, slots=True)
class Finished:
    """The run is over: `completed`, or `failed` with why (also in the run's `error`)."""

    status: Literal["completed", "failed"]
    error: str | None = None


Effect = Request | ServeDocument | Finished


class Effects(list):
    """The effects of one event, in order (what `Executor.advance` returns); `changed` is
    False when the event left the run state as it was (the shell need not store it again)."""

    __slots__ = ("changed",)

    def __init__(self):
        super().__init__()
        self.changed = True
