"""ASGI servers side by side on hostile clients and on CPU per request: uvicorn (h11,
httptools), uvicorn with callflow's guard (engine/service/limits.py), hypercorn, granian.

    .venv/bin/python bench/hostile_servers.py [--only NAME ...] [--requests 4000]
    (hypercorn and granian are not dependencies: pip install hypercorn granian to include them)

Each server serves the same tiny starlette app (GET /health -> JSON) in its own process on
127.0.0.1, configured with its own options for a 2 s header-read timeout and a 2 s
keep-alive where it has them. Probes, one after another, each bounded:
  idle      300 sockets that connect and send nothing: how many the server closed within 5 s
  slowloris 300 sockets sending one header line every 0.5 s: how many closed within 5 s
  bomb      4 requests of 2,000,000 tiny headers (10 MB each): the answer, and RSS before -> after
  cpu       N keep-alive GET /health on 8 connections: server CPU microseconds per request
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = '''
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def health(request):
    return JSONResponse({"status": "ok"})
app = Starlette(routes=[Route("/health", health)])
'''
GUARDED = '''
import sys, uvicorn
sys.path.insert(0, sys.argv[2])
from engine.service.limits import HttpLimits, server_config
from hostile_app import app
limits = HttpLimits(header_timeout=2, body_timeout=2, keepalive=2)
uvicorn.Server(server_config(app, limits, port=int(sys.argv[1]), log_level="error", access_log=False)).run()
'''


def servers(port: int, bin_dir: Path) -> dict[str, list[str]]:
    uv = [str(bin_dir / "uvicorn"), "hostile_app:app", "--port", str(port), "--log-level", "error",
          "--no-access-log", "--timeout-keep-alive", "2"]
    return {
        "uvicorn-h11": uv + ["--http", "h11", "--h11-max-incomplete-event-size", "16384"],
        "uvicorn-httptools": uv + ["--http", "httptools"],
        "uvicorn-guarded": [sys.executable, "guarded.py", str(port), str(REPO)],
        "hypercorn": [str(bin_dir / "hypercorn"), "hostile_app:app", "--bind", f"127.0.0.1:{port}",
                      "--keep-alive", "2", "--read-timeout", "2", "--log-level", "error"],
        "granian": [str(bin_dir / "granian"), "--interface", "asgi", "--port", str(port), "--workers", "1",
                    "--http", "1", "--http1-header-read-timeout", "2000", "--log-level", "error", "hostile_app:app"],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(port: int, proc: subprocess.Popen) -> bool:
    end = time.monotonic() + 15
    while time.monotonic() < end and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def server_pid(proc: subprocess.Popen) -> int:
    """The process that serves (granian forks a worker: the child with the largest RSS)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    pids = [proc.pid] + [int(c) for c in children]
    return max(pids, key=rss_kb)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _closed(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        while True:
            if s.recv(65536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def probe_held(port: int, slow: bool, n: int = 300, window: float = 5.0) -> int:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if slow:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    end, closed = time.monotonic() + window, set()
    while time.monotonic() < end:
        for i, s in enumerate(socks):
            if i in closed:
                continue
            if _closed(s):
                closed.add(i)
            elif slow:
                try:
                    s.setblocking(True)
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    closed.add(i)
        time.sleep(0.5)
    for s in socks:
        s.close()
    return len(closed)


def probe_bomb(port: int) -> str:
    answers = []

    def one():
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            chunk = b"a:b\r\n" * 20_000
            for _ in range(100):
                s.sendall(chunk)
            s.sendall(b"\r\n")
            answers.append(s.recv(64).split(b"\r\n")[0].decode(errors="replace") or "closed")
        except OSError:
            answers.append("closed")
        finally:
            s.close()
    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return ", ".join(sorted(set(answers)))


def probe_cpu(port: int, pid: int, n: int) -> float:
    per = n // 8
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    def worker():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(per):
            s.sendall(request)
            data = b""
            while b'"ok"}' not in data:
                data += s.recv(4096)
        s.close()
    before = cpu_seconds(pid)
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return (cpu_seconds(pid) - before) / (per * 8) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--requests", type=int, default=4000)
    args = ap.parse_args()
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"hostile-bench-{os.getpid()}"
    work.mkdir()
    (work / "hostile_app.py").write_text(APP)
    (work / "guarded.py").write_text(GUARDED)
    bin_dir = Path(sys.executable).parent
    print(f"{'server':18} {'idle closed':>11} {'slow closed':>11}  {'bomb answer':24} {'RSS MB':>13} {'CPU us/req':>10}")
    try:
        for name in servers(0, bin_dir):
            if args.only and name not in args.only:
                continue
            port = free_port()
            cmd = servers(port, bin_dir)[name]
            if not Path(cmd[0]).exists() and cmd[0] != sys.executable:
                print(f"{name:18} not installed")
                continue
            proc = subprocess.Popen(cmd, cwd=work, env={**os.environ, "PYTHONPATH": str(work)},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                if not wait_up(port, proc):
                    print(f"{name:18} did not start")
                    continue
                time.sleep(0.5)
                pid = server_pid(proc)
                cpu = probe_cpu(port, pid, args.requests)
                idle = probe_held(port, slow=False)
                slow = probe_held(port, slow=True)
                before = rss_kb(pid) / 1024
                bomb = probe_bomb(port)
                after = rss_kb(pid) / 1024
                print(f"{name:18} {idle:>7}/300 {slow:>7}/300  {bomb[:24]:24} {before:5.0f} -> {after:4.0f} {cpu:10.0f}")
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
