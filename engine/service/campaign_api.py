"""The campaigns API of `callflow serve` (contract section 8), behind the trigger API's Basic auth:

  POST /v1/campaigns                       create one: JSON {flow_id, name, rate, max_in_flight,
                                           window, timezone, dnc: [numbers], skip_bad_rows,
                                           csv: "<CSV text>" | rows: [{payload}...]}
  GET  /v1/campaigns, /v1/campaigns/{id}   records with progress
  POST /v1/campaigns/{id}/pause|resume|cancel
  GET  /v1/campaigns/{id}/results          CSV: row, destination, run_id, status, last_node, error

Creating checks every row first (engine/campaign_rows.py): bad rows refuse the campaign (422,
each listed with its CSV line) unless `skip_bad_rows`; then a second pass over the rows stores
them in batches (the campaign is `loading` meanwhile, `running` once all are in). Both passes
stream: memory holds one batch and the set of destinations.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.campaign_options import MAX_REPORTED, parse_options
from engine.campaign_rows import (
    CampaignInvalid,
    check_rows,
    csv_records,
    dict_records,
    survey,
)
from engine.errors import HttpError
from engine.jsontext import loads_json_strict
from engine.service.auth import authorized
from engine.service.campaign_store import ROW_BATCH, CampaignSpec, StoredRow
from engine.service.campaigns import wake
from engine.service.http import deny, error, read_body
from engine.service.runs import service_of

MAX_CAMPAIGN_BODY = 64 * 1024 * 1024  # a 100,000-row CSV is ~5 MB
RESULT_COLUMNS = ("row", "destination", "run_id", "status", "last_node", "error", "started_at")
ACTIONS = {"pause": ("paused", ("running",)), "resume": ("running", ("paused",)),
           "cancel": ("cancelled", ("running", "paused", "loading"))}


def _records(body: dict):
    """A fresh iterator over the body's rows, as (line, cells), header first."""
    if isinstance(body.get("csv"), str):
        return csv_records(io.StringIO(body["csv"], newline=""))
    if isinstance(body.get("rows"), list):
        return dict_records(body["rows"])
    raise CampaignInvalid("give the rows: csv (the CSV text, header = payload keys) or rows (a list of objects)")


def _json_only(request: HttpRequest) -> None:
    """These POSTs change what gets called: a browser on another site cannot send
    application/json without asking first (CORS), so a form there cannot start or resume a
    campaign with the Basic credentials the browser remembers for the console."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise HttpError(415, "send the request as JSON (Content-Type: application/json)")


async def _read_json(request: HttpRequest) -> dict:
    _json_only(request)
    raw = await read_body(request, MAX_CAMPAIGN_BODY)
    try:
        body = loads_json_strict(raw)
    except (ValueError, RecursionError):
        raise HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise HttpError(400, "the request body must be a JSON object (flow_id, rows or csv, rate...)")
    return body


async def create_campaign(request: HttpRequest):
    if not authorized(request):
        return deny()
    service = service_of(request)
    try:
        body = await _read_json(request)
    except HttpError as e:
        return error(e.status, e.message)
    entry = service.flows.get(body.get("flow_id")) if isinstance(body.get("flow_id"), str) else None
    if entry is None:
        return error(404 if isinstance(body.get("flow_id"), str) else 400,
                     f"no flow with id {body.get('flow_id')!r}" if body.get("flow_id") else "flow_id is required")
    try:
        options = parse_options(body, default_name=f"{entry.flow.id} campaign")
        found = survey(check_rows(entry.flow, _records(body), options.dnc), MAX_REPORTED)
    except (ValueError, CampaignInvalid) as e:
        return error(400, str(e))
    problems = [{"line": line, "reason": reason} for line, reason in found.problems]
    if found.bad and not options.skip_bad_rows:
        return JSONResponse({"api_id": str(uuid.uuid4()), "error": found.refusal(), "bad_rows": found.bad,
                             "problems": problems}, status_code=422)
    spec = CampaignSpec(str(uuid.uuid4()), options.name, entry.flow.id, options.rate, options.max_in_flight,
                        options.window, options.timezone, service.clock())
    await _store(service.store, spec, entry.flow, body, options.dnc)
    wake(service)
    record = await service.store.campaign(spec.id)
    return JSONResponse({"api_id": str(uuid.uuid4()), **record, "skipped_rows": problems}, status_code=201)


async def _store(store, spec: CampaignSpec, flow, body: dict, dnc) -> None:
    await store.create_campaign(spec)
    batch: list[StoredRow] = []
    for row in check_rows(flow, _records(body), dnc):
        reason = row.problem or row.skipped
        batch.append(StoredRow(row.line, row.payload, row.destination, "skipped" if reason else "pending", reason))
        if len(batch) >= ROW_BATCH:
            await store.add_campaign_rows(spec.id, batch)
            batch = []
            await asyncio.sleep(0)
    if batch:
        await store.add_campaign_rows(spec.id, batch)
    await store.set_campaign_status(spec.id, "running", ("loading",))


async def list_campaigns(request: HttpRequest):
    if not authorized(request):
        return deny()
    return JSONResponse({"api_id": str(uuid.uuid4()), "campaigns": await service_of(request).store.list_campaigns()})


async def get_campaign(request: HttpRequest):
    if not authorized(request):
        return deny()
    record = await service_of(request).store.campaign(request.path_params["campaign_id"])
    if record is None:
        return error(404, "no campaign with this id")
    return JSONResponse({"api_id": str(uuid.uuid4()), **record})


async def campaign_action(request: HttpRequest):
    if not authorized(request):
        return deny()
    action = request.path_params["action"]
    if action not in ACTIONS:
        return error(404, f"no action {action!r} (pause, resume, cancel)")
    store, campaign_id = service_of(request).store, request.path_params["campaign_id"]
    try:
        _json_only(request)
    except HttpError as e:
        return error(e.status, e.message)
    status, allowed = ACTIONS[action]
    now = await store.set_campaign_status(campaign_id, status, allowed)
    if now is None:
        return error(404, "no campaign with this id")
    if now != status:
        return error(409, f"the campaign is {now}: it cannot {action}")
    if status == "running":
        wake(service_of(request))
    return JSONResponse({"api_id": str(uuid.uuid4()), **(await store.campaign(campaign_id))})


async def campaign_results(request: HttpRequest):
    if not authorized(request):
        return deny()
    store, campaign_id = service_of(request).store, request.path_params["campaign_id"]
    record = await store.campaign(campaign_id)
    if record is None:
        return error(404, "no campaign with this id")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(RESULT_COLUMNS)
    after = 0
    while True:  # pages of rows: the store thread serves others in between
        page = await store.campaign_results(campaign_id, after, 5000)
        for row in page:
            if row["status"] == "pending" and record["status"] == "cancelled":
                row["status"] = "cancelled"
            writer.writerow(["" if row[c] is None else row[c] for c in RESULT_COLUMNS])
        if len(page) < 5000:
            break
        after = page[-1]["row"]
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="campaign-{campaign_id}.csv"'})


ROUTES = [
    Route("/v1/campaigns", create_campaign, methods=["POST"]),
    Route("/v1/campaigns", list_campaigns, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}", get_campaign, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}/results", campaign_results, methods=["GET"]),
    Route("/v1/campaigns/{campaign_id}/{action}", campaign_action, methods=["POST"]),
]

