"""`Request.encode()`: the one request encoder both shells send (`callflow run` with httpx,
`callflow serve` with aiohttp), checked against what httpx builds from the same request."""

from __future__ import annotations

import httpx
import pytest
from yarl import URL

from engine.events import Request

REQUESTS = [
    Request("n", "post", "http://h.example/x?a=1", json={"a": "caf\u00e9", "b": [1, None]}, params={"q": "1 /:@?"},
            headers={"X-T": "y"}),
    Request("n", "PUT", "http://h.example/x", form={"a": "\u00e9 x", "b": ["1", "2"]},
            headers={"content-type": "text/plain"}),
    Request("n", "GET", "http://h.example/x?z=1"),
    Request("n", "GET", "http://h.example/x?z=1", params={}),
    Request("n", "DELETE", "http://h.example/x", json=[1, 2], headers={"Content-Type": "application/vnd+json"}),
]


def as_httpx_builds_it(req: Request) -> httpx.Request:
    kwargs = {"params": req.params, "headers": req.headers}
    if req.json is not None:
        kwargs["json"] = req.json
    elif req.form is not None:
        kwargs["data"] = req.form
    return httpx.Request(req.method, req.url, **kwargs)


def header_set(request: httpx.Request) -> list:
    return sorted((k.lower(), v) for k, v in request.headers.raw)


@pytest.mark.parametrize("req", REQUESTS, ids=range(len(REQUESTS)))
def test_the_encoding_is_what_httpx_sends_for_the_same_request(req):
    method, url, headers, body = req.encode()
    ours, theirs = httpx.Request(method, url, content=body, headers=headers), as_httpx_builds_it(req)
    assert (ours.method, ours.url.raw_path, ours.content) == (theirs.method, theirs.url.raw_path, theirs.content)
    assert header_set(ours) == header_set(theirs)


def test_aiohttp_sends_the_same_query_as_from_its_own_params():
    req = Request("n", "GET", "http://h.example/p?old=1", params={"b": "x y/:@?&=\u00e9+~*"})
    assert URL(req.encode().url).raw_path_qs == URL(req.url).with_query(req.params).raw_path_qs


def test_params_replace_the_query_and_values_follow_httpx():
    encoded = Request("n", "get", "https://x.example/a?old=1#f", params={"q": ["a", "b"], "t": True, "n": None}).encode()
    assert encoded.method == "GET" and encoded.url == "https://x.example/a?q=a&q=b&t=true&n=#f"
    assert encoded.body is None and encoded.headers == {}
    assert Request("n", "GET", "https://x.example/a?old=1").encode().url == "https://x.example/a?old=1"


def test_provider_json_is_ascii_escaped_and_a_given_content_type_wins():
    body = {"text": "caf\u00e9"}
    assert Request("n", "POST", "https://api.example/", json=body, provider=True).encode().body == b'{"text":"caf\\u00e9"}'
    assert Request("n", "POST", "https://x.example/", json=body).encode().body == '{"text":"caf\u00e9"}'.encode()
    headers = Request("n", "POST", "https://x.example/", form={"a": "1"}, headers={"content-type": "text/x"}).encode().headers
    assert headers == {"content-type": "text/x"}


def test_a_json_body_with_nan_is_refused():
    with pytest.raises(ValueError):
        Request("n", "POST", "https://x.example/", json={"x": float("nan")}).encode()
