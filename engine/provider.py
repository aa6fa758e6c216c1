"""The async HTTP side of `callflow serve`: performs the executor's `Request` effects.

Provider requests (`Request.provider`: the Plivo Call and Message APIs) get HTTP Basic
auth with `PLIVO_AUTH_ID`/`PLIVO_AUTH_TOKEN`, and only when they go to the configured API
base (`PLIVO_API_URL`, default https://api.plivo.com; the executor builds
`{api}/v1/Account/{auth_id}/Call/` from the same setting), so the credentials never leave
for another host. They go over `ApiConnections`, lean keep-alive HTTP/1.1 connections
(asyncio + httptools) measured at a twentieth of httpx's CPU per request; other requests
(http_request nodes: any URL) go through httpx (`ShardedClient`), with a size limit on the
response. Secrets are never logged or shown in a repr; they never enter run state.

A provider request that may have reached the far end without us seeing the answer (a read
timeout, a dropped connection after the request was written) comes back as
`Response(in_doubt=True)`: the shell must not send it again. A request that certainly never
left (connection refused, connect timeout) is a plain error.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import time
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httptools
import httpx

from .events import Request, Response

DEFAULT_API_URL = "https://api.plivo.com"
MAX_RESPONSE_BYTES = 1024 * 1024
KEEPALIVE_EXPIRY = 4.0  # seconds
DEFAULT_CONNECTIONS = 16  # provider API connections (ApiConnections); CALLFLOW_PROVIDER_CONNECTIONS
WEB_CONNECTIONS = 32  # http_request nodes, all hosts together
PER_CLIENT = 4  # connections per httpx client in a ShardedClient


@dataclass(frozen=True)
class ProviderConfig:
    auth_id: str
    auth_token: str
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_env(cls, environ=os.environ) -> "ProviderConfig":
        return cls(auth_id=environ.get("PLIVO_AUTH_ID", ""), auth_token=environ.get("PLIVO_AUTH_TOKEN", ""),
                   api_url=(environ.get("PLIVO_API_URL") or DEFAULT_API_URL).rstrip("/"))

    def __repr__(self) -> str:  # never show the token
        return f"ProviderConfig(auth_id={self.auth_id!r}, api_url={self.api_url!r}, auth_token=***)"


def _decode(headers: httpx.Headers, content: bytes, encoding: str | None) -> object:
    text = content.decode(encoding or "utf-8", errors="replace")
    if "json" in headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


class ShardedClient:
    """Several small httpx.AsyncClients behind the part of the AsyncClient API we use
    (`build_request`, `send`, `stream`, `aclose`).

    httpcore's pool, on every request start and end, passes over all its connections (a
    poll() and a getpeername() per idle one) and, for each idle one, over all of them again
    (O(n^2)); queued requests are matched against every connection too. Measured with
    `bench/e2e.py` (500 runs, 50 concurrent): a 100-connection client spent about half of
    serve's CPU in `_assign_requests_to_connections`, and the sandbox's 1,000-connection
    client about 60% of its CPU. So: `connections` split into clients of `per_client`
    connections; a request takes the least busy client until its response is closed, and
    requests beyond `connections` wait on an asyncio.Semaphore (O(1)) instead of in
    httpcore's queue. One SSL context is shared (creating one costs ~15 ms).
    """

    def __init__(self, connections: int, per_client: int = PER_CLIENT, *, transport=None, **client_kw):
        per_client = max(1, min(per_client, connections))
        count = -(-connections // per_client)
        limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client,
                              keepalive_expiry=client_kw.pop("keepalive_expiry", KEEPALIVE_EXPIRY))
        if transport is None and "verify" not in client_kw:
            client_kw["verify"] = httpx.create_ssl_context()
        self.clients = [httpx.AsyncClient(limits=limits, transport=transport, **client_kw) for _ in range(count)]
        self.busy = [0] * count
        self.slots = asyncio.Semaphore(count * per_client)

    def build_request(self, *args, **kwargs) -> httpx.Request:
        return self.clients[0].build_request(*args, **kwargs)

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs) -> httpx.Response:
        await self.slots.acquire()
        busy = self.busy
        i = busy.index(min(busy))
        busy[i] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                busy[i] -= 1
                self.slots.release()

        try:
            response = await self.clients[i].send(request, stream=stream, **kwargs)
        except BaseException:
            release()
            raise
        if not stream:
            release()
            return response
        close = response.aclose

        async def aclose() -> None:
            try:
                await close()
            finally:
                release()

        response.aclose = aclose  # the connection goes back to its client when the stream is closed
        return response

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url, **kwargs):
        send_kw = {k: kwargs.pop(k) for k in ("auth", "follow_redirects") if k in kwargs}
        response = await self.send(self.build_request(method, url, **kwargs), stream=True, **send_kw)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()


class NotSent(Exception):
    """The request certainly did not leave (no connection could be made)."""


class InDoubt(Exception):
    """The request was written but no complete answer came back."""


class TooLarge(Exception):
    def __init__(self, status: int):
        super().__init__(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        self.status = status


class _Http1(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response parsed by httptools
    (llhttp, the parser uvicorn uses), chunked bodies decoded by it."""

    def __init__(self):
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.idle_since = 0.0
        self._headers: list = []
        self._body: list = []
        self._size = 0

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(InDoubt("the connection closed before a complete answer"))

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server must not talk now
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._fail(InDoubt(f"invalid HTTP answer: {e}"))
            self.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._headers, self._body, self._size = [], [], 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_RESPONSE_BYTES:
            self._fail(TooLarge(self.parser.get_status_code()))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), self._headers, b"".join(self._body),
                                    self.parser.should_keep_alive()))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ApiConnections:
    """Keep-alive HTTP/1.1 connections to the provider's API, for its one request shape.

    Measured (`bench/serve_parts.py`, JSON POST, 16 in flight): httpx.AsyncClient ~1,480 us
    CPU per request, one httpcore pool ~1,260 us, httpcore pools of 4 used directly ~570 us,
    these connections ~75 us. The provider API is the hot path of every run (each run's Call
    request), so it gets this; everything else keeps httpx. At most `connections` requests in
    flight (a semaphore), idle connections reused newest first and dropped after
    `KEEPALIVE_EXPIRY`. Errors are classified for the in-doubt rule: `NotSent` (no
    connection), `InDoubt` (written, no complete answer: timeout, reset, bad HTTP).
    """

    def __init__(self, base_url: str, connections: int, ssl_context=None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"provider API URL must be http(s)://host[:port], not {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (ssl_context or httpx.create_ssl_context()) if parts.scheme == "https" else None
        default = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if default else f"{host}:{self.port}"
        self.idle: collections.deque[_Http1] = collections.deque()
        self.slots = asyncio.Semaphore(connections)

    def _reuse(self) -> _Http1 | None:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if conn.closed or conn.transport.is_closing():
                continue
            if now - conn.idle_since > KEEPALIVE_EXPIRY:
                conn.close()
                continue
            return conn
        return None

    async def request(self, head: bytes, body: bytes, timeout: float) -> tuple[int, list, bytes]:
        """Send one request (`head` ends with the blank line); return (status, headers, body)."""
        async with self.slots:
            loop = asyncio.get_running_loop()
            conn = self._reuse()
            if conn is None:
                try:
                    async with asyncio.timeout(timeout):
                        _, conn = await loop.create_connection(
                            _Http1, self.host, self.port, ssl=self.ssl,
                            server_hostname=self.host if self.ssl else None)
                except (OSError, TimeoutError) as e:
                    raise NotSent(f"{type(e).__name__}: {e}") from None
            conn.waiter = loop.create_future()
            try:
                conn.transport.write(head + body)
                async with asyncio.timeout(timeout):
                    status, headers, data, keep_alive = await conn.waiter
            except TimeoutError:
                conn.close()
                raise InDoubt(f"no answer within {timeout:g} s") from None
            except BaseException:
                conn.close()
                raise
            finally:
                conn.waiter = None
            if keep_alive and not conn.closed:
                conn.idle_since = time.monotonic()
                self.idle.append(conn)
            else:
                conn.close()
            return status, headers, data

    async def aclose(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Provider:
    """Performs Request effects: the provider's API on its own connections (`ApiConnections`),
    everything else (http_request nodes) on others (`ShardedClient`), so a slow webhook
    cannot starve Call API requests."""

    def __init__(self, config: ProviderConfig, *, max_connections: int = DEFAULT_CONNECTIONS,
                 per_client: int = PER_CLIENT, transport=None):
        self.config = config
        ssl_context = httpx.create_ssl_context()
        self._api = ApiConnections(config.api_url, max_connections, ssl_context)
        self._web = ShardedClient(WEB_CONNECTIONS, per_client, transport=transport, follow_redirects=False,
                                  trust_env=False, **({} if transport else {"verify": ssl_context}))
        self._api_prefix = config.api_url.rstrip("/") + "/"
        token = base64.b64encode(f"{config.auth_id}:{config.auth_token}".encode()).decode("ascii")
        self._fixed_headers = (f"Host: {self._api.host_header}\r\nAuthorization: Basic {token}\r\n"
                               "User-Agent: callflow\r\nAccept: application/json\r\n").encode("latin-1")

    def __repr__(self) -> str:
        return f"Provider({self.config!r})"

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._web.aclose()

    def _for_provider(self, req: Request) -> bool:
        return req.provider and req.url.startswith(self._api_prefix)

    async def perform(self, req: Request) -> Response:
        if not req.provider:
            return await self._perform_web(req)
        if not self._for_provider(req):
            return Response(error=f"refusing to send provider credentials to {httpx.URL(req.url).host}: "
                                  f"not the configured API ({self.config.api_url})")
        if not (self.config.auth_id and self.config.auth_token):
            return Response(error="no provider credentials: set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN "
                                  "(or run callflow serve --sandbox)")
        try:
            head, body = self._encode(req)
        except ValueError as e:
            return Response(error=str(e))
        try:
            status, headers, data = await self._api.request(head, body, req.timeout)
        except NotSent as e:
            return Response(error=str(e))
        except InDoubt as e:
            return Response(error=str(e), in_doubt=True)
        except TooLarge as e:
            return Response(status=e.status, error=str(e))
        resp_headers = httpx.Headers(headers)
        return Response(status=status, headers=dict(resp_headers), body=_decode(resp_headers, data, None))

    def _encode(self, req: Request) -> tuple[bytes, bytes]:
        parts = urlsplit(req.url)
        target = parts.path or "/"
        query = parts.query
        if req.params:
            extra = urlencode(req.params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target += "?" + query
        extra_headers = ""
        if req.json is not None:
            body = json.dumps(req.json, separators=(",", ":")).encode()
            extra_headers += "Content-Type: application/json\r\n"
        elif req.form is not None:
            body = urlencode(req.form, doseq=True).encode()
            extra_headers += "Content-Type: application/x-www-form-urlencoded\r\n"
        else:
            body = b""
        for k, v in (req.headers or {}).items():
            text = f"{k}{v}"
            if "\r" in text or "\n" in text or ":" in k:
                raise ValueError(f"invalid header {k!r}")
            if k.lower() not in ("authorization", "host", "content-length", "connection", "transfer-encoding"):
                extra_headers += f"{k}: {v}\r\n"
        method = req.method.upper()
        if not method.isalpha() or any(c in target for c in " \r\n"):
            raise ValueError(f"invalid request line: {method} {target}")
        head = (f"{method} {target} HTTP/1.1\r\n".encode("latin-1") + self._fixed_headers
                + f"{extra_headers}Content-Length: {len(body)}\r\n\r\n".encode("latin-1"))
        return head, body

    async def _perform_web(self, req: Request) -> Response:
        kwargs: dict = {"params": req.params, "headers": req.headers, "timeout": req.timeout}
        if req.json is not None:
            kwargs["json"] = req.json
        elif req.form is not None:
            kwargs["data"] = req.form
        try:
            async with self._web.stream(req.method, req.url, **kwargs) as r:
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return Response(status=r.status_code, error=f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                return Response(status=r.status_code, headers=dict(r.headers),
                                body=_decode(r.headers, b"".join(chunks), r.charset_encoding))
        except httpx.TimeoutException:
            return Response(error=f"timed out after {req.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL) as e:
            return Response(error=f"{type(e).__name__}: {e}")
