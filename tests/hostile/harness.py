"""What the hostile probes share: a `callflow serve --sandbox` process (its generated
credentials read from what it prints), raw sockets on loopback, and serve's memory.

Every probe is bounded: a fixed number of sockets or requests, each socket with a timeout,
only 127.0.0.1.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from processes import REPO, SERVE_READY, CallflowProcess, clean_env, wait_for

FLOWS = REPO / "flows"
FLOW = "outbound-sip-headers"
ANSWERS = "+12025550100"
HOST = "127.0.0.1"


@dataclass
class Serve:
    """A running `callflow serve --sandbox` and what it printed."""

    process: CallflowProcess
    url: str
    auth: tuple[str, str]
    provider_token: str
    port: int

    @classmethod
    def start(cls, workdir: Path, db: str | None = None, prefix: list[str] | None = None, sandbox: bool = True,
              **env: str) -> "Serve":
        """`callflow serve --sandbox` (without `sandbox`: the provider from PLIVO_* in `env`)."""
        args = ["serve", str(workdir / "flows"), "--port", "0", "--db", db or f"sqlite:///{workdir}/runs.db"]
        p = CallflowProcess(args + (["--sandbox"] if sandbox else []), clean_env(**env), workdir / "serve.log",
                            cwd=workdir, prefix=prefix)
        url = p.wait_line(SERVE_READY).split()[-1]
        printed = dict(line.strip().split("=", 1) for line in p.output if "=" in line and line.startswith("  "))
        printed = {**env, **printed}
        return cls(p, url, (printed["CALLFLOW_AUTH_ID"], printed["CALLFLOW_AUTH_TOKEN"]),
                   printed["PLIVO_AUTH_TOKEN"], int(url.rsplit(":", 1)[1]))

    def stop(self) -> None:
        self.process.stop()

    @property
    def pid(self) -> int:
        return self.process.proc.pid

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def trigger(self, timeout: float = 5.0, **payload) -> httpx.Response:
        body = {"to": ANSWERS, "customer": "c1", **payload}
        return httpx.post(f"{self.url}/v1/account/{self.auth[0]}/phlo/{FLOW}/", json=body, auth=self.auth,
                          timeout=timeout)

    def get(self, path: str, **kw) -> httpx.Response:
        return httpx.get(self.url + path, auth=self.auth, timeout=10.0, **kw)

    def finished(self, run_id: str, timeout: float = 20.0) -> dict:
        def done():
            rec = self.get(f"/v1/runs/{run_id}").json()
            return rec if rec["status"] in ("completed", "failed") else None
        return wait_for(done, timeout, f"run {run_id} to finish", interval=0.1)

    def log(self) -> str:
        return (self.process.log_path.read_text(errors="replace") if self.process.log_path else "")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST, no TIME_WAIT
    return s


def closed_by_peer(s: socket.socket) -> bool:
    """Whether the server closed `s` (EOF or reset), without blocking."""
    s.setblocking(False)
    try:
        return s.recv(65536) == b""  # data (an error answer) then EOF counts on the next call
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)


def wait_all_closed(socks: list[socket.socket], timeout: float) -> int:
    """How many of `socks` the server closed within `timeout` s (each checked until closed)."""
    open_ = list(socks)
    end = time.monotonic() + timeout
    while open_ and time.monotonic() < end:
        open_ = [s for s in open_ if not _drained_closed(s)]
        time.sleep(0.1)
    return len(socks) - len(open_)


def _drained_closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        while True:
            data = s.recv(65536)
            if data == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
