"""An incoming call's or message's parameters as users give them (`callflow call`, `callflow
message`, `callflow run --call-from / --message-from`, POST /sandbox/inbound and
/sandbox/inbound-message): light enough for the command line to import at once."""

from __future__ import annotations

import re

__all__ = ["APP_URL", "DEFAULT_TO", "FLOW_ID", "MAX_TEXT", "RUN_HEADER", "SIP_PART", "message_params", "parse_sip_headers"]

DEFAULT_TO = "+12025551234"  # the number dialled when none is given
SIP_PART = re.compile(r"[A-Za-z0-9]+")  # a custom SIP header's name or value (plivo-facts)
FLOW_ID = re.compile(r"[a-z0-9-]+")
APP_URL = re.compile(r"https?://[^\s/?#]+[^\s]*")  # an application's answer (or hangup) URL
RUN_HEADER = "X-Callflow-Run-Id"  # serve's answer to an incoming message names the run it started
MAX_TEXT = 1600  # characters of an SMS text: what Plivo's Message API sends (longer is split, then refused)


def parse_sip_headers(pairs) -> dict:
    """NAME=VALUE pairs (or a mapping) -> {name: value}, names and values letters and digits
    only; `X-PH-tier` means `tier` (the prefix is how the provider delivers a header, so users
    copy it from there). Raises ValueError naming the bad pair."""
    items = pairs.items() if isinstance(pairs, dict) else (p.partition("=")[::2] for p in pairs)
    headers = {}
    for name, value in items:
        name, value = str(name), value if isinstance(value, str) else str(value)
        if name[:5].lower() == "x-ph-":
            name = name[5:]
        if not SIP_PART.fullmatch(name) or not SIP_PART.fullmatch(value):
            raise ValueError(f"{name}={value!r} is not NAME=VALUE with letters and digits only "
                             "(e.g. tier=gold, sent as X-PH-tier)")
        headers[name] = value
    return headers


def message_params(sender: str, number: str, text: str, message_uuid: str) -> dict:
    """The parameters Plivo posts to an application's message URL for an incoming SMS (its
    "Handling incoming SMS/MMS" reference): the sender, the number it was sent to, the text,
    its type and its unique id, with the counts and charges an SMS of one unit has."""
    return {"From": sender, "To": number, "Text": text, "Type": "sms", "MessageUUID": message_uuid,
            "Units": "1", "TotalRate": "0.00000", "TotalAmount": "0.00000", "MessageIntent": "",
            "PowerpackUUID": ""}
