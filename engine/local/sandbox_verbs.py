"""The sandbox's `<Record>`, `<Dial>` and `<Conference>`: what a simulated call does with them.

Each `play_*` takes the call (`engine.local.sandbox.SimulatedCall`), the element and the
seconds since the call was answered; it returns the callback that fetches the next document
(the element's action, posted with Plivo's params) or None to go on with the next element,
and the seconds after it. The scenario says what happens (docs/testing.md):

* Record: the callee's `record: {duration, digits}`; no `record:` records nothing (silence
  ends it after the element's `timeout`), and the call moves on to the next element.
* Dial: the callee's `forward: {number: answered|busy|no_answer|failed}` (a number not
  listed answers). The numbers of one Dial ring together; the first that answers (in
  document order) is bridged for `BRIDGE_SECONDS` (at most the Dial's `timeLimit`), then
  hangs up, and the caller goes on. `confirmSound` is fetched and the callee presses
  `confirmKey` (a forwarded number that answers accepts the call).
* Conference: the callee's `conference: {members, stay}`: the caller joins a room with
  `members` in it already (0; at `maxMembers` it is full and the call goes on with the next
  element), stays `stay` seconds (`ROOM_SECONDS`; at most `timeLimit`), then leaves; the
  element's callbackUrl hears `enter` and `exit`, then its action is posted.
"""

from __future__ import annotations

import uuid

RING_SECONDS = 4.0  # a forwarded number that answers does so after this long
BRIDGE_SECONDS = 30.0  # how long a bridged forwarded call lasts
ROOM_SECONDS = 60.0  # how long a caller stays in a conference
SPEECH_CONFIDENCE = "0.92"  # what the sandbox's speech recognition says of itself
RECORDING_URL = "https://media.plivo.com/v1/Account/{account}/Recording/{id}.{format}"
DIAL_STATUS = {"busy": "busy", "no_answer": "no-answer", "failed": "failed"}
DIAL_CAUSE = {"busy": "USER_BUSY", "no_answer": "NO_ANSWER", "failed": "UNALLOCATED_NUMBER"}


def _action(call, el, event: str, extra: dict, elapsed: float):
    attrs = dict(el.attrs)
    if not attrs.get("action"):
        return None, elapsed
    params = call._params("in-progress", event)
    params.update(extra)
    return call._callback("action", "", params, url=attrs["action"], method=attrs.get("method"),
                          elapsed=elapsed), elapsed


def play_record(call, el, elapsed: float):
    attrs = dict(el.attrs)
    if attrs.get("startOnDialAnswer") == "true":  # records the next Dial's bridged call instead
        call.dial_record = attrs.get("action")
        return None, elapsed
    silence = float(attrs.get("timeout", 15))
    recording = call.behaviour.record
    if recording is None or recording.duration <= 0:
        return None, elapsed + silence  # nothing said: nothing recorded, nothing posted
    longest = float(attrs.get("maxLength", 60))
    seconds = min(recording.duration, longest)
    ended_by = recording.digits if recording.digits and recording.digits in attrs.get("finishOnKey", "1234567890*#") else ""
    start_ms = int((elapsed + (1 if attrs.get("playBeep", "true") == "true" else 0)) * 1000)
    elapsed += seconds + (0.0 if ended_by or seconds >= longest else silence)
    rid = str(uuid.uuid4())
    url = RECORDING_URL.format(account=call.account, id=rid, format=attrs.get("fileFormat", "mp3"))
    return _action(call, el, "Record", {
        "RecordUrl": url, "RecordingID": rid, "RecordingDuration": str(int(round(seconds))),
        "RecordingDurationMs": str(int(seconds * 1000)), "RecordingStartMs": str(start_ms),
        "RecordingEndMs": str(start_ms + int(seconds * 1000)), "Digits": ended_by}, elapsed)


def heard(call, el, digits: list) -> dict | None:
    """The action params of a GetDigits or GetInput the callee answers, or None (no input).
    A GetDigits takes the next `digits` entry; a GetInput the next `speech` entry when it
    takes speech and the next `digits` entry when it takes dtmf (speech wins when both)."""
    kinds = dict(el.attrs).get("inputType", "dtmf").split() if el.tag == "GetInput" else ["dtmf"]
    said = call.speech_left.pop(0) if "speech" in kinds and call.speech_left else ""
    pressed = before_finish_key(digits.pop(0) if "dtmf" in kinds and digits else "",
                                dict(el.attrs).get("finishOnKey", "#"))
    if not (said or pressed):
        return None
    params = call._params("in-progress", el.tag)
    if el.tag == "GetDigits":
        params["Digits"] = pressed
    elif said:
        params.update(InputType="speech", Speech=said, SpeechConfidenceScore=SPEECH_CONFIDENCE, BargeIn="false")
    else:
        params.update(InputType="dtmf", Digits=pressed, BargeIn="false")
    return params


def before_finish_key(pressed: str, key: str) -> str:
    """The digits as the action gets them: Plivo stops at the finish key and leaves it out."""
    if len(key) == 1 and key in "0123456789*#" and key in pressed:
        return pressed.split(key, 1)[0]
    return pressed


