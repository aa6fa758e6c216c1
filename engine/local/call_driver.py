"""Simulated calls driven over HTTP: the sandbox server's callbacks to the app under test.

Each `SimulatedCall.run()` generator (:mod:`engine.local.sandbox`) is driven by an asyncio
task that turns its items into real I/O:

* `Delay(seconds)` -> ``await asyncio.sleep(seconds)``.
* `Callback(kind, url, method, params)` -> an HTTP request to ``url``: POST sends the params
  form-encoded, GET sends them as query params (merged with the URL's own query). Every
  callback carries ``X-Plivo-Signature-V3`` / ``X-Plivo-Signature-V3-Nonce`` made with the
  sandbox's auth token (`engine.service.signature.sign_v3_headers`) and ``User-Agent:
  callflow-sandbox``. For callbacks that fetch XML (answer, GetDigits action, Redirect) the
  response body goes back into the generator; a non-2xx status, a network error, a
  timeout or a method other than GET/POST sends ``None`` instead, and the simulation ends
  the call with an error cause (``ANSWER_URL_ERROR`` / ``ACTION_URL_ERROR``) as Plivo does.

Callback policy: Plivo's defaults (its "Callback configurations" page: retry count `rc=1`,
retry policy `rp=ct,rt`, connect timeout 2 s), no kinder:
  * a callback whose connection failed (refused, or not made within 2 s) or whose answer
    did not come in time is sent once more; an answer, any status (a 5xx too), or a
    connection cut after the request went out (a process killed meanwhile) is not retried;
  * an answer URL that failed (its attempts, a non-2xx) is followed by the Call's
    ``fallback_url`` (with ``fallback_method``), the same parameters, if the Call gave one
    (`SimulatedCall.run`); no other URL has a fallback: a failed GetDigits action or
    Redirect ends the call (``ACTION_URL_ERROR``), a failed ring or hangup callback is lost;
  * each attempt has 15 s in all (connect + send + response), then counts as failed
    (Plivo waits up to 40 s for an answer: shorter here, so tests of a hanging app end sooner);
  * redirects (3xx) are not followed: they count as a non-2xx answer;
  * each logged callback gets ``sent_at`` and, once answered, ``answered_at`` (epoch seconds);
  * at most ``MAX_BYTES`` + 1 bytes of a response are read; a bigger XML document is
    refused by `plivoxml.parse` (over Plivo's 100 KB limit) like any invalid document.
Each callback's log entry keeps its `status`, `error`, `attempts` (when retried) and
`seconds` (sent -> answered: what a caller waits, bench/scale_bench.py reads it).
Calls run concurrently (one task each) over one shared client (`callback_client()`: 1,000
connections), so hundreds of simultaneous calls do not queue behind each other. The sandbox server starts a
call's task only after its 201 response has gone out, so the answer callback comes after it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from engine.local.sandbox import Callback, Delay, SandboxCore, SimulatedCall
from engine.local.sharded_client import ShardedClient
from engine.plivoxml import MAX_BYTES
from engine.service.signature import sign_v3_headers

__all__ = ["CALLBACK_CONNECTIONS", "CALLBACK_TIMEOUT", "USER_AGENT", "CallDriver", "callback_client"]

logger = logging.getLogger("callflow.sandbox")

CALLBACK_TIMEOUT = 15.0  # seconds per attempt, all included
CONNECT_TIMEOUT = 2.0  # Plivo's default `ct`
RETRIES = 1  # Plivo's default `rc`: after a failed connection or no answer in time (`rp=ct,rt`)
CALLBACK_CONNECTIONS = 1000  # callbacks in flight at once, all calls together
USER_AGENT = "callflow-sandbox"


def callback_client() -> ShardedClient:
    """The client the sandbox server sends callbacks with: `CALLBACK_CONNECTIONS` connections,
    `CALLBACK_TIMEOUT` per callback, redirects not followed."""
    # One 1,000-connection httpx client spent ~60% of the sandbox's CPU in its pool's O(n^2)
    # bookkeeping under load (bench/e2e.py): the same connections as small clients instead.
    timeout = httpx.Timeout(CALLBACK_TIMEOUT, connect=CONNECT_TIMEOUT)
    return ShardedClient(CALLBACK_CONNECTIONS, 8, timeout=timeout, follow_redirects=False)


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """At most `limit` bytes of a streamed response's body (an app's answer may be anything)."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)[:limit]


