"""Campaigns on PostgreSQL (`CampaignStore`, engine/service/campaign_store.py), mixed into
`PostgresStore` (engine/service/pg_store.py; its `_run` runs one statement on a pooled
connection). The tables are the SQLite ones (engine/service/sqlite_campaigns.py) in
PostgreSQL's types; `CAMPAIGNS_MIGRATION` is their step in engine/service/pg_migrations.py.

Across processes: `claim_campaigns` leases with `FOR UPDATE SKIP LOCKED` (two processes
ticking at once take different campaigns, never one twice); a batch of rows is one
statement (`unnest` of arrays) that also counts them on the campaign.
"""

from __future__ import annotations

import json

from engine.service.campaign_store import (
    CampaignSpec,
    PacedCampaign,
    StoredRow,
    campaign_progress,
)
from engine.service.pg_pool import EXECUTE, FETCH, FETCHROW, FETCHVAL
from engine.state import iso

CAMPAIGNS_MIGRATION = """
CREATE TABLE campaigns (
    seq           bigserial PRIMARY KEY,
    id            text NOT NULL UNIQUE,
    name          text NOT NULL,
    flow_id       text NOT NULL,
    status        text NOT NULL,
    rate          double precision NOT NULL,
    max_in_flight integer,
    call_window   text,
    timezone      text NOT NULL,
    created_at    double precision NOT NULL,
    rows_total    integer NOT NULL DEFAULT 0,
    rows_skipped  integer NOT NULL DEFAULT 0,
    next_at       double precision NOT NULL DEFAULT 0,
    lease_owner   text,
    lease_until   double precision
);
CREATE INDEX campaigns_status ON campaigns (status);
CREATE TABLE campaign_rows (
    campaign_id text NOT NULL,
    line        integer NOT NULL,
    payload     text NOT NULL,
    destination text,
    state       text NOT NULL,
    run_id      text,
    started_at  double precision,
    status      text,
    error       text,
    PRIMARY KEY (campaign_id, line)
);
CREATE UNIQUE INDEX campaign_rows_destination ON campaign_rows (campaign_id, destination) WHERE state <> 'skipped';
CREATE INDEX campaign_rows_state ON campaign_rows (campaign_id, state, line);
CREATE INDEX campaign_rows_started ON campaign_rows (campaign_id, started_at) WHERE started_at IS NOT NULL;
"""
_BASE = ("SELECT id, name, flow_id, status, rate, max_in_flight, call_window, timezone, created_at FROM campaigns")
_ADD_ROWS = """
WITH added AS (
    INSERT INTO campaign_rows (campaign_id, line, payload, destination, state, error)
    SELECT $1, * FROM unnest($2::integer[], $3::text[], $4::text[], $5::text[], $6::text[])
    RETURNING state)
UPDATE campaigns SET rows_total = rows_total + (SELECT count(*) FROM added),
    rows_skipped = rows_skipped + (SELECT count(*) FROM added WHERE state = 'skipped') WHERE id = $1
"""
_CLAIM = """
UPDATE campaigns SET lease_owner = $1, lease_until = $2 WHERE seq IN (
    SELECT seq FROM campaigns WHERE status = 'running' AND (lease_until IS NULL OR lease_until < $3 OR lease_owner = $1)
    ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING id, flow_id, rate, max_in_flight, call_window, timezone, next_at
"""
_FINISHED = """
UPDATE campaign_rows r SET state = 'done', status = runs.status, error = runs.error FROM runs
WHERE r.campaign_id = $1 AND r.state = 'started' AND runs.run_id = r.run_id AND runs.status IN ('completed', 'failed')
"""
_COUNTS = """
SELECT (SELECT count(*) FROM campaign_rows WHERE campaign_id = $1 AND state = 'started'),
       (SELECT count(*) FROM campaign_rows WHERE campaign_id = $1 AND started_at > $2),
       EXISTS (SELECT 1 FROM campaign_rows WHERE campaign_id = $1 AND state = 'pending')
"""
_RESULTS = """
SELECT r.line, r.destination, r.state, r.run_id, coalesce(r.status, runs.status), coalesce(r.error, runs.error),
       (runs.state->'path')->>(json_array_length(runs.state->'path') - 1), r.started_at
FROM campaign_rows r LEFT JOIN runs ON runs.run_id = r.run_id
WHERE r.campaign_id = $1 AND r.line > $2 ORDER BY r.line LIMIT $3
"""


