"""Plivo XML: render, parse/check, and the official SDK (plivo.xml) as an oracle."""

import inspect
import xml.etree.ElementTree as ET

import plivo.xml as px
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo.exceptions import PlivoXMLError as SDKPlivoXMLError

from engine.errors import PlivoXMLError
from engine.plivoxml import MAX_BYTES, Element, element, parse, render

# ------------------------------------------------------------------ element()


def test_element_attr_conversion_and_order():
    el = element("GetDigits", action="https://a.com/x", method="POST", timeout=5, redirect=None,
                 playBeep=True, log=False, ratio=1.5)
    assert el == Element(
        "GetDigits",
        (("action", "https://a.com/x"), ("method", "POST"), ("timeout", "5"),
         ("playBeep", "true"), ("log", "false"), ("ratio", "1.5")),
    )
    assert element("Speak", "hi", children=[element("break")]).children == (Element("break"),)


def test_element_refuses_odd_values():
    with pytest.raises(TypeError, match="timeout"):
        element("GetDigits", timeout=[5])
    with pytest.raises(TypeError, match="text"):
        element("Speak", 42)


# ------------------------------------------------------------------ render


def test_render_empty():
    assert render([]) == "<Response></Response>"


def test_render_escaping():
    out = render([element("Speak", 'Tom & Jerry <3 > "q" \'s', voice='x"y&z<w>')])
    assert out == (
        '<Response><Speak voice="x&quot;y&amp;z&lt;w&gt;">'
        "Tom &amp; Jerry &lt;3 &gt; \"q\" 's</Speak></Response>"
    )


def test_render_attribute_order_kept():
    out = render([element("Wait", silence=True, length=3, beep=False)])
    assert out == '<Response><Wait silence="true" length="3" beep="false"/></Response>'
    out = render([element("Wait", length=3, beep=False, silence=True)])
    assert out == '<Response><Wait length="3" beep="false" silence="true"/></Response>'


def test_render_nested_getdigits_one_line():
    doc = [
        element("GetDigits", children=[element("Speak", "Press 1"), element("Wait", length=2)],
                action="https://a.com/cb?x=1&y=2", method="POST", numDigits=1),
        element("Hangup"),
    ]
    assert render(doc) == (
        '<Response><GetDigits action="https://a.com/cb?x=1&amp;y=2" method="POST" numDigits="1">'
        '<Speak>Press 1</Speak><Wait length="2"/></GetDigits><Hangup/></Response>'
    )


def test_render_newlines_tabs_and_control_chars():
    out = render([element("Speak", "line1\nline2\r\nx\ty\x00\x07z\ufffe", voice="a\nb\tc")])
    assert "\n" not in out and "\r" not in out  # one line
    assert "\x00" not in out and "\x07" not in out and "\ufffe" not in out
    doc = parse(out)
    assert doc.children[0].text == "line1\nline2\r\nx\tyz"  # invalid XML chars dropped, rest exact
    assert doc.children[0].attrs == (("voice", "a\nb\tc"),)


def test_render_ssml_mixed_content():
    speak = Element("Speak", text="Hello ", children=(
        Element("break", (("time", "1s"),), tail=" world "),
        Element("lang", (("xml:lang", "fr-FR"),), text="bonjour"),
    ))
    out = render([speak])
    assert out == ('<Response><Speak>Hello <break time="1s"/> world '
                   '<lang xml:lang="fr-FR">bonjour</lang></Speak></Response>')


