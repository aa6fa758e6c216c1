"""Call records (Plivo's CDRs, `calls.get`) read as the hangup callback they stand for.

Pure functions, shared by the service's reconciliation (engine/service/reconcile.py) and the
local shell (engine/local/run.py), so both turn an ended call's record into the same event.
"""

from __future__ import annotations


def call_status(record: dict) -> str:
    """A CDR's outcome as a hangup callback's CallStatus."""
    if record.get("answer_time"):
        return "completed"
    name = str(record.get("hangup_cause_name") or "").lower()
    if "busy" in name or "rejected" in name:
        return "busy"
    if "no answer" in name or "ring timeout" in name:
        return "no-answer"
    if "cancel" in name:
        return "cancel"
    return "failed"


def hangup_params(record: dict, call_uuid: str | None) -> dict:
    """The hangup callback's params from an ended call's record."""
    params = {"CallUUID": record.get("call_uuid") or call_uuid or "", "From": str(record.get("from_number") or ""),
              "To": str(record.get("to_number") or ""), "Direction": str(record.get("call_direction") or ""),
              "CallStatus": call_status(record), "Event": "Hangup",
              "HangupCause": str(record.get("hangup_cause_name") or "Unknown"),
              "HangupSource": str(record.get("hangup_source") or ""),
              "Duration": str(record.get("call_duration") or 0), "BillDuration": str(record.get("bill_duration") or 0),
              "EndTime": str(record.get("end_time") or ""), "CallflowReconciled": "true"}
    if record.get("answer_time"):
        params["AnswerTime"] = str(record["answer_time"])
    return params
