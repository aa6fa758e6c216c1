"""http_request `retry:`: the shells make the request again on the answers `on` names,
`interval` apart (Retry-After honoured up to 60 s), and record every attempt; `callflow run`
and flow tests on the simulated clock with a list of mocks, `callflow serve`'s provider over
real HTTP; the config checks."""

from __future__ import annotations

import socket

import pytest
from test_server_provider import AUTH_ID, TOKEN, far_end, go

from engine.events import Request
from engine.load.build import check_text
from engine.local.run import LocalRun
from engine.local.scenario import parse_scenario
from engine.retries import HttpRetry
from engine.service.provider import Provider, ProviderConfig

FLOW = """\
spec: callflow/v1
id: hook
nodes:
  Start:
    type: trigger
    next: Hook
  Hook:
    type: http_request
    method: POST
    url: https://hooks.example.com/orders
    json: {order: A1}
    retry: RETRY
    next: {success: Ok, failed: Bad}
  Ok:
    type: set_variables
    values: {result: ok}
  Bad:
    type: set_variables
    values: {result: bad}
"""


def run(retry: str, mocks: str):
    flow, diags = check_text(FLOW.replace("RETRY", retry), "hook.yaml")
    assert flow is not None, diags
    state = LocalRun(flow, parse_scenario(f"http:\n  Hook: {mocks}\n")).run({})
    return state, state.steps[1]


def test_503_with_retry_after_then_no_connection_then_200():
    state, step = run("{attempts: 3, interval: 2}",
                      '[{status: 503, headers: {Retry-After: "5"}}, {error: connection refused}, {status: 200}]')
    assert step.outcome == "success" and state.variables["Hook"]["attempts"] == 3
    assert state.requests[0]["attempts"] == [{"status": 503, "retry_in": 5.0},
                                             {"error": "connection refused", "retry_in": 2.0}, {"status": 200}]
    assert step.ended_at - step.started_at == pytest.approx(7.0)  # simulated: Retry-After 5, then the interval


def test_the_last_attempt_stands_and_only_what_on_names_is_retried():
    state, step = run("{attempts: 3, interval: 1}", "{status: 503}")
    assert step.outcome == "failed" and state.variables["Hook"]["attempts"] == 3
    assert [a.get("status") for a in state.requests[0]["attempts"]] == [503, 503, 503]
    state, step = run("{attempts: 3, interval: 1}", "[{status: 500}, {status: 200}]")  # 500: not by default
    assert step.outcome == "failed" and state.variables["Hook"]["attempts"] == 1 and "attempts" not in state.requests[0]
    state, _ = run("{attempts: 3, interval: 1, on: [5xx]}", "[{status: 500}, {status: 200}]")
    assert state.variables["Hook"] == {"status_code": 200, "headers": {}, "body": None, "attempts": 2}
    state, _ = run("{attempts: 3, interval: 1}", "[{error: timed out}, {status: 200}]")  # may have been processed
    assert state.variables["Hook"]["attempts"] == 1
    state, _ = run("{attempts: 3, interval: 1, on: [timeout]}", "[{error: timed out}, {status: 200}]")
    assert state.variables["Hook"]["attempts"] == 2


def test_a_retry_after_longer_than_60_s_ends_the_retries():
    state, step = run("{attempts: 3, interval: 1}", '[{status: 429, headers: {retry-after: "120"}}, {status: 200}]')
    assert step.outcome == "failed" and state.variables["Hook"]["attempts"] == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_makes_the_request_again_over_real_http():
    async def main():
        async with far_end(status=503, body=b"busy", extra=b"Retry-After: 0\r\n") as (far, url):
            provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url), allow_private_http=True)
            retried = await provider.perform(Request("Hook", "POST", f"{url}/hook", json={"a": 1},
                                                     retry=HttpRetry(3, 0.1)))
            once = await provider.perform(Request("Hook", "POST", f"{url}/hook", json={"a": 1}))
            refused = await provider.perform(Request("Hook", "GET", f"http://127.0.0.1:{_closed_port()}/x",
                                                     retry=HttpRetry(2, 0.1)))
            await provider.aclose()
        assert retried.status == 503 and [a.get("status") for a in retried.attempts] == [503, 503, 503]
        assert [a.get("retry_in") for a in retried.attempts] == [0.1, 0.1, None]
        assert len(far.requests) == 4 and not once.attempts  # 3 attempts, then 1 without retry
        assert refused.failure == "connect" and len(refused.attempts) == 2 and "error" in refused.attempts[0]

    go(main())


@pytest.mark.parametrize(("retry", "expected"), [
    ("{attempts: 0}", "12:23 out-of-range must be at least 1, got 0"),
    ("{attempts: 2, interval: 61}", "12:36 out-of-range must be at most 60.0, got 61"),
    ("{attempts: 2, on: [503, bogus]}", "12:36 retry-on retry on 'bogus': not a class (connect, timeout, 5xx) nor "
                                        "an HTTP status code from 400 to 599 (write it unquoted: 503)"),
    ("{attempts: 2, on: [200]}", "12:31 retry-on retry on 200: not a class (connect, timeout, 5xx) nor "
                                 "an HTTP status code from 400 to 599 (write it unquoted: 503)"),
    ("{attempts: 2, on: ['503']}", "12:31 retry-on retry on '503': not a class (connect, timeout, 5xx) nor "
                                   "an HTTP status code from 400 to 599 (write it unquoted: 503)"),
])
def test_retry_config_is_checked_with_line_and_column(retry, expected):
    _, diags = check_text(FLOW.replace("RETRY", retry), "hook.yaml")
    found = [f"{d.line}:{d.col} {d.code} {d.message}" for d in diags if d.severity == "error"]
    assert found == [expected], found
