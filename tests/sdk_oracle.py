"""The official Plivo SDK (`plivo.xml`) as an oracle for the XML our node types produce.

`sdk_rebuild(xml)` builds the document again element by element with the SDK's classes:
each attribute through the element's validated setter (`set_finish_on_key`...), so an
attribute the SDK does not know, or a value of a type it refuses, fails; each child through
`add`, so nesting the SDK refuses fails. `assert_sdk_accepts(xml)` also checks that the SDK
writes the same tree back (tags, attributes, text)."""

from __future__ import annotations

import inspect
import re
import xml.etree.ElementTree as ET

import plivo.xml as px

from engine.plivoxml import Element, parse

CLASSES = {c._name: c for _, c in inspect.getmembers(px, inspect.isclass)
           if issubclass(c, px.PlivoXMLElement) and c is not px.PlivoXMLElement}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _candidates(text: str) -> list:
    """The typed values an attribute's text may stand for, in the order tried."""
    out: list = [text]
    if text in ("true", "false"):
        out.insert(0, text == "true")
    if re.fullmatch(r"-?[0-9]+", text):
        out.append(int(text))
    return out


def _build(el: Element):
    cls = CLASSES.get(el.tag)
    assert cls is not None, f"the SDK has no element <{el.tag}>"
    params = inspect.signature(cls.__init__).parameters
    sdk = cls(content=el.text or "") if "content" in params else cls()
    if el.tag == "MultiPartyCall":
        sdk = cls(content=el.text or "", role="Agent")
    for name, text in el.attrs:
        setter = getattr(sdk, f"set_{_snake(name)}", None)
        assert setter is not None, f"<{el.tag}> has no attribute {name!r} in the SDK"
        errors = []
        for value in _candidates(text):
            try:
                setter(value)
                break
            except Exception as e:  # noqa: BLE001 - the SDK's ValidationError, or a conversion error
                errors.append(str(e))
        else:
            raise AssertionError(f"the SDK refuses <{el.tag} {name}={text!r}>: {errors}")
    for child in el.children:
        sdk.add(_build(child))  # PlivoXMLError when the SDK refuses the nesting
    return sdk


def sdk_rebuild(xml: str):
    """The SDK's ResponseElement for our document `xml`."""
    return _build(parse(xml))


def _shape(e: ET.Element):
    return (e.tag, dict(e.attrib), (e.text or "").strip() or None, [_shape(c) for c in e])


def assert_sdk_accepts(xml: str) -> None:
    """The SDK builds `xml` element by element and writes back the same tree."""
    sdk_xml = sdk_rebuild(xml).to_string(pretty=False)
    assert _shape(ET.fromstring(sdk_xml)) == _shape(ET.fromstring(xml)), (sdk_xml, xml)
