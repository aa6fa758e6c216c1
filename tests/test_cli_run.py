"""`callflow run` end to end, as a user runs it: a real process, exit codes, JSON record."""

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import CALLFLOW, FLOWS, ROOT
from processes import reply

SEED = str(FLOWS / "outbound-sip-headers.yaml")


def callflow(*args, timeout=60):
    return subprocess.run([*CALLFLOW, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def test_seed_flow_json_record():
    p = callflow("run", SEED, "-p", "to=+12025550100", "-p", "customer=johndoe", "--json")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["status"] == "completed"
    assert record["path"] == ["Start", "Call", "Greet", "Done"]
    body = record["requests"][0]["json"]
    assert body["sip_headers"] == "customer=johndoe"
    assert body["from"] == "+12025551234" and body["to"] == "+12025550100"
    assert body["answer_url"].startswith("http") and "/callbacks/" in body["answer_url"]
    assert record["variables"]["Call"]["params"]["X-PH-customer"] == "johndoe"
    answer = next(c for c in record["sandbox"]["calls"][0]["callbacks"] if c["kind"] == "answer")
    assert answer["params"]["X-PH-customer"] == "johndoe"
    assert answer["params"]["Direction"] == "outbound" and answer["params"]["Event"] == "StartApp"
    assert record["documents"][0] == ('<Response><Speak voice="WOMAN" language="en-US">Congratulations! '
                                      "You've made your first outbound call!</Speak><Hangup/></Response>")


def test_seed_flow_trace_is_compact():
    """The default trace: a line per node and outcome, what the callee hears, how the call
    ended, on the simulated clock; at most 12 lines of at most 120 characters, no URLs."""
    p = callflow("run", SEED, "-p", "to=+12025550100", "-p", "customer=johndoe")
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert len(lines) <= 12 and all(len(line) <= 120 for line in lines), p.stdout
    assert [line.split("s ", 1)[1] for line in lines[1:5]] == [
        "Start (trigger) -> http", "Call (call_out) -> answered  to +12025550100, SIP headers customer=johndoe",
        "Greet (speak) -> done", "Done (hangup) -> (end)"]
    assert lines[5].strip() == 'says "Congratulations! You\'ve made your first outbound call!", hangs up'
    assert lines[6].strip() == "4.0s call to +12025550100 ended: completed (NORMAL_CLEARING) after 4 s"
    assert lines[-1].endswith("completed in 4.0 s simulated time (-v: HTTP detail)")
    assert "http://" not in p.stdout and "https://" not in p.stdout


def test_verbose_trace_shows_every_request_callback_and_document():
    p = callflow("run", SEED, "-p", "to=+12025550100", "-p", "customer=johndoe", "-v")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    for line in ("Start (trigger) -> http", "Call (call_out) -> answered", "Greet (speak) -> done",
                 "Done (hangup) -> (end)", '"sip_headers": "customer=johndoe"', "(answered by the embedded sandbox)",
                 "response: 201", "-> XML: <Response><Speak"):
        assert line in out
    for kind in ("ring", "answer", "hangup"):
        assert f"<- {kind} callback POST http://127.0.0.1:8080/callbacks/" in out
    assert "X-PH-customer=johndoe" in out
    assert out.strip().splitlines()[-1].endswith("completed in 4.0 s simulated time")


def test_sandbox_time_is_simulated(tmp_path):
    """Two digit timeouts of 5 s: the trace and the record's step times say so, at once."""
    scenario = tmp_path / "s.yaml"
    scenario.write_text('default: {result: answered, digits: ["", "", "1"]}\n')
    flow = str(FLOWS / "ivr-order-status.yaml")
    started = time.monotonic()
    p = callflow("run", flow, "-p", "to=+12025550100", "-p", "order_id=A1", "--scenario", str(scenario))
    wall = time.monotonic() - started
    menus = [line for line in p.stdout.splitlines() if "Menu (get_input)" in line]
    assert [line.split("s ", 1)[1] for line in menus] == [
        "Menu (get_input) -> no_input  nothing pressed", "Menu (get_input) -> no_input  nothing pressed",
        "Menu (get_input) -> input  digits 1"]
    times = [float(line.split("s ", 1)[0]) for line in menus]
    assert times[0] > 5 and times[1] - times[0] > 5 and times[2] > times[1]
    assert wall < times[2]  # the run took less wall time than it simulated
    record = json.loads(callflow("run", flow, "--json", "-p", "to=+12025550100", "-p", "order_id=A1",
                                 "--scenario", str(scenario)).stdout)
    from datetime import datetime

    ended = [datetime.fromisoformat(s["ended_at"].replace("Z", "+00:00")) for s in record["steps"]
             if s["node"] == "Menu"]
    assert (ended[1] - ended[0]).total_seconds() > 5


def test_busy_destination_takes_the_busy_path(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text('destinations:\n  "+12025550111": busy\n')
    p = callflow("run", SEED, "-p", "to=+12025550111", "-p", "customer=johndoe", "--scenario", str(scenario),
                 "--json")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["path"] == ["Start", "Call", "Done"]
    assert record["steps"][1]["outcome"] == "busy"
    assert record["documents"] == []


def test_bad_header_value_fails_the_run_before_any_call_request():
    p = callflow("run", SEED, "-p", "to=+12025550100", "-p", "customer=john-doe", "--json")
    assert p.returncode == 1
    record = json.loads(p.stdout)
    assert record["status"] == "failed"
    assert "SIP header 'customer'" in record["error"] and "only A-Z, a-z and 0-9" in record["error"]
    assert record["requests"] == [] and record["sandbox"]["calls"] == []


def test_missing_required_payload_keys_exit_2_naming_them():
    p = callflow("run", SEED)
    assert p.returncode == 2
    assert "to, customer" in p.stderr


def test_payload_json_and_pairs_merge():
    p = callflow("run", SEED, "--payload", '{"to": "+12025550100", "customer": "x"}', "-p", "customer=ada", "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["requests"][0]["json"]["sip_headers"] == "customer=ada"
    for bad in ('[1]', '{"a": {"b": 1}}', "{nope", '{"to": NaN}'):
        p = callflow("run", SEED, "--payload", bad)
        assert p.returncode == 2 and "--payload" in p.stderr and "Traceback" not in p.stderr


def test_broken_flow_reports_all_three_and_does_not_run(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("""spec: callflow/v1
id: bad
nodes:
  Start:
    type: trigger
    next: Call
    next: Call
  Call:
    type: call_out
    from: +12025551234
    to: "+12025550100"
    next:
      answered: Greeet
  Greet:
    type: speak
    text: hi
""")
    p = callflow("run", str(bad), "--json")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert f"{bad}:7:5: error duplicate-key duplicate key 'next' (first defined at line 6); YAML would keep only the last" in lines
    assert any(l.startswith(f"{bad}:10:11: error unquoted-number") for l in lines)
    assert any(l.startswith(f"{bad}:13:17: error unknown-node") and "did you mean 'Greet'" in l for l in lines)
    assert "Traceback" not in p.stderr


def test_bad_scenario_exits_2(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("default: maybe\n")
    p = callflow("run", SEED, "-p", "to=+12025550100", "-p", "customer=a", "--scenario", str(scenario))
    assert p.returncode == 2 and f"{scenario}:1:10: error invalid-choice" in p.stderr


class _Orders(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/orders/A1":
            reply(self, 200, json.dumps({"status": "shipped"}).encode())
        else:
            reply(self, 404, b"no such order", None)

    def log_message(self, *args):
        pass


@pytest.fixture
def orders_api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_ivr_calls_a_real_http_api_on_loopback(orders_api, tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text('default: {result: answered, digits: "1"}\n')
    args = ["run", str(FLOWS / "ivr-order-status.yaml"), "-p", "to=+12025550100", "-p", f"api={orders_api}",
            "--scenario", str(scenario), "--json", "--http", "live"]
    record = json.loads(callflow(*args, "-p", "order_id=A1").stdout)
    assert record["status"] == "completed"
    assert record["path"] == ["Start", "Call", "Menu", "Choice", "Lookup", "Status", "Bye", "Done"]
    assert record["documents"][1].endswith("/4/redirect</Redirect></Response>")  # served before the lookup
    assert "Your order A1 is shipped." in record["documents"][2]
    record = json.loads(callflow(*args, "-p", "order_id=B2").stdout)
    assert record["path"][-4:] == ["Lookup", "Unavailable", "Bye", "Done"]
    assert record["variables"]["Lookup"]["status_code"] == 404


def test_incoming_call_run_with_sip_headers(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text('default: {result: answered, digits: "1"}\n')
    p = callflow("run", str(FLOWS / "inbound-support.yaml"), "--call-from", "+12025550123", "-H", "tier=gold",
                 "--scenario", str(scenario), "--json")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["path"] == ["Start", "Tier", "GoldWelcome", "Menu", "Route", "Sales", "Bye"]
    assert record["variables"]["Start"]["call"]["headers"] == {"tier": "gold"}
    answer = record["sandbox"]["calls"][0]["callbacks"][0]
    assert answer["params"]["X-PH-tier"] == "gold" and answer["params"]["Direction"] == "inbound"
    assert "call you back at +12025550123" in record["documents"][1]


def test_incoming_sms_run_replies_by_sms(tmp_path):
    p = callflow("run", str(FLOWS / "sms-auto-reply.yaml"), "--message-from", "+12025550123", "--message-to",
                 "+12025550111", "--text", "hours?", "--json")
    assert p.returncode == 0, p.stderr
    record = json.loads(p.stdout)
    assert record["variables"]["Start"]["message"]["text"] == "hours?"
    assert record["path"] == ["Start", "Lookup", "Sorry"]  # the lookup is not mocked: the apology
    [sent] = record["sandbox"]["messages"]
    assert sent["request"]["src"] == "+12025550111" and sent["request"]["dst"] == "+12025550123"
    trace = callflow("run", str(FLOWS / "sms-auto-reply.yaml"), "--message-from", "+12025550123", "--text", "hi")
    assert "incoming message from +12025550123 to +12025551234: 'hi'" in trace.stdout


@pytest.mark.parametrize("args, message", [
    (["--text", "hi"], "--text: belongs to an incoming SMS: add --message-from NUMBER"),
    (["--message-from", "12025550123"], "--message-from: '12025550123' is not E.164: write it as '+12025550123'"),
    (["--message-from", "+12025550123", "--call-from", "+12025550124"], "not both"),
    (["--message-from", "+12025550123", "--text", "x" * 1601], "longer than 1600 characters"),
    (["--message-from", "+12025550123", "--live"], "--message-from is for runs on the embedded sandbox"),
])
def test_incoming_sms_options_are_checked(args, message):
    p = callflow("run", str(FLOWS / "sms-auto-reply.yaml"), *args)
    assert p.returncode == 2 and message in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_a_flow_without_a_message_outcome_takes_no_sms():
    p = callflow("run", str(FLOWS / "inbound-support.yaml"), "--message-from", "+12025550123", "--text", "hi")
    assert p.returncode == 2
    assert p.stderr == ("error: --message-from: inbound-support takes no incoming SMS: its trigger 'Start' routes "
                        "no `message` outcome (next: {message: NODE})\n")


class _Drip(BaseHTTPRequestHandler):
    """Answers 200, then one byte every 0.3 s: each read is quick, the whole is slow."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "20")
        self.end_headers()
        try:
            for _ in range(20):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.3)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def log_message(self, *args):
        pass


def test_http_request_timeout_bounds_the_whole_exchange(tmp_path):
    import time as clock

    from engine.load.build import check_text
    from engine.local.run import LocalRun

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Drip)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        flow, diags = check_text(f"""spec: callflow/v1
id: drip
nodes:
  Start: {{type: trigger, next: Get}}
  Get: {{type: http_request, url: "http://127.0.0.1:{server.server_address[1]}/", timeout: 1,
         next: {{success: Ok, failed: Slow}}}}
  Ok: {{type: set_variables, values: {{r: ok}}}}
  Slow: {{type: set_variables, values: {{r: slow}}}}
""", "drip.yaml")
        assert flow is not None, diags
        t0 = clock.monotonic()
        state = LocalRun(flow, live_http=True).run({})
        elapsed = clock.monotonic() - t0
    finally:
        server.shutdown()
    assert state.path[-1] == "Slow" and "timed out after 1 s" in state.record()["steps"][1]["error"]
    assert elapsed < 2.5


def test_a_retried_call_out_shows_simulated_time_passing(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text("default: busy\n")
    p = callflow("run", str(FLOWS / "appointment-reminder.yaml"), "-p", "to=+12025550100", "-p", "when=Friday",
                 "-p", "delay=60", "--scenario", str(scenario))
    assert p.returncode == 0, p.stderr
    lines = [line.strip() for line in p.stdout.splitlines()]
    assert "660.0s Call (call_out) -> again" in lines and "1260.0s Call (call_out) -> again" in lines
    assert "note: the call ended busy: placing it again after 600 s (attempt 3 of 3)" in lines
    assert any(line.startswith("1260.0s Call (call_out) -> busy") for line in lines), lines
    assert "completed in 1260.0 s simulated time" in p.stdout