REPRESENTATIVE = [
    [],
    [element("Speak", "Welcome & hello", voice="Polly.Joanna", language="en-US", loop=1)],
    [
        element("Speak", "Hi"),
        element("GetDigits", action="https://a.com/cb", method="POST", timeout=5, numDigits=1,
                retries=1, validDigits="123", children=[
                    element("Speak", "Press 1 <or> 2"), element("Play", "https://a.com/a.mp3"),
                    element("Wait", length=1)]),
        element("Speak", "No input"),
        element("Redirect", "https://a.com/again?n=2&x=y", method="GET"),
    ],
    [
        element("PreAnswer", children=[element("Speak", "Early media"), element("DTMF", "123")]),
        element("Dial", callerId="+14155550100", timeout=20, sipHeaders="a=1,b=2", children=[
            element("Number", "+12025551234", sendDigits="ww12"),
            element("User", "sip:john1234@phone.plivo.com")]),
        element("Record", action="https://a.com/rec", maxLength=30, playBeep=True),
        element("Hangup", reason="busy", schedule=60),
    ],
    [
        Element("Speak", (("voice", "WOMAN"),), "Hello ", (
            Element("break", (("time", "500ms"),), tail=" and "),
            Element("emphasis", (("level", "strong"),), "welcome", tail=" "),
            Element("say-as", (("interpret-as", "spell-out"),), "ABC"),
            Element("prosody", (("rate", "slow"),), None, (Element("s", text="one"), Element("p", text="two"))),
            Element("lang", (("xml:lang", "fr-FR"),), "bonjour", tail="!"),
        )),
        element("Conference", "room-1", startConferenceOnEnter=True, endConferenceOnExit=False),
        element("Message", "hi there", src="+1415", dst="+1202", type="sms"),
        element("GetInput", action="https://a.com/in", inputType="speech", children=[element("Speak", "Say it")]),
        element("MultiPartyCall", "mpc-1", role="Agent"),
        element("Stream", "wss://a.com/ws", bidirectional=True),
    ],
]


@pytest.mark.parametrize("doc", REPRESENTATIVE, ids=range(len(REPRESENTATIVE)))
def test_round_trip(doc):
    out = render(doc)
    assert "\n" not in out
    assert parse(out) == Element("Response", children=tuple(doc))
    assert parse(out.encode("utf-8")) == Element("Response", children=tuple(doc))


# Strings XML can carry (render drops the others), any Unicode plane.
_xml_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\ufffe\uffff").filter(
        lambda c: c in "\t\n\r" or c >= " "
    ),
    min_size=1, max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(speak=_xml_text, url=_xml_text.filter(lambda s: s.strip()), attr=st.text(max_size=20).filter(
    lambda s: all(c in "\t\n\r" or (" " <= c and not "\ud800" <= c <= "\udfff" and c not in "\ufffe\uffff") for c in s)))
def test_round_trip_property(speak, url, attr):
    doc = [
        element("Speak", speak, voice=attr),
        element("GetDigits", action=attr, children=[element("Play", url)]),
        element("Redirect", url, method=attr),
    ]
    out = render(doc)
    assert "\n" not in out and "\r" not in out
    assert parse(out).children == tuple(doc)
    # ElementTree, an independent parser, reads the same values.
    root = ET.fromstring(out)
    assert root[0].text == speak and root[0].get("voice") == attr
    assert root[1][0].text == url


# ------------------------------------------------------------------ SDK oracle: same documents


def _shape(e: ET.Element):
    """Tags, attributes (order-free), text and tails of an XML tree."""
    return (e.tag, dict(e.attrib), e.text or None, e.tail or None, [_shape(c) for c in e])


def _unordered(el: Element) -> Element:
    return Element(el.tag, tuple(sorted(el.attrs)), el.text, tuple(map(_unordered, el.children)), el.tail)


