"""The async HTTP side of `callflow serve`: performs the executor's `Request` effects.

Provider requests (`Request.provider`: the Plivo Call and Message APIs) get HTTP Basic
auth with `PLIVO_AUTH_ID`/`PLIVO_AUTH_TOKEN`, and only when they go to the configured API
base (`PLIVO_API_URL`, default https://api.plivo.com; the executor builds
`{api}/v1/Account/{auth_id}/Call/` from the same setting): the request URL is rebuilt from
that base's origin and the request's path, so the credentials never leave for another
host. Provider requests and other requests (http_request nodes: any URL) go through two
separate `aiohttp.ClientSession`s (keep-alive connection pools), so a slow webhook cannot
starve Call API requests; both cap the response size, follow no redirect, keep no cookies
and ignore proxy settings from the environment. Secrets are never logged or shown in a
repr; they never enter run state.

A provider request that may have reached the far end without us seeing the answer (a read
timeout, a dropped connection after the request was written) comes back as
`Response(in_doubt=True)`: the shell must not send it again. A request that certainly never
left (connection refused, DNS failure, connect timeout) is a plain error.

Provider requests the API refused before processing them (429, 503, or no connection at
all) are sent again by the policy of `engine.service.retry` (Retry-After, capped backoff with
jitter, bounded attempts and time); the `Response` lists every attempt (`attempts`) when
there was more than one. `Provider.lookup` reads the Call API (live, queued and ended calls)
for the sweeper's reconciliation (engine/service/reconcile.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import aiohttp.abc
import httpx
from multidict import CIMultiDict
from yarl import URL

from engine.errors import HandedBack, InDoubt, NotSent, ResponseTooLarge
from engine.events import Request, Response
from engine.retries import attempt_record
from engine.service.retry import REFUSED, RetryPolicy, retry_after, web_with_retries
from engine.service.sessions import (
    client_session,
    is_ip_literal,
    public_address,
)

DEFAULT_API_URL = "https://api.plivo.com"
Handing = Callable[[bool], Awaitable[bool]]  # `Provider.perform`'s hook: (sent?) -> go on?
MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_CONNECTIONS = 16  # provider API connections; CALLFLOW_PROVIDER_CONNECTIONS
WEB_CONNECTIONS = 32  # http_request nodes, all hosts together
LOOKUP_CONNECTIONS = 4  # the Call API's lookups (reconciliation, requests in doubt), apart from the requests


@dataclass(frozen=True)
class ProviderConfig:
    auth_id: str
    auth_token: str
    api_url: str = DEFAULT_API_URL
    retry: RetryPolicy = field(default_factory=RetryPolicy)  # refused requests (429, 503, no connection)

    @classmethod
    def from_env(cls, environ=os.environ) -> "ProviderConfig":
        """PLIVO_AUTH_ID, PLIVO_AUTH_TOKEN, PLIVO_API_URL and the retry policy; ValueError when wrong."""
        return cls(auth_id=environ.get("PLIVO_AUTH_ID", ""), auth_token=environ.get("PLIVO_AUTH_TOKEN", ""),
                   api_url=(environ.get("PLIVO_API_URL") or DEFAULT_API_URL).rstrip("/"),
                   retry=RetryPolicy.from_env(environ))

    def __repr__(self) -> str:  # never show the token
        return f"ProviderConfig(auth_id={self.auth_id!r}, api_url={self.api_url!r}, auth_token=***)"


def _decode(headers: dict[str, str], content: bytes, encoding: str | None) -> object:
    """The body as JSON when the response says it is JSON (and it parses), else as text."""
    try:
        text = content.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        text = content.decode("utf-8", errors="replace")
    if "json" in headers.get("content-type", ""):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Response headers as a dict: lower-case names, repeated headers joined with ", "."""
    out: dict[str, str] = {}
    for name, value in response.headers.items():
        name = name.lower()
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """The whole body, or ResponseTooLarge past MAX_RESPONSE_BYTES (counted after decompression)."""
    length = response.content_length
    if length is not None and length <= MAX_RESPONSE_BYTES and "content-encoding" not in response.headers:
        return await response.read()  # the parser stops at Content-Length
    chunks, size = [], 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            response.close()  # unread data: the connection is not reused
            raise ResponseTooLarge(response.status, MAX_RESPONSE_BYTES)
        chunks.append(chunk)
    return b"".join(chunks)


