"""Safe HTTP defaults for `callflow serve` and `callflow sandbox`: what a slow, idle or
hostile client may hold, and for how long.

uvicorn (measured against hypercorn and granian: bench/hostile_servers.py) already gives
the keep-alive idle timeout (`timeout_keep_alive`) and caps h11's header block; it has no
header-read timeout, no body-read timeout, no header-count cap with httptools, and its
`limit_concurrency` answers 503 to every request, old connections' too, once enough
sockets are open. `GuardedHttpTools` adds the missing pieces to uvicorn's httptools
protocol (connection-level, before the app sees anything) and caps the requests being
handled at once with a JSON 503.

  CALLFLOW_HTTP_HEADER_TIMEOUT    seconds to receive a request's line and headers (10)
  CALLFLOW_HTTP_BODY_TIMEOUT      seconds to receive a request's body once headers are in (20)
  CALLFLOW_HTTP_KEEPALIVE         seconds an idle keep-alive connection stays open (5)
  CALLFLOW_HTTP_MAX_HEADER_BYTES  bytes of request line plus headers (16384) -> 431
  CALLFLOW_HTTP_MAX_HEADERS       header lines per request (100) -> 431
  CALLFLOW_HTTP_MAX_CONNECTIONS   open connections; beyond it a new one gets 503 and is closed
                                  (1000, or the open-file limit less 100 when lower)
  CALLFLOW_HTTP_MAX_IN_FLIGHT     requests handled at once, bodies being read included; beyond it 503 (512)
"""

from __future__ import annotations

import json
import os
import resource
import uuid
from dataclasses import dataclass, field

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


@dataclass(frozen=True)
class HttpLimits:
    """The limits one server process applies to every connection (see the module docstring)."""

    header_timeout: float = 10.0
    body_timeout: float = 20.0
    keepalive: float = 5.0
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_connections: int = field(default_factory=lambda: default_max_connections())
    max_in_flight: int = 512