class PgCampaigns:
    """The `CampaignStore` calls of `PostgresStore`."""

    async def create_campaign(self, spec: CampaignSpec) -> None:
        await self._run(EXECUTE, "INSERT INTO campaigns (id, name, flow_id, status, rate, max_in_flight, call_window,"
                        " timezone, created_at) VALUES ($1, $2, $3, 'loading', $4, $5, $6, $7, $8)",
                        spec.id, spec.name, spec.flow_id, spec.rate, spec.max_in_flight,
                        json.dumps(spec.window) if spec.window is not None else None, spec.timezone, spec.created_at)

    async def add_campaign_rows(self, campaign_id: str, rows: list[StoredRow]) -> None:
        await self._run(EXECUTE, _ADD_ROWS, campaign_id, [r.line for r in rows],
                        [json.dumps(r.payload, separators=(",", ":")) for r in rows], [r.destination for r in rows],
                        [r.state for r in rows], [r.error for r in rows])

    async def set_campaign_status(self, campaign_id: str, status: str, allowed_from: tuple[str, ...]) -> str | None:
        await self._run(EXECUTE, "UPDATE campaigns SET status = $1 WHERE id = $2 AND status = ANY($3::text[])",
                        status, campaign_id, list(allowed_from))
        return await self._run(FETCHVAL, "SELECT status FROM campaigns WHERE id = $1", campaign_id)

    async def claim_campaigns(self, *, now: float, owner: str, lease_until: float, limit: int = 10) -> list[PacedCampaign]:
        if not await self._run(FETCHVAL, "SELECT EXISTS (SELECT 1 FROM campaigns WHERE status = 'running')"):
            return []
        rows = await self._run(FETCH, _CLAIM, owner, lease_until, now, limit)
        return [PacedCampaign(r[0], r[1], r[2], r[3], json.loads(r[4]) if r[4] else None, r[5], r[6]) for r in rows]

    async def pace_counts(self, campaign_id: str, since: float) -> tuple[int, int, int]:
        await self._run(EXECUTE, _FINISHED, campaign_id)
        row = await self._run(FETCHROW, _COUNTS, campaign_id, since)
        return row[0], row[1], int(row[2])

    async def pending_rows(self, campaign_id: str, limit: int) -> list[tuple[int, dict]]:
        rows = await self._run(FETCH, "SELECT line, payload FROM campaign_rows WHERE campaign_id = $1"
                               " AND state = 'pending' ORDER BY line LIMIT $2", campaign_id, limit)
        return [(r[0], json.loads(r[1])) for r in rows]

    async def mark_started(self, campaign_id: str, line: int, run_id: str, started_at: float) -> bool:
        status = await self._run(EXECUTE, "UPDATE campaign_rows SET state = 'started', run_id = $1, started_at = $2"
                                 " WHERE campaign_id = $3 AND line = $4 AND state = 'pending'",
                                 run_id, started_at, campaign_id, line)
        return status == "UPDATE 1"

    async def set_next_at(self, campaign_id: str, next_at: float) -> None:
        await self._run(EXECUTE, "UPDATE campaigns SET next_at = $1 WHERE id = $2", next_at, campaign_id)

    async def _campaign_record(self, row) -> dict:
        campaign_id = row[0]
        counts: dict = {}
        for r in await self._run(FETCH, "SELECT state, status, count(*) FROM campaign_rows WHERE campaign_id = $1"
                                 " AND state <> 'started' GROUP BY state, status", campaign_id):
            counts[(r[0], r[1])] = r[2]
        for r in await self._run(FETCH, "SELECT runs.status, count(*) FROM campaign_rows c JOIN runs ON"
                                 " runs.run_id = c.run_id WHERE c.campaign_id = $1 AND c.state = 'started'"
                                 " GROUP BY runs.status", campaign_id):
            counts[("started", r[0])] = counts.get(("started", r[0]), 0) + r[1]
        first, last = await self._run(FETCHROW, "SELECT min(started_at), max(started_at) FROM campaign_rows"
                                      " WHERE campaign_id = $1 AND started_at IS NOT NULL", campaign_id)
        base = {"id": campaign_id, "name": row[1], "flow_id": row[2], "status": row[3], "rate": row[4],
                "max_in_flight": row[5], "window": json.loads(row[6]) if row[6] else None, "timezone": row[7],
                "created_at": iso(row[8]), "first_start": iso(first) if first else None,
                "last_start": iso(last) if last else None}
        return campaign_progress(base, counts, first, last)

    async def campaign(self, campaign_id: str) -> dict | None:
        row = await self._run(FETCHROW, _BASE + " WHERE id = $1", campaign_id)
        return await self._campaign_record(row) if row else None

    async def list_campaigns(self) -> list[dict]:
        return [await self._campaign_record(row) for row in await self._run(FETCH, _BASE + " ORDER BY seq DESC LIMIT 200")]

    async def campaign_results(self, campaign_id: str, after_line: int, limit: int) -> list[dict]:
        rows = await self._run(FETCH, _RESULTS, campaign_id, after_line, limit)
        return [{"row": r[0], "destination": r[1], "run_id": r[3], "status": r[4] or r[2], "last_node": r[6],
                 "error": r[5], "started_at": iso(r[7]) if r[7] else None} for r in rows]
