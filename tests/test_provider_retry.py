"""Refused provider requests sent again (engine/service/retry.py, `Provider.perform`), over real
HTTP on 127.0.0.1; 2xx answers that are not Plivo's; the scenario's `api:` and `drop:`."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from engine.errors import FlowInvalid
from engine.events import Request, Response, Trigger
from engine.executor import Executor
from engine.local.run import LocalRun
from engine.local.scenario import Behaviour, Refusal, parse_scenario
from engine.service.provider import Provider, ProviderConfig
from engine.service.retry import RetryPolicy, http_date, retry_after
from engine.service.settings import settings_from_env

AUTH_ID, TOKEN = "MARETRYTESTACCOUNT01", "retry-token"
FIRED = b'{"message": "call fired", "request_uuid": "r-1", "api_id": "a"}'


class Scripted:
    """An HTTP/1.1 server answering its requests from a script: (status, extra header lines, body)
    per request, the last entry repeated; "drop" closes the connection without an answer."""

    def __init__(self, script):
        self.script, self.requests = list(script), []

    async def handle(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                self.requests.append(time.monotonic())
                step = self.script[min(len(self.requests), len(self.script)) - 1]
                if step == "drop":
                    return
                status, extra, body = step
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                             % (status, len(body), extra) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def provider_for(script, policy: RetryPolicy | None = None):
    policy = policy or RetryPolicy()
    far = Scripted(script)
    server = await asyncio.start_server(far.handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    provider = Provider(ProviderConfig(AUTH_ID, TOKEN, url, retry=policy))
    try:
        yield far, provider, url
    finally:
        await provider.aclose()
        server.close()


def call(url: str) -> Request:
    return Request("Call", "POST", f"{url}/v1/Account/{AUTH_ID}/Call/", json={"to": "+12025550100"}, provider=True,
                   timeout=2)


def run(coro):
    return asyncio.run(coro)


REFUSED_429 = (429, b"Retry-After: 0\r\n", b'{"api_id": "x", "error": "too many requests"}')
REFUSED_503 = (503, b"", b'{"api_id": "x", "error": "service unavailable"}')


def test_429_and_503_are_sent_again_until_the_call_fires():
    async def main():
        async with provider_for([REFUSED_429, REFUSED_503, REFUSED_429, (201, b"", FIRED)]) as (far, provider, url):
            r = await provider.perform(call(url))
        assert r.status == 201 and r.body["request_uuid"] == "r-1" and not r.error
        assert [a.get("status") for a in r.attempts] == [429, 503, 429, 201]
        assert len(far.requests) == 4
        # equal jitter on 0.5, 1, 2 s: at least half of each, at most all of it
        waits = [a["retry_in"] for a in r.attempts[:3]]
        assert 0.25 <= waits[0] <= 0.5 and 0.5 <= waits[1] <= 1 and 1 <= waits[2] <= 2
        gaps = [b - a for a, b in zip(far.requests, far.requests[1:])]
        assert all(w - 0.01 <= g < w + 0.5 for g, w in zip(gaps, waits))  # each wait was taken

    run(main())


def test_anything_that_may_have_been_processed_is_never_resent():
    async def main():
        for script in ([(500, b"", b'{"error": "boom"}')], ["drop"], [(400, b"", b'{"error": "bad"}')]):
            async with provider_for(script) as (far, provider, url):
                r = await provider.perform(call(url))
            assert len(far.requests) == 1, script
            assert r.attempts == ()
            if script == ["drop"]:
                assert r.in_doubt and r.error

    run(main())


def test_retry_after_beyond_the_time_budget_is_not_waited_for():
    async def main():
        far_future = (429, f"Retry-After: {http_date(time.time() + 120)}\r\n".encode(), b'{"error": "slow down"}')
        async with provider_for([far_future, (201, b"", FIRED)], RetryPolicy(total_seconds=30)) as (far, provider, url):
            t0 = time.monotonic()
            r = await provider.perform(call(url))
        assert time.monotonic() - t0 < 1 and len(far.requests) == 1
        assert r.status == 429 and r.attempts == ()  # the refusal is the answer: call_out takes failed

    run(main())


def test_attempts_are_bounded_in_number():
    async def main():
        async with provider_for([REFUSED_503], RetryPolicy(retries=2, base=0.01)) as (far, provider, url):
            r = await provider.perform(call(url))
        assert len(far.requests) == 3 and r.status == 503 and [a["status"] for a in r.attempts] == [503] * 3
        async with provider_for([REFUSED_503], RetryPolicy(retries=0)) as (far, provider, url):
            r = await provider.perform(call(url))
        assert len(far.requests) == 1 and r.status == 503 and r.attempts == ()

    run(main())


def test_retry_after_reads_seconds_and_http_dates():
    now = 1_700_000_000.0
    assert retry_after({"retry-after": "3"}, now) == 3
    assert retry_after({"retry-after": " 1.5 "}, now) == 1.5
    assert retry_after({"retry-after": http_date(now + 10)}, now) == pytest.approx(10)
    assert retry_after({"retry-after": http_date(now - 10)}, now) == 0  # in the past: at once
    for junk in ("", "soon", "-5", "inf", "nan", "Mon, 99 Foo 2020"):
        assert retry_after({"retry-after": junk}, now) is None, junk
    assert retry_after({}, now) is None


def test_backoff_is_capped_with_equal_jitter():
    policy = RetryPolicy(base=0.5, cap=8)
    for attempt, ceiling in ((1, 0.5), (2, 1), (3, 2), (5, 8), (9, 8)):
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits) and len(set(waits)) > 100


def test_retry_settings_are_checked():
    env = {"CALLFLOW_PROVIDER_RETRIES": "2", "CALLFLOW_PROVIDER_RETRY_SECONDS": "5", "CALLFLOW_RECONCILE_SECONDS": "9"}
    settings = settings_from_env("http://127.0.0.1:1", env)
    assert settings.provider.retry == RetryPolicy(retries=2, total_seconds=5) and settings.reconcile_seconds == 9
    assert settings_from_env("http://x", {}).provider.retry == RetryPolicy()
    for bad in ({"CALLFLOW_PROVIDER_RETRIES": "-1"}, {"CALLFLOW_PROVIDER_RETRIES": "many"},
                {"CALLFLOW_PROVIDER_RETRY_SECONDS": "nan"}, {"CALLFLOW_RECONCILE_SECONDS": "-3"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            settings_from_env("http://x", bad)
    assert "token" not in repr(settings.provider).replace("auth_token=***", "")


# -- 2xx answers that are not the provider's ---------------------------------------------------------
SMS = """
Start: {type: trigger, next: Text}
Text: {type: send_sms, from: "+12025551234", to: "+12025550100", text: hi, next: {sent: End, failed: End}}
End: {type: hangup}
"""
CALL = """
Start: {type: trigger, next: Call}
Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: End, failed: End}}
End: {type: hangup}
"""


@pytest.mark.parametrize("flow, body, wanted", [
    (CALL, {}, "Call API answered 200 without a request_uuid: no call was placed (is http"),
    (CALL, "<html>it works</html>", "without a request_uuid"),
    (SMS, {"message": "ok"}, "Message API answered 200 without a message_uuid: no message was sent"),
])
def test_a_2xx_that_is_not_the_providers_answer_fails_the_step(make_flow, flow, body, wanted):
    ex = Executor(make_flow(flow))
    state = ex.new_run("r")
    [request] = [e for e in ex.advance(state, Trigger({})) if isinstance(e, Request)]
    ex.advance(state, Response(status=200, body=body, seq=request.seq))
    step = state.steps[1]
    assert step.outcome == "failed" and wanted in step.error
    assert state.status == "completed" and state.waiting is None  # not waiting 4 h for a call


# -- the scenario --------------------------------------------------------------------------------------------
def test_scenario_api_refusals_and_dropped_callbacks_parse():
    s = parse_scenario('api:\n  Call: [429, {status: 503, retry_after: 2}]\n  Message: [503]\n'
                       'default: {result: answered, drop: [ring, hangup]}\n'
                       'destinations:\n  "+12025550100": {result: busy, drop: hangup}\n')
    assert s.api == {"Call": (Refusal(429), Refusal(503, 2)), "Message": (Refusal(503),)}
    assert s.default == Behaviour(drop=("ring", "hangup"))
    assert s.destinations["+12025550100"].drop == ("hangup",)


def test_scenario_api_and_drop_mistakes_have_line_and_column():
    with pytest.raises(FlowInvalid) as e:
        parse_scenario('api:\n  Call: [429, 200, {status: 503, retry_after: -1, body: x}]\n  Lookup: [429]\n'
                       '  Message: 503\ndefault: {drop: [hangups]}\n', "s.yaml")
    got = [(d.line, d.col, d.code) for d in e.value.diagnostics]
    assert got == [(2, 15, "wrong-type"), (2, 47, "wrong-type"), (2, 51, "unknown-key"), (3, 3, "unknown-key"),
                   (4, 12, "wrong-type"), (5, 17, "invalid-choice")], e.value.diagnostics
    with pytest.raises(FlowInvalid, match="api maps Call or Message"):
        parse_scenario("api: [429]\n")


def test_a_local_run_sends_refused_requests_again_in_simulated_time(make_flow):
    scenario = parse_scenario("api:\n  Call: [429, {status: 503, retry_after: 3}]\n")
    t0 = time.monotonic()
    state = LocalRun(make_flow(CALL), scenario).run({})
    assert time.monotonic() - t0 < 1  # nothing slept
    assert state.status == "completed" and state.steps[1].outcome == "answered"
    assert state.requests[0]["attempts"] == [{"status": 429, "retry_in": 0.5}, {"status": 503, "retry_in": 3},
                                             {"status": 201}]
    refused = LocalRun(make_flow(CALL), parse_scenario("api:\n  Call: [500]\n")).run({})
    assert refused.steps[1].outcome == "failed" and "Call API answered 500" in refused.steps[1].error
    assert "attempts" not in refused.requests[0]


def test_a_local_run_reconciles_dropped_callbacks_as_serve_does(make_flow):
    scenario = parse_scenario('default: {result: answered, drop: [hangup]}\n'
                              'destinations:\n  "+12025550111": {result: busy, drop: [ring, hangup]}\n')
    lost_hangup = LocalRun(make_flow(CALL), scenario).run({})
    assert lost_hangup.status == "completed" and lost_hangup.variables["Call"]["hangup_cause"] == "Normal Hangup"
    busy = LocalRun(make_flow(CALL.replace("+12025550100", "+12025550111").replace(
        "answered: End", "answered: End, busy: End")), scenario).run({})
    assert busy.steps[1].outcome == "busy" and busy.variables["Call"]["params"]["CallflowReconciled"] == "true"


# -- reconciliation in the service, against the sandbox over real HTTP, on a clock of its own ----------
@contextlib.asynccontextmanager
async def _reconciling(tmp_path, core, now, run_id: str, request_uuid: str):
    """A Service on the sandbox `core` with a run of the seed flow whose Call API request was
    answered 201 with `request_uuid` and which has heard nothing since: reconciliation's input."""
    from conftest import FLOWS

    from engine.load.build import load_flow
    from engine.local.sandbox_server import start_sandbox
    from engine.service.runs import Service
    from engine.service.settings import Settings
    from engine.service.sqlite_store import SQLiteStore

    server, url = await start_sandbox(core)
    settings = Settings(auth_id="MA" + "S" * 18, auth_token="t", public_url="http://127.0.0.1:9",
                        provider=ProviderConfig(AUTH_ID, TOKEN, url), reconcile_seconds=10)
    flow = load_flow(FLOWS / "outbound-sip-headers.yaml")
    service = Service({flow.id: flow}, SQLiteStore(str(tmp_path / "r.db")), Provider(settings.provider),
                      settings, clock=lambda: now[0])
    try:
        entry = service.flows[flow.id]
        state = entry.executor.new_run(run_id)
        [request] = [e for e in entry.executor.advance(state, Trigger({"to": "+12025550100", "customer": "c"}))
                     if isinstance(e, Request)]
        entry.executor.advance(state, Response(status=201, body={"request_uuid": request_uuid}, seq=request.seq))
        await service.store.create_run(state)
        yield service
    finally:
        await service.provider.aclose()
        await service.store.close()
        await server.stop()


