"""`callflow campaign run`: a whole campaign offline, on the embedded sandbox (no call is
placed), with the service's checks (engine/campaign_rows.py) and pacing arithmetic
(engine/campaign_pace.py), on a simulated clock unless `real_time`: each run plays to its end
at once (`LocalRun`), in flight for its simulated duration, so `max_in_flight` and the
calling window behave as in `callflow serve`, and a day-long campaign plays in seconds."""

from __future__ import annotations

import csv
import heapq
import io
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime

from engine.campaign_options import CampaignOptions, parse_options
from engine.campaign_pace import (
    next_start,
    parse_window,
    starts_allowed,
    window_seconds,
)
from engine.campaign_rows import (
    CampaignInvalid,
    CheckedRow,
    check_rows,
    csv_records,
    survey,
)
from engine.errors import FlowInvalid
from engine.flow import Flow
from engine.local.run import LocalRun
from engine.local.scenario import Scenario
from engine.state import iso

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
TICK = 0.05  # the service's pacing tick (engine/service/campaigns.py)
COLUMNS = ("row", "destination", "run_id", "status", "last_node", "error", "started_at")


class OfflineCampaign:
    """Plays rows through `LocalRun`s at the campaign's pace; `results` in line order."""

    def __init__(self, flow: Flow, scenario: Scenario, options: CampaignOptions, now: float,
                 real_time: bool = False, on_tick: Callable[[dict], None] | None = None):
        self.flow, self.scenario, self.options = flow, scenario, options
        self.window = parse_window(options.window, options.timezone) if options.window else None
        self.now, self.real_time = now, real_time
        self.on_tick = on_tick or (lambda progress: None)
        self.results: list[dict] = []
        self.starts: deque[float] = deque()
        self.finishing: list[float] = []  # when the runs in flight end (simulated)
        self.counts = {"started": 0, "completed": 0, "failed": 0, "skipped": 0}

    def play(self, rows: Iterator[CheckedRow], total: int) -> list[dict]:
        rows = iter(rows)
        next_at, more = self.now, True
        while more or self.finishing:
            if self.real_time:
                self.now = time.time()
            while self.finishing and self.finishing[0] <= self.now:
                heapq.heappop(self.finishing)
            if not more and not self.real_time:  # the rest is waiting for the runs in flight to end
                self.now = max(self.finishing)
                self.finishing.clear()
            elif more and self.window is not None and not self.window.is_open(self.now):
                if not self.real_time:  # closed: on to the next minute (windows are in minutes)
                    self.now = math.floor(self.now / 60) * 60 + 60 - TICK
            elif more:
                while self.starts and self.starts[0] <= self.now - window_seconds(self.options.rate) + 1e-6:
                    self.starts.popleft()
                allowed = starts_allowed(self.options.rate, next_at, self.now, len(self.starts),
                                         len(self.finishing), self.options.max_in_flight)
                started, more = self._start(rows, allowed)
                next_at = next_start(self.options.rate, next_at, self.now, started)
            self.on_tick(self.progress(total, more))
            if self.real_time:
                time.sleep(TICK)
            elif more or self.finishing:
                self.now += TICK
        return sorted(self.results, key=lambda r: r["row"])

    def _start(self, rows: Iterator[CheckedRow], allowed: int) -> tuple[int, bool]:
        """Start up to `allowed` rows; (how many started, whether rows remain)."""
        started = 0
        while started < allowed:
            row = next(rows, None)
            if row is None:
                return started, False
            reason = row.problem or row.skipped
            if reason:
                self.counts["skipped"] += 1
                self.results.append(_result(row, None, "skipped", None, reason, None))
                continue
            self._run(row)
            started += 1
        return started, True

    def _run(self, row: CheckedRow) -> None:
        runner = LocalRun(self.flow, self.scenario)
        runner.started = self.now  # the run's clock is the campaign's
        state = runner.run(row.payload)
        self.starts.append(self.now)
        heapq.heappush(self.finishing, self.now + max(runner.simulated, 0.0))
        self.counts["started"] += 1
        self.counts["completed" if state.status == "completed" else "failed"] += 1
        self.results.append(_result(row, state.run_id, state.status, state.path[-1] if state.path else None,
                                    state.error, self.now))

    def progress(self, total: int, more: bool) -> dict:
        c = self.counts
        in_flight = len(self.finishing)
        return {"rows": total, "started": c["started"], "in_flight": in_flight,
                "completed": c["completed"],
                "failed": c["failed"], "skipped": c["skipped"],
                "remaining": total - c["started"] - c["skipped"], "achieved_rate": None}


def _result(row: CheckedRow, run_id, status, last_node, error, started_at) -> dict:
    return {"row": row.line, "destination": row.destination, "run_id": run_id, "status": status,
            "last_node": last_node, "error": error, "started_at": iso(started_at) if started_at else None}


def results_csv(results: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in results:
        writer.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
    return out.getvalue()


def run_campaign(flow_path: str, csv_name: str, csv_text: str, body: dict, *, scenario: str | None,
                 real_time: bool, start_at: str | None, output: str | None, echo) -> int:
    """The command: check, refuse or play, write the results; the exit status."""
    from engine.load.build import load_flow
    from engine.local.progress import CampaignProgress
    from engine.local.scenario import load_scenario

    try:
        flow = load_flow(flow_path)
        behaviour = load_scenario(scenario) if scenario else Scenario()
    except FlowInvalid as e:
        for d in e.diagnostics:
            echo(str(d), err=True)
        return EXIT_BAD_INPUT
    try:
        options = parse_options(body, default_name=flow.id)
        start = datetime.fromisoformat(start_at.replace("Z", "+00:00")).timestamp() if start_at else time.time()
        rows = lambda: check_rows(flow, csv_records(io.StringIO(csv_text, newline="")), options.dnc)  # noqa: E731
        found = survey(rows())
    except (ValueError, CampaignInvalid) as e:
        echo(f"error: {e}", err=True)
        return EXIT_BAD_INPUT
    for line, reason in found.problems:
        echo(f"{csv_name}:{line}: {'skipped: ' if options.skip_bad_rows else ''}{reason}", err=True)
    if found.bad and not options.skip_bad_rows:
        echo(f"error: {found.refusal()}", err=True)
        return EXIT_BAD_INPUT
    total = found.bad + found.runnable + found.do_not_call
    echo(f"campaign of {flow.id} on the embedded sandbox: {found.runnable} runs at most {options.rate:g}/s"
         f"{' (simulated clock)' if not real_time else ''}; no real call is placed", err=True)
    with CampaignProgress(total) as bar:
        player = OfflineCampaign(flow, behaviour, options, start, real_time, lambda p: bar.show(p, "running"))
        results = player.play(rows(), total)
        bar.show(player.progress(total, False), "done")
    text = results_csv(results)
    if output and output != "-":
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        echo(text, nl=False)
    c = player.counts
    echo(f"{c['started']} runs ({c['completed']} completed, {c['failed']} failed), {c['skipped']} skipped, "
         f"in {player.now - start:.1f} s {'simulated' if not real_time else ''} time", err=True)
    return EXIT_OK if c["failed"] == 0 else EXIT_FAILED
