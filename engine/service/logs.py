"""The log lines of `callflow serve`: one line per event, as a JSON object or as text.

`event("run.finished", run_id=..., flow=..., status=...)` logs an event with its fields;
`configure(fmt, level)` installs the one handler (stderr) and its format:

* `json`: one JSON object per line: `time` (UTC, ISO 8601), `level`, `event`, `message`,
  then the event's own fields (`run_id`, `flow`, `node`, `status`, `latency_ms`, ...);
  an exception adds `error_type` and `traceback`;
* `text`: `time level event key=value ... message`, for a terminal;
* `auto` (the default): JSON unless stderr is a terminal.

What is never logged: tokens, Authorization headers, signatures, nonces, request or
callback bodies, payload values (a run's payload is user data: its keys may be logged,
never its values). Callers pass only ids, names, statuses, counts and timings; the
formatter adds nothing from the request.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
import time

logger = logging.getLogger("callflow.server")  # one logger name for the whole service
FORMATS = ("auto", "json", "text")
LEVELS = ("debug", "info", "warning", "error")

_encode = json.JSONEncoder(default=str, separators=(",", ":")).encode
# LogRecord's own attributes: everything else on a record came from `extra` (an event's fields).
_RECORD_KEYS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "event"}


def event(name: str, message: str = "", level: int = logging.INFO, **fields) -> None:
    """Log the event `name` with `fields` (ids, names, statuses, timings: never a secret
    nor a payload value)."""
    if logger.isEnabledFor(level):
        # The fields ride in one attribute: the formatters need not sort them out of the record's.
        logger.log(level, message or name, extra={"event": name, "fields": fields})


_second: list = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    whole = int(created)
    if _second[0] != whole:
        t = time.gmtime(whole)
        _second[:] = whole, f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:" \
                            f"{t.tm_sec:02d}."
    return f"{_second[1]}{int((created - whole) * 1000):03d}Z"


def _fields(record: logging.LogRecord) -> dict:
    fields = record.__dict__.get("fields")
    if fields is not None and "event" in record.__dict__:
        return fields
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_KEYS}  # another `extra`


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json escapes newlines inside strings)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": _timestamp(record.created), "level": record.levelname.lower(),
               "event": getattr(record, "event", None) or record.name, "message": record.getMessage()}
        out.update(_fields(record))
        if record.exc_info:
            out["error_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["traceback"] = self.formatException(record.exc_info)
        return _encode(out)


class TextFormatter(logging.Formatter):
    """`time level event key=value ... message`, for people reading a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        name = getattr(record, "event", None) or record.name
        message = record.getMessage()
        parts = [_timestamp(record.created), record.levelname.lower(), name]
        parts += [f"{k}={_encode(v) if isinstance(v, (dict, list)) else v}" for k, v in _fields(record).items()]
        if message != name:
            parts.append(message)
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class LoopBatchedHandler(logging.StreamHandler):
    """A StreamHandler that writes each line at once but flushes (one write to the file
    descriptor) once per event loop iteration, not once per line: under load a line's
    write(2) cost more than the rest of the record (measured: ~0.35 ms of CPU per run of
    6 lines). Warnings and errors, and lines logged outside a running loop, are flushed
    at once; so is everything at exit (logging.shutdown)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._pending = False

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self._flush_now()

    def flush(self) -> None:  # StreamHandler.emit calls it after every record
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_now()
            return
        if not self._pending:
            self._pending = True
            loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._pending = False
        super().flush()


def buffered(stream):
    """A block-buffered text stream on `stream`'s file descriptor (stderr is line-buffered:
    a write(2) per line), or `stream` itself when it has none (a StringIO)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    stream.flush()
    return io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False), 1 << 16), encoding="utf-8",
                            errors="backslashreplace")


def resolve_format(fmt: str | None, stream=None) -> str:
    """`json` or `text` for `fmt` (auto: JSON unless `stream`, stderr by default, is a terminal)."""
    fmt = (fmt or "auto").lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "auto":
        stream = stream or sys.stderr
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return fmt


def configure(fmt: str | None = "auto", level: str | None = "info", stream=None) -> str:
    """Send every log record (callflow's, uvicorn's, aiohttp's) to `stream` (stderr) in
    `fmt`, from `level` up; return the format chosen."""
    level = (level or "info").lower()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    stream = stream or sys.stderr
    chosen = resolve_format(fmt, stream)
    handler = LoopBatchedHandler(buffered(stream))
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries: warnings and errors only
    # What no line shows, not computed per record (the logging HOWTO's "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # no caller lookup (a stack walk per record)
    logger.setLevel(getattr(logging, level.upper()))
    return chosen
