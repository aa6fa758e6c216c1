"""Several small httpx clients as one: the sandbox server's client for its callbacks.

httpx's connection pool costs O(n^2) in its connections on every request start and end, so
one large pool spent most of the sandbox's CPU under load; `ShardedClient` spreads the same
connections over small clients (measurements in its docstring and in docs/design.md).
"""

from __future__ import annotations

import asyncio
import contextlib

import httpx

__all__ = ["KEEPALIVE_EXPIRY", "PER_CLIENT", "ShardedClient"]

# Idle keep-alive connections are dropped after this, under uvicorn's 5 s (and most servers'
# longer) keep-alive, so a request is not written into a connection the far end is closing.
KEEPALIVE_EXPIRY = 4.0  # seconds
PER_CLIENT = 4  # connections per httpx client


class ShardedClient:
    """Several small httpx.AsyncClients behind the part of the AsyncClient API we use
    (`build_request`, `send`, `stream`, `aclose`). The sandbox's callbacks use it
    (engine/local/sandbox_server.py); see docs/design.md, "Performance notes", for why they have
    not moved to aiohttp like serve's requests.

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
