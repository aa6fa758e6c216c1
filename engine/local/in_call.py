"""Scenario parts for what happens during a call (engine.local.scenario uses them): what a
callee says (`speech`), records (`record`), how the numbers a Dial forwards to behave
(`forward`), the room a Conference puts it in (`conference`), and the fixed clock (`now:`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine import codes
from engine.scalar_fields import phone_problem

FORWARD_RESULTS = ("answered", "busy", "no_answer", "failed")  # a forwarded number (<Dial>)


@dataclass(frozen=True)
class Recording:
    """What the caller leaves at a `<Record>`: `duration` seconds, ended by `digits` (a key)
    or, when "", by silence."""

    duration: float = 0.0
    digits: str = ""


def in_call_behaviour(doc, path, spec: dict) -> dict:
    """`speech`, `record` and `forward` of a behaviour: what the callee says, records, and how
    the numbers a <Dial> forwards it to behave."""
    speech = spec.get("speech")
    if speech is None:
        speech = ()
    elif isinstance(speech, str):
        speech = (speech,)
    elif isinstance(speech, list) and all(isinstance(s, str) for s in speech):
        speech = tuple(speech)
    else:
        doc.diag(path + ("speech",), codes.WRONG_TYPE, "speech is what is said (text) or a list, one per prompt")
        speech = ()
    record = spec.get("record")
    if record is not None:
        duration = record.get("duration") if isinstance(record, dict) else None
        ended_by = record.get("digits", "") if isinstance(record, dict) else ""
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0 \
                or not isinstance(ended_by, str) or set(record) - {"duration", "digits"}:
            doc.diag(path + ("record",), codes.WRONG_TYPE,
                     "record is {duration: seconds, digits: the key that ends it (optional)}")
            record = None
        else:
            record = Recording(float(duration), ended_by)
    forward = spec.get("forward") or {}
    if not isinstance(forward, dict):
        doc.diag(path + ("forward",), codes.WRONG_TYPE, f"forward maps a number to one of {', '.join(FORWARD_RESULTS)}")
        forward = {}
    for number, result in forward.items():
        problem = phone_problem(str(number))
        if problem:
            doc.diag(path + ("forward", number), codes.INVALID_PHONE, problem, key=True)
        if result not in FORWARD_RESULTS:
            doc.diag(path + ("forward", number), codes.INVALID_CHOICE,
                     f"{result!r} is not one of: {', '.join(FORWARD_RESULTS)}")
    room = spec.get("conference") or {}
    if not isinstance(room, dict) or set(room) - {"members", "stay"} or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in room.values()):
        doc.diag(path + ("conference",), codes.WRONG_TYPE,
                 "conference is {members: already in the room, stay: seconds in it}")
        room = {}
    return {"speech": speech, "record": record, "forward": {str(k): v for k, v in forward.items()}, "conference": room}


def parse_now(value) -> float | str:
    """`now: "2026-12-24T16:00:00-05:00"` (ISO 8601 with its UTC offset) -> epoch seconds, or
    what is wrong. An offset is required: a time without one means a different instant on
    every machine."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return f"{value!r} is not a time: write ISO 8601 with its offset, e.g. 2026-12-24T16:00:00-05:00"
    else:
        return "now is a time: ISO 8601 with its offset, e.g. 2026-12-24T16:00:00-05:00"
    if moment.tzinfo is None:
        return f"{value!s} has no UTC offset: add one (-05:00, +01:00, Z)"
    return moment.timestamp()


def parse_now_at(doc, path, value) -> float | None:
    """`parse_now`, its problem reported at `path` of `doc`."""
    now = parse_now(value)
    if isinstance(now, str):
        doc.diag(path, codes.WRONG_TYPE, now)
        return None
    return now

