"""The async HTTP side of `callflow serve`: performs the executor's `Request` effects.

Provider requests (`Request.provider`: the Plivo Call and Message APIs) get HTTP Basic
auth with `PLIVO_AUTH_ID`/`PLIVO_AUTH_TOKEN`, and only when they go to the configured API
base (`PLIVO_API_URL`, default https://api.plivo.com; the executor builds
`{api}/v1/Account/{auth_id}/Call/` from the same setting), so the credentials never leave
for another host. Other requests (http_request nodes) go out as they are, with a size limit
on the response. Secrets are never logged or shown in a repr; they never enter run state.

A provider request that may have reached the far end without us seeing the answer (a read
timeout, a dropped connection after the request was written) comes back as
`Response(in_doubt=True)`: the shell must not send it again. A request that certainly never
left (connection refused, connect timeout) is a plain error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
from dataclasses import dataclass
from urllib.parse import urlencode

import httpcore
import httpx

from .events import Request, Response

DEFAULT_API_URL = "https://api.plivo.com"
MAX_RESPONSE_BYTES = 1024 * 1024
KEEPALIVE_EXPIRY = 4.0  # seconds
DEFAULT_CONNECTIONS = 16  # provider API pool; bench/e2e.py --provider-connections measures it
WEB_CONNECTIONS = 32  # http_request nodes, all hosts together
PER_CLIENT = 4  # connections per httpx client / httpcore pool (see ShardedClient)
USER_AGENT = b"callflow"


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


class ApiPools:
    """The provider API's connections: httpcore pools (httpx's own transport) used directly.

    Provider requests are one shape (a JSON POST with Basic auth to one host), so they skip
    httpx's client layer (URL parsing and merging, auth flow, redirects, cookies, models):
    measured ~0.35 ms CPU less per request on top of the sharding (`ShardedClient` has the
    numbers; 516 vs 858 us per request, 16 connections, 16 concurrent). Same sharding: pools
    of `per_pool` connections, the least busy one takes the request, a semaphore in front.
    """

    def __init__(self, connections: int, per_pool: int = PER_CLIENT, ssl_context=None):
        per_pool = max(1, min(per_pool, connections))
        count = -(-connections // per_pool)
        ssl_context = ssl_context or httpx.create_ssl_context()
        self.pools = [httpcore.AsyncConnectionPool(ssl_context=ssl_context, max_connections=per_pool,
                                                   max_keepalive_connections=per_pool,
                                                   keepalive_expiry=KEEPALIVE_EXPIRY) for _ in range(count)]
        self.busy = [0] * count
        self.slots = asyncio.Semaphore(count * per_pool)

    @contextlib.asynccontextmanager
    async def stream(self, method: bytes, url: str, headers: list, content: bytes, timeout: float):
        async with self.slots:
            busy = self.busy
            i = busy.index(min(busy))
            busy[i] += 1
            try:
                ext = {"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}}
                async with self.pools[i].stream(method, url, headers=headers, content=content,
                                                extensions=ext) as r:
                    yield r
            finally:
                busy[i] -= 1

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class Provider:
    """Performs Request effects: the provider's API on its own connections (`ApiPools`),
    everything else (http_request nodes) on others (`ShardedClient`), so a slow webhook
    cannot starve Call API requests."""

    def __init__(self, config: ProviderConfig, *, max_connections: int = DEFAULT_CONNECTIONS,
                 per_client: int = PER_CLIENT, transport=None):
        self.config = config
        ssl_context = httpx.create_ssl_context()
        self._api = ApiPools(max_connections, per_client, ssl_context)
        self._web = ShardedClient(WEB_CONNECTIONS, per_client, transport=transport, follow_redirects=False,
                                  trust_env=False, **({} if transport else {"verify": ssl_context}))
        self._api_prefix = config.api_url.rstrip("/") + "/"
        token = base64.b64encode(f"{config.auth_id}:{config.auth_token}".encode()).decode("ascii")
        self._auth_header = f"Basic {token}".encode("ascii")

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
        url = req.url
        if req.params:
            url = str(httpx.URL(url).copy_merge_params(req.params))
        headers = [(b"Accept", b"application/json"), (b"User-Agent", USER_AGENT), (b"Authorization", self._auth_header)]
        if req.json is not None:
            content = json.dumps(req.json, separators=(",", ":")).encode()
            headers.append((b"Content-Type", b"application/json"))
        elif req.form is not None:
            content = urlencode(req.form, doseq=True).encode()
            headers.append((b"Content-Type", b"application/x-www-form-urlencoded"))
        else:
            content = b""
        if content or req.method.upper() in ("POST", "PUT", "PATCH"):
            headers.append((b"Content-Length", str(len(content)).encode()))
        for k, v in (req.headers or {}).items():
            if k.lower() not in ("authorization", "host", "content-length"):
                headers.append((k.encode("latin-1"), str(v).encode("latin-1")))
        try:
            async with self._api.stream(req.method.upper().encode(), url, headers, content, req.timeout) as r:
                chunks, size = [], 0
                async for chunk in r.aiter_stream():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return Response(status=r.status, error=f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                resp_headers = httpx.Headers(r.headers)
                return Response(status=r.status, headers=dict(resp_headers),
                                body=_decode(resp_headers, b"".join(chunks), None))
        except (httpcore.ConnectError, httpcore.ConnectTimeout, httpcore.PoolTimeout, httpcore.UnsupportedProtocol,
                httpcore.LocalProtocolError) as e:
            # Nothing was sent: a definite failure.
            return Response(error=f"{type(e).__name__}: {e}")
        except httpcore.TimeoutException:
            return Response(error=f"no answer within {req.timeout:g} s", in_doubt=True)
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as e:
            return Response(error=f"{type(e).__name__}: {e}", in_doubt=True)

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
