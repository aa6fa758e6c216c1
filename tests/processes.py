"""Real `callflow` processes for the end-to-end tests: free ports, a clean environment, a
subprocess that counts as started once it prints its ready line, and polling with a deadline.

    p = CallflowProcess.start(["sandbox", "--port", "0"], clean_env(), SANDBOX_READY, log_path=tmp / "s.log")
    ... p.url ...
    p.stop()

Nothing sleeps for a fixed time: the ready line is awaited with a deadline, and a process that
exits or stays silent fails the test with what it printed (stdout and the tail of stderr).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 20.0
SERVE_READY = "callflow serving on "  # `callflow serve`'s ready line, then the URL
SANDBOX_READY = "sandbox listening on "  # `callflow sandbox`'s


def wait_for(predicate, timeout: float = DEADLINE, what: str = "condition", interval: float = 0.05):
    """predicate()'s first true value, polled every `interval` s; fails the test after `timeout` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def reply(handler, status: int, body: bytes, content_type: str | None = "application/json") -> None:
    """Answer a `BaseHTTPRequestHandler`'s request with `body` (for the tests' small HTTP APIs)."""
    handler.send_response(status)
    if content_type:
        handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without any CALLFLOW_* or PLIVO_* setting, unbuffered, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CALLFLOW_"))}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


class CallflowProcess:
    """`python -m engine.cli ARGS`: stdout read line by line (every line up to the ready one is
    kept in `output`), stderr to `log_path` (a temporary file without one)."""

    url: str

    def __init__(self, args: list[str], env: dict, log_path: Path | None = None, cwd: Path = REPO,
                 prefix: list[str] | None = None):
        """`prefix`: a command that execs the rest (e.g. `unshare -m ...`); the process is then that."""
        self.args, self.log_path = args, log_path
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._stderr = open(log_path, "ab") if log_path is not None else tempfile.TemporaryFile()
        self.proc = subprocess.Popen([*(prefix or []), sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, args: list[str], env: dict, ready_prefix: str, log_path: Path | None = None, *,
              cwd: Path = REPO, timeout: float = DEADLINE) -> CallflowProcess:
        """Start the process and wait for its ready line; `url` is that line's last word."""
        p = cls(args, env, log_path, cwd)
        p.url = p.wait_line(ready_prefix, timeout).split()[-1]
        return p

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, prefix: str, timeout: float = DEADLINE) -> str:
        """The first line (stripped) starting with `prefix`; stops the process and fails the test
        if it exits or the deadline passes first."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if self.proc.poll() is not None and not self._reader.is_alive() and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if line.startswith(prefix):
                return line.strip()
        self._end()
        while not self.lines.empty():
            self.output.append(self.lines.get())
        message = (f"`callflow {self.args[0]}` did not print {prefix!r}: {''.join(self.output)}\n"
                   f"{self._stderr_tail()}")
        self.stop()
        pytest.fail(message)

    def _stderr_tail(self) -> str:
        if self.log_path is not None:
            return self.log_path.read_text(errors="replace")[-3000:]
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-3000:]

    def kill9(self) -> None:
        """SIGKILL: no shutdown of any kind (a crash)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Terminate (kill after 10 s), then close the streams. Safe to call more than once."""
        self._end()
        self.proc.stdout.close()
        self._stderr.close()

    def _end(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(5)