def input_timeout(el) -> float:
    """How long a GetDigits (`timeout`, 5 s) or GetInput (`executionTimeout`, 15 s) waits."""
    attrs = dict(el.attrs)
    return float(attrs.get("executionTimeout", 15)) if el.tag == "GetInput" else float(attrs.get("timeout", 5))


def dial_outcome(results: list[str]) -> str:
    """The Dial's outcome when nobody answered: busy if all were busy, failed if all failed,
    else no_answer (someone rang out)."""
    if all(r == "busy" for r in results):
        return "busy"
    if all(r == "failed" for r in results):
        return "failed"
    return "no_answer" if "no_answer" in results else "busy"


def play_dial(call, el, elapsed: float):
    """Ring the Dial's numbers; bridge the first that answers (a generator: the confirm
    sound is fetched from the app)."""
    attrs = dict(el.attrs)
    targets = [(c.text or "").strip() for c in el.children if c.tag in ("Number", "User")]
    results = [call.behaviour.forward.get(t, "answered") for t in targets]
    ring = float(attrs.get("timeout", 30))
    b_leg = str(uuid.uuid4())
    if "answered" in results:
        to = targets[results.index("answered")]
        if attrs.get("confirmSound"):  # call screening: the callee hears it, then presses confirmKey
            params = call._params("in-progress", "DialConfirm")
            params.update(DialBLegUUID=b_leg, DialBLegTo=to)
            fetch = call._callback("confirm", "", params, url=attrs["confirmSound"], method="POST")
            if fetch is not None:
                yield fetch
        talk = min(BRIDGE_SECONDS, float(attrs.get("timeLimit", BRIDGE_SECONDS)))
        elapsed += min(RING_SECONDS, ring) + talk
        recorded = yield from _dial_recording(call, talk, elapsed)
        extra = {"DialStatus": "completed", "DialRingStatus": "true", "DialHangupCause": "NORMAL_CLEARING",
                 "DialBLegUUID": b_leg, "DialBLegTo": to, "DialBLegDuration": str(int(talk)), **recorded}
    else:
        outcome = dial_outcome(results)
        elapsed += ring if outcome == "no_answer" else 1.0
        extra = {"DialStatus": DIAL_STATUS[outcome], "DialRingStatus": str(outcome == "no_answer").lower(),
                 "DialHangupCause": DIAL_CAUSE[outcome], "DialBLegUUID": ""}
    extra["DialALegUUID"] = call.call_uuid
    return _action(call, el, "Dial", extra, elapsed)


def _dial_recording(call, seconds: float, elapsed: float):
    """The recording of a bridged Dial, posted (no XML expected) to the action of the
    `<Record startOnDialAnswer="true">` before it, if there was one."""
    action, call.dial_record = call.dial_record, None
    if not action:
        return {}
    rid = str(uuid.uuid4())
    params = call._params("in-progress", "Record")
    params.update(RecordUrl=RECORDING_URL.format(account=call.account, id=rid, format="mp3"), RecordingID=rid,
                  RecordingDuration=str(int(seconds)), RecordingDurationMs=str(int(seconds * 1000)))
    cb = call._callback("recording", "", params, url=action, method="POST", elapsed=elapsed)
    if cb is not None:
        yield cb
    return {}


def play_conference(call, el, elapsed: float):
    """Enter the room (its callbackUrl hears `enter`), stay, leave (`exit`, then the action).
    A full room (`conference: {members}` at maxMembers) refuses the caller: Plivo goes on
    with the next element."""
    attrs = dict(el.attrs)
    room_spec = call.behaviour.conference
    members = int(room_spec.get("members", 0))
    if members >= int(attrs.get("maxMembers", 20)):
        return None, elapsed
    stay = min(float(room_spec.get("stay", ROOM_SECONDS)), float(attrs.get("timeLimit", 86400)))
    room = (el.text or "").strip()
    ids = {"ConferenceName": room, "ConferenceUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"conference:{room}")),
           "ConferenceMemberID": str(members + 1)}
    for action, at in (("enter", elapsed), ("exit", elapsed + stay)):
        if attrs.get("callbackUrl"):
            params = call._params("in-progress", "Conference")
            params.update(ids, ConferenceAction=action)
            cb = call._callback("conference_event", "", params, url=attrs["callbackUrl"],
                                method=attrs.get("callbackMethod"), elapsed=at)
            if cb is not None:
                yield cb
    extra = dict(ids)
    if attrs.get("record") == "true":
        rid = str(uuid.uuid4())
        extra.update(RecordUrl=RECORDING_URL.format(account=call.account, id=rid,
                                                    format=attrs.get("recordFileFormat", "mp3")), RecordingID=rid)
    return _action(call, el, "Conference", extra, elapsed + stay)


def play_verb(call, el, elapsed: float):
    """(callback or None, seconds) for a Record, Dial or Conference; a generator (`yield from`)."""
    if el.tag == "Dial":
        return (yield from play_dial(call, el, elapsed))
    if el.tag == "Record":
        return play_record(call, el, elapsed)
    return (yield from play_conference(call, el, elapsed))


VERBS = frozenset({"Record", "Dial", "Conference"})
