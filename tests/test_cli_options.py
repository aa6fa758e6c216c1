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
