"""Durable run storage for `callflow serve`: the interface, and `open_store`.

The HTTP service keeps no run in memory between two requests: every event is
load -> `Executor.advance` -> save, and the save happens before the service answers or
performs any effect (the executor records each API request in the state before it emits
it, so the saved state is also the record of intent). Whatever process loads the row next
continues the run, which is what lets runs survive `kill -9` and, later, several processes.

The interface (`Store`) is async and small:

* `create_run(state)` inserts a new run (version 1);
* `load(run_id)` -> `StoredRun(state, version)` or None;
* `save(state, version)` writes the new state only if the row is still at `version`
  (optimistic concurrency) and returns the new version, else raises `Conflict`: the caller
  reloads and applies its event again to the newer state (the executor is deterministic and
  idempotent for repeated callbacks, so re-applying is safe);
* `list_runs(flow_id, status, limit, cursor, number)` pages run summaries newest first;
  `number` (as `phone_number` writes it) matches the run's call on either side;
* `find_by_call(call_uuid, flow_id)`: the run controlling a call (an incoming call's hangup
  comes to the application's hangup URL, which cannot name the run);
* `create_run_once(state, key)`: `create_run` under an idempotency key (`IdempotencyKey`:
  the trigger's scope, the client's key, a fingerprint of its body), the key and the run
  written in one transaction with the key unique per scope: of two requests with one key,
  concurrent or not, one creates the run and the other gets the winner's `KeyedRun`
  (`created` False, with the winner's fingerprint for the caller to compare). A key older
  than `key.expires_before` counts as absent and is replaced; each keyed create also purges
  a bounded batch of expired keys (the table stays as large as a day of keyed triggers);
* `ping()` returns once the database answered a trivial query (`GET /ready`);
* `waiting_counts(in_doubt_before)`: how many runs wait, by `waiting_for`, and under
  `in_doubt` how many wait for the response to a request recorded before that time
  (`GET /metrics`' gauges: global, whichever process is scraped);

Leases and claims (several processes, and one process after a crash):

* a run row carries a lease (`lease_owner`, `lease_until`): the process that is working on
  it outside a request handler (its Call request queued or in flight, a timer being
  fired). `create_run`/`create_run_once`/`save` take `lease` (a `Lease`, or None to clear
  it) and write it with the state, in the same statement;
* `mark_sent(run_id, seq, owner, sent=True)`: the run's request of step `seq` is about to be
  written to a connection (`sent_seq`), only while `owner` holds the lease; False means the
  lease was lost and the request must not be sent. `sent=False` after a refusal (429/503:
  not processed) puts it back to "not sent". "Recorded" (the request is in the state) and
  "sent" (it may have left) are what tell a request to send after a crash from one in doubt;
* `claim(kind, now=, older_than=, owner=, lease_until=, limit=)` leases to `owner`, atomically
  (one statement; `FOR UPDATE SKIP LOCKED` on PostgreSQL), up to `limit` runs of a `Claim`
  kind whose lease is free (none, or expired before `now`), and returns their ids;
  exactly one process gets each;
* `renew(owner, lease_until, run_ids)` extends the leases `owner` still holds on `run_ids`
  (the runs it is working on now: a run it let go of, say after a store failure, expires and
  is taken over); `release(owner, run_ids=None)` clears them (a graceful stop hands its
  queued work back at once; None: all of them).

Flow revisions (contract section 7: a run finishes on the revision it started on):

* `save_revision(flow_id, revision, source)` keeps a flow file's text under its revision
  (the SHA-256 of its bytes); idempotent (a second save of one revision changes nothing).
  The service saves every flow it loads before it starts runs on it;
* `load_revision(revision)` -> the source, or None: any process rebuilds the flow a run
  started on, after a reload changed or removed the file, or in a process that never read it;
* `unfinished_by_revision()` -> {(flow_id, revision): runs still waiting} (`GET /v1/flows`);
* `prune_revisions(current, now, older_than)`: marks the revisions in `current` (this
  process's) as current at `now`, then deletes every revision that no process marked
  current since `older_than` and that no unfinished run started on; returns how many went.
  One DELETE whose condition is the whole rule, so several processes pruning at once delete
  the same rows (idempotent); a revision some process still serves is marked by it every
  sweep (engine/service/sweeper.py), so it is never old enough to go.

The columns the sweeps read are written from the state on every save: `waiting_for`,
`waiting_seq`, `wake_at` (`Waiting.until` of a TIMER wait), `call_uuid` (`sweep_columns`);
and for the listing's number search `from_number`, `to_number` (`number_columns`). A run an
incoming call started also has `inbound_call_uuid` (`inbound_call_uuid`), unique on both
backends: of two answer requests for one call only one creates a run (`RunExists`).

SQLite: `SQLiteStore` in engine/service/sqlite_store.py (`open_store` picks the backend from
a URL); one process per file (a lock), so at open every lease is void and released.
PostgreSQL: `PostgresStore` in engine/service/pg_store.py (several processes).

The PostgreSQL design notes:

* the same table: `id bigserial` (paging order), `run_id text unique`, `version integer`,
  indexed `flow_id`, `status`, `waiting_for`, `updated_at`, and `state json` (not jsonb:
  it refuses `\\u0000`, which a webhook's answer can carry);
* `save` is `UPDATE runs SET state=$1, version=version+1, ... WHERE run_id=$2 AND
  version=$3` (0 rows -> `Conflict`), so two processes handling callbacks of the same run at
  once never lose an update: the loser reloads and re-applies. A per-run row lock
  (`SELECT ... FOR UPDATE` in one transaction around load/advance/save) is the pessimistic
  alternative; the version column is preferred because the shell holds no transaction
  open while it performs HTTP effects;
* the in-process per-run asyncio lock stays as a cheap local serialiser; the version check
  is what makes it correct across processes;
* `create_run_once`: a table `idempotency_keys (scope, key, fingerprint, run_id,
  created_at, PRIMARY KEY (scope, key))`; in one transaction `INSERT ... ON CONFLICT (scope,
  key) DO UPDATE ... WHERE idempotency_keys.created_at < expires_before RETURNING run_id`
  (a fresh or an expired key: insert the run too), else select the holder's run and
  fingerprint; the primary key is what makes two processes' concurrent uses of one key
  start one run; purge `DELETE ... WHERE ctid IN (SELECT ctid ... WHERE created_at < $1
  LIMIT 100)`;
* asyncpg instead of the thread: the Protocol is already async.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlparse

from engine.state import RunState, WaitReason, iso

MAX_PAGE = 500
DEFAULT_PAGE = 50


@dataclass(frozen=True, slots=True)
class StoredRun:
    """A run as loaded: its state and the version a `save` of it must name."""

    state: RunState
    version: int


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A trigger's Idempotency-Key: `scope` (account and flow), the client's `key`, the
    `fingerprint` of the request body, when it was first used (`created_at`) and the time
    before which a stored key has expired (`expires_before`)."""

    scope: str
    key: str
    fingerprint: str
    created_at: float
    expires_before: float


