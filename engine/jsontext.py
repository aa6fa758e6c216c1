"""JSON text from the outside world (run requests, `--payload`, API bodies), decoded strictly.

Python's `json` reads `NaN`, `Infinity` and `-Infinity`, which are not JSON (RFC 8259) and
which no other client would send or accept back; every shell that decodes JSON it was given
refuses them through `loads_json_strict`. Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads_json_strict"]


def _refuse_constant(name: str):
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def loads_json_strict(text: str | bytes, *, finite: bool = False) -> Any:
    """Decode JSON text, refusing the non-JSON constants NaN, Infinity and -Infinity.

    Bytes are read as UTF-8 (a leading byte order mark is skipped). With ``finite=True``,
    numbers too large for a float (``1e999``, which `json` reads as infinity) are refused too.
    Raises ValueError (`json.JSONDecodeError` for text that is not JSON, UnicodeDecodeError
    for bytes that are not UTF-8) or RecursionError (nesting too deep)::

        loads_json_strict('{"to": "+12025550100"}')  # {'to': '+12025550100'}
        loads_json_strict('{"n": NaN}')              # JSONDecodeError: NaN is not a JSON value
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8-sig")
    if finite:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    return json.loads(text, parse_constant=_refuse_constant)
