"""The operator's endpoints of `callflow serve` (contract section 5):

  GET /health    alive: the process answers (no auth, no database), for liveness probes
  GET /ready     ready: the store answered a trivial query within READY_TIMEOUT (else 503),
                 for load balancers and readiness probes (no auth: they carry none)
  GET /metrics   Prometheus text format (engine/service/metrics.py), behind the trigger API's
                 Basic auth: flow names and traffic volumes are the operator's business,
                 and Prometheus scrapes with `basic_auth` in its scrape config
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response

from engine.service.auth import authorized
from engine.service.http import deny
from engine.service.logs import event
from engine.service.metrics import CONTENT_TYPE
from engine.service.runs import service_of

READY_TIMEOUT = 2.0  # seconds for the store's ping
# A request recorded longer ago than this is over wherever it was sent (the provider client
# gives up after 2 x its 10 s timeout): still unanswered, it is in doubt.
IN_DOUBT_AFTER = 20.0


async def health(request: HttpRequest):
    return JSONResponse({"status": "ok", "flows": len(service_of(request).flows)})


async def ready(request: HttpRequest):
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await service_of(request).store.ping()
    except Exception as e:  # any failure of the store means: not ready
        event("ready.failed", level=logging.ERROR, error_type=type(e).__name__)
        return JSONResponse({"status": "unavailable", "error": "the run store did not answer"}, status_code=503)
    return JSONResponse({"status": "ready"})


async def metrics(request: HttpRequest):
    if not authorized(request):
        return deny()
    service = service_of(request)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            waiting = await service.store.waiting_counts(service.clock() - IN_DOUBT_AFTER)
    except Exception as e:  # the process's own figures are still worth a scrape
        event("metrics.store_failed", level=logging.ERROR, error_type=type(e).__name__)
        waiting = None
    return Response(service.observe.metrics.render(waiting), media_type=CONTENT_TYPE)