@dataclass(frozen=True, slots=True)
class KeyedRun:
    """What `create_run_once` did: the run holding the key, whether this call created it,
    and the fingerprint of the body the key was first used with."""

    run_id: str
    created: bool
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Lease:
    """A process's hold on a run: `owner` (the process id, `Settings.owner`) until `until`
    (epoch seconds)."""

    owner: str
    until: float


def sweep_columns(state: RunState) -> tuple:
    """The columns the sweeps and claims read, derived from the state on every save, one
    rule for every backend: (waiting_for, waiting_seq, wake_at, call_uuid)."""
    waiting = state.waiting
    if waiting is None:
        return None, None, None, (state.call.uuid or None) if state.call else None
    wake_at = waiting.until if waiting.reason is WaitReason.TIMER else None
    return waiting.reason.value, waiting.seq, wake_at, (state.call.uuid or None) if state.call else None


_PUNCTUATION = re.compile(r"[\s().-]")
_DIGITS = re.compile(r"\+?[0-9]+")


def phone_number(value) -> str | None:
    """A number as the store keeps and searches it: E.164 with its `+` (Plivo's callbacks
    send `From=14155550100`, people type `+1 415 555 0100`, `(415) 555-0100`...: digits with
    or without `+`, spaces, dots, dashes and parentheses are one number); anything else (a SIP
    URI) as written, trimmed; None for nothing."""
    if value is None:
        return None
    text = str(value).strip()
    compact = _PUNCTUATION.sub("", text)
    if _DIGITS.fullmatch(compact):
        return "+" + compact.lstrip("+")
    return text or None


def number_columns(state: RunState) -> tuple[str | None, str | None]:
    """(from_number, to_number) of the run's call (its latest): the numbers its node
    recorded in its outputs, `from`/`to` (an outbound call's; of several destinations called
    at once, the first) or `call.from`/`call.to` (the incoming call a trigger answered); with
    no call, `message.from`/`message.to` (the incoming SMS that started the run)."""
    call = state.call
    if call is None:  # no call: a run an incoming SMS started has its sender and the number written to
        first = state.variables.get(state.steps[0].node) if state.steps else None
        outputs = first.get("message") if isinstance(first, dict) else None
    else:
        outputs = state.variables.get(call.node)
    if not isinstance(outputs, dict):
        return None, None
    if isinstance(outputs.get("call"), dict):
        outputs = outputs["call"]
    to = outputs.get("to")
    return phone_number(outputs.get("from")), phone_number(str(to).split("<", 1)[0] if to is not None else None)