def _sdk_docs():
    """(SDK ResponseElement, our elements) pairs describing the same document."""
    r1 = px.ResponseElement()
    r1.add_speak('Tom & Jerry <3 "q"', voice="WOMAN", language="en-US", loop=2)
    g = px.GetDigitsElement(action="https://a.com/x?a=1&b=2", method="POST", timeout=5,
                            num_digits=1, play_beep=True, finish_on_key="#", retries=1)
    g.add_speak("Press 1")
    g.add_play("https://a.com/m.mp3")
    g.add_wait(length=2)
    r1.add(g)
    r1.add_redirect("https://a.com/next", method="GET")
    r1.add_hangup(reason="busy")
    ours1 = [
        element("Speak", 'Tom & Jerry <3 "q"', voice="WOMAN", language="en-US", loop=2),
        element("GetDigits", action="https://a.com/x?a=1&b=2", method="POST", timeout=5,
                numDigits=1, playBeep=True, finishOnKey="#", retries=1,
                children=[element("Speak", "Press 1"), element("Play", "https://a.com/m.mp3"),
                          element("Wait", length=2)]),
        element("Redirect", "https://a.com/next", method="GET"),
        element("Hangup", reason="busy"),
    ]

    r2 = px.ResponseElement()
    pa = px.PreAnswerElement()
    pa.add_speak("Early")
    pa.add_dtmf("12")
    r2.add(pa)
    d = px.DialElement(caller_id="+14155550100", timeout=20, sip_headers="a=1,b=2")
    d.add_number("+12025551234", send_digits="ww12")
    d.add_user("sip:john1234@phone.plivo.com")
    r2.add(d)
    r2.add_record(action="https://a.com/rec", max_length=30, play_beep=True)
    r2.add_message("hi there", src="+1415", dst="+1202", type="sms")
    r2.add_wait(length=3, beep=True)
    ours2 = [
        element("PreAnswer", children=[element("Speak", "Early"), element("DTMF", "12")]),
        element("Dial", callerId="+14155550100", timeout=20, sipHeaders="a=1,b=2", children=[
            element("Number", "+12025551234", sendDigits="ww12"),
            element("User", "sip:john1234@phone.plivo.com")]),
        element("Record", action="https://a.com/rec", maxLength=30, playBeep=True),
        element("Message", "hi there", src="+1415", dst="+1202", type="sms"),
        element("Wait", length=3, beep=True),
    ]

    r3 = px.ResponseElement()
    s = px.SpeakElement("Hello", voice="Polly.Joanna")
    s.add_break(time="1s")
    s.add_cont("world")  # SDK-internal: becomes " world " text after the break
    s.add_lang("bonjour", xmllang="fr-FR")
    s.add_say_as("123", interpret_as="spell-out")
    s.add_emphasis("really", level="strong")
    r3.add(s)
    r3.add_conference("room-1", start_conference_on_enter=True, end_conference_on_exit=False)
    ours3 = [
        Element("Speak", (("voice", "Polly.Joanna"),), "Hello", (
            Element("break", (("time", "1s"),), tail=" world "),
            Element("lang", (("xml:lang", "fr-FR"),), "bonjour"),
            Element("say-as", (("interpret-as", "spell-out"),), "123"),
            Element("emphasis", (("level", "strong"),), "really"),
        )),
        element("Conference", "room-1", startConferenceOnEnter=True, endConferenceOnExit=False),
    ]
    return [(r1, ours1), (r2, ours2), (r3, ours3), (px.ResponseElement(), [])]


@pytest.mark.parametrize("i", range(4))
def test_same_structure_as_sdk(i):
    sdk, ours = _sdk_docs()[i]
    sdk_xml = sdk.to_string(pretty=False)
    our_xml = render(ours)
    assert _shape(ET.fromstring(our_xml)) == _shape(ET.fromstring(sdk_xml))
    # And our checker accepts the SDK's output, pretty-printed or not, as the
    # same tree (up to attribute order, which the SDK does not keep).
    assert _unordered(parse(sdk_xml)) == _unordered(parse(our_xml))
    # Indentation between verbs is not content: the pretty form parses the same.
    assert _unordered(parse(sdk.to_string(pretty=True))) == _unordered(parse(our_xml))


# ------------------------------------------------------------------ SDK oracle: nesting rules

