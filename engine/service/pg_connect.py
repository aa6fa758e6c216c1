"""Connecting the PostgreSQL run store: the URL's own settings, the check at open, and
asyncpg's errors as the store's (`StoreUnusable` at open, `StoreUnavailable` while serving).

At open (`open_database`, synchronous, as `open_store` is): one connection, the migrations
(engine/service/pg_migrations.py), closed again. A server that cannot be reached, a wrong
password, a missing database or a schema newer than this code is refused there with one line
naming the database (never its password), so `callflow serve` exits 2 before it listens.
The pool itself is made later, on the event loop that uses it (asyncpg's pool belongs to one
loop).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlparse

import asyncpg

from engine.errors import StoreUnavailable, StoreUnusable
from engine.service.pg_migrations import migrate

DEFAULT_POOL_SIZE = 10
CONNECT_TIMEOUT = 10.0  # seconds to wait for a connection (at open, and for the pool)
COMMAND_TIMEOUT = 30.0  # a statement that takes longer fails as StoreUnavailable (a hung server)
OUR_PARAMS = ("pool_size",)  # taken from the URL's query; the rest is asyncpg's (sslmode...)


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where the store connects: `dsn` for asyncpg, `where` to name it in messages (the URL
    without its password), and the pool's size."""

    dsn: str
    where: str
    pool_size: int


def parse_url(url: str) -> PgTarget:
    """`postgresql://user:password@host:port/database?pool_size=N` (also `postgres://`;
    host may be a unix socket folder: `postgresql:///db?host=/run/postgresql`)."""
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in OUR_PARAMS}
    rest = [(k, v) for k, v in query if k not in OUR_PARAMS]
    size = ours.get("pool_size", str(DEFAULT_POOL_SIZE))
    if not size.isdigit() or not 1 <= int(size) <= 1000:
        raise ValueError(f"{redact(url)}: pool_size must be a whole number from 1 to 1000")
    query_text = urlencode(rest, safe="/")
    dsn = f"postgresql://{parsed.netloc}{parsed.path}" + (f"?{query_text}" if query_text else "")
    return PgTarget(dsn, redact(url), int(size))


def redact(url: str) -> str:
    """The URL without its password (what messages and logs may show), in the user part or
    the query (`?password=`)."""
    parsed = urlparse(url)
    query = parse_qsl(parsed.query, keep_blank_values=True)
    if any(k == "password" for k, _ in query):
        parsed = parsed._replace(query=urlencode([(k, "***" if k == "password" else v) for k, v in query], safe="*/"))
    if parsed.password is not None:
        user, host = parsed.netloc.rsplit("@", 1)
        parsed = parsed._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}" + (f"?{parsed.query}" if parsed.query else "")


def problem(error: BaseException) -> str:
    """asyncpg's or the socket's error in a few words, on one line."""
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return "no answer in time"
    if isinstance(error, socket.gaierror):  # a host name that does not resolve
        return f"cannot resolve the host ({error.strerror})"
    if isinstance(error, OSError) and (error.errno or error.strerror):
        # asyncio's "Connect call failed ('127.0.0.1', 5432)" says less than the errno
        return (os.strerror(error.errno) if error.errno else error.strerror).lower()
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def unavailable(error: BaseException) -> StoreUnavailable:
    """An error while serving (the server gone, a connection dropped, a statement timed out)."""
    return StoreUnavailable(f"the run store is unavailable ({problem(error)})")


DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError, TimeoutError)


async def connect(target: PgTarget) -> asyncpg.Connection:
    return await asyncpg.connect(target.dsn, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT)


async def upgrade(target: PgTarget) -> int:
    """Connect, migrate, disconnect; the schema version. `StoreUnusable` when the database
    cannot be used."""
    try:
        conn = await connect(target)
    except DRIVER_ERRORS as e:
        raise StoreUnusable(f"{target.where}: cannot connect: {problem(e)}") from None
    try:
        return await migrate(conn, target.where)
    except DRIVER_ERRORS as e:
        raise StoreUnusable(f"{target.where}: cannot prepare the database: {problem(e)}") from None
    finally:
        await conn.close()


def open_database(target: PgTarget) -> int:
    """`upgrade` from synchronous code: on a thread of its own with its own event loop, so
    it works whether or not the caller is inside a running loop (the caller waits, as it
    does for SQLite's open)."""
    result: dict = {}

    def run() -> None:
        try:
            result["version"] = asyncio.run(upgrade(target))
        except BaseException as e:  # handed to the caller's thread
            result["error"] = e

    thread = threading.Thread(target=run, name="callflow-pg-open", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["version"]
