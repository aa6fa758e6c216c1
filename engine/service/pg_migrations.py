"""The PostgreSQL run store's schema, as versioned migrations (`PostgresStore`,
engine/service/pg_store.py).

`callflow_schema` holds one row: the version the database is at. `MIGRATIONS` is the ordered
list of steps; step N takes the database from version N-1 to N. `migrate` runs at every open
(and by `callflow db upgrade`) in one transaction under `pg_advisory_xact_lock`, so several
processes starting at once on one database migrate it once: the others wait on the lock, then
find it current. A database at a version newer than this code knows is refused
(`StoreUnusable`): an older callflow must not write rows whose meaning it does not know.
"""

from __future__ import annotations

from engine.errors import StoreUnusable
from engine.service.pg_campaigns import CAMPAIGNS_MIGRATION  # v4

# Any fixed 64-bit number, the same in every callflow process: the lock serialising migrations.
MIGRATION_LOCK = 0x63616C6C666C6F77  # "callflow"

_V1_RUNS = """
CREATE TABLE runs (
    id          bigserial PRIMARY KEY,
    run_id      text NOT NULL UNIQUE,
    flow_id     text NOT NULL,
    status      text NOT NULL,
    error       text,
    created_at  double precision NOT NULL,
    updated_at  double precision NOT NULL,
    waiting_for text,
    call_uuid   text,
    version     integer NOT NULL,
    state       json NOT NULL  -- not jsonb: see pg_store.py
);
CREATE INDEX runs_flow ON runs (flow_id, id);
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_waiting ON runs (waiting_for, updated_at) WHERE waiting_for IS NOT NULL;
CREATE INDEX runs_call ON runs (call_uuid) WHERE call_uuid IS NOT NULL;
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    run_id      text NOT NULL,
    created_at  double precision NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);
"""

# The leases and claims (several processes), durable timers, and inbound dedupe across
# processes: `inbound_call_uuid` is written only for a run an incoming call started, unique,
# so two processes receiving the same answer request cannot both start a run for it (the same
# CallUUID may also appear on an outbound run's step: `call_uuid` stays non-unique; of runs
# stored before that share one, the newest keeps it, as `find_by_call` picks it). A run
# stored before waits on a request nobody can tell sent or not: it counts as sent (in doubt,
# never resent).
_V2_LEASES = """
ALTER TABLE runs ADD COLUMN waiting_seq integer, ADD COLUMN sent_seq integer,
    ADD COLUMN lease_owner text, ADD COLUMN lease_until double precision,
    ADD COLUMN wake_at double precision, ADD COLUMN inbound_call_uuid text;
UPDATE runs SET waiting_seq = (state->'waiting'->>'seq')::integer, sent_seq = (state->'waiting'->>'seq')::integer,
    wake_at = CASE WHEN state->'waiting'->>'for' = 'timer' THEN (state->'waiting'->>'until')::double precision END
    WHERE waiting_for IS NOT NULL;
UPDATE runs SET inbound_call_uuid = state->'call'->>'uuid' WHERE id IN (
    SELECT max(id) FROM runs WHERE (state->'call'->>'seq')::integer = 0 AND coalesce(state->'call'->>'uuid', '') <> ''
    GROUP BY state->'call'->>'uuid');
CREATE INDEX runs_wake ON runs (wake_at) WHERE wake_at IS NOT NULL;
CREATE INDEX runs_lease ON runs (lease_owner) WHERE lease_owner IS NOT NULL;
CREATE UNIQUE INDEX runs_inbound_call ON runs (inbound_call_uuid) WHERE inbound_call_uuid IS NOT NULL;
"""

# The source of each flow revision runs may still need (contract section 7: a run finishes on
# the revision it started on), so any process can rebuild the flow a run started on.
_V3_REVISIONS = """
CREATE TABLE flow_revisions (
    revision text PRIMARY KEY,
    flow_id  text NOT NULL,
    source   text NOT NULL,
    saved_at double precision NOT NULL
);
"""


def _phone(raw: str) -> str:
    """SQL for `store.phone_number` of the text expression `raw` (the same rule)."""
    compact = f"regexp_replace({raw}, '[[:space:]().-]', '', 'g')"
    return (f"CASE WHEN {compact} ~ '^[+]?[0-9]+$' THEN '+' || ltrim({compact}, '+')"
            f" ELSE nullif(btrim({raw}), '') END")


# The number search (`from_number`, `to_number`: `store.number_columns`, filled here for the runs
# stored before from the outputs of the node that holds the run's call) and the revisions' last
# use (`current_at`: `Store.prune_revisions`; the save time for those saved before).
_V5_NUMBERS = f"""
ALTER TABLE runs ADD COLUMN from_number text, ADD COLUMN to_number text;
WITH outputs AS (
    SELECT id, state->'variables'->(state->'call'->>'node') AS o FROM runs WHERE state->'call'->>'node' IS NOT NULL
), calls AS (
    SELECT id, CASE WHEN json_typeof(o->'call') = 'object' THEN o->'call' ELSE o END AS c FROM outputs
    WHERE json_typeof(o) = 'object'
), raw AS (
    SELECT id, c->>'from' AS f, split_part(c->>'to', '<', 1) AS t FROM calls
)
UPDATE runs SET from_number = {_phone('raw.f')}, to_number = {_phone('raw.t')} FROM raw WHERE runs.id = raw.id;
CREATE INDEX runs_from_number ON runs (from_number, id) WHERE from_number IS NOT NULL;
CREATE INDEX runs_to_number ON runs (to_number, id) WHERE to_number IS NOT NULL;
ALTER TABLE flow_revisions ADD COLUMN current_at double precision;
UPDATE flow_revisions SET current_at = saved_at;
ALTER TABLE flow_revisions ALTER COLUMN current_at SET NOT NULL;
"""

MIGRATIONS: tuple[str, ...] = (_V1_RUNS, _V2_LEASES, _V3_REVISIONS, CAMPAIGNS_MIGRATION, _V5_NUMBERS)
SCHEMA_VERSION = len(MIGRATIONS)


def newer_schema(where: str, found: int) -> StoreUnusable:
    return StoreUnusable(f"{where}: the database schema is version {found}, newer than this callflow knows "
                         f"({SCHEMA_VERSION}); upgrade callflow, or point --db (CALLFLOW_DB) at another database")


async def current_version(conn) -> int | None:
    """The version recorded in `callflow_schema`, or None where callflow never migrated."""
    exists = await conn.fetchval("SELECT to_regclass('callflow_schema') IS NOT NULL")
    if not exists:
        return None
    return await conn.fetchval("SELECT version FROM callflow_schema")


async def migrate(conn, where: str, target: int = SCHEMA_VERSION) -> int:
    """Bring the database on `conn` to version `target` (default: the newest); return it.
    `where` names the database in errors (the URL without its password)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        version = await current_version(conn)
        if version is None:
            if await conn.fetchval("SELECT to_regclass('runs') IS NOT NULL"):
                raise StoreUnusable(f"{where}: has a table `runs` that is not callflow's (no callflow_schema); "
                                    "point --db (CALLFLOW_DB) at a callflow database or an empty one")
            await conn.execute("CREATE TABLE callflow_schema (version integer NOT NULL)")
            await conn.execute("INSERT INTO callflow_schema VALUES (0)")
            version = 0
        if version > SCHEMA_VERSION:
            raise newer_schema(where, version)
        for step in range(version, target):
            await conn.execute(MIGRATIONS[step])
        if target > version:
            await conn.execute("UPDATE callflow_schema SET version = $1", target)
        return max(version, target)
