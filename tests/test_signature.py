"""Plivo webhook signatures: facts-sheet vectors, edge cases, and agreement
with the official SDK (plivo.utils.validate_v3_signature) as an oracle."""

import base64
import hashlib
import hmac

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plivo.utils import validate_signature as sdk_validate_v2
from plivo.utils import validate_v3_signature as sdk_validate_v3

from engine.service.signature import (
    sign_v3_headers,
    v2_signature,
    v3_base,
    v3_signature,
    validate_v3,
)

TOKEN = "my_auth_token"
VEC_URL = "https://example.com/answer"
VEC_PARAMS = {"CallUUID": "abc", "From": "14155550100", "To": "14155550101"}
VEC_BASE = "https://example.com/answer?CallUUIDabcFrom14155550100To14155550101"
VEC_SIG = "t7/hm7RuTcpjs6sZagaKiH/VBqq6Y/bsfr1wqjircV4="


def _ref(base: str, nonce: str, token: str = TOKEN) -> str:
    """Independent HMAC of a hand-written base string."""
    mac = hmac.new(token.encode(), f"{base}.{nonce}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def sdk_ok(method, url, params, nonce, token, sig):
    # The SDK mutates params for GET: give it a copy.
    return sdk_validate_v3(method, url, nonce, token, sig, dict(params))


# ------------------------------------------------------------------ vectors

def test_v3_vector_base_and_signature():
    assert v3_base("POST", VEC_URL, VEC_PARAMS) == VEC_BASE
    assert v3_signature("POST", VEC_URL, VEC_PARAMS, "12345", TOKEN) == VEC_SIG
    assert validate_v3("POST", VEC_URL, VEC_PARAMS, "12345", VEC_SIG, TOKEN)
    assert sdk_ok("POST", VEC_URL, VEC_PARAMS, "12345", TOKEN, VEC_SIG)


def test_v3_vector_param_order_does_not_matter():
    reordered = {"To": "14155550101", "CallUUID": "abc", "From": "14155550100"}
    assert v3_signature("POST", VEC_URL, reordered, "12345", TOKEN) == VEC_SIG


def test_v2_vector():
    sig = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert v2_signature("https://answer.url", "12345", TOKEN) == sig
    # V2 ignores the query string.
    assert v2_signature("https://answer.url?a=1&b=2", "12345", TOKEN) == sig
    assert sdk_validate_v2("https://answer.url", "12345", sig, TOKEN)
    assert v2_signature("https://answer.url", "12346", TOKEN) != sig


# ------------------------------------------------------------------ base strings

@pytest.mark.parametrize(
    "method,url,params,base",
    [
        # GET: query merged with params, sorted, k=v joined by &, not encoded.
        ("GET", "https://a.com/cb", {"b": "2", "a": "1"}, "https://a.com/cb?a=1&b=2"),
        ("GET", "https://a.com/cb?z=9&c=3", {"b": "2"}, "https://a.com/cb?b=2&c=3&z=9"),
        ("GET", "https://a.com/cb", {}, "https://a.com/cb"),
        ("GET", "https://a.com/cb?x=a%20b", {"u": "http://h/p?q=1"}, "https://a.com/cb?u=http://h/p?q=1&x=a b"),
        # GET: a key in both, URL query wins (as in the SDK).
        ("GET", "https://a.com/cb?a=url", {"a": "param"}, "https://a.com/cb?a=url"),
        # GET: repeated key in the query -> one pair per value, values sorted.
        ("GET", "https://a.com/cb?k=2&k=1", {}, "https://a.com/cb?k=1&k=2"),
        # POST without query: "?" then keyvalue concatenated.
        ("POST", "https://a.com/cb", {"b": "2", "a": "1"}, "https://a.com/cb?a1b2"),
        # POST with query: query sorted, then "." then params.
        ("POST", "https://a.com/cb?z=9&c=3", {"b": "2"}, "https://a.com/cb?c=3&z=9.b2"),
        # POST, no params: URL (query sorted), nothing appended.
        ("POST", "https://a.com/cb", {}, "https://a.com/cb"),
        ("POST", "https://a.com/cb?z=9&c=3", {}, "https://a.com/cb?c=3&z=9"),
        # Multi-valued POST param: key repeated per sorted value.
        ("POST", "https://a.com/cb", {"d": ["9", "1"]}, "https://a.com/cb?d1d9"),
        # Port and trailing slash kept; fragment dropped; scheme lower-cased.
        ("POST", "HTTP://a.com:8080/cb/#frag", {"a": "1"}, "http://a.com:8080/cb/?a1"),
        # Method is case-insensitive for us.
        ("get", "https://a.com/cb", {"a": "1"}, "https://a.com/cb?a=1"),
    ],
)
def test_v3_base(method, url, params, base):
    assert v3_base(method, url, params) == base
    assert v3_signature(method, url, params, "n1", TOKEN) == _ref(base, "n1")


def test_v3_get_and_post_differ():
    p = {"a": "1"}
    assert v3_signature("GET", VEC_URL, p, "1", TOKEN) != v3_signature("POST", VEC_URL, p, "1", TOKEN)


def test_v3_does_not_mutate_params():
    p = {"a": "1"}
    v3_signature("GET", "https://a.com/cb?b=2", p, "1", TOKEN)
    assert p == {"a": "1"}


def test_v3_multidict_keeps_every_value():
    class MultiDict(dict):
        """Like starlette's FormData: [key] gives one value, multi_items all."""

        def __init__(self, items):
            super().__init__(items)
            self._items = list(items)

        def multi_items(self):
            return list(self._items)

    md = MultiDict([("d", "9"), ("d", "1"), ("a", "x")])
    assert v3_base("POST", "https://a.com/cb", md) == "https://a.com/cb?axd1d9"
    sig = v3_signature("POST", "https://a.com/cb", md, "5", TOKEN)
    assert sdk_ok("POST", "https://a.com/cb", {"d": ["9", "1"], "a": "x"}, "5", TOKEN, sig)


def test_v3_rejects_unknown_method():
    with pytest.raises(ValueError, match="GET or POST"):
        v3_signature("PUT", VEC_URL, {}, "1", TOKEN)


# ------------------------------------------------------------------ validate

@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("url", ["https://example.com/answer", "https://example.com:8443/answer/?step=2&run=7"])
def test_validate_roundtrip_and_tampering(method, url):
    params = dict(VEC_PARAMS)
    h = sign_v3_headers(method, url, params, TOKEN, nonce="777")
    sig, nonce = h["X-Plivo-Signature-V3"], h["X-Plivo-Signature-V3-Nonce"]
    assert nonce == "777"
    assert validate_v3(method, url, params, nonce, sig, TOKEN)
    assert sdk_ok(method, url, params, nonce, TOKEN, sig)
    # Anything changed -> invalid.
    assert not validate_v3(method, url, params, nonce, sig, "other_token")
    assert not validate_v3(method, url, params, "778", sig, TOKEN)
    assert not validate_v3(method, url, {**params, "To": "14155550102"}, nonce, sig, TOKEN)
    assert not validate_v3(method, url, {**params, "Extra": "1"}, nonce, sig, TOKEN)
    assert not validate_v3(method, url + "x", params, nonce, sig, TOKEN)
    other = "POST" if method == "GET" else "GET"
    assert not validate_v3(other, url, params, nonce, sig, TOKEN)


def test_validate_several_signatures_in_header():
    other = _ref("something else", "12345")
    assert validate_v3("POST", VEC_URL, VEC_PARAMS, "12345", f"{other},{VEC_SIG}", TOKEN)
    assert validate_v3("POST", VEC_URL, VEC_PARAMS, "12345", f"{VEC_SIG},{other}", TOKEN)
    assert not validate_v3("POST", VEC_URL, VEC_PARAMS, "12345", f"{other},{other}", TOKEN)
    # Like the SDK, parts are not trimmed: a space makes a part not match.
    assert not validate_v3("POST", VEC_URL, VEC_PARAMS, "12345", f"{other}, {VEC_SIG}", TOKEN)
    assert not sdk_ok("POST", VEC_URL, VEC_PARAMS, "12345", TOKEN, f"{other}, {VEC_SIG}")


@pytest.mark.parametrize(
    "method,url,params,nonce,header,token",
    [
        ("POST", VEC_URL, VEC_PARAMS, "12345", None, TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "12345", "", TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, None, VEC_SIG, TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "", VEC_SIG, TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "12345", VEC_SIG, ""),
        ("DELETE", VEC_URL, VEC_PARAMS, "12345", VEC_SIG, TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "12345", "\udcff,é,\x00", TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "12345", ",,,", TOKEN),
        (None, VEC_URL, VEC_PARAMS, "12345", VEC_SIG, TOKEN),
        ("POST", None, VEC_PARAMS, "12345", VEC_SIG, TOKEN),
        ("POST", VEC_URL, 42, "12345", VEC_SIG, TOKEN),
        ("POST", VEC_URL, VEC_PARAMS, "12345", VEC_SIG, None),
    ],
)
def test_validate_garbage_is_false_never_raises(method, url, params, nonce, header, token):
    assert validate_v3(method, url, params, nonce, header, token) is False


def test_sign_generates_fresh_nonces():
    a = sign_v3_headers("POST", VEC_URL, VEC_PARAMS, TOKEN)
    b = sign_v3_headers("POST", VEC_URL, VEC_PARAMS, TOKEN)
    assert set(a) == {"X-Plivo-Signature-V3", "X-Plivo-Signature-V3-Nonce"}
    assert a["X-Plivo-Signature-V3-Nonce"] != b["X-Plivo-Signature-V3-Nonce"]
    assert a["X-Plivo-Signature-V3-Nonce"].isdigit() and len(a["X-Plivo-Signature-V3-Nonce"]) == 20
    for h in (a, b):
        assert validate_v3("POST", VEC_URL, VEC_PARAMS, h["X-Plivo-Signature-V3-Nonce"], h["X-Plivo-Signature-V3"], TOKEN)


# ------------------------------------------------------------------ property: agree with the SDK

# Small alphabets so keys collide (query vs params, repeated query keys).
_key = st.text("abcXYZ012", min_size=1, max_size=3)
_val = st.text("abcdefXYZ0123456789", min_size=0, max_size=6)
_seg = st.text("abcxyz0189-_", min_size=1, max_size=6)


@st.composite
def urls(draw):
    scheme = draw(st.sampled_from(["http", "https"]))
    host = draw(st.sampled_from(["example.com", "127.0.0.1", "Api.Example.COM"]))
    port = draw(st.sampled_from(["", ":8080", ":443"]))
    path = "/" + "/".join(draw(st.lists(_seg, max_size=3)))
    if draw(st.booleans()) and path != "/":
        path += "/"
    url = f"{scheme}://{host}{port}{path}"
    query = draw(st.lists(st.tuples(_key, _val), max_size=4))
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query)
    return url