def _log_entry(call: SimulatedCall, cb: Callback) -> dict:
    for entry in reversed(call.log["callbacks"]):
        if entry.get("params") is cb.params:
            return entry
    return {}  # not in the log (cleared meanwhile): record nothing


class CallDriver:
    """Drives simulated calls over HTTP, one asyncio task per call."""

    def __init__(self, core: SandboxCore, client: httpx.AsyncClient):
        self.core = core
        self.client = client
        self.tasks: set[asyncio.Task] = set()

    async def start(self, calls: list[SimulatedCall]) -> None:
        """Start one task per call (async: starlette runs it after the response has gone out)."""
        for call in calls:
            task = asyncio.get_running_loop().create_task(self.drive(call))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        """Cancel every running call and wait until they have all ended."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)

    async def drive(self, call: SimulatedCall) -> None:
        sim = call.run()
        try:
            item = next(sim)
            while True:
                if isinstance(item, Delay):
                    await asyncio.sleep(item.seconds)
                    item = next(sim)
                elif isinstance(item, Callback):
                    reply = await self.callback(call, item)
                    item = sim.send(reply if item.expects_xml else None)
                else:  # nothing to send (no URL): as if the app gave nothing back
                    item = sim.send(None)
        except StopIteration:
            pass
        except asyncio.CancelledError:
            sim.close()
            raise
        except Exception as e:  # a bug in the sandbox must not go unseen, nor kill the server
            logger.error("call %s: simulation failed: %s", call.call_uuid, type(e).__name__, exc_info=True)
            call.log["error"] = f"sandbox error: {type(e).__name__}"
            sim.close()

    async def callback(self, call: SimulatedCall, cb: Callback) -> str | None:
        """Send one callback (and its retry, as Plivo's default policy has it); return the
        response text for a 2xx, else None. Records the outcome."""
        entry = _log_entry(call, cb)
        # When it went out and when its answer was in (epoch seconds): the order of what the app
        # served against what else happened meanwhile (tests/test_dead_air_e2e.py).
        entry.update(status=None, error=None, sent_at=time.time(), answered_at=None)
        method = cb.method.upper()
        if method not in ("GET", "POST"):
            entry["error"] = f"unsupported callback method {cb.method!r}: Plivo calls URLs with GET or POST"
            return None
        started = time.perf_counter()
        for attempt in range(1 + RETRIES):
            retry = attempt < RETRIES
            try:
                return await self._attempt(cb, method, entry)
            except TimeoutError:
                entry["error"] = f"no response within {CALLBACK_TIMEOUT:g} s"
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:  # never reached the app
                entry["error"] = f"{type(e).__name__}: {e}"
            except (httpx.HTTPError, httpx.InvalidURL, ValueError, OSError) as e:
                entry["error"] = f"{type(e).__name__}: {e}"
                retry = False  # it may have reached the app: Plivo's default policy does not retry it
            finally:
                entry["seconds"] = round(time.perf_counter() - started, 6)  # sent -> answered, retries included
            if not retry:
                return None
            entry["attempts"] = attempt + 2
        return None

    async def _attempt(self, cb: Callback, method: str, entry: dict) -> str | None:
        """One attempt: the text of a 2xx answer, None for another status; raises when no
        answer came."""
        headers = {"User-Agent": USER_AGENT, **sign_v3_headers(method, cb.url, cb.params, self.core.auth_token)}
        async with asyncio.timeout(CALLBACK_TIMEOUT):
            if method == "GET":
                request = self.client.build_request(
                    "GET", httpx.URL(cb.url).copy_merge_params(cb.params), headers=headers)
            else:
                request = self.client.build_request("POST", cb.url, data=cb.params, headers=headers)
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as e:
                if isinstance(e, httpx.ConnectTimeout):
                    raise
                raise TimeoutError from e
            try:
                body = await read_limited(response, MAX_BYTES + 1)
            finally:
                await response.aclose()
        entry["status"], entry["error"], entry["answered_at"] = response.status_code, None, time.time()
        if not 200 <= response.status_code < 300:
            entry["error"] = f"the app answered HTTP {response.status_code}"
            return None
        return body.decode(response.encoding or "utf-8", errors="replace")
