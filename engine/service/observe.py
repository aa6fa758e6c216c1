"""What `callflow serve` tells its operators about runs: each run event both counted
(engine/service/metrics.py) and logged (engine/service/logs.py), from one call in the
shell (engine/service/runs.py).

Log events, one line per event of a run rather than per step (measured: a line costs
~15 us of CPU, a run of the seed flow makes 6): `run.created` (with the steps the trigger
ran), `provider.request` (status, latency), `callback` (kind, latency, whether it changed
the run, the steps it ended), `run.steps` (steps ended by a response or a timeout),
`run.finished`; warnings and errors. Their fields are ids, names,
statuses and timings: a payload's keys may appear, never its values; an error's text
(which may quote run data) stays in the run record, behind the API's auth.
"""

from __future__ import annotations

import logging

from engine.events import Finished, Request, Response
from engine.service.logs import event, logger
from engine.service.metrics import Metrics
from engine.state import RunState


class Observer:
    """Metrics and log lines for one service."""

    def __init__(self, metrics: Metrics | None = None):
        self.metrics = metrics or Metrics()

    def run_started(self, state: RunState, effects: list, payload_keys=()) -> None:
        self.metrics.run_started(state.flow_id)
        if logger.isEnabledFor(logging.INFO):
            event("run.created", run_id=state.run_id, flow=state.flow_id, status=state.status,
                  payload_keys=sorted(payload_keys), steps=ended_steps(state, (None, 0)))
        self._finished(state, effects)

    def trigger_replayed(self, flow: str, run_id: str, same_body: bool) -> None:
        if same_body:
            self.metrics.trigger_replayed(flow)
        event("trigger.replayed" if same_body else "trigger.key_reused", run_id=run_id, flow=flow)

    def advanced(self, state: RunState, kind: str, opened: tuple[int | None, int], effects: list,
                 seconds: float) -> None:
        """One event applied and saved: its latency, the steps it ended (`opened`: the step
        open before it, and how many steps there were; a callback's go in its own line),
        and the run's end if it ended."""
        self.metrics.step(kind, seconds)
        if kind != "callback" and logger.isEnabledFor(logging.INFO):
            steps = ended_steps(state, opened)
            if steps:
                event("run.steps", run_id=state.run_id, flow=state.flow_id, cause=kind, steps=steps)
        self._finished(state, effects)

    def _finished(self, state: RunState, effects: list) -> None:
        for effect in effects:
            if isinstance(effect, Finished):
                self.metrics.run_finished(state.flow_id, effect.status)
                event("run.finished", run_id=state.run_id, flow=state.flow_id, status=effect.status,
                      step_count=len(state.steps))

    def callback(self, run_id: str, flow: str | None, kind: str, seq: int, changed: bool, seconds: float,
                 steps: list) -> None:
        self.metrics.callback(kind, seconds)
        event("callback", run_id=run_id, flow=flow, kind=kind, seq=seq, changed=changed,
              latency_ms=round(seconds * 1000, 3), steps=steps)

    def provider_request(self, state: RunState, request: Request, response: Response, seconds: float) -> None:
        target = "provider" if request.provider else "web"
        if response.in_doubt:
            outcome = "in_doubt"
        elif response.status is None:
            outcome = "error"  # never answered: refused, not sent
        else:
            outcome = str(response.status)
        failed = response.in_doubt or response.status is None or response.status >= 400
        self.metrics.provider_request(target, outcome, seconds, failed)
        if response.attempts:
            self.metrics.retried(target, len(response.attempts) - 1)
        level = logging.WARNING if response.in_doubt else logging.INFO
        event("provider.request", level=level, run_id=state.run_id, flow=state.flow_id, node=request.node,
              target=target, method=request.method, status=outcome, latency_ms=round(seconds * 1000, 3))


def ended_steps(state: RunState, opened: tuple[int | None, int]) -> list[dict]:
    """The steps an event ended: the one open before it, and those it added, once ended
    (`opened` as `runs._open_steps` gives it)."""
    steps = state.steps
    was_open, count = opened
    indexes = range(count, len(steps)) if was_open is None else (was_open, *range(count, len(steps)))
    out = []
    for index in indexes:
        step = steps[index]
        if step.ended_at is not None:
            item = {"node": step.node, "type": step.type, "outcome": step.outcome}
            if step.error is not None:
                item["failed"] = True
            out.append(item)
    return out
