"""A round-robin TCP proxy for the tests: one port on 127.0.0.1 in front of several
backends, each new connection to the next backend in turn (as a plain L4 load balancer).

    with RoundRobinProxy([url_a, url_b]) as proxy:
        ... proxy.url ...; proxy.connections -> {backend: count}

It runs on an event loop in a thread of its own (a deep accept backlog: a load balancer takes
what comes, and its clients connect within 2 s); bytes are copied both ways until either
side closes. A backend that refuses the connection is skipped for the next one, as a load
balancer does with a dead process; when all refuse, the client's connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlparse


class RoundRobinProxy:
    def __init__(self, backends: list[str]):
        self.backends = [(urlparse(b).hostname, urlparse(b).port) for b in backends]
        self.connections = {b: 0 for b in backends}
        self._names = list(backends)
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.url = ""

    def __enter__(self) -> RoundRobinProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096), self._loop).result(10)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            self._server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        for _ in range(len(self.backends)):  # a backend that refuses: the next one (a dead process)
            index = self._next
            self._next = (index + 1) % len(self.backends)
            host, port = self.backends[index]
            try:
                backend_reader, backend_writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.connections[self._names[index]] += 1
            break
        else:
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer),
                             return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(Exception):
            writer.close()