def test_a_call_the_provider_never_heard_of_fails_after_two_lookups(tmp_path):
    from engine.local.sandbox import SandboxCore
    from engine.service.reconcile import reconcile

    async def main():
        core = SandboxCore(auth_id=AUTH_ID, auth_token=TOKEN)
        now = [1_000_000.0]
        async with _reconciling(tmp_path, core, now, "run-1", "unknown-to-the-provider") as service:
            assert await reconcile(service) == 0  # not quiet for long enough yet
            now[0] += 11
            assert await reconcile(service) == 0  # found nowhere: once is not enough (records lag)
            assert (await service.store.load("run-1")).state.status == "waiting"
            now[0] += 11
            assert await reconcile(service) == 1
            done = (await service.store.load("run-1")).state
            assert done.steps[1].outcome == "failed" and "no record of this call" in done.steps[1].error
            assert core.calls == []  # looking up never places a call

    run(main())


def test_a_queued_or_ringing_call_keeps_the_run_waiting_and_an_ended_one_ends_it(tmp_path):
    from engine.local.sandbox import SandboxCore, SimulatedCall
    from engine.service.reconcile import reconcile

    async def main():
        core = SandboxCore(auth_id=AUTH_ID, auth_token=TOKEN)
        sim = SimulatedCall(request={"from": "+12025551234", "to": "+12025550100"}, destination="+12025550100",
                            behaviour=Behaviour(result="busy"), request_uuid="rq-1")
        core.calls.append(sim)
        now = [2_000_000.0]
        async with _reconciling(tmp_path, core, now, "run-2", "rq-1") as service:
            for phase in ("queued", "ringing"):
                sim.phase = phase
                now[0] += 11
                assert await reconcile(service) == 0
                stored = (await service.store.load("run-2")).state
                assert stored.status == "waiting" and stored.updated_at == now[0]  # its wait counts from now
            sim.phase, sim.ended_at, sim.log["hangup_cause"] = "ended", now[0], "USER_BUSY"
            now[0] += 11
            assert await reconcile(service) == 1
            done = (await service.store.load("run-2")).state
            assert done.steps[1].outcome == "busy" and done.status == "completed"
            assert done.variables["Call"]["hangup_cause"] == "Busy Line"
            text = service.observe.metrics.render(None).decode()
            for found, times in (("queued", 1), ("live", 1), ("ended", 1)):
                assert f'callflow_reconciliations_total{{found="{found}"}} {times}.0' in text
            assert 'callflow_runs_claimed_total{kind="quiet"} 3.0' in text

    run(main())


