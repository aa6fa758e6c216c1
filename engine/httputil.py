"""HTTP helpers shared by the service and the sandbox: Plivo-shaped JSON errors and
request bodies read with a size cap (checked on Content-Length and while streaming)."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse


class HttpError(Exception):
    """An error answer: `{"api_id", "error"}` with `status`, as Plivo and PHLO give them."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"api_id": str(uuid.uuid4()), "error": message}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not length.strip().isdigit():
            raise HttpError(400, "invalid Content-Length header")
        if int(length) > limit:
            raise HttpError(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
