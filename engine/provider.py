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

import json
import os
from dataclasses import dataclass

import httpx

from .events import Request, Response

DEFAULT_API_URL = "https://api.plivo.com"
MAX_RESPONSE_BYTES = 1024 * 1024


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


class Provider:
    """Performs Request effects. One pooled httpx.AsyncClient for the provider's API, one
    for everything else (so a slow webhook cannot starve Call API requests of connections).

    `max_connections` bounds the provider pool. httpx's pool costs grow with the number of
    waiting requests; `bench/e2e.py` measured the choice (see docs/design.md)."""

    def __init__(self, config: ProviderConfig, *, max_connections: int = 100, transport=None):
        self.config = config
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections,
                              keepalive_expiry=30)
        self._api = httpx.AsyncClient(limits=limits, follow_redirects=False, transport=transport,
                                      auth=None, trust_env=False)
        self._web = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                                      follow_redirects=False, transport=transport, trust_env=False)
        self._api_prefix = config.api_url.rstrip("/") + "/"

    def __repr__(self) -> str:
        return f"Provider({self.config!r})"

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._web.aclose()

    def _for_provider(self, req: Request) -> bool:
        return req.provider and req.url.startswith(self._api_prefix)

    async def perform(self, req: Request) -> Response:
        if req.provider and not self._for_provider(req):
            return Response(error=f"refusing to send provider credentials to {httpx.URL(req.url).host}: "
                                  f"not the configured API ({self.config.api_url})")
        provider = self._for_provider(req)
        if provider and not (self.config.auth_id and self.config.auth_token):
            return Response(error="no provider credentials: set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN "
                                  "(or run callflow serve --sandbox)")
        client = self._api if provider else self._web
        kwargs: dict = {"params": req.params, "headers": req.headers, "timeout": req.timeout}
        if req.json is not None:
            kwargs["json"] = req.json
        elif req.form is not None:
            kwargs["data"] = req.form
        if provider:
            kwargs["auth"] = httpx.BasicAuth(self.config.auth_id, self.config.auth_token)
        try:
            async with client.stream(req.method, req.url, **kwargs) as r:
                chunks, size = [], 0
                async for chunk in r.aiter_bytes():
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        return Response(status=r.status_code, error=f"response larger than {MAX_RESPONSE_BYTES} bytes")
                    chunks.append(chunk)
                return Response(status=r.status_code, headers=dict(r.headers),
                                body=_decode(r.headers, b"".join(chunks), r.charset_encoding))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
                httpx.InvalidURL) as e:
            # Nothing was sent: a definite failure.
            return Response(error=f"{type(e).__name__}: {e}")
        except httpx.TimeoutException:
            return Response(error=f"no answer within {req.timeout:g} s", in_doubt=provider)
        except httpx.HTTPError as e:
            return Response(error=f"{type(e).__name__}: {e}", in_doubt=provider)