# Every element class the SDK knows, by tag ("cont" is SDK-internal, see below).
_SDK_CLASSES = {
    c._name: c
    for _, c in inspect.getmembers(px, inspect.isclass)
    if issubclass(c, px.PlivoXMLElement) and c is not px.PlivoXMLElement
}
_TAGS = sorted(t for t in _SDK_CLASSES if t != "cont")
_URL_TEXT = {"Play", "Redirect"}
_SSML = {"break", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"}


def _sdk_instance(tag):
    cls = _SDK_CLASSES[tag]
    kwargs = {}
    params = inspect.signature(cls.__init__).parameters
    if "content" in params:
        kwargs["content"] = "x"
    if tag == "MultiPartyCall":
        kwargs["role"] = "Agent"
    return cls(**kwargs)


def _sdk_accepts(parent, child):
    try:
        _sdk_instance(parent).add(_sdk_instance(child))
        return True
    except SDKPlivoXMLError:
        return False


def _doc_with(parent, child):
    """A document with <parent><child/></parent> placed where parent is legal."""
    c = element(child, "https://a.com/x" if child in _URL_TEXT else None)
    if parent == "Response":
        return render([c])
    p = element(parent, "https://a.com/p" if parent in _URL_TEXT else None, children=[c])
    if parent in ("Number", "User"):
        p = element("Dial", children=[p])
    elif parent in _SSML:
        p = element("Speak", "hi", children=[p])
    return render([p])


def test_sdk_class_table_is_complete():
    # Guards the loop below: it must really cover verbs and SSML.
    verbs = {"Speak", "Play", "GetDigits", "GetInput", "Dial", "Record", "Conference", "Wait", "Hangup",
             "Redirect", "PreAnswer", "DTMF", "Message", "MultiPartyCall", "Stream"}
    assert set(_TAGS) == verbs | _SSML | {"Response", "Number", "User"}


@pytest.mark.parametrize("parent", _TAGS)
def test_nesting_agrees_with_sdk(parent):
    accepted = refused = 0
    mismatches = []
    for child in _TAGS:
        sdk_ok = _sdk_accepts(parent, child)
        doc = _doc_with(parent, child)
        try:
            parse(doc)
            ours_ok = True
        except PlivoXMLError as e:
            ours_ok = False
            if not sdk_ok:
                # Refused for the right reason.
                assert f"{parent} may not contain {child}" in str(e), (doc, str(e))
        if ours_ok != sdk_ok:
            mismatches.append((parent, child, "sdk", sdk_ok, "ours", ours_ok))
        accepted += sdk_ok
        refused += not sdk_ok
    assert mismatches == []
    assert accepted == len([t for t in _SDK_CLASSES[parent]._nestable if t != "cont"])
    assert refused == len(_TAGS) - accepted


def test_cont_is_sdk_internal_and_refused():
    # The SDK lets Speak hold <cont> but rewrites it to spaces before output;
    # Plivo never sees it, so a served <cont> is a mistake.
    assert _sdk_accepts("Speak", "cont")
    assert "<cont>" not in px.SpeakElement("a").add(px.ContElement("b")).to_string(False)
    with pytest.raises(PlivoXMLError, match="unknown tag 'cont'"):
        parse("<Response><Speak>a<cont>b</cont></Speak></Response>")


# ------------------------------------------------------------------ parse: accepts


def test_parse_accepts_declaration_comments_whitespace():
    doc = parse(
        '<?xml version="1.0" encoding="UTF-8"?>\n<!-- served by app -->\n<Response>\n'
        "  <GetDigits action=\"https://a.com/cb\">\n    <Speak>Press 1</Speak>\n  </GetDigits>\n"
        "  <Hangup/>\n</Response>\n"
    )
    assert doc == Element("Response", children=(
        Element("GetDigits", (("action", "https://a.com/cb"),), children=(Element("Speak", text="Press 1"),)),
        Element("Hangup"),
    ))


def test_parse_bytes_with_bom_and_exact_size_limit():
    assert parse(b"\xef\xbb\xbf<Response><Hangup/></Response>").children == (Element("Hangup"),)
    base = "<Response><Speak></Speak></Response>"
    exact = base.replace("<Speak>", "<Speak>" + "a" * (MAX_BYTES - len(base)))
    assert len(exact.encode()) == MAX_BYTES
    assert len(parse(exact).children[0].text) == MAX_BYTES - len(base)
    assert parse(exact.encode()).children[0].text == parse(exact).children[0].text


# ------------------------------------------------------------------ parse: refusals

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<Response><Speak>&lol3;</Speak></Response>"
)
XXE = '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><Response><Speak>&x;</Speak></Response>'
_big = "<Response><Speak>" + "a" * MAX_BYTES + "</Speak></Response>"


