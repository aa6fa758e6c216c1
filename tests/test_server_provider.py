"""engine/service/provider.py: the provider client (credentials, in-doubt classification, limits).

The far end is a raw asyncio TCP server in the test's own loop, so each test decides
exactly what goes back on the wire: a normal answer, nothing, a dropped connection,
garbage, a redirect.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time

import pytest

from engine.events import Request
from engine.service.provider import (
    MAX_RESPONSE_BYTES,
    Provider,
    ProviderConfig,
)
from engine.service.retry import RetryPolicy

AUTH_ID, TOKEN = "MAPROVIDERTESTACCT01", "s3cret-token"


class Far:
    """A tiny HTTP/1.1 server: records requests; `mode` says how to answer."""

    def __init__(self, mode="ok", body=b'{"message": "call fired", "request_uuid": "r-1", "api_id": "a"}',
                 status=201, extra=b""):
        self.mode, self.body, self.status, self.extra = mode, body, status, extra  # extra: header lines
        self.content_type = b"application/json"
        self.requests: list[dict] = []
        self.in_flight = self.max_in_flight = 0
        self.connections = 0

    async def handle(self, reader, writer):
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests.append({"method": method, "target": target, "headers": headers, "body": body})
                if self.mode == "silent":
                    await asyncio.sleep(30)
                if self.mode == "drop":
                    writer.close()
                    return
                if self.mode == "garbage":
                    writer.write(b"this is not HTTP\r\n\r\n")
                    await writer.drain()
                    return
                if self.mode == "trickle":  # a chunked answer, one byte every 0.1 s
                    writer.write(b"HTTP/1.1 200 X\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n")
                    for _ in range(30):
                        writer.write(b"1\r\nx\r\n")
                        await writer.drain()
                        await asyncio.sleep(0.1)
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
                    continue
                if self.mode == "truncated":  # headers and half the body, then the connection drops
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % (self.status, len(self.body)) + self.body[:len(self.body) // 2])
                    await writer.drain()
                    return
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                if self.mode == "slow":
                    await asyncio.sleep(0.05)
                self.in_flight -= 1
                if self.mode == "chunked":
                    half = len(self.body) // 2
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n"
                                 % (self.status, half, self.body[:half], len(self.body) - half, self.body[half:]))
                    await writer.drain()
                    continue
                if self.mode == "close":
                    writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                                 % (self.status, len(self.body)) + self.body)
                    await writer.drain()
                    return
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
                             % (self.status, self.content_type, len(self.body), self.extra) + self.body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def far_end(**kw):
    far = Far(**kw)
    server = await asyncio.start_server(far.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield far, f"http://127.0.0.1:{port}"
    finally:
        server.close()


def call(api: str, timeout: float = 5.0, **kw) -> Request:
    return Request("Call", "POST", f"{api}/v1/Account/{AUTH_ID}/Call/",
                   json={"from": "+12025551234", "to": "+12025550100", "answer_url": "http://x/a"},
                   timeout=timeout, provider=True, **kw)


def go(coro):
    return asyncio.run(coro)


def test_call_request_carries_basic_auth_and_json():
    async def main():
        async with far_end() as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(call(url))
            await provider.aclose()
        assert r.status == 201 and r.body["request_uuid"] == "r-1" and not r.error and not r.in_doubt
        [req] = far.requests
        assert req["target"] == f"/v1/Account/{AUTH_ID}/Call/"
        assert req["headers"]["authorization"] == "Basic " + base64.b64encode(f"{AUTH_ID}:{TOKEN}".encode()).decode()
        assert req["headers"]["content-type"] == "application/json"
        assert json.loads(req["body"])["to"] == "+12025550100"

    go(main())


def test_credentials_never_leave_for_another_host():
    async def main():
        async with far_end() as (far, url), far_end() as (_, other):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(call(other))  # a provider request, but not to the configured API
            await provider.aclose()
        assert r.error and "refusing" in r.error and not r.in_doubt
        assert TOKEN not in repr(provider) and TOKEN not in repr(provider.config)

    go(main())


def test_no_credentials_is_an_error_not_a_request():
    async def main():
        async with far_end() as (far, url):
            provider = Provider(ProviderConfig("", "", url), allow_private_http=True)
            r = await provider.perform(call(url))
            await provider.aclose()
        assert "PLIVO_AUTH_ID" in r.error and far.requests == []

    go(main())


def test_connection_refused_is_a_definite_failure():
    async def main():
        async with far_end() as (_, url):
            pass  # closed: nothing listens there any more
        provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
        r = await provider.perform(call(url))
        await provider.aclose()
        assert r.error and not r.in_doubt and TOKEN not in r.error

    go(main())


@pytest.mark.parametrize("mode", ["silent", "drop"])
def test_no_answer_after_the_request_was_written_is_in_doubt(mode):
    async def main():
        async with far_end(mode=mode) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(call(url, timeout=0.3))
            await provider.aclose()
        assert r.in_doubt and r.error and TOKEN not in r.error
        assert len(far.requests) == 1  # it did arrive: exactly why it must not be resent

    go(main())


def test_response_size_limit():
    async def main():
        big = b'{"x": "' + b"a" * (MAX_RESPONSE_BYTES + 10) + b'"}'
        async with far_end(body=big, status=200) as (_, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(call(url))
            web = await provider.perform(Request("Lookup", "GET", f"{url}/x"))
            await provider.aclose()
        assert "larger" in r.error and "larger" in web.error

    go(main())


def test_web_requests_get_no_credentials():
    async def main():
        async with far_end(body=b'{"status": "shipped"}', status=200) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(Request("Lookup", "POST", f"{url}/orders", form={"id": "7"},
                                               params={"q": "1"}, headers={"X-Test": "yes"}))
            await provider.aclose()
        assert r.status == 200 and r.body == {"status": "shipped"}
        [req] = far.requests
        assert "authorization" not in req["headers"] and req["headers"]["x-test"] == "yes"
        assert req["target"] == "/orders?q=1" and req["body"] == b"id=7"

    go(main())


def test_connections_are_bounded():
    async def main():
        async with far_end(mode="slow") as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), max_connections=6, web_connections=3, allow_private_http=True)
            results = await asyncio.gather(*(provider.perform(call(url)) for _ in range(40)))
            api_in_flight, api_connections = far.max_in_flight, far.connections
            far.max_in_flight = 0
            web = await asyncio.gather(*(provider.perform(Request("Hook", "POST", f"{url}/hook", json={"i": i}))
                                         for i in range(20)))
            await provider.aclose()
        assert all(r.status == 201 for r in results) and all(r.status == 201 for r in web)
        assert len(far.requests) == 60
        assert api_in_flight <= 6 and api_connections <= 6  # waiting requests queue, they do not fail
        assert far.max_in_flight <= 3

    go(main())


@pytest.mark.parametrize("mode, connections", [("ok", 1), ("chunked", 1), ("close", 5)])
def test_keep_alive_reuse_and_response_framing(mode, connections):
    async def main():
        async with far_end(mode=mode) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            results = [await provider.perform(call(url)) for _ in range(5)]
            await provider.aclose()
        assert [r.status for r in results] == [201] * 5
        assert all(r.body["request_uuid"] == "r-1" for r in results)
        assert far.connections == connections  # keep-alive unless the server says close

    go(main())


def test_idle_connections_expire(monkeypatch):
    import engine.service.sessions as sessions_module

    monkeypatch.setattr(sessions_module, "KEEPALIVE_EXPIRY", 0.05)

    async def main():
        async with far_end() as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            await provider.perform(call(url))
            await asyncio.sleep(0.1)
            await provider.perform(call(url))
            await provider.aclose()
        assert far.connections == 2

    go(main())


def test_server_closing_idle_connections_is_not_in_doubt(monkeypatch):
    """The server closes an idle connection (as uvicorn does after 5 s) before our expiry:
    the next request takes a new connection instead of landing on the closed one."""
    import engine.service.sessions as sessions_module

    monkeypatch.setattr(sessions_module, "KEEPALIVE_EXPIRY", 5.0)

    async def main():
        async with far_end(mode="close") as (far, url):  # answers, then closes: like an idle timeout
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            first = await provider.perform(call(url))
            await asyncio.sleep(0.05)
            second = await provider.perform(call(url))
            await provider.aclose()
        assert first.status == second.status == 201 and not second.in_doubt
        assert len(far.requests) == 2 and far.connections == 2

    go(main())


@pytest.mark.parametrize("mode", ["garbage", "truncated"])
def test_a_broken_answer_is_in_doubt(mode):
    async def main():
        async with far_end(mode=mode) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(call(url))
            await provider.aclose()
        assert r.in_doubt and r.error and len(far.requests) == 1

    go(main())


def test_connect_timeout_is_a_definite_failure():
    async def main():
        # a listening socket that never accepts, its backlog full: the handshake never completes
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        port = srv.getsockname()[1]
        fillers = []
        for _ in range(4):
            c = socket.socket()
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                c.connect(("127.0.0.1", port))
            fillers.append(c)
        url = f"http://127.0.0.1:{port}"
        # it never left: safe to send again (once here), then a plain failure listing both attempts
        provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url, retry=RetryPolicy(retries=1)), allow_private_http=True)
        t0 = time.monotonic()
        r = await provider.perform(call(url, timeout=0.3))
        elapsed = time.monotonic() - t0
        await provider.aclose()
        for c in [*fillers, srv]:
            c.close()
        assert r.error and not r.in_doubt and "timeout" in r.error.lower()
        assert len(r.attempts) == 2 and all("timeout" in a["error"].lower() for a in r.attempts)
        assert 0.25 <= r.attempts[0]["retry_in"] <= 0.5  # the first backoff: half fixed, half jitter
        assert elapsed < 2

    go(main())


def test_dns_failure_is_a_definite_failure(monkeypatch):
    def no_such_host(host, *args, **kwargs):  # asyncio's loop and aiohttp's resolver both end here
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)

    async def main():
        url = "http://callflow-test.invalid:8080"
        provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
        r = await provider.perform(call(url))
        await provider.aclose()
        assert r.error and not r.in_doubt

    go(main())


def test_credentials_go_only_to_the_configured_origin():
    """A path that looks like an authority, or a redirect, cannot take the credentials elsewhere."""
    async def main():
        async with far_end() as (far, url), far_end() as (other, other_url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            sneaky = await provider.perform(call(url + "//" + other_url.split("//", 1)[1]))  # {api}//127.0.0.1:port/...
            await provider.aclose()
        async with far_end() as (other2, other2_url), \
                far_end(status=307, extra=b"Location: " + other2_url.encode() + b"/steal\r\n") as (far2, url2):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url2), allow_private_http=True)
            redirected = await provider.perform(call(url2))
            await provider.aclose()
        assert other.requests == [] and len(far.requests) == 1 and sneaky.status == 201
        assert far.requests[0]["target"].startswith("//127.0.0.1:")
        assert far.requests[0]["headers"]["host"] == url.split("//", 1)[1]
        assert redirected.status == 307 and len(far2.requests) == 1 and other2.requests == []

    go(main())


def test_web_requests_keep_no_cookies_and_follow_no_redirects():
    async def main():
        async with far_end(status=302, body=b"{}", extra=b"Set-Cookie: session=abc; Path=/\r\nLocation: /elsewhere\r\n") \
                as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            first = await provider.perform(Request("Lookup", "GET", f"{url}/a?q=1&keep=yes", params={"q": "2"}))
            second = await provider.perform(Request("Lookup", "GET", f"{url}/a"))
            await provider.aclose()
        assert first.status == second.status == 302 and first.headers["set-cookie"].startswith("session=abc")
        assert [r["target"] for r in far.requests] == ["/a?q=2", "/a"]  # params replace the URL's query (as httpx)
        assert "cookie" not in far.requests[1]["headers"]

    go(main())


def test_web_errors_are_responses_not_exceptions():
    async def main():
        async with far_end(mode="silent") as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            slow = await provider.perform(Request("Lookup", "GET", f"{url}/x", timeout=0.2))
            bad_url = await provider.perform(Request("Lookup", "GET", "ftp://example.com/x"))
            bad_header = await provider.perform(Request("Lookup", "GET", f"{url}/x", headers={"X-A": "a\r\nX-B: b"}))
            await provider.aclose()
        assert slow.error == "timed out after 0.2 s" and not slow.in_doubt
        assert bad_url.error and bad_header.error and len(far.requests) == 1

    go(main())


def test_unknown_charset_falls_back_to_utf8():
    async def main():
        async with far_end(status=200, body="caf\u00e9".encode()) as (far, url):
            far.content_type = b"text/plain; charset=no-such-charset"
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            r = await provider.perform(Request("Lookup", "GET", f"{url}/x"))
            await provider.aclose()
        assert r.status == 200 and r.body == "caf\u00e9"

    go(main())


def test_timeout_bounds_the_whole_exchange():
    """A server that keeps sending, slowly, cannot hold a request past its timeout: the whole
    exchange for http_request (as `callflow run`), twice the timeout for the provider API
    (then in doubt: the request was written)."""
    async def main():
        async with far_end(mode="trickle") as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            t0 = time.monotonic()
            web = await provider.perform(Request("Lookup", "GET", f"{url}/slow", timeout=0.4))
            t1 = time.monotonic()
            api = await provider.perform(call(url, timeout=0.4))
            t2 = time.monotonic()
            await provider.aclose()
        assert web.error == "timed out after 0.4 s" and t1 - t0 < 1.0
        assert api.in_doubt and api.error and t2 - t1 < 1.5

    go(main())


def test_http_request_nodes_cannot_reach_non_public_hosts_unless_allowed():
    """Security by default: a flow's http_request (whose URL may come from payload values)
    cannot reach the service's own machine or private network; the provider API can."""
    from engine.service.sessions import public_address

    assert public_address("8.8.8.8") and not public_address("127.0.0.1") and not public_address("10.1.2.3")
    assert not public_address("169.254.169.254") and not public_address("::1") and not public_address("fd00::1")

    async def main():
        async with far_end() as (far, url):
            guarded = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            by_ip = await guarded.perform(Request("Lookup", "GET", f"{url}/orders"))
            by_name = await guarded.perform(Request("Lookup", "GET", url.replace("127.0.0.1", "localhost") + "/orders"))
            api = await guarded.perform(call(url))  # the configured provider API is not a flow's choice
            await guarded.aclose()
            allowed = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            ok = await allowed.perform(Request("Lookup", "GET", f"{url}/orders"))
            await allowed.aclose()
        assert by_ip.status == 0 and "not a public address" in by_ip.error and not by_ip.in_doubt
        assert by_name.status == 0 and "non-public" in by_name.error and not by_name.in_doubt
        assert api.status == 201
        assert ok.status != 0 and ok.error is None
        assert [r["target"] for r in far.requests] == ["/v1/Account/" + AUTH_ID + "/Call/", "/orders"]

    go(main())