def default_max_connections() -> int:
    """1,000, or fewer when the process may not open that many files: past the file limit
    accept() fails and the listener stops taking anyone, real clients included."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return 1000 if soft == resource.RLIM_INFINITY else max(16, min(1000, soft - 100))


_SETTINGS = {  # field -> (environment variable, type)
    "header_timeout": ("CALLFLOW_HTTP_HEADER_TIMEOUT", float),
    "body_timeout": ("CALLFLOW_HTTP_BODY_TIMEOUT", float),
    "keepalive": ("CALLFLOW_HTTP_KEEPALIVE", float),
    "max_header_bytes": ("CALLFLOW_HTTP_MAX_HEADER_BYTES", int),
    "max_headers": ("CALLFLOW_HTTP_MAX_HEADERS", int),
    "max_connections": ("CALLFLOW_HTTP_MAX_CONNECTIONS", int),
    "max_in_flight": ("CALLFLOW_HTTP_MAX_IN_FLIGHT", int),
}


def limits_from_env(environ=os.environ) -> HttpLimits:
    """The limits from CALLFLOW_HTTP_*; raises ValueError naming a setting that does not parse."""
    values = {}
    for attr, (name, kind) in _SETTINGS.items():
        raw = environ.get(name)
        if not raw:
            continue
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{name}: {raw!r} is not a {'number' if kind is float else 'whole number'}") from None
        if not value > 0 or value != value or value == float("inf"):
            raise ValueError(f"{name} must be a positive {'number' if kind is float else 'whole number'}")
        values[attr] = value
    return HttpLimits(**values)


def _raw_response(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"api_id": str(uuid.uuid4()), "error": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class _TooLarge(Exception):
    """Raised from a parser callback to stop parsing a request whose headers are over a cap."""


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline (from connecting, or from a
    keep-alive request's first byte), a body-read deadline, caps on header bytes and header
    lines (431), a connection cap (503, then closed) and an in-flight cap (503). A deadline
    that passes before the app has a request closes the connection; one that passes while
    the body trickles in closes it too (the app sees a disconnect: a 400 nobody reads)."""

    limits = HttpLimits()  # replaced per server by `protocol_class`

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._timer = self._due = None
        self._header_count = self._header_size = self._header_bytes = 0
        self._reading_headers = True
        self._too_large: str | None = None
        if len(self.connections) > self.limits.max_connections:
            transport.write(_raw_response(503, "Service Unavailable", "too many connections; retry later"))
            transport.close()
            return
        self._arm(self.limits.header_timeout)

    def connection_lost(self, exc) -> None:
        if getattr(self, "_timer", None) is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    # One timer per connection, moved lazily: arming sets the due time and schedules a call
    # only when none is pending; the call re-schedules itself while the due time is later.
    # Measured: two call_later+cancel per request cost ~10 us of CPU; this costs ~0.
    def _arm(self, seconds: float) -> None:
        self._due = self.loop.time() + seconds
        if self._timer is None:
            self._timer = self.loop.call_later(seconds, self._check)

    def _disarm(self) -> None:
        self._due = None

    def _check(self) -> None:
        self._timer = None
        if self._due is None:
            return
        remaining = self._due - self.loop.time()
        if remaining > 0:
            self._timer = self.loop.call_later(remaining, self._check)
        elif not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Still in the headers after this chunk: every byte counted is a header byte (httptools
        # buffers an unfinished header line whole, so this is what bounds its memory).
        if self._reading_headers and self._header_bytes > self.limits.max_header_bytes:
            self._refuse(f"request headers larger than {self.limits.max_header_bytes} bytes")

    def send_400_response(self, msg: str) -> None:
        # httptools wraps an exception raised in a callback (our _TooLarge) as a parser error,
        # which uvicorn answers with a plain 400: say what was too large instead.
        if self._too_large is not None:
            return self._refuse(self._too_large)
        super().send_400_response(msg)

    def _refuse(self, message: str) -> None:
        if not self.transport.is_closing():
            self.transport.write(_raw_response(431, "Request Header Fields Too Large", message))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers, self._header_count, self._header_size = True, 0, 0
        if self._due is None:  # a keep-alive connection's next request: its headers get the deadline
            self._arm(self.limits.header_timeout)

    def _stop(self, message: str):
        self._too_large = message
        raise _TooLarge(message)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_header_bytes:
            self._stop(f"request line longer than {self.limits.max_header_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._stop(f"more than {self.limits.max_headers} request headers")
        super().on_header(name, value)
        self._header_size += len(name) + len(value) + 4
        if self._header_size + len(self.url) > self.limits.max_header_bytes:
            self._stop(f"request headers larger than {self.limits.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._reading_headers, self._header_bytes = False, 0
        self._arm(self.limits.body_timeout)
        if len(self.tasks) < self.limits.max_in_flight:  # uvicorn's tasks: the requests being handled
            return super().on_headers_complete()
        app, self.app = self.app, _busy
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_headers, self._header_bytes = True, 0  # what comes next is the next request's
        super().on_message_complete()


def protocol_class(limits: HttpLimits) -> type[GuardedHttpTools]:
    """`GuardedHttpTools` bound to `limits` (uvicorn instantiates the class per connection)."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {"limits": limits})


async def _busy(scope, receive, send) -> None:
    """The app for a request beyond CALLFLOW_HTTP_MAX_IN_FLIGHT: a JSON 503, at once (a
    queue would only hold sockets longer)."""
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")]})
    body = json.dumps({"api_id": str(uuid.uuid4()), "error": "too many requests in flight; retry later"})
    await send({"type": "http.response.body", "body": body.encode()})


def server_config(app, limits: HttpLimits | None = None, **options) -> uvicorn.Config:
    """A uvicorn.Config serving `app` under `limits` (from CALLFLOW_HTTP_* when None)."""
    limits = limits or limits_from_env()
    return uvicorn.Config(app, http=protocol_class(limits),
                          timeout_keep_alive=limits.keepalive, h11_max_incomplete_event_size=limits.max_header_bytes,
                          **options)
