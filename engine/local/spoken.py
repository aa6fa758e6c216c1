"""What a caller hears and what a node did, in words, and lines cut to the width of a compact
report: shared by `callflow run`'s trace (engine/local/trace.py) and `callflow call`
(engine/local/call_command.py)."""

from __future__ import annotations

from engine.plivoxml import parse as parse_xml

__all__ = ["WIDTH", "fit", "heard", "step_detail"]

WIDTH = 120  # at most this many characters a line in the compact trace


def fit(line: str, width: int = WIDTH) -> str:
    """One line of at most `width` characters (cut with an ellipsis)."""
    line = " ".join(line.split()) if "\n" in line else line
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def heard(xml: str) -> str:
    """What a callee hears from a Plivo XML document, in words: `says "..."`, `plays URL`."""
    try:
        root = parse_xml(xml)
    except Exception:  # noqa: BLE001 - an invalid document: show it as it is
        return f"serves {xml}"
    parts: list[str] = []

    def walk(elements) -> None:
        for el in elements:
            tag = el.tag
            if tag == "Speak":
                text = "".join([el.text or ""] + [(c.text or "") + (c.tail or "") for c in el.children])
                quoted = f'"{" ".join(text.split())}"'
                if parts and parts[-1].startswith("says "):  # one `says` for speech in a row
                    parts[-1] += " " + quoted
                else:
                    parts.append("says " + quoted)
            elif tag == "Play":
                parts.append(f"plays {el.text}")
            elif tag == "Wait":
                parts.append(f"waits {dict(el.attrs).get('length', 1)} s")
            elif tag in ("GetDigits", "GetInput"):
                walk(el.children)
                kinds = dict(el.attrs).get("inputType", "dtmf")
                parts.append("waits for " + {"speech": "speech", "dtmf speech": "digits or speech"}.get(kinds, "digits"))
            elif tag == "Dial":
                parts.append("forwards to " + ", ".join((c.text or "").strip() for c in el.children))
            elif tag == "Record":
                if dict(el.attrs).get("startOnDialAnswer") != "true":
                    parts.append("records")
            elif tag == "Conference":
                parts.append(f"joins conference {(el.text or '').strip()}")
            elif tag == "Hangup":
                parts.append("hangs up")
            elif tag == "Redirect":
                if (el.text or "").strip().endswith("/redirect"):  # served before a request (no dead air)
                    parts.append("then silence until the request is done")
            else:
                parts.append(f"<{tag}>")

    walk(root.children)
    return ", ".join(parts) if parts else "(silence)"


def step_detail(kind: str, outputs) -> str:
    """A few words on what a node did, from its outputs: the number, the digits, the status."""
    if not isinstance(outputs, dict):
        return ""
    if kind == "call_out":
        return f"to {outputs.get('to')}" if outputs.get("to") else ""
    if kind in ("get_input", "ivr_menu"):
        digits, speech = outputs.get("digits"), outputs.get("speech")
        return f'said "{speech}"' if speech else f"digits {digits}" if digits else "nothing pressed"
    if kind == "business_hours":
        return f"{outputs.get('weekday')} {outputs.get('local_time')}"
    if kind == "call_forward" and outputs.get("to"):
        return f"bridged to {outputs['to']} for {outputs.get('duration')} s"
    if kind == "record" and outputs.get("duration"):
        return f"{outputs['duration']} s recorded"
    if kind == "counter":
        return f"count {outputs.get('count')}"
    if kind == "http_request" and outputs.get("status_code"):  # 0: no response at all
        return f"HTTP {outputs['status_code']}"
    return ""
