"""Build and check Plivo XML.

When a call reaches an answer/action URL, Plivo fetches a ``<Response>``
document (at most 100 KB) listing the verbs to run: Speak, Play, GetDigits,
Dial... It refuses documents with unknown verbs or wrong nesting, so we check
what we (or an app under test) would serve the same way before Plivo sees it.

* :func:`element` / :class:`Element` -- an immutable element tree.
* :func:`render` -- elements -> ``<Response>...</Response>`` on one line. Runs on
  the executor's hot path, so it is plain string building, no ElementTree.
* :func:`parse` -- untrusted text -> Element tree, checked: size cap, no
  DOCTYPE/ENTITY (entity expansion and external entities are the classic XML
  attacks, so we refuse them before any parser sees the text), well-formedness,
  root, known tags, nesting, required URLs. Any problem -> :class:`PlivoXMLError`.

Nesting rules come from the facts sheet (shared/reference/plivo-facts.md) and
were checked against the official SDK (plivo-python 4.63.0, ``plivo/xml/*``
``_nestable`` lists). They agree on every verb. Where the facts sheet is
silent the SDK is followed:
  * SSML inside Speak: the facts sheet says "SSML only"; the SDK also limits
    what each SSML tag may hold (e.g. ``w`` may not hold ``p``); we enforce the
    SDK's per-tag lists (``_SSML_CHILDREN``).
  * The SDK lets Speak (and SSML) hold ``cont``, but that is an SDK-internal
    helper: ``to_string`` replaces ``<cont>``/``</cont>`` with spaces, so it
    never reaches Plivo. We do not accept ``cont``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.errors import PlivoXMLError

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "Element",
    "PlivoXMLError",
    "element",
    "parse",
    "render",
]

MAX_BYTES = 102400  # Plivo's limit for an answer document (100 KB)
MAX_DEPTH = 64  # far beyond any real document; keeps our recursion bounded


@dataclass(frozen=True, slots=True)
class Element:
    """One XML element.

    ``tail`` is the text that follows the element inside its parent, needed for
    SSML mixed content (``<Speak>Hi <break time="1s"/> there</Speak>``: the
    break's tail is " there"). It is always None outside Speak.
    """

    tag: str
    attrs: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    children: tuple[Element, ...] = ()
    tail: str | None = None


def element(tag: str, text: str | None = None, children: Iterable[Element] = (), **attrs) -> Element:
    """Build an Element. Attributes keep keyword order; None values are
    dropped; bools become "true"/"false" (Plivo's spelling), numbers str()."""
    pairs = []
    for name, value in attrs.items():
        if value is None:
            continue
        if value is True:
            value = "true"
        elif value is False:
            value = "false"
        elif isinstance(value, str):
            pass
        elif isinstance(value, (int, float)):
            value = str(value)
        else:
            raise TypeError(f"{tag}.{name}: attribute value must be str, bool, int or float, not {type(value).__name__}")
        pairs.append((name, value))
    if text is not None and not isinstance(text, str):
        raise TypeError(f"{tag}: text must be str or None, not {type(text).__name__}")
    return Element(tag, tuple(pairs), text, tuple(children))


# --------------------------------------------------------------------------- render

# Characters XML 1.0 cannot carry at all (not even as &#..;). They can only
# come from user data (TTS text, URLs); Plivo would reject the whole document,
# so we drop them rather than fail the call.
_INVALID_XML_CHARS = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _fix_text(s: str) -> str:
    # Slow path, only for strings with non-printable characters.
    s = _INVALID_XML_CHARS.sub("", s)
    # A parser turns a raw CR (or CRLF) into LF; a character reference survives.
    # LF is written as a reference too so the document stays on one line.
    return s.replace("\r", "&#13;").replace("\n", "&#10;")


def _fix_attr(s: str) -> str:
    s = _INVALID_XML_CHARS.sub("", s)
    # A parser turns raw tab/newline/CR in attribute values into spaces.
    return s.replace("\r", "&#13;").replace("\n", "&#10;").replace("\t", "&#9;")


def _esc_text(s: str) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # isprintable() is a cheap C scan; almost all text takes the fast path.
    return s if s.isprintable() else _fix_text(s)


def _esc_attr(s: str) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return s if s.isprintable() else _fix_attr(s)


def _emit(el: Element, out: list[str]) -> None:
    tag = el.tag
    if el.attrs:
        head = "<" + tag + "".join([" " + k + '="' + _esc_attr(v) + '"' for k, v in el.attrs])
    else:
        head = "<" + tag
    if el.text or el.children:
        out.append(head + ">")
        if el.text:
            out.append(_esc_text(el.text))
        for child in el.children:
            _emit(child, out)
        out.append("</" + tag + ">")
    else:
        out.append(head + "/>")
    if el.tail:
        out.append(_esc_text(el.tail))


def render(elements: Sequence[Element]) -> str:
    """``<Response>...</Response>`` on one line, no XML declaration, no
    whitespace between elements. Tags and attribute names are trusted (they
    come from our code); text and attribute values are escaped. Not validated:
    run :func:`parse` on the output in tests if in doubt."""
    out = ["<Response>"]
    for el in elements:
        _emit(el, out)
    out.append("</Response>")
    return "".join(out)


def render_fragment(el: Element) -> str:
    """One element as `render` writes it inside <Response>: a piece of a document that
    `"<Response>" + "".join(fragments) + "</Response>"` completes."""
    out: list[str] = []
    _emit(el, out)
    return "".join(out)


# --------------------------------------------------------------------------- rules

# Verbs allowed directly in <Response> (facts sheet == SDK ResponseElement).
_RESPONSE_CHILDREN = frozenset({
    "Speak", "Play", "GetDigits", "GetInput", "Dial", "Record", "Conference", "Wait",
    "Hangup", "Redirect", "PreAnswer", "DTMF", "Message", "MultiPartyCall", "Stream",
})

# SSML tags and what each may hold (SDK plivo/xml/*Element.py, minus "cont").
_SSML_INLINE = frozenset({"break", "emphasis", "lang", "phoneme", "prosody", "say-as", "sub", "w"})
_SSML_CHILDREN: dict[str, frozenset[str]] = {
    "break": frozenset(),
    "phoneme": frozenset(),
    "say-as": frozenset(),
    "sub": frozenset(),
    "emphasis": _SSML_INLINE,
    "s": _SSML_INLINE,
    "p": _SSML_INLINE | {"s"},
    "lang": _SSML_INLINE | {"p", "s"},
    "prosody": _SSML_INLINE | {"p", "s"},
    "w": frozenset({"break", "emphasis", "phoneme", "prosody", "say-as", "sub"}),
}
_SPEAK_CHILDREN = frozenset(_SSML_CHILDREN)

_ALLOWED_CHILDREN: dict[str, frozenset[str]] = {
    "Response": _RESPONSE_CHILDREN,
    "Dial": frozenset({"Number", "User"}),
    "GetDigits": frozenset({"Speak", "Play", "Wait"}),
    "GetInput": frozenset({"Speak", "Play", "Wait"}),
    "PreAnswer": frozenset({"Speak", "Play", "Wait", "GetDigits", "Redirect", "Message", "DTMF"}),
    "Speak": _SPEAK_CHILDREN,
    # Leaves: no element children.
    **{tag: frozenset() for tag in (
        "Play", "Record", "Conference", "Wait", "Hangup", "Redirect", "DTMF", "Message",
        "MultiPartyCall", "Stream", "Number", "User",
    )},
    **_SSML_CHILDREN,
}

# Elements that only group other elements: any text in them is a mistake
# (whitespace from pretty-printing is fine and dropped).
_CONTAINERS = frozenset({"Response", "Dial", "GetDigits", "GetInput", "PreAnswer"})
# Verbs whose text is a URL Plivo must fetch.
_NEEDS_URL = frozenset({"Play", "Redirect"})

_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
# Checked on the raw text, before parsing. Also matches inside comments/CDATA:
# refusing those rare documents is the price of never parsing a DTD.
_DECL_RE = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _allowed_note(tag: str) -> str:
    allowed = _ALLOWED_CHILDREN[tag]
    if not allowed:
        return f"{tag} takes no child elements"
    return f"{tag} allows: {', '.join(sorted(allowed))}"


def _short(s: str, n: int = 40) -> str:
    s = s.strip()
    return repr(s if len(s) <= n else s[:n] + "...")


def _convert(node: ET.Element, path: str, depth: int) -> Element:
    """Check ``node`` (already known to be allowed where it is) and its subtree."""
    tag = node.tag
    if depth > MAX_DEPTH:
        raise PlivoXMLError(f"elements nested more than {MAX_DEPTH} deep at {path}")

    attrs = []
    for name, value in node.attrib.items():
        if name.startswith(_XML_NS):
            name = "xml:" + name[len(_XML_NS):]
        elif name.startswith("{"):
            raise PlivoXMLError(f"namespaced attribute {name!r} is not supported (at {path})")
        attrs.append((name, value))

    container = tag in _CONTAINERS
    text = node.text or None
    if container and text is not None:
        if text.strip():
            raise PlivoXMLError(f"{tag} may not contain text, found {_short(text)} (at {path})")
        text = None

    allowed = _ALLOWED_CHILDREN[tag]
    children = []
    seen: dict[str, int] = {}
    for child in node:
        ctag = child.tag
        seen[ctag] = seen.get(ctag, 0) + 1
        cpath = f"{path}/{ctag}[{seen[ctag]}]"
        if not isinstance(ctag, str) or ctag not in _ALLOWED_CHILDREN:
            hint = " (XML namespaces are not supported)" if str(ctag).startswith("{") else ""
            raise PlivoXMLError(f"unknown tag {ctag!r}{hint} (at {cpath})")
        if ctag not in allowed:
            raise PlivoXMLError(f"{tag} may not contain {ctag} (at {cpath}; {_allowed_note(tag)})")
        converted = _convert(child, cpath, depth + 1)
        tail = child.tail or None
        if tail is not None and container:
            if tail.strip():
                raise PlivoXMLError(f"{tag} may not contain text, found {_short(tail)} after {cpath}")
            tail = None
        if tail is not None:
            converted = Element(converted.tag, converted.attrs, converted.text, converted.children, tail)
        children.append(converted)

    if tag in _NEEDS_URL and not (text and text.strip()):
        raise PlivoXMLError(f"{tag} needs a URL as its text, found none (at {path})")
    return Element(tag, tuple(attrs), text, tuple(children))


def parse(xml_text: str | bytes) -> Element:
    """Parse and check a Plivo XML document; return the Response Element.

    Bytes must be UTF-8 (a BOM is allowed); a str is taken as already decoded
    (its XML declaration's encoding is ignored). Raises PlivoXMLError.
    """
    if isinstance(xml_text, (bytes, bytearray, memoryview)):
        raw = bytes(xml_text)
        size = len(raw)
        if size > MAX_BYTES:
            raise PlivoXMLError(f"document is {size} bytes, over the {MAX_BYTES}-byte limit")
        try:
            # Decoding ourselves means the DOCTYPE check below cannot be
            # dodged with another encoding (UTF-16, UTF-7...).
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise PlivoXMLError(f"document is not valid UTF-8: {e}") from None
    elif isinstance(xml_text, str):
        text = xml_text
        # Cheap bound first: every char is at least one UTF-8 byte.
        if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            size = len(text.encode("utf-8", "surrogatepass"))
            raise PlivoXMLError(f"document is {size} bytes, over the {MAX_BYTES}-byte limit")
    else:
        raise TypeError(f"parse() takes str or bytes, not {type(xml_text).__name__}")

    m = _DECL_RE.search(text)
    if m:
        raise PlivoXMLError(
            f"DOCTYPE/ENTITY declarations are not allowed (found {m.group(0)!r} at offset {m.start()})"
        )
    if not text.strip():
        raise PlivoXMLError("document is empty")

    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise PlivoXMLError(f"malformed XML: {e}") from None
    except (ValueError, UnicodeError) as e:  # e.g. lone surrogates in a str
        raise PlivoXMLError(f"malformed XML: {e}") from None

    if root.tag != "Response":
        hint = " (XML namespaces are not supported)" if str(root.tag).startswith("{") else ""
        raise PlivoXMLError(f"root element must be Response, not {root.tag!r}{hint}")
    return _convert(root, "/Response", 1)
