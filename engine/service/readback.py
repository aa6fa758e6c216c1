"""Whatever was stored can be shown: run records as JSON even when an old record holds a
value JSON cannot carry, and page cursors checked before they reach the store.

Payloads are checked at the door (`payload_problems` in engine/events.py), but a record
stored by an older callflow may still hold an infinity, a NaN or a lone surrogate;
`readable_json` then shows it as text (`"Infinity"`, U+FFFD) rather than failing the read.
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse

MAX_CURSOR = 2**63 - 1  # cursors are row ids: positive 64-bit whole numbers, no leading zero


def valid_cursor(text: str) -> bool:
    """Whether `text` is a cursor the store can have handed out (`next_cursor`)."""
    return (0 < len(text) <= 19 and text.isascii() and text.isdigit() and text[0] != "0"
            and int(text) <= MAX_CURSOR)


def readable_json(data, status_code: int = 200) -> JSONResponse:
    """A JSONResponse of `data`; values JSON cannot carry are shown as text instead."""
    try:
        return JSONResponse(data, status_code=status_code)
    except (ValueError, UnicodeEncodeError):
        return JSONResponse(_readable(data), status_code=status_code)


def _readable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, str):
        return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value) if _unpaired(value) else value
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_readable(v) for v in value]
    return value


def _unpaired(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
