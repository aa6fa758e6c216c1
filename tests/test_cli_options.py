"""`callflow run` options as a new user types them: prefixes, numbers, opt-in network."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import FLOWS

from engine.cli import main

INBOUND = str(FLOWS / "inbound-support.yaml")


def cli(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_an_x_ph_prefix_on_a_header_is_the_header_itself():
    for name in ("X-PH-tier", "x-ph-tier", "tier"):
        result = cli("run", INBOUND, "--call-from", "+12025550177", "-H", f"{name}=gold", "--json")
        record = json.loads(result.output)
        assert record["variables"]["Start"]["call"]["headers"] == {"tier": "gold"}, name
        assert record["path"][:3] == ["Start", "Tier", "GoldWelcome"]
        answer = record["sandbox"]["calls"][0]["callbacks"][0]["params"]
        assert answer["X-PH-tier"] == "gold" and "X-PH-X-PH-tier" not in answer


def test_a_caller_number_without_plus_is_refused_like_in_flows():
    result = CliRunner().invoke(main, ["run", INBOUND, "--call-from", "12025550177"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: Invalid value for --call-from: '12025550177' is not E.164: write it as '+12025550177'"]
    result = CliRunner().invoke(main, ["run", INBOUND, "--call-from", "+12025550177", "--call-to", "5551234"])
    assert result.exit_code == 2 and "--call-to" in result.output and "Traceback" not in result.output


def test_bad_header_pairs_are_refused_with_one_line():
    for bad in ("tier", "tier=go-ld", "X-PH-=gold"):
        result = cli("run", INBOUND, "--call-from", "+12025550177", "-H", bad)
        assert result.exit_code == 2, bad
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1


def test_run_makes_no_real_http_request_unless_asked(tmp_path):
    """An unmocked http_request fails its node naming it and both fixes; --http live sends it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    flow = tmp_path / "hook.yaml"
    flow.write_text(f"""spec: callflow/v1
id: hook
nodes:
  Start: {{type: trigger, next: Notify}}
  Notify:
    type: http_request
    method: POST
    url: "http://127.0.0.1:{server.server_address[1]}/webhook"
    next: {{success: Ok, failed: Failed}}
  Ok: {{type: set_variables, values: {{r: ok}}}}
  Failed: {{type: set_variables, values: {{r: failed}}}}
""")
    try:
        refused = cli("run", str(flow))
        record = json.loads(cli("run", str(flow), "--json").output)
        live = json.loads(cli("run", str(flow), "--json", "--http", "live").output)
    finally:
        server.shutdown()
    assert "Notify" in refused.output and "--http live" in refused.output
    error = record["steps"][1]["error"]
    assert record["path"][-1] == "Failed" and "no mocked response for node 'Notify'" in error
    assert "http: {Notify: {status: 200" in error and "--http live" in error
    assert live["path"][-1] == "Ok" and hits == ["/webhook"]
