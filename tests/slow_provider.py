"""A provider slowed down: an HTTP proxy in front of the sandbox that holds every Call API
request `delay` seconds before passing it on, as a loaded provider does. A request it has
read is passed on even when the client went away meanwhile (the far end processes what it
received, whoever still listens)."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()  # made in the loop it serves


class SlowProvider:
    """`SlowProvider(sandbox_url, delay).url`: the slowed API; `received`: requests read."""

    def __init__(self, target: str, delay: float):
        self.target, self.delay, self.received = target.rstrip("/"), delay, 0
        self._loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._serve, args=(started,), daemon=True).start()
        started.wait(10)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, handler_cancellation=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self._session = self._loop.run_until_complete(_session())
        started.set()
        self._loop.run_forever()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST":
            self.received += 1
            await asyncio.sleep(self.delay)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with self._session.request(request.method, self.target + request.path_qs, data=body,
                                         headers=headers) as r:
            return web.Response(status=r.status, body=await r.read(), content_type=r.content_type)

    def close(self) -> None:
        async def stop():
            await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