def test_the_scenario_schema_knows_api_and_drop():
    import jsonschema

    from engine.local.file_schemas import scenario_schema

    validator = jsonschema.Draft202012Validator(scenario_schema())
    good = {"api": {"Call": [429, {"status": 503, "retry_after": 2}], "Message": [503]},
            "default": {"result": "busy", "drop": ["ring", "hangup"]}, "destinations": {"+12025550100": {"drop": "hangup"}}}
    assert list(validator.iter_errors(good)) == []
    for wrong in ({"api": {"Lookup": [429]}}, {"api": {"Call": [200]}}, {"default": {"drop": ["hangups"]}},
                  {"api": {"Call": [{"status": 429, "body": "x"}]}}):
        assert list(validator.iter_errors(wrong)), wrong


def test_callflow_run_shows_the_refusals_in_its_trace(tmp_path):
    import subprocess
    import sys

    from conftest import FLOWS

    scenario = tmp_path / "s.yaml"
    scenario.write_text("api:\n  Call: [429, {status: 503, retry_after: 1}]\n")
    out = subprocess.run([sys.executable, "-m", "engine.cli", "run", str(FLOWS / "outbound-sip-headers.yaml"),
                          "--scenario", str(scenario), "--payload", '{"to": "+12025550100", "customer": "a"}'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    [line] = [line for line in out.stdout.splitlines() if "Call (call_out)" in line]
    assert line.endswith("-> answered  to +12025550100, SIP headers customer=a, sent 3 times (refused: 429, 503)")


def test_a_provider_closed_and_used_again_makes_its_lookups_on_a_new_session():
    """`aclose` forgets every session it closed, the lookups' one included: a lookup after it
    opens a new one (as requests do) instead of failing on the closed session."""
    async def main():
        async with provider_for([(200, b"", b'{"api_id": "l", "calls": []}')]) as (far, provider, _url):
            assert (await provider.lookup("Call/", {"status": "live"}))[0] == 200
            await provider.aclose()
            assert (await provider.lookup("Call/", {"status": "live"}))[0] == 200
            assert len(far.requests) == 2

    run(main())
