"""What the service needs from the store for outbound campaigns (contract section 8), on top
of `Store` (engine/service/store.py); SQLite: engine/service/sqlite_campaigns.py.

Two tables. `campaigns`: id, name, flow_id, status (`loading` while its rows are stored,
then running | paused | cancelled | done), rate (starts per second), max_in_flight, the
calling window (JSON of the `business_hours` spec) and its timezone, created_at, the row
counters, the pacing schedule `next_at` (engine/campaign_pace.py) and a lease
(`lease_owner`, `lease_until`, as on run rows: one process paces a campaign at a time).
`campaign_rows`: (campaign_id, line) -> payload JSON, destination (E.164, unique per campaign
among rows not skipped), state pending | started | skipped | done, run_id, started_at, and,
once done, the run's final status and error.

The calls:

* `create_campaign(spec)` stores a campaign as `loading`; `add_campaign_rows(id, rows)`
  appends a batch of rows (the API streams them in batches of `ROW_BATCH`);
  `set_campaign_status(id, status, allowed_from)` moves it on (`loading` -> `running` once
  every row is in, `running` -> `paused` ...) and returns the status it has afterwards, or
  None for no such campaign;
* `claim_campaigns(now=, owner=, lease_until=, limit=)` leases up to `limit` running campaigns
  whose lease is free or already `owner`'s, atomically, and returns them (`PacedCampaign`);
* `pace_counts(id, since)`: first marks `done` the started rows whose run has finished
  (copying its status and error), then returns (in flight, started since `since`, pending);
* `pending_rows(id, limit)`: the next pending rows by line, (line, payload);
* `mark_started(id, line, run_id, started_at)`: the row is started with that run (only a
  pending row: False if it was not); `set_next_at(id, next_at)`;
* `campaign(id)` -> its record with progress (`campaign_progress`'s dict) or None;
  `list_campaigns()` -> records newest first;
* `campaign_results(id, after_line, limit)`: rows in line order with the run's status, last
  node and error, for `GET /v1/campaigns/{id}/results` (paged by line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ROW_BATCH = 1000  # rows per insert
STATUSES = ("loading", "running", "paused", "cancelled", "done")


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    """A campaign as created: what to run and how fast."""

    id: str
    name: str
    flow_id: str
    rate: float
    max_in_flight: int | None
    window: dict | None
    timezone: str
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredRow:
    """A row as stored: `state` pending (to run) or skipped (with `error`: why)."""

    line: int
    payload: dict
    destination: str | None
    state: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PacedCampaign:
    """A claimed campaign, as its pacing needs it."""

    id: str
    flow_id: str
    rate: float
    max_in_flight: int | None
    window: dict | None
    timezone: str
    next_at: float


class CampaignStore(Protocol):
    async def create_campaign(self, spec: CampaignSpec) -> None: ...

    async def add_campaign_rows(self, campaign_id: str, rows: list[StoredRow]) -> None: ...

    async def set_campaign_status(self, campaign_id: str, status: str, allowed_from: tuple[str, ...]) -> str | None: ...

    async def claim_campaigns(self, *, now: float, owner: str, lease_until: float, limit: int = 10) -> list[PacedCampaign]: ...

    async def pace_counts(self, campaign_id: str, since: float) -> tuple[int, int, int]: ...

    async def pending_rows(self, campaign_id: str, limit: int) -> list[tuple[int, dict]]: ...

    async def mark_started(self, campaign_id: str, line: int, run_id: str, started_at: float) -> bool: ...

    async def set_next_at(self, campaign_id: str, next_at: float) -> None: ...

    async def campaign(self, campaign_id: str) -> dict | None: ...

    async def list_campaigns(self) -> list[dict]: ...

    async def campaign_results(self, campaign_id: str, after_line: int, limit: int) -> list[dict]: ...


def campaign_progress(base: dict, counts: dict[tuple[str, str | None], int], first: float | None,
                      last: float | None) -> dict:
    """A campaign's record: `base` (its columns) and progress from the row counts by (state,
    status) (started rows counted by their run's status) and the first and last start."""
    def total(state=None, status=None):
        return sum(n for (st, stat), n in counts.items()
                   if (state is None or st == state) and (status is None or stat == status))
    started = total("started") + total("done")
    pace = (started - 1) / (last - first) if started > 1 and last and first and last > first else None
    finished_started = total("started", "completed") + total("started", "failed")
    progress = {
        "rows": sum(counts.values()), "started": started,
        "in_flight": total("started") - finished_started,
        "completed": total("done", "completed") + total("started", "completed"),
        "failed": total("done", "failed") + total("started", "failed"),
        "skipped": total("skipped"), "remaining": total("pending"),
        "achieved_rate": round(pace, 3) if pace is not None else None,
    }
    return {**base, "progress": progress}
