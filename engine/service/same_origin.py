"""`SameOriginGuard`: refuse state-changing requests a browser sends from another site.

The console's Basic credentials are remembered by the browser and sent with any request to
this host, so a form or script on another site could start runs (and place calls), reload
flows or start campaigns. Browsers say where a request comes from (`Sec-Fetch-Site`, else
`Origin`) and a page cannot forge either; servers, SDKs, curl and the provider's callbacks
send neither, so they are not affected. A refused request gets a JSON 403 before its body is
read, and nothing happens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from engine.service.http import error

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCH = frozenset({b"same-origin", b"none"})  # "none": typed or bookmarked by the user
REFUSED = "cross-site request refused: this API takes requests from this site's console or from non-browser clients"


def _origin_host(origin: bytes) -> str | None:
    """`scheme://host[:port]` -> `host[:port]` (lower case); None when it is not a web origin."""
    try:
        parts = urlsplit(origin.decode("latin-1").strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def cross_site(headers: list[tuple[bytes, bytes]], public_host: str | None) -> bool:
    """Does a browser say this request comes from another site? `headers`: the ASGI scope's."""
    fetch_site = origin = host = None
    for name, value in headers:
        if name == b"sec-fetch-site":
            fetch_site = value.strip().lower()
        elif name == b"origin":
            origin = value
        elif name == b"host":
            host = value.decode("latin-1").strip().lower()
    if fetch_site is not None:
        return fetch_site not in SAME_SITE_FETCH
    if origin is None:
        return False  # not a browser (or a browser's same-origin GET): nothing to guard
    origin_host = _origin_host(origin)
    # Behind a proxy the Host header may be the backend's: the public URL's host counts too.
    return origin_host is None or origin_host not in {host, public_host}


class SameOriginGuard:
    """ASGI middleware: a 403 for unsafe methods that `cross_site` says come from elsewhere."""

    def __init__(self, app, public_url: str | None = None):
        self.app = app
        self.public_host = urlsplit(public_url).netloc.lower() if public_url else None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS \
                and cross_site(scope["headers"], self.public_host):
            await error(403, REFUSED)(scope, receive, send)
            return
        await self.app(scope, receive, send)