_params = st.dictionaries(
    _key, st.one_of(_val, st.lists(_val, min_size=1, max_size=3)), max_size=5
)
_sig = st.one_of(
    st.text("ABCDEFabcdef0123456789+/=", min_size=0, max_size=50),
    st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(["GET", "POST"]),
    url=urls(),
    params=_params,
    token=st.text("abcdefABCDEF0123456789", min_size=1, max_size=40),
    nonce=st.text("0123456789", min_size=1, max_size=20),
    wrong=_sig,
    wrong_nonce=st.text("0123456789", min_size=1, max_size=20),
)
def test_agrees_with_sdk(method, url, params, token, nonce, wrong, wrong_nonce):
    h = sign_v3_headers(method, url, params, token, nonce=nonce)
    sig = h["X-Plivo-Signature-V3"]
    # What we sign, the SDK accepts (and so do we).
    assert sdk_ok(method, url, params, nonce, token, sig)
    assert validate_v3(method, url, params, nonce, sig, token)
    # On random/wrong signatures and nonces, we answer exactly as the SDK does.
    for header, n in (
        (wrong, nonce),
        (f"{wrong},{sig}", nonce),
        (sig, wrong_nonce),
    ):
        expected = sdk_ok(method, url, params, n, token, header)
        assert validate_v3(method, url, params, n, header, token) == expected