@functools.lru_cache(maxsize=64)
def _timeouts(seconds: float) -> aiohttp.ClientTimeout:
    """Provider API requests. `connect`: DNS + TCP (+ TLS), also any wait for a pooled
    connection (none: our own semaphore admits at most `limit` requests), raises
    ConnectionTimeoutError; `sock_read`: silence from the server after the request was
    written, raises SocketTimeoutError. No `total`: aiohttp raises a bare TimeoutError when
    it expires, whatever the phase, which would hide whether the request left."""
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


def _attempted(answer: Response, attempts: list[dict]) -> Response:
    """The final answer, with every attempt listed when there was more than one."""
    if not attempts:
        return answer
    return dataclasses.replace(answer, attempts=(*attempts, attempt_record(answer.status, answer.error)))


def _host(url: str) -> str:
    with contextlib.suppress(ValueError):
        return urlsplit(url).hostname or "?"
    return "?"


async def _connected(session, context, params) -> None:
    """The request has its connection (new or reused) and nothing of it is written yet: the
    moment it becomes "sent" (`handing(True)`); False takes it back. A process killed while
    it waited for the connection (DNS, TCP, TLS) leaves it unsent, to be sent by another."""
    handing = context.trace_request_ctx
    if handing is not None and not await handing(True):
        raise HandedBack("taken back before it was sent")


_MARK_SENT = aiohttp.TraceConfig()
_MARK_SENT.on_connection_create_end.append(_connected)
_MARK_SENT.on_connection_reuseconn.append(_connected)
_MARK_SENT.freeze()


