"""A real PostgreSQL server for the tests: a throwaway cluster per pytest(-xdist) worker.

`initdb` into a temporary folder, `pg_ctl start` on a free port on 127.0.0.1 with its unix
socket in that folder, stopped (and the folder removed) at the end of the session. As root
the server runs as the `postgres` user (initdb refuses root). `CALLFLOW_TEST_POSTGRES=URL`
points at an existing server instead (a superuser's URL: each test gets a database of its
own, created and dropped there).

Fixtures (conftest.py imports them):
    pg_server  the server: .admin_url(), .new_database() -> URL, .stop()/.start() (the
               database going away and coming back)
    pg_url     a fresh, empty schema for this test, as a URL (as good as a database: ~2 ms)

Tests skip only where no PostgreSQL binaries exist (and no CALLFLOW_TEST_POSTGRES), and say so.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from processes import free_port

NO_SERVER = ("no PostgreSQL server binaries (initdb, pg_ctl) found and CALLFLOW_TEST_POSTGRES is unset: "
             "apt-get install postgresql (.ci/run does)")


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class Cluster:
    """A server of our own (initdb + pg_ctl), or an existing one (`external` URL)."""

    def __init__(self, external: str | None = None):
        self.external = external
        self.dir: Path | None = None
        self.port = 0
        self._as_user: list[str] = []

    # -- our own server ------------------------------------------------------------------------
    def create(self, bin_dir: Path, durable: bool = False) -> None:
        """`durable`: fsync on (commits still not flushed one by one: synchronous_commit off,
        as SQLite's synchronous=NORMAL); the tests' default is no fsync at all."""
        self.bin = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="callflow-pg-"))
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        self.port = free_port()
        self._pg("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "-A", "trust", "--no-sync",
                 "-E", "UTF8", "--locale=C")
        with open(self.dir / "data" / "postgresql.conf", "a") as conf:
            # Throwaway data: no fsync. Enough connections for two serve processes' pools per test.
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                       "synchronous_commit = off\nmax_connections = 200\n")
            if not durable:
                conf.write("fsync = off\nfull_page_writes = off\n")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as_user, str(self.bin / tool), *args], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self) -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "server.log"), "-w", "-t", "30",
                 "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        if self.dir is not None:
            try:
                self.stop("immediate")
            except RuntimeError:
                pass  # already stopped
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- either --------------------------------------------------------------------------------
    def admin_url(self, database: str = "postgres") -> str:
        if self.external:
            return self.external.rsplit("/", 1)[0] + "/" + database
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def socket_url(self, database: str) -> str:
        """The same database over the cluster's unix socket (no TCP: cheaper per statement)."""
        return f"postgresql:///{database}?host={self.dir}&port={self.port}&user=postgres"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """One statement as the superuser (a short-lived connection)."""
        import asyncio

        import asyncpg

        async def run():
            conn = await asyncpg.connect(self.admin_url(database))
            try:
                await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(run())

    def new_database(self) -> str:
        """A database of its own (CREATE DATABASE: ~0.3 s; `new_schema` is ~100x cheaper)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name}")
        return self.admin_url(name)

    def new_schema(self) -> str:
        """An empty schema in the `postgres` database, and a URL whose connections use it
        (`search_path` is passed on to the server by asyncpg): as good as an empty database
        for callflow's tables, in ~2 ms."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE SCHEMA {name}")
        return self.admin_url() + f"?search_path={name}"


@pytest.fixture(scope="session")
def pg_server():
    external = os.environ.get("CALLFLOW_TEST_POSTGRES")
    if external:
        yield Cluster(external)
        return
    bin_dir = find_binaries()
    if bin_dir is None:
        pytest.skip(NO_SERVER)
    cluster = Cluster()
    try:
        cluster.create(bin_dir)
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_server):
    url = pg_server.new_schema()
    yield url
    with contextlib.suppress(Exception):  # an external server keeps no garbage; ours is thrown away anyway
        pg_server.sql(f"DROP SCHEMA {url.rsplit('=', 1)[1]} CASCADE")
