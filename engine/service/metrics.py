"""`GET /metrics` of `callflow serve`: Prometheus text format, with the official
prometheus-client, one `CollectorRegistry` per service (several apps can live in one
process, as the tests start them).

Two kinds of figures:

* kept by this process (counters and histograms, reset when it restarts; with several
  processes each exposes its own and Prometheus sums them): runs started and finished by
  flow and status, triggers replayed under an Idempotency-Key or refused (429), the time one
  event takes (executor step + save) and one callback takes (received -> answered), provider
  requests by outcome and their latency, retries, runs claimed by kind, reconciliation
  lookups by finding, requests handed back at a stop;
* read from the store at scrape time (gauges, the same whichever process is scraped:
  aggregate them with max, not sum): runs waiting by what they wait for, and requests in
  doubt (waiting for a response recorded longer ago than any request may take).

The hot path pays a dictionary lookup and a counter increment per event: label children
are bound once per label value and cached.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Seconds. The service answers a callback in ~1 ms; a provider request takes 10 ms to seconds.
HANDLING_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PROVIDER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
WAIT_REASONS = ("response", "call", "input", "hangup", "timer")
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The service's Prometheus metrics, in their own registry."""

    def __init__(self):
        self.registry = r = CollectorRegistry()
        self._started = Counter("callflow_runs_started", "Runs started, by flow.", ["flow"], registry=r)
        self._finished = Counter("callflow_runs_finished", "Runs finished, by flow and status (completed, failed).",
                                 ["flow", "status"], registry=r)
        self._replays = Counter("callflow_trigger_replays", "Triggers answered with the run their Idempotency-Key "
                                "already started, by flow.", ["flow"], registry=r)
        self._steps = Histogram("callflow_step_seconds", "One event applied to a run: executor step and save, "
                                "by event (trigger, callback, response, expired).", ["event"],
                                buckets=HANDLING_BUCKETS, registry=r)
        self._callbacks = Histogram("callflow_callback_seconds", "A provider callback, received to answered "
                                    "(XML ready), by kind.", ["kind"], buckets=HANDLING_BUCKETS, registry=r)
        self._provider = Histogram("callflow_provider_request_seconds", "Requests to the provider's API and to "
                                   "http_request nodes' hosts, by target (provider, web).", ["target"],
                                   buckets=PROVIDER_BUCKETS, registry=r)
        self._outcomes = Counter("callflow_provider_requests", "Requests by target and outcome: the HTTP status, "
                                 "or not_sent, in_doubt.", ["target", "outcome"], registry=r)
        self._errors = Counter("callflow_provider_request_errors", "Requests that failed, by target and status "
                               "(HTTP status >= 400, not_sent, in_doubt).", ["target", "status"], registry=r)
        self._retries = Counter("callflow_provider_retries", "Requests sent again after the API refused them "
                                "(429, 503, no connection), by target.", ["target"], registry=r)
        self._claims = Counter("callflow_runs_claimed", "Runs this process leased for work outside a request, by "
                               "kind (unsent, in_doubt, quiet, timer).", ["kind"], registry=r)
        self._reconciled = Counter("callflow_reconciliations", "Calls looked up at the provider for a run gone "
                                   "quiet (queued, live, ended, missing, unknown) or in doubt (absent, resent, "
                                   "adopted, ambiguous, unknown, gave_up), by what was found.", ["found"],
                                   registry=r)
        self._handed_back = Counter("callflow_requests_handed_back", "Requests taken back unsent (a stop, a "
                                    "lost lease): another process, or the next start, sends them.", registry=r)
        self._refused = Counter("callflow_triggers_refused", "Triggers answered 429: the queue of unsent "
                                "requests was full (CALLFLOW_MAX_QUEUED), by flow.", ["flow"], registry=r)
        self._waiting = Gauge("callflow_runs_waiting", "Runs waiting, by what they wait for (from the store: global).",
                              ["waiting_for"], registry=r)
        self._in_doubt = Gauge("callflow_requests_in_doubt", "Runs waiting for the response to a request recorded "
                               "longer ago than a request may take (from the store: global).", registry=r)
        self._children: dict = {}

    def _child(self, metric, *labels):
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- kept by the service ---------------------------------------------------------------------
    def run_started(self, flow: str) -> None:
        self._child(self._started, flow).inc()

    def trigger_replayed(self, flow: str) -> None:
        self._child(self._replays, flow).inc()

    def run_finished(self, flow: str, status: str) -> None:
        self._child(self._finished, flow, status).inc()

    def step(self, event: str, seconds: float) -> None:
        self._child(self._steps, event).observe(seconds)

    def callback(self, kind: str, seconds: float) -> None:
        self._child(self._callbacks, kind).observe(seconds)

    def provider_request(self, target: str, outcome: str, seconds: float, failed: bool) -> None:
        self._child(self._provider, target).observe(seconds)
        self._child(self._outcomes, target, outcome).inc()
        if failed:
            self._child(self._errors, target, outcome).inc()

    def retried(self, target: str, times: int) -> None:
        self._child(self._retries, target).inc(times)

    def claimed(self, kind: str, count: int) -> None:
        if count:
            self._child(self._claims, kind).inc(count)

    def reconciled(self, found: str) -> None:
        self._child(self._reconciled, found).inc()

    def handed_back(self) -> None:
        self._handed_back.inc()

    def trigger_refused(self, flow: str) -> None:
        self._child(self._refused, flow).inc()

    # -- read at scrape time ------------------------------------------------------------------
    def render(self, waiting: dict[str, int] | None) -> bytes:
        """The text exposition; `waiting` is the store's `waiting_counts` (None: the store
        did not answer, the gauges are left out)."""
        if waiting is not None:
            for reason in sorted(set(WAIT_REASONS) | set(waiting) - {"in_doubt"}):
                self._child(self._waiting, reason).set(waiting.get(reason, 0))
            self._in_doubt.set(waiting.get("in_doubt", 0))
        return generate_latest(self.registry)
