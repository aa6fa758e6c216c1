"""The SQL of the PostgreSQL run store (engine/service/pg_store.py): one statement per store
call, and the batched forms of the frequent ones (engine/service/pg_batch.py), which take
one array per column and `unnest` them."""

from __future__ import annotations

from engine.service.store import Claim

PURGE_BATCH = 100  # expired idempotency keys deleted per keyed create

FREE = "(lease_until IS NULL OR lease_until < $4)"
CLAIMS = {  # Claim kind -> (which rows, in what order, uses older_than); $4 now, $5 older_than
    Claim.UNSENT: ("waiting_for = 'response' AND waiting_seq IS NOT NULL AND sent_seq IS DISTINCT FROM waiting_seq",
                   "updated_at", False),
    Claim.IN_DOUBT: ("waiting_for = 'response' AND (waiting_seq IS NULL OR sent_seq IS NOT DISTINCT FROM waiting_seq)"
                     " AND updated_at < $5",
                     "updated_at", True),
    Claim.QUIET: ("waiting_for IN ('call', 'input', 'hangup') AND updated_at < $5", "updated_at", True),
    Claim.TIMER: ("waiting_for = 'timer' AND wake_at <= $4", "wake_at", False),
}
# Every kind also needs a free lease; SKIP LOCKED: rows another process is claiming are its own.
CLAIM_SQL = {kind: f"UPDATE runs SET lease_owner = $1, lease_until = $2 WHERE id IN (SELECT id FROM runs WHERE"
                   f" {where} AND {FREE} ORDER BY {order} LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING run_id"
             for kind, (where, order, _) in CLAIMS.items()}

INSERT = ("INSERT INTO runs (run_id, flow_id, status, error, created_at, updated_at, waiting_for, waiting_seq,"
          " wake_at, call_uuid, state, from_number, to_number, lease_owner, lease_until, inbound_call_uuid, version)"
          " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1)")
SAVE = ("UPDATE runs SET status = $2, error = $3, updated_at = $4, waiting_for = $5, waiting_seq = $6,"
        " wake_at = $7, call_uuid = $8, state = $9, from_number = $10, to_number = $11, lease_owner = $12,"
        " lease_until = $13, version = version + 1 WHERE run_id = $1 AND version = $14")
# Several runs' saves in one statement (pg_batch.py): the same columns as SAVE, as arrays.
SAVE_MANY = ("UPDATE runs SET status = v.status, error = v.error, updated_at = v.updated_at, waiting_for = v.waiting_for,"
             " waiting_seq = v.waiting_seq, wake_at = v.wake_at, call_uuid = v.call_uuid, state = v.state::json,"
             " from_number = v.from_number, to_number = v.to_number,"
             " lease_owner = v.lease_owner, lease_until = v.lease_until, version = runs.version + 1"
             " FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::int4[], $7::float8[],"
             " $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], $14::int4[])"
             " AS v(run_id, status, error, updated_at, waiting_for, waiting_seq, wake_at, call_uuid, state,"
             " from_number, to_number, lease_owner, lease_until, version)"
             " WHERE runs.run_id = v.run_id AND runs.version = v.version RETURNING runs.run_id")
CLAIM_KEY = ("INSERT INTO idempotency_keys AS k (scope, key, fingerprint, run_id, created_at) VALUES ($1, $2, $3, $4, $5)"
             " ON CONFLICT (scope, key) DO UPDATE SET fingerprint = excluded.fingerprint, run_id = excluded.run_id,"
             " created_at = excluded.created_at WHERE k.created_at < $6 RETURNING run_id")
PURGE_KEYS = ("DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys WHERE created_at < $1"
              " LIMIT $2)")
# Several runs created in one statement (pg_batch.py); a unique violation fails them all, and
# they are then inserted one by one to tell which one exists.
INSERT_MANY = ("INSERT INTO runs (run_id, flow_id, status, error, created_at, updated_at, waiting_for, waiting_seq,"
               " wake_at, call_uuid, state, from_number, to_number, lease_owner, lease_until, inbound_call_uuid,"
               " version) SELECT v.run_id, v.flow_id, v.status, v.error, v.created_at, v.updated_at, v.waiting_for,"
               " v.waiting_seq, v.wake_at, v.call_uuid, v.state::json, v.from_number, v.to_number, v.lease_owner,"
               " v.lease_until, v.inbound_call_uuid, 1"
               " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::float8[], $7::text[],"
               " $8::int4[], $9::float8[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],"
               " $15::float8[], $16::text[])"
               " AS v(run_id, flow_id, status, error, created_at, updated_at, waiting_for, waiting_seq, wake_at,"
               " call_uuid, state, from_number, to_number, lease_owner, lease_until, inbound_call_uuid)")
# The revisions pruning (`Store.prune_revisions`): mark this process's current ones, then
# delete those nobody marked since $1 that no unfinished run started on.
MARK_CURRENT = "UPDATE flow_revisions SET current_at = $1 WHERE revision = ANY($2::text[])"
PRUNE_REVISIONS = ("DELETE FROM flow_revisions WHERE current_at < $1 AND revision NOT IN (SELECT state->>'flow_revision'"
                   " FROM runs WHERE status IN ('running', 'waiting') AND state->>'flow_revision' IS NOT NULL)")
MARK_SENT = "UPDATE runs SET sent_seq = $2 WHERE run_id = $1 AND lease_owner = $3"
MARK_SENT_MANY = ("UPDATE runs SET sent_seq = v.seq FROM unnest($1::text[], $2::int4[], $3::text[]) AS v(run_id, seq, owner)"
                  " WHERE runs.run_id = v.run_id AND runs.lease_owner = v.owner RETURNING runs.run_id")
