"""What goes into the executor (events) and what comes out of it (effects).

The executor never does I/O: a shell (the `callflow run` runner, the HTTP service, the
flow-test harness) performs each effect and feeds the result back in as an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CallbackKind = Literal["answer", "hangup", "ring", "digits", "no_input"]


# -- events ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Trigger:
    """A run request (HTTP trigger): the dynamic payload."""

    payload: dict


@dataclass(frozen=True, slots=True)
class InboundCall:
    """A provider's answer request for an incoming call."""

    params: dict


@dataclass(frozen=True, slots=True)
class Response:
    """The result of a Request effect. `error` is set when no HTTP response came back."""

    status: int = 0
    headers: dict = field(default_factory=dict)
    body: Any = None  # parsed JSON when JSON, else text
    error: str | None = None
    in_doubt: bool = False  # the request may or may not have reached the far end (crash)
    seq: int | None = None  # the step whose Request this answers (None: whichever waits)


@dataclass(frozen=True, slots=True)
class Callback:
    """A provider callback for this run: `seq` is the step that minted the URL."""

    kind: CallbackKind
    seq: int
    params: dict


@dataclass(frozen=True, slots=True)
class Expired:
    """The run has waited `seconds` for a provider callback that never came (lost callbacks,
    a provider outage): the shell's deadline, so that no run waits forever."""

    seconds: float


Event = Trigger | InboundCall | Response | Callback | Expired


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


@dataclass(frozen=True, slots=True)
class ServeDocument:
    """The XML answer to the callback being handled."""

    xml: str


@dataclass(frozen=True, slots=True)
class Finished:
    status: Literal["completed", "failed"]
    error: str | None = None


Effect = Request | ServeDocument | Finished
