"""HTTP helpers shared by the service and the sandbox: the one Plivo-shaped JSON error
(`error`, and `deny` for failed Basic auth), request bodies read with a size cap (checked
on Content-Length and while streaming), and listening sockets."""

from __future__ import annotations

import socket
import uuid

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from engine.errors import HttpError

MAX_BODY = 64 * 1024  # the service's trigger and callback request bodies
CHALLENGE = {"WWW-Authenticate": 'Basic realm="callflow"'}  # the browser then asks for the pair
AUTH_FAILED = "authentication failed: wrong auth id or auth token"


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """A JSON error as Plivo's API answers them: `{"api_id": <fresh uuid>, "error": message}`."""
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": message}, status_code=status, headers=headers)


def deny(headers: dict | None = None) -> JSONResponse:
    """401 for a request without the right Basic auth, with the challenge (and `headers`)."""
    return error(401, AUTH_FAILED, {**CHALLENGE, **headers} if headers else CHALLENGE)


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HttpError(400, "invalid Content-Length header")
        if int(length) > limit:
            raise HttpError(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # gone, or cut off by the body deadline (engine/service/limits.py)
        raise HttpError(400, "the client closed the connection before sending the whole body") from None
    return b"".join(chunks)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket for uvicorn (port 0: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and accepted sockets inherit it. Without it every keep-alive response waits ~40 ms
    # (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def base_url(host: str, sock: socket.socket) -> str:
    """http://HOST:PORT of a bound socket (IPv6 hosts in brackets)."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