def run_summary(row) -> dict:
    """A `list_runs` entry from a row of (id, run_id, flow_id, status, error, created_at,
    updated_at), as both backends select it."""
    return {"run_id": row[1], "flow_id": row[2], "status": row[3], "error": row[4],
            "created_at": iso(row[5]), "updated_at": iso(row[6])}


def inbound_call_uuid(state: RunState) -> str | None:
    """The CallUUID of the incoming call that started the run (its call is step 0's)."""
    call = state.call
    return (call.uuid or None) if call is not None and call.seq == 0 else None


class Claim(StrEnum):
    """What `Store.claim` looks for (every kind: lease free, i.e. none or expired).

    * UNSENT: waiting for the response to a request never sent (`sent_seq` is not the
      waiting step): whoever claims it sends it (a queue a crashed or stopped process left);
    * IN_DOUBT: waiting for the response to a request that may have been sent, since before
      `older_than`: never resent (the in-doubt rule, reconciliation);
    * QUIET: waiting for a call, input or hangup callback since before `older_than`
      (reconciliation; the run timeout);
    * TIMER: waiting on a timer due at or before `now`.
    """

    UNSENT = "unsent"
    IN_DOUBT = "in_doubt"
    QUIET = "quiet"
    TIMER = "timer"


class Store(Protocol):
    """What the service needs from a run store (see the module docstring for each call)."""

    async def create_run(self, state: RunState, lease: Lease | None = None) -> int: ...

    async def create_run_once(self, state: RunState, key: IdempotencyKey, lease: Lease | None = None) -> KeyedRun: ...

    async def load(self, run_id: str) -> StoredRun | None: ...

    async def save(self, state: RunState, version: int, lease: Lease | None = None) -> int: ...

    async def mark_sent(self, run_id: str, seq: int, owner: str, sent: bool = True) -> bool: ...

    async def claim(self, kind: Claim, *, now: float, older_than: float, owner: str, lease_until: float,
                    limit: int = 100) -> list[str]: ...

    async def renew(self, owner: str, lease_until: float, run_ids: list[str]) -> int: ...

    async def release(self, owner: str, run_ids: list[str] | None = None) -> int: ...

    async def list_runs(self, *, flow_id: str | None = None, status: str | None = None,
                        limit: int = DEFAULT_PAGE, cursor: str | None = None,
                        number: str | None = None) -> tuple[list[dict], str | None]: ...

    async def find_by_call(self, call_uuid: str, flow_id: str | None = None) -> str | None: ...

    async def ping(self) -> None: ...

    async def waiting_counts(self, in_doubt_before: float) -> dict[str, int]: ...

    async def save_revision(self, flow_id: str, revision: str, source: str) -> None: ...

    async def load_revision(self, revision: str) -> str | None: ...

    async def unfinished_by_revision(self) -> dict[tuple[str, str], int]: ...

    async def prune_revisions(self, current: list[str], now: float, older_than: float) -> int: ...

    async def close(self) -> None: ...


def open_store(url: str | None, **kwargs) -> Store:
    """A store from a URL: `sqlite:///relative.db`, `sqlite:////abs/path.db`,
    `sqlite:///:memory:`, or a plain file path. Query `?synchronous=full` for power-loss
    durability. `postgresql://user:password@host:port/db?pool_size=10` (or `postgres://`):
    PostgreSQL, checked and migrated here."""
    # Imported here, not at the top: a backend (and its driver) loads only when chosen.
    from engine.service.sqlite_store import SQLiteStore

    url = url or "callflow.db"
    if "://" not in url:
        return SQLiteStore(url, **kwargs)
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
        if parsed.netloc:  # sqlite://relative/path: treat host as the first path segment
            path = parsed.netloc + ("/" + path if path else "")
        if not path:
            raise ValueError(f"{url}: no database file in the URL (sqlite:///callflow.db)")
        query = parse_qs(parsed.query)
        sync = (query.get("synchronous") or [kwargs.pop("sync", "NORMAL")])[0].upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"{url}: synchronous must be normal, full or extra")
        if (query.get("inline") or ["0"])[0] not in ("0", ""):  # measuring only (bench/e2e.py --db-mode)
            kwargs["inline"] = True
        return SQLiteStore(path, sync=sync, **kwargs)
    if parsed.scheme in ("postgres", "postgresql"):
        from engine.service.pg_store import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"{url}: unknown store (use sqlite:///path/to/callflow.db or postgresql://user@host/db)")
