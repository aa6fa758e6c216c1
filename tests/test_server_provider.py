"""engine/provider.py: the provider client (credentials, in-doubt classification, limits).

The far end is a raw asyncio TCP server in the test's own loop, so each test decides
exactly what goes back on the wire: a normal answer, nothing, a dropped connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest

from engine.events import Request
from engine.provider import MAX_RESPONSE_BYTES, Provider, ProviderConfig, ShardedClient

AUTH_ID, TOKEN = "MAPROVIDERTESTACCT01", "s3cret-token"


class Far:
    """A tiny HTTP/1.1 server: records requests; `mode` says how to answer."""

    def __init__(self, mode="ok", body=b'{"message": "call fired", "request_uuid": "r-1", "api_id": "a"}',
                 status=201):
        self.mode, self.body, self.status = mode, body, status
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
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                             % (self.status, len(self.body)) + self.body)
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
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
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
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            r = await provider.perform(call(other))  # a provider request, but not to the configured API
            await provider.aclose()
        assert r.error and "refusing" in r.error and not r.in_doubt
        assert TOKEN not in repr(provider) and TOKEN not in repr(provider.config)

    go(main())


def test_no_credentials_is_an_error_not_a_request():
    async def main():
        async with far_end() as (far, url):
            provider = Provider(ProviderConfig("", "", url))
            r = await provider.perform(call(url))
            await provider.aclose()
        assert "PLIVO_AUTH_ID" in r.error and far.requests == []

    go(main())


def test_connection_refused_is_a_definite_failure():
    async def main():
        async with far_end() as (_, url):
            pass  # closed: nothing listens there any more
        provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
        r = await provider.perform(call(url))
        await provider.aclose()
        assert r.error and not r.in_doubt

    go(main())


@pytest.mark.parametrize("mode", ["silent", "drop"])
def test_no_answer_after_the_request_was_written_is_in_doubt(mode):
    async def main():
        async with far_end(mode=mode) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            r = await provider.perform(call(url, timeout=0.3))
            await provider.aclose()
        assert r.in_doubt and r.error
        assert len(far.requests) == 1  # it did arrive: exactly why it must not be resent

    go(main())


def test_response_size_limit():
    async def main():
        big = b'{"x": "' + b"a" * (MAX_RESPONSE_BYTES + 10) + b'"}'
        async with far_end(body=big, status=200) as (_, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            r = await provider.perform(call(url))
            web = await provider.perform(Request("Lookup", "GET", f"{url}/x"))
            await provider.aclose()
        assert "larger" in r.error and "larger" in web.error

    go(main())


def test_web_requests_get_no_credentials():
    async def main():
        async with far_end(body=b'{"status": "shipped"}', status=200) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
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
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), max_connections=6, per_client=2)
            results = await asyncio.gather(*(provider.perform(call(url)) for _ in range(40)))
            await provider.aclose()
        assert all(r.status == 201 for r in results)
        assert len(far.requests) == 40 and far.max_in_flight <= 6

    go(main())


def test_sharded_client_releases_its_slot_when_the_stream_closes():
    async def main():
        async with far_end(body=b"<Response/>", status=200) as (far, url):
            client = ShardedClient(2, 1)
            for _ in range(5):  # more requests than slots: each must give its slot back
                response = await client.send(client.build_request("POST", f"{url}/cb", data={"a": "1"}), stream=True)
                await response.aread()
                await response.aclose()
            plain = await client.send(client.build_request("GET", f"{url}/cb"))
            assert plain.status_code == 200
            assert client.busy == [0, 0] and client.slots._value == 2
            await client.aclose()
        assert len(far.requests) == 6

    go(main())


@pytest.mark.parametrize("mode, connections", [("ok", 1), ("chunked", 1), ("close", 5)])
def test_keep_alive_reuse_and_response_framing(mode, connections):
    async def main():
        async with far_end(mode=mode) as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            results = [await provider.perform(call(url)) for _ in range(5)]
            await provider.aclose()
        assert [r.status for r in results] == [201] * 5
        assert all(r.body["request_uuid"] == "r-1" for r in results)
        assert far.connections == connections  # keep-alive unless the server says close

    go(main())


def test_idle_connections_expire(monkeypatch):
    import engine.provider as provider_module

    monkeypatch.setattr(provider_module, "KEEPALIVE_EXPIRY", 0.05)

    async def main():
        async with far_end() as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url))
            await provider.perform(call(url))
            await asyncio.sleep(0.1)
            await provider.perform(call(url))
            await provider.aclose()
        assert far.connections == 2

    go(main())