class Provider:
    """Performs Request effects over two `aiohttp.ClientSession`s: one for the provider's API
    (Basic auth, `max_connections` keep-alive connections), one for everything else
    (http_request nodes, `web_connections` for all hosts together).

    Timeouts, per request. Provider API: the connection (DNS, TCP, TLS) within `timeout`
    (else a plain failure: nothing left), then no more than `timeout` of silence from the
    server, and the whole exchange within 2 x `timeout` (what a connect and an answer within
    `timeout` each add up to; else in doubt). http_request nodes: the whole exchange within
    `timeout`, as `callflow run` does. Requests beyond the connection limit wait for a free
    connection without a time limit (an asyncio semaphore: that wait is not a failure of
    the request).

    aiohttp sends an idempotent request (GET, PUT, DELETE...) a second time when the server
    drops the connection before answering (RFC 9112 9.3.1, not configurable); provider
    requests (the Call and Message APIs) are POSTs, which it never resends.
    """

    def __init__(self, config: ProviderConfig, *, max_connections: int = DEFAULT_CONNECTIONS,
                 web_connections: int = WEB_CONNECTIONS, allow_private_http: bool = False):
        parts = urlsplit(config.api_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"provider API URL must be http(s)://host[:port], not {config.api_url!r}")
        self.config = config
        self.allow_private_http = allow_private_http  # http_request nodes may reach non-public hosts
        self._api_prefix = config.api_url.rstrip("/") + "/"
        self._api_origin = str(URL(config.api_url).origin())
        token = base64.b64encode(f"{config.auth_id}:{config.auth_token}".encode()).decode("ascii")
        self._api_headers = {"Authorization": f"Basic {token}", "User-Agent": "callflow",
                             "Accept": "application/json"}
        self._limits = (max(1, max_connections), max(1, web_connections))
        self._api_slots = asyncio.Semaphore(self._limits[0])
        self._web_slots = asyncio.Semaphore(self._limits[1])
        self._lookup_slots = asyncio.Semaphore(LOOKUP_CONNECTIONS)
        self._ssl = httpx.create_ssl_context()  # the trust store httpx uses (certifi)
        self._api: aiohttp.ClientSession | None = None  # made in the running loop, on first use
        self._web: aiohttp.ClientSession | None = None
        self._lookups: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:
        return f"Provider({self.config!r})"

    async def aclose(self) -> None:
        for session in (self._api, self._web, self._lookups):
            if session is not None:
                await session.close()
        self._api = self._web = self._lookups = None

    def _for_provider(self, req: Request) -> bool:
        return req.provider and req.url.startswith(self._api_prefix)

    async def perform(self, req: Request, handing: Handing | None = None) -> Response:
        """Send `req`; the answer as a Response. `handing(True)` is awaited once the request
        has its connection, right before it is written (`_connected`): False takes it back
        (HandedBack is raised, nothing was sent); `handing(False)` after a refusal (429, 503, no
        connection: not processed) before waiting to resend. Recorded, queued and sent stay
        apart that way (engine/service/runs.py)."""
        if not req.provider:
            return await web_with_retries(req, lambda: self._perform_web(req, handing))
        if not self._for_provider(req):
            return Response(error=f"refusing to send provider credentials to {_host(req.url)}: "
                                  f"not the configured API ({self.config.api_url})")
        if not (self.config.auth_id and self.config.auth_token):
            return Response(error="no provider credentials: set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN "
                                  "(or run callflow serve --sandbox)")
        try:
            method, url, headers, body = self._encode(req)
        except ValueError as e:
            return Response(error=str(e))
        return await self._send_with_retries(method, url, headers, body, req.timeout, handing)

    async def _send_with_retries(self, method: str, url: URL, headers, body: bytes, timeout: float,
                                 handing: Handing | None = None) -> Response:
        """One provider request, sent again while the API refuses it before processing it
        (429, 503, no connection), within the retry policy; `attempts` lists every attempt
        when there was more than one."""
        policy = self.config.retry
        started = time.monotonic()
        attempts: list[dict] = []
        while True:
            try:
                status, resp_headers, data = await self._api_request(method, url, headers, body, timeout, handing)
            except NotSent as e:
                answer, status, wait_at_least = Response(error=str(e)), 0, 0.0
            except InDoubt as e:
                return _attempted(Response(error=str(e), in_doubt=True), attempts)
            except ResponseTooLarge as e:
                return _attempted(Response(status=e.status, error=str(e)), attempts)
            else:
                answer = Response(status=status, headers=resp_headers, body=_decode(resp_headers, data, None))
                if status not in REFUSED:
                    return _attempted(answer, attempts)
                wait_at_least = retry_after(resp_headers, time.time()) or 0.0
            wait = max(wait_at_least, policy.backoff(len(attempts) + 1))
            if len(attempts) >= policy.retries or time.monotonic() - started + wait > policy.total_seconds:
                return _attempted(answer, attempts)  # the last refusal is the answer
            attempts.append({"status": status, "retry_in": round(wait, 3)} if status
                            else {"error": answer.error, "retry_in": round(wait, 3)})
            if handing is not None:
                await handing(False)  # not processed: a crash while we wait leaves it to send, not in doubt
            await asyncio.sleep(wait)

    async def lookup(self, path: str, params: dict | None = None, timeout: float = 5.0) -> tuple[int, object]:
        """GET `{api}/v1/Account/{auth_id}/{path}` with `params` (the Call API's lookups of
        live, queued and ended calls): `(status, decoded body)`, one attempt. Raises
        `ProviderError` when no answer came."""
        if not (self.config.auth_id and self.config.auth_token):
            raise NotSent("no provider credentials")
        target = URL(f"{self._api_origin}/v1/Account/{self.config.auth_id}/{path.lstrip('/')}")
        if params:
            target = target.with_query(params)
        # Connections of their own: the lookups unblock runs in doubt or gone quiet, and must not
        # wait behind a queue of Call requests (a burst of triggers fills the API's connections).
        if self._lookups is None:
            self._lookups = client_session(LOOKUP_CONNECTIONS, ssl_context=self._ssl, headers=self._api_headers,
                                           skip_auto_headers=("Accept-Encoding",))
        status, resp_headers, data = await self._api_request("GET", target, CIMultiDict(), b"", timeout,
                                                             lanes=(self._lookups, self._lookup_slots))
        return status, _decode(resp_headers, data, None)

    def _encode(self, req: Request) -> tuple[str, URL, CIMultiDict, bytes]:
        """`req.encode()` for the provider's API: the request line and the headers checked
        (the URL is sent as encoded), no header that would override the credentials or the
        framing, and the configured API's origin in front of the path."""
        method, url, given, body = req.encode()
        parts = urlsplit(url)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        if not method.isalpha() or any(c in target for c in " \r\n"):
            raise ValueError(f"invalid request line: {method} {target}")
        headers = CIMultiDict()
        for k, v in given.items():
            text = f"{k}{v}"
            if "\r" in text or "\n" in text or ":" in k:
                raise ValueError(f"invalid header {k!r}")
            if k.lower() not in ("authorization", "host", "content-length", "connection", "transfer-encoding"):
                headers[k] = v
        # origin + path: whatever the path holds ("//other.host/..."), the host is the configured one
        return method, URL(self._api_origin + target, encoded=True), headers, body or b""

    async def _api_request(self, method: str, url: URL, headers, body: bytes, timeout: float,
                           handing: Handing | None = None, lanes=None) -> tuple[int, dict[str, str], bytes]:
        """One exchange with the provider's API; `lanes`: (session, semaphore) other than the
        API requests' own (the lookups')."""
        session, slots = lanes or (self._api, self._api_slots)
        if session is None:  # accept-encoding: the API's answers are small, take them as they are
            session = self._api = client_session(self._limits[0], ssl_context=self._ssl, headers=self._api_headers,
                                                 skip_auto_headers=("Accept-Encoding",), trace_configs=[_MARK_SENT])
        timeout = max(timeout, 0.001)
        async with slots:
            try:
                async with asyncio.timeout(2 * timeout):
                    async with session.request(method, url, data=body, headers=headers, timeout=_timeouts(timeout),
                                               allow_redirects=False, trace_request_ctx=handing) as response:
                        data = await _read_capped(response)
                        return response.status, _headers(response), data
            except ResponseTooLarge:
                raise
            # never connected (refused, DNS, TLS handshake, connect timeout), or refused before
            # a byte was written (an invalid URL or header): safe to report as a plain failure.
            # ConnectionTimeoutError first: it is also a ServerTimeoutError.
            except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as e:
                raise NotSent(f"{type(e).__name__}: {e}") from None
            except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as e:
                raise NotSent(f"{type(e).__name__}: {e}") from None
            # connected, so the request may have been written: read timeout (SocketTimeoutError),
            # ServerDisconnectedError, a reset (ClientOSError), a truncated body (ClientPayloadError),
            # an invalid answer (ClientResponseError), our own deadline (TimeoutError).
            except TimeoutError:
                raise InDoubt(f"no complete answer within {timeout:g} s") from None
            except (aiohttp.ClientError, OSError) as e:
                raise InDoubt(f"{type(e).__name__}: {e}") from None

    async def _perform_web(self, req: Request, handing: Handing | None = None) -> Response:
        timeout = max(req.timeout, 0.001)
        session = self._web
        if session is None:
            session = self._web = client_session(self._limits[1], ssl_context=self._ssl,
                                                 public_only=not self.allow_private_http, trace_configs=[_MARK_SENT])
        try:
            method, encoded, headers, body = req.encode()
            url = URL(encoded)
            if not self.allow_private_http and is_ip_literal(url.host) and not public_address(url.host):
                return Response(error=f"refusing {url.host}: not a public address "
                                      "(CALLFLOW_HTTP_ALLOW_PRIVATE=1 allows private and loopback hosts)")
            async with self._web_slots:
                async with asyncio.timeout(timeout):  # the whole exchange, as in `callflow run`
                    async with session.request(method, url, data=body, headers=headers, allow_redirects=False,
                                               trace_request_ctx=handing) as r:
                        try:
                            data = await _read_capped(r)
                        except ResponseTooLarge as e:
                            return Response(status=e.status, error=str(e))
                        resp_headers = _headers(r)
                        return Response(status=r.status, headers=resp_headers,
                                        body=_decode(resp_headers, data, r.charset))
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as e:  # nothing was sent
            return Response(error=f"{type(e).__name__}: {e}", failure="connect")
        except TimeoutError:
            return Response(error=f"timed out after {req.timeout:g} s", failure="timeout")
        except (aiohttp.ClientError, ValueError, TypeError, OSError) as e:
            return Response(error=f"{type(e).__name__}: {e}")
