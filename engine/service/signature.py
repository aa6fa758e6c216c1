"""Plivo webhook signatures (V3, and the older V2).

Plivo signs every callback it makes to an app (answer, hangup, action URLs...)
so the app can tell the request really came from Plivo and was not altered:

* V3 (current): headers ``X-Plivo-Signature-V3`` and ``X-Plivo-Signature-V3-Nonce``.
  signature = base64(HMAC-SHA256(key=auth token, msg=base + "." + nonce)), where
  ``base`` is built from the method, the URL and the request parameters
  (see :func:`v3_base`). The header may carry several comma-separated
  signatures (e.g. while a token is being rotated); one match is enough.
* V2 (older): signature = base64(HMAC-SHA256(auth token, URL without query + nonce)).

We validate what apps receive and our sandbox signs the callbacks it sends, so
the string building mirrors the official SDK (plivo-python 4.63.0,
``plivo/utils/signature_v3.py``) byte for byte: an app validating with the SDK
must accept what we sign. Where the SDK has a quirk we copy it and say so.

Stdlib only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qs, urlparse, urlunparse

__all__ = [
    "HEADER_V3",
    "HEADER_V3_NONCE",
    "sign_v3_headers",
    "v2_signature",
    "v3_base",
    "v3_signature",
    "validate_v3",
]

HEADER_V3 = "X-Plivo-Signature-V3"
HEADER_V3_NONCE = "X-Plivo-Signature-V3-Nonce"


def _s(value: object) -> str:
    # The SDK's string_format: bytes become one char per byte (latin-1), numbers
    # and bools go through str() ("True", not "true").
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    return str(value)


def _is_multi(value: object) -> bool:
    return isinstance(value, (list, tuple))


def _as_dict(params: Mapping | None) -> dict:
    """Copy ``params`` into a plain dict, keeping every value of multi-dicts.

    Starlette/Werkzeug multi-dicts answer ``[key]`` with one value only; a
    repeated form field is signed by Plivo with all its values, so gather them.
    """
    if not params:
        return {}
    multi_items = getattr(params, "multi_items", None)
    if callable(multi_items):
        out: dict = {}
        for k, v in multi_items():
            out.setdefault(k, []).append(v)
        return {k: (v[0] if len(v) == 1 else v) for k, v in out.items()}
    return dict(params)


def _query_map(query: str) -> dict:
    # URL query values are percent-decoded ("+" -> space) and blank values kept,
    # as the SDK does with parse_qs(keep_blank_values=True). Repeated keys
    # become lists.
    return parse_qs(query, keep_blank_values=True)


def _sorted_query(params: Mapping) -> str:
    # "k=v" pairs sorted by key, joined by "&", NOT url-encoded; a multi-valued
    # key contributes one pair per value, values sorted.
    parts = []
    for key in sorted(params):
        value = params[key]
        k = _s(key)
        if _is_multi(value):
            parts.append("&".join(f"{k}={v}" for v in sorted(_s(x) for x in value)))
        else:
            parts.append(f"{k}={_s(value)}")
    return "&".join(parts)


def _sorted_params(params: Mapping) -> str:
    # POST body params: "keyvalue" sorted by key, concatenated with no
    # separator; multi-valued keys repeat the key per sorted value; nested
    # mappings (JSON bodies) recurse, as in the SDK.
    parts = []
    for key in sorted(params):
        value = params[key]
        k = _s(key)
        if _is_multi(value):
            parts.append("".join(f"{k}{v}" for v in sorted(_s(x) for x in value)))
        elif isinstance(value, Mapping):
            parts.append(k + _sorted_params(value))
        else:
            parts.append(k + _s(value))
    return "".join(parts)


def _bare_url(url: str) -> tuple[str, str]:
    """Return (scheme://netloc/path, query). Fragment and ;params are dropped,
    the scheme lower-cased -- exactly what urlparse/urlunparse do in the SDK."""
    p = urlparse(url)
    return urlunparse((p.scheme, p.netloc, p.path, "", "", "")), p.query


def v3_base(method: str, url: str, params: Mapping | None = None) -> str:
    """The string Plivo signs (before ``"." + nonce`` is appended).

    GET:  URL without query + "?" + (URL query merged with params, sorted ``k=v``
          joined by "&"); no "?" when there is nothing to append. On a key in
          both, the URL query wins (SDK: ``params.update(query)``).
    POST: URL without query, + "?" + its sorted query when it has one; then, if
          there are params, "?" (no query) or "." (query) and the sorted
          ``keyvalue`` params concatenated.
    """
    m = method.upper()
    bare, query = _bare_url(url)
    if m == "GET":
        merged = _as_dict(params)
        merged.update(_query_map(query))
        qs = _sorted_query(merged)
        return f"{bare}?{qs}" if qs else bare
    if m == "POST":
        body = _as_dict(params)
        qs = _sorted_query(_query_map(query))
        if not body:
            return f"{bare}?{qs}" if qs else bare
        return f"{bare}?{qs}.{_sorted_params(body)}" if qs else f"{bare}?{_sorted_params(body)}"
    raise ValueError(f"method must be GET or POST, not {method!r}")


def _hmac_b64(auth_token: str, message: bytes) -> str:
    digest = hmac.new(auth_token.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def v3_signature(
    method: str, url: str, params: Mapping[str, str] | None, nonce: str, auth_token: str
) -> str:
    """base64(HMAC-SHA256(auth_token, v3_base(...) + "." + nonce)).

    ``params`` values may be strings or lists of strings (repeated fields).
    """
    base = v3_base(method, url, params)
    # SDK quirk copied on purpose: it formats the nonce from its UTF-8 bytes one
    # char per byte before re-encoding, so a non-ASCII nonce is double-encoded.
    # Plivo's nonces are digits, so this only matters for agreeing with the SDK.
    nonce_s = nonce.encode("utf-8").decode("latin-1")
    return _hmac_b64(auth_token, f"{base}.{nonce_s}".encode("utf-8"))


def validate_v3(
    method: str,
    url: str,
    params: Mapping[str, str] | None,
    nonce: str | None,
    signature_header: str | None,
    auth_token: str,
) -> bool:
    """True if any comma-separated signature in ``signature_header`` matches.

    Never raises: a missing/empty header or nonce, an unknown method or any
    other garbage gives False. Parts are compared as-is (no whitespace
    trimming), like the SDK, and in constant time (the SDK uses ``in``).
    """
    try:
        if not signature_header or not nonce or not auth_token:
            return False
        expected = v3_signature(method, url, params, nonce, auth_token).encode("ascii")
        ok = False
        for candidate in signature_header.split(","):
            # Compare every part (no early exit) so timing says nothing about
            # which one matched.
            ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "surrogatepass"))
        return ok
    except Exception:  # garbage in -> not authentic, never a 500
        return False


def sign_v3_headers(
    method: str,
    url: str,
    params: Mapping[str, str] | None,
    auth_token: str,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers Plivo would send with this callback; the sandbox uses them.

    Without ``nonce`` a fresh random one is made: 20 digits, like Plivo's.
    """
    if nonce is None:
        nonce = f"{secrets.randbelow(10**20):020d}"
    return {
        HEADER_V3: v3_signature(method, url, params, nonce, auth_token),
        HEADER_V3_NONCE: nonce,
    }


def v2_signature(url: str, nonce: str, auth_token: str) -> str:
    """Older V2 scheme: base64(HMAC-SHA256(auth_token, URL without query + nonce))."""
    bare, _ = _bare_url(url)
    return _hmac_b64(auth_token, (bare + nonce).encode("utf-8"))
