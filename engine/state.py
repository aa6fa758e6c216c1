"""Run state: everything the executor needs between two events, as plain JSON-able data,
so that any process can store it and any other can pick the run up.

    text = state.to_json()            # what the service stores on every save
    state = RunState.from_json(text)  # also reads runs stored by earlier versions

The records inside (`Step`, `Waiting`, `Call`) are small typed objects; in JSON they keep
the shapes stored since the first version: a step is a 6-element list
`[node, type, outcome, started_at, ended_at, error]`, the waiting record
`{"node", "seq", "for"}` (+ "until", "resent" when set), the call `{"node", "seq", "legs", "up", "uuid", "ringing", "ended"}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from enum import StrEnum
from operator import attrgetter


def iso(ts: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with milliseconds (`2024-05-01T12:00:00.000Z`); None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Step:
    """One node run: which node, its outcome, when it started and ended, and a note on why
    it failed (or how it ended). `outcome` and `ended_at` are None while the node waits.

    Stored as the list `[node, type, outcome, started_at, ended_at, error]` (`row()`,
    `Step(*row)`)."""

    node: str
    type: str
    outcome: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    error: str | None = None

    def record(self) -> dict:
        """The step as the public run record shows it (ISO times)."""
        return {"node": self.node, "type": self.type, "outcome": self.outcome, "started_at": iso(self.started_at),
                "ended_at": iso(self.ended_at), "error": self.error}


# A step's stored list (as a tuple, which JSON writes as a list), in C: saves are frequent.
_step_row = attrgetter(*(f.name for f in fields(Step)))


class WaitReason(StrEnum):
    """What a waiting run waits for (stored as its value, e.g. "response")."""

    RESPONSE = "response"  # the Response to the Request its node made
    CALL = "call"  # the answer (or hangup) callback of the call its node placed
    INPUT = "input"  # the digits/no_input callback of the document its node served
    HANGUP = "hangup"  # the path is done: the hangup callback of the call still up
    TIMER = "timer"  # a durable timer: `Waiting.until` (epoch seconds), fired by the shell


@dataclass(slots=True)
class Waiting:
    """The node the run waits on (step `seq`) and what for; `until`: when a TIMER wait is
    due (epoch seconds). JSON: {"node", "seq", "for"} (+ "until" when set)."""

    node: str
    seq: int
    reason: WaitReason
    until: float | None = None
    resent: bool = False  # its request, once in doubt, was sent again (the shell's reconciliation)

    def to_json(self) -> dict:
        """The stored mapping."""
        data = {"node": self.node, "seq": self.seq, "for": self.reason.value}
        if self.until is not None:
            data["until"] = self.until
        if self.resent:
            data["resent"] = True
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Waiting":
        """The record from its stored mapping."""
        return cls(data["node"], data["seq"], WaitReason(data["for"]), data.get("until"), data.get("resent", False))


@dataclass(slots=True)
class Call:
    """The call the run controls: placed (or received) by node `node` at step `seq`.

    `legs` counts the destinations still ringing (a call to several numbers at once),
    `up` is true once answered and until it ends, `uuid` is the provider's CallUUID once
    known, `ringing` true after a ring callback, `ended` true after the hangup callback."""

    node: str
    seq: int
    legs: int = 1
    up: bool = False
    uuid: str | None = None
    ringing: bool = False
    ended: bool = False

    def other_leg(self, seq: int, uuid: str | None) -> bool:
        """Does a callback for step `seq` with CallUUID `uuid` come from another call than
        this one (another destination of the same call_out, or a stranger)?"""
        return bool(self.uuid and uuid and uuid != self.uuid and self.seq == seq)

    def to_json(self) -> dict:
        """The stored mapping (every key, so that readers need no defaults)."""
        return {"node": self.node, "seq": self.seq, "legs": self.legs, "up": self.up, "uuid": self.uuid,
                "ringing": self.ringing, "ended": self.ended}

    @classmethod
    def from_json(cls, data: dict) -> "Call":
        """The record from its stored mapping."""
        # Runs stored before uuid/ringing/ended were always written lack those keys.
        return cls(data["node"], data["seq"], data.get("legs", 1), data.get("up", False), data.get("uuid"),
                   data.get("ringing", False), data.get("ended", False))


@dataclass(slots=True)
class RunState:
    """One run of a flow between two events. The executor updates it in place; shells store
    it (`to_json`/`from_json`) and show it (`record()`)."""

    run_id: str
    flow_id: str
    status: str = "running"  # running | waiting | completed | failed
    variables: dict = field(default_factory=dict)  # node name -> outputs
    path: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    requests: list = field(default_factory=list)
    documents: list = field(default_factory=list)
    waiting: Waiting | None = None
    call: Call | None = None
    pending_xml: list[str] | None = None  # XML fragments of the document being built
    answering: str | None = None  # "seq:kind" of the callback the pending document answers
    served: dict = field(default_factory=dict)  # "seq:kind" -> index in documents (replays)
    sprint: dict = field(default_factory=dict)  # node -> visits since the last outside event
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    flow_revision: str = ""  # the revision of the flow file the run started on (and finishes on)

    @property
    def finished(self) -> bool:
        """Completed or failed: no event changes it any more."""
        return self.status in ("completed", "failed")

    def waits_for(self, reason: WaitReason, seq: int) -> bool:
        """Does the run wait for `reason` at step `seq`?"""
        waiting = self.waiting
        return waiting is not None and waiting.reason is reason and waiting.seq == seq

    def record(self) -> dict:
        """The public run record (contract section 3)."""
        return {
            "run_id": self.run_id,
            "flow_id": self.flow_id,
            "flow_revision": self.flow_revision or None,
            "status": self.status,
            "error": self.error,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "path": list(self.path),
            "steps": [s.record() for s in self.steps],
            "requests": [dict(r) for r in self.requests],
            "documents": list(self.documents),
            "variables": self.variables,
        }

    def to_json(self) -> str:
        """The state as compact JSON, for the store."""
        # Not dataclasses.asdict: it deep-copies every list and dict first (~10x slower, and
        # the service saves the state on every event).
        data = {name: getattr(self, name) for name in _FIELDS}
        data["steps"] = list(map(_step_row, self.steps))
        data["waiting"] = self.waiting.to_json() if self.waiting is not None else None
        data["call"] = self.call.to_json() if self.call is not None else None
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunState":
        """A state from `to_json`'s text, or from a run stored by an earlier version."""
        data = json.loads(text)
        for old, new in _RENAMED.items():
            if old in data:
                data[new] = data.pop(old)
        data["steps"] = [Step(*row) for row in data.get("steps", ())]
        if data.get("waiting") is not None:
            data["waiting"] = Waiting.from_json(data["waiting"])
        if data.get("call") is not None:
            data["call"] = Call.from_json(data["call"])
        return cls(**data)


_FIELDS = tuple(f.name for f in fields(RunState))
_RENAMED = {"doc": "pending_xml", "doc_key": "answering"}  # stored key before -> field