@pytest.mark.parametrize(
    "doc,message",
    [
        ("<Speak>hi</Speak>", "root element must be Response, not 'Speak'"),
        ('<Response xmlns="urn:x"><Hangup/></Response>', "root element must be Response.*namespaces"),
        ("<Response><Say>hi</Say></Response>", r"unknown tag 'Say' \(at /Response/Say\[1\]\)"),
        ("<Response><Speak>hi<Foo/></Speak></Response>", "unknown tag 'Foo'"),
        ("<Response><Speak>a<GetDigits/></Speak></Response>",
         r"Speak may not contain GetDigits \(at /Response/Speak\[1\]/GetDigits\[1\]"),
        ("<Response><GetDigits><Speak>a<GetDigits/></Speak></GetDigits></Response>",
         r"Speak may not contain GetDigits \(at /Response/GetDigits\[1\]/Speak\[1\]/GetDigits\[1\]"),
        ("<Response><Hangup><Speak>bye</Speak></Hangup></Response>",
         "Hangup may not contain Speak.*Hangup takes no child elements"),
        ("<Response><Number>+1202</Number></Response>", "Response may not contain Number"),
        ("<Response><Dial><Speak>x</Speak></Dial></Response>", "Dial may not contain Speak"),
        ("<Response><GetDigits><Dial/></GetDigits></Response>", "GetDigits may not contain Dial"),
        ("<Response><Speak>a<w><p>b</p></w></Speak></Response>", "w may not contain p"),
        ("<Response><Play></Play></Response>", r"Play needs a URL.*/Response/Play\[1\]"),
        ("<Response><Speak>a</Speak><Redirect>  </Redirect></Response>", r"Redirect needs a URL.*Redirect\[1\]"),
        ("<Response>hello<Hangup/></Response>", "Response may not contain text, found 'hello'"),
        ("<Response><GetDigits><Speak>a</Speak>oops</GetDigits></Response>",
         "GetDigits may not contain text, found 'oops' after /Response/GetDigits"),
        (BILLION_LAUGHS, "DOCTYPE/ENTITY declarations are not allowed"),
        (XXE, "DOCTYPE/ENTITY declarations are not allowed"),
        ('<!doctype r><Response/>', "DOCTYPE/ENTITY declarations are not allowed"),
        (_big, f"document is {len(_big)} bytes, over the 102400-byte limit"),
        ("<Response><Speak>" + "é" * 51200 + "</Speak></Response>", "over the 102400-byte limit"),
        ("<Response><Speak>hi</Response>", "malformed XML: mismatched tag: line 1"),
        ("<Response><Speak>a & b</Speak></Response>", "malformed XML"),
        ("<Response><Speak>&nope;</Speak></Response>", "malformed XML: undefined entity"),
        ('<Response><Wait length="1" length="2"/></Response>', "malformed XML: duplicate attribute"),
        ("<Response></Response><Response/>", "malformed XML: junk after document element"),
        ("", "document is empty"),
        ("   \n", "document is empty"),
        ("<Response><Speak>" + "<prosody>" * 100 + "x" + "</prosody>" * 100 + "</Speak></Response>",
         "nested more than 64 deep"),
        ('<Response xmlns:a="urn:a"><Hangup a:reason="x"/></Response>', "namespaced attribute"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
def test_parse_refuses(doc, message):
    with pytest.raises(PlivoXMLError, match=message):
        parse(doc)


@pytest.mark.parametrize(
    "raw,message",
    [
        (_big.encode(), "over the 102400-byte limit"),
        # A DOCTYPE hidden in UTF-16 never reaches a parser: only UTF-8 is read.
        (XXE.encode("utf-16"), "not valid UTF-8"),
        (b"<Response><Speak>\xff</Speak></Response>", "not valid UTF-8"),
        (BILLION_LAUGHS.encode(), "DOCTYPE/ENTITY"),
    ],
)
def test_parse_refuses_bytes(raw, message):
    with pytest.raises(PlivoXMLError, match=message):
        parse(raw)


def test_parse_error_is_value_error_and_type_checked():
    assert issubclass(PlivoXMLError, ValueError)
    with pytest.raises(TypeError):
        parse(None)
