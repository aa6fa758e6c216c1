"""aiohttp client sessions as `callflow serve` uses them, and the guard that keeps flows'
http_request nodes to public addresses (`CALLFLOW_HTTP_ALLOW_PRIVATE=1` lifts it).

A session: at most `limit` connections, idle ones dropped after `KEEPALIVE_EXPIRY`, no
cookie jar, no proxy settings from the environment, no default time limit. The guard acts
at connect time (`PublicOnlyResolver`), so no DNS answer can change between a check and
the connection; a URL naming an IP address is checked before (`public_address`).
"""

from __future__ import annotations

import errno
import ipaddress
import socket

import aiohttp
import aiohttp.abc
import httpx

# Idle keep-alive connections are dropped after this, under uvicorn's 5 s (and most servers'
# longer) keep-alive: a request written into a connection the server is closing at that
# moment would be left in doubt (no answer, and it may have arrived).
KEEPALIVE_EXPIRY = 4.0  # seconds
DNS_CACHE_SECONDS = 10


def public_address(ip: str) -> bool:
    """Is `ip` an address on the public internet (not loopback, private, link-local...)?"""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    return addr.is_global and not addr.is_multicast


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves host names but drops non-public addresses, at connect time (no window for a
    DNS answer to change between a check and the connection): http_request nodes in the
    service cannot reach the machine's own or its private network's services by default."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list:
        found = await self._inner.resolve(host, port, family)
        public = [a for a in found if public_address(a["host"])]
        if not public:
            raise OSError(errno.EHOSTUNREACH, f"{host} resolves only to non-public addresses "
                                              "(CALLFLOW_HTTP_ALLOW_PRIVATE=1 allows them)")
        return public

    async def close(self) -> None:
        await self._inner.close()


def client_session(limit: int, *, ssl_context=None, public_only: bool = False, **kw) -> aiohttp.ClientSession:
    """An aiohttp session as callflow uses them (the provider API, http_request nodes): at
    most `limit` connections, idle ones dropped after `KEEPALIVE_EXPIRY`, no cookie jar
    (nothing carried from one run to another), no proxy settings from the environment, no
    default time limit (each caller sets its own). Call it with an event loop running."""
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=KEEPALIVE_EXPIRY, ttl_dns_cache=DNS_CACHE_SECONDS,
                                     ssl=ssl_context or httpx.create_ssl_context(),
                                     resolver=PublicOnlyResolver() if public_only else None)
    kw.setdefault("timeout", aiohttp.ClientTimeout(total=None))
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                                 raise_for_status=False, **kw)


def is_ip_literal(host: str | None) -> bool:
    """Is `host` an IP address (v4, or v6 with or without brackets) rather than a name?"""
    try:
        ipaddress.ip_address((host or "").strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True
