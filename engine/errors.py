"""Every exception callflow raises on purpose, under one base: `CallflowError`.

    CallflowError
    ├── FlowInvalid         a flow (or flow-test / scenario) file cannot be used; .diagnostics
    ├── TemplateError       a Liquid template does not parse or render; .message, .index
    ├── ValueInvalid        a value rendered at run time breaks its field's rule
    ├── NodeFailed          a node failed at run time: its `error:` edge, else the run fails
    ├── PlivoXMLError       an XML document Plivo would refuse (also a ValueError)
    ├── HttpError           an HTTP error answer to give or that was given; .status, .message
    │   └── QueueFull       as many unsent requests held as allowed: 429, retry later
    ├── StoreError          the run store refused an operation
    │   ├── Conflict        the run changed since it was loaded (optimistic version check)
    │   ├── RunExists       a run with this id is already stored
    │   ├── StoreUnavailable  the database failed the operation (disk full, I/O error...): retry later
    │   └── StoreUnusable   at start: the database cannot be used as it is; the message says what to do
    └── ProviderError       a request to the provider API or a webhook did not complete
        ├── NotSent         it certainly never left (no connection could be made)
        ├── InDoubt         it may have been written, but no complete answer came back
        ├── ResponseTooLarge  the answer was over the size cap; .status
        └── HandedBack      taken back before it was written (a stop, a lost lease): not sent

Catch `CallflowError` to handle anything callflow reports; anything else is a bug.
"""

from __future__ import annotations

from engine.diagnostics import Diagnostic, sort_key

__all__ = [
    "CallflowError", "FlowInvalid", "TemplateError", "ValueInvalid", "NodeFailed", "PlivoXMLError",
    "HttpError", "StoreError", "Conflict", "RunExists", "StoreUnavailable", "StoreUnusable", "ProviderError",
    "NotSent", "InDoubt", "ResponseTooLarge", "HandedBack", "QueueFull",
]


class CallflowError(Exception):
    """The base of every error callflow raises on purpose."""


class FlowInvalid(CallflowError):
    """A flow (or a flow-test or scenario file) that cannot be used; carries every diagnostic.

    >>> try:
    ...     engine.load_flow("broken.yaml")
    ... except FlowInvalid as e:
    ...     for d in e.diagnostics: print(d)      # path:line:col: error code message
    """

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=sort_key)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class TemplateError(CallflowError):
    """A template that does not parse or does not render; `index` is its offset in the source."""

    def __init__(self, message: str, index: int | None = None):
        super().__init__(message)
        self.message = message
        self.index = index


class ValueInvalid(CallflowError):
    """A resolved value that breaks its field's rule (at run time)."""


class NodeFailed(CallflowError):
    """The node itself failed: routed to its `error:` edge, else the run fails."""


class PlivoXMLError(CallflowError, ValueError):
    """A document Plivo would refuse; the message says what and where."""


class HttpError(CallflowError):
    """An error answer (`{"api_id", "error"}` with `status`, as Plivo and PHLO give them)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class StoreError(CallflowError):
    """The run store refused an operation."""


class Conflict(StoreError):
    """The run changed since it was loaded (another handler saved first)."""


class RunExists(StoreError):
    """create_run for a run id that is already stored."""


class StoreUnavailable(StoreError):
    """The database failed an operation (disk full, I/O error, locked, corrupt page): nothing
    of that operation was stored; the same operation may succeed later. HTTP: 503."""


class StoreUnusable(StoreError):
    """At start: the database cannot be used as it is (not a callflow database, corrupt,
    read-only, a newer schema...). The message names the path and what to do."""


class ProviderError(CallflowError):
    """A request to the provider API (or a webhook) that did not complete."""


class NotSent(ProviderError):
    """The request certainly did not leave (no connection could be made)."""


class InDoubt(ProviderError):
    """The request may have been written, but no complete answer came back."""


class ResponseTooLarge(ProviderError):
    """The answer was larger than the cap; `status` is the status it came with."""

    def __init__(self, status: int, limit: int):
        super().__init__(f"response larger than {limit} bytes")
        self.status = status


class HandedBack(ProviderError):
    """The shell took the request back before it was written to a connection (the process
    is stopping, or another process holds the run's lease now): not sent; whoever claims
    the run sends it."""


class QueueFull(HttpError):
    """The service already holds as many unsent provider requests as it may
    (CALLFLOW_MAX_QUEUED): a trigger is answered 429 with Retry-After instead of taking work
    it cannot do soon."""

    def __init__(self, retry_after: float):
        super().__init__(429, f"too many runs waiting to place their calls; retry in {retry_after:g} s")
        self.retry_after = retry_after
