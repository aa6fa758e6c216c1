"""Run state: everything the executor needs between two events, as plain JSON-able data,
so that any process can store it and any other can pick the run up."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class RunState:
    run_id: str
    flow_id: str
    status: str = "running"  # running | waiting | completed | failed
    variables: dict = field(default_factory=dict)  # node name -> outputs
    path: list = field(default_factory=list)
    steps: list = field(default_factory=list)  # [node, type, outcome, started, ended, error]
    requests: list = field(default_factory=list)
    documents: list = field(default_factory=list)
    waiting: dict | None = None  # {"node", "seq", "for": response|call|input|hangup}
    call: dict | None = None  # the call this run controls
    doc: list | None = None  # XML fragments of the document being built
    doc_key: str | None = None  # "seq:kind" of the callback the document answers
    served: dict = field(default_factory=dict)  # "seq:kind" -> index in documents (replays)
    sprint: dict = field(default_factory=dict)  # node -> visits since the last outside event
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed")

    def record(self) -> dict:
        """The public run record (contract section 3)."""
        return {
            "run_id": self.run_id,
            "flow_id": self.flow_id,
            "status": self.status,
            "error": self.error,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "path": list(self.path),
            "steps": [
                {"node": s[0], "type": s[1], "outcome": s[2], "started_at": iso(s[3]),
                 "ended_at": iso(s[4]), "error": s[5]}
                for s in self.steps
            ],
            "requests": [dict(r) for r in self.requests],
            "documents": list(self.documents),
            "variables": self.variables,
        }

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies every list and dict first (~10x slower, and
        # the service saves the state on every event).
        return json.dumps({name: getattr(self, name) for name in _FIELDS}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "RunState":
        return cls(**json.loads(text))


_FIELDS = tuple(f.name for f in fields(RunState))
