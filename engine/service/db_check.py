"""The SQLite store's checks at start: a database file callflow cannot use is refused with
one line naming the path and what to do (`StoreUnusable`; `callflow serve` prints it as
`error: ...` and exits 2), never a traceback, and never after serving a while.

Before opening (`check_path`): a folder, a parent that is not a folder or cannot be made, a
read-only location, a file that is not SQLite (text, random bytes), a truncated file.
After opening (`check_database`): a foreign database (tables, but no `runs`), a `runs`
table that is not callflow's, a schema newer than this callflow, a corrupt file
(`PRAGMA quick_check`: reads every page once; linear in the file's size).
`unusable(path, error)` turns a sqlite3 error raised while opening into the same one line.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from engine.errors import StoreUnusable

SQLITE_MAGIC = b"SQLite format 3\x00"
RUNS_COLUMNS = {"id", "run_id", "flow_id", "status", "error", "created_at", "updated_at", "waiting_for",
                "version", "state"}
ELSEWHERE = "point --db (CALLFLOW_DB) at a callflow database or a new file"


def check_path(path: str) -> None:
    """Refuse a location that cannot hold a callflow database; make the parent folder."""
    p = Path(path)
    if p.is_dir():
        raise StoreUnusable(f"{path}: is a folder, not a database file; {ELSEWHERE}")
    parent = p.parent
    if parent.exists() and not parent.is_dir():
        raise StoreUnusable(f"{path}: {parent} is not a folder; {ELSEWHERE}")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreUnusable(f"{path}: cannot create the folder {parent} ({e.strerror}); {ELSEWHERE}") from None
    if _read_only(parent) or (p.exists() and not os.access(p, os.W_OK)):
        raise StoreUnusable(f"{path}: the location is read-only (the database, its -wal and -shm files must be "
                            f"writable); make it writable or {ELSEWHERE}")
    if p.exists():
        _check_header(path, p)


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return False


def _check_header(path: str, p: Path) -> None:
    size = p.stat().st_size
    if size == 0:
        return  # SQLite makes an empty file a new database
    with open(p, "rb") as f:
        head = f.read(100)
    if not head.startswith(SQLITE_MAGIC):
        raise StoreUnusable(f"{path}: is not an SQLite database (not callflow's); {ELSEWHERE}")
    if len(head) < 100:
        raise StoreUnusable(f"{path}: is truncated ({size} bytes, shorter than an SQLite header); "
                            "restore it from a backup or move it away to start empty")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The header's page count is valid when the change counter matches (SQLite 3.7.0+ writes both).
    valid = head[24:28] == head[92:96] and pages > 0
    if valid and size < pages * page_size and not Path(path + "-wal").exists():
        raise StoreUnusable(f"{path}: is truncated ({size} of {pages * page_size} bytes); restore it from a backup "
                            "or move it away to start empty")


def check_database(db: sqlite3.Connection, path: str, schema_version: int) -> int:
    """The schema version found; refuses a foreign, newer or corrupt database."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > schema_version:
        raise StoreUnusable(f"{path}: was written by a newer callflow (schema {version}; this one knows up to "
                            f"{schema_version}): upgrade callflow, or {ELSEWHERE}")
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables -= {"sqlite_sequence", "sqlite_stat1", "schema_migrations"}
    if tables and "runs" not in tables:
        raise StoreUnusable(f"{path}: is not a callflow database (tables {', '.join(sorted(tables)[:5])}, no runs); "
                            f"{ELSEWHERE}")
    if "runs" in tables:
        columns = {r[1] for r in db.execute("PRAGMA table_info(runs)")}
        missing = RUNS_COLUMNS - columns
        if missing:
            raise StoreUnusable(f"{path}: its runs table is not callflow's (no {', '.join(sorted(missing))}); "
                                f"{ELSEWHERE}")
    problems = [r[0] for r in db.execute("PRAGMA quick_check(3)")]
    if problems != ["ok"]:
        first = " ".join(" ".join(problems).split()).replace("*** in database main *** ", "")[:120]
        raise StoreUnusable(f"{path}: is corrupt (quick_check: {first}); restore it from a backup or "
                            "move it away to start empty")
    return version


def unusable(path: str, error: sqlite3.Error) -> StoreUnusable:
    """A sqlite3 error raised while opening `path`, as one line saying what to do."""
    text = str(error)
    if "readonly" in text or "read-only" in text:
        what = f"the location is read-only; make it writable or {ELSEWHERE}"
    elif "not a database" in text and _has_magic(path):
        what = "is corrupt (its SQLite header is damaged); restore it from a backup or move it away to start empty"
    elif "not a database" in text:
        what = f"is not an SQLite database (not callflow's); {ELSEWHERE}"
    elif "malformed" in text or "corrupt" in text:
        what = "is corrupt; restore it from a backup or move it away to start empty"
    elif "unable to open" in text:
        what = f"cannot be opened; {ELSEWHERE}"
    else:
        what = f"cannot be used ({text}); {ELSEWHERE}"
    return StoreUnusable(f"{path}: {what}")


def _has_magic(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
    except OSError:
        return False


def lock_exclusively(path: str):
    """Hold `<path>.lock` (flock) for as long as the returned file stays open: SQLite serves
    one callflow process per file, and a second one must refuse rather than share it (its
    sweeper would take the first one's queued work for lost). The kernel drops the lock when
    the process dies, `kill -9` included. (The lock file, not the database: SQLite's own
    POSIX locks on the database are per process and would be released by any close.)"""
    import fcntl  # POSIX only, like the rest of serve

    lock_path = path + ".lock"
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 (held open on purpose)
    except OSError as e:
        raise StoreUnusable(f"{path}: cannot create the lock file {lock_path} ({e.strerror}); {ELSEWHERE}") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise StoreUnusable(f"{path}: another callflow process is using this database (it holds {lock_path}); "
                            "SQLite serves one process: stop the other one, or use PostgreSQL "
                            "(--db postgresql://...) for several") from None
    return handle
