"""The entry node's methods (nodes/trigger.py), the one payload check, the one set of
callback kinds."""

from __future__ import annotations

import click
import pytest
from conftest import flow_text

from engine.cli import _parse_payload
from engine.errors import HttpError
from engine.events import (
    CALLBACK_KINDS,
    XML_KINDS,
    CallbackKind,
    InboundCall,
    Trigger,
    payload_problems,
)
from engine.load.build import check_text
from engine.local.flowtest import run_tests
from engine.local.run import parse_callback_url
from engine.node import Next
from engine.service.api import parse_payload

FLOW = """\
Start:
  type: trigger
  payload: {from: "+12025551234", to: null, retries: 3}
  required: [to, customer]
  next: {http: Hi}
Hi:
  type: set_variables
  values: {a: "{{ Start.http.params.customer }}"}
"""

BAD_VALUE = "payload value 'to' must be text, a number or a boolean"


@pytest.fixture
def flow(make_flow):
    return make_flow(FLOW)


def test_start_from_a_run_request_merges_the_static_payload(flow):
    spec = flow.trigger_spec
    first = spec.node_type.start(spec.config, Trigger({"to": "+12025550100", "retries": 5}))
    assert first == Next("http", {"http": {"params": {"from": "+12025551234", "to": "+12025550100", "retries": 5}}})


def test_start_from_an_incoming_call_strips_the_header_prefix(flow):
    spec = flow.trigger_spec
    first = spec.node_type.start(spec.config, InboundCall({"From": "+1", "To": "+2", "CallUUID": "c1",
                                                           "X-PH-tier": "gold", "Other": "x"}))
    assert first == Next("call", {"call": {"from": "+1", "to": "+2", "call_uuid": "c1", "headers": {"tier": "gold"}}})


def test_start_outcome_and_target(flow):
    assert flow.trigger_spec.node_type.start_outcome(Trigger) == "http"
    assert flow.trigger_spec.node_type.start_outcome(InboundCall) == "call"
    assert flow.start_target(Trigger) == "Hi"
    assert flow.start_target(InboundCall) is None  # this flow takes no incoming calls


def test_missing_payload_counts_null_as_absent(flow):
    assert flow.missing_payload({}) == ["to", "customer"]
    assert flow.missing_payload({"to": None, "customer": "a"}) == ["to"]
    assert flow.missing_payload({"to": "+1", "customer": "a"}) == []


def test_payload_keys_and_references(flow):
    node_type, config = flow.trigger_spec.node_type, flow.trigger_spec.config
    assert node_type.payload_keys(config) == {"from", "to", "retries", "customer"}
    assert node_type.payload_key(("Start", "http", "params", "to")) == "to"
    assert node_type.payload_key(("Start", "http", "params")) is None
    assert node_type.payload_key(("Start", "call", "from")) is None
    assert node_type.payload_key(("Start", "http", "params", None)) is None  # computed: a[b]


def test_payload_fields_for_the_run_form(flow):
    spec = flow.trigger_spec
    assert spec.node_type.payload_fields(spec.config) == [
        {"name": "from", "default": "+12025551234", "required": False, "editable": True},
        {"name": "to", "default": None, "required": True, "editable": True},
        {"name": "retries", "default": 3, "required": False, "editable": True},
        {"name": "customer", "default": None, "required": True, "editable": True},
    ]


def test_other_node_types_start_nothing(flow):
    other = flow.nodes["Hi"].node_type
    assert not other.is_trigger and other.started_by == {}
    assert other.missing_payload({}, {}) == [] and other.payload_keys({}) == set() and other.payload_fields({}) == []
    with pytest.raises(NotImplementedError):
        other.start({}, Trigger({}))


# -- one payload check, one message --------------------------------------------------------------
def test_payload_problems():
    assert payload_problems({"a": "x", "b": 1, "c": True, "d": 1.5, "e": None}) == []
    assert payload_problems({"to": [1], "x": "ok", "m": {"a": 1}}) == [
        ("to", BAD_VALUE), ("m", "payload value 'm' must be text, a number or a boolean")]
    assert payload_problems({"to": None}, allow_null=False) == [("to", BAD_VALUE)]


def test_every_payload_reader_says_the_same():
    with pytest.raises(HttpError) as e:
        parse_payload(b'{"to": [1]}')
    assert e.value.status == 400 and e.value.message == BAD_VALUE
    with pytest.raises(click.BadParameter) as b:
        _parse_payload((), '{"to": {"a": 1}}')
    assert b.value.message == BAD_VALUE
    _, diagnostics = check_text(flow_text("Start:\n  type: trigger\n  payload: {to: [1]}\n"), "t.yaml")
    assert [d.message for d in diagnostics if d.code == "wrong-type"] == [BAD_VALUE]


def test_flow_tests_say_the_same(tmp_path):
    (tmp_path / "f.yaml").write_text(flow_text("Start:\n  type: trigger\n  next: Hi\nHi:\n  type: set_variables\n"
                                               "  values: {a: b}\n"))
    (tmp_path / "f.test.yaml").write_text("flow: f.yaml\ncases:\n  one:\n    payload: {to: null}\n"
                                          "    expect: {status: completed}\n")
    lines: list[str] = []
    assert run_tests([tmp_path / "f.test.yaml"], echo=lines.append) == 1
    assert any(f"error wrong-type {BAD_VALUE}" in line for line in lines), lines


# -- one set of callback kinds -------------------------------------------------------------------
def test_callback_kinds():
    assert CALLBACK_KINDS == {"answer", "hangup", "ring", "digits", "no_input", "record", "dial", "conference",
                              "confirm", "dial_record", "conference_event", "redirect"} == set(CallbackKind)
    assert XML_KINDS == {"answer", "digits", "no_input", "record", "dial", "conference", "confirm", "redirect"}
    assert XML_KINDS < CALLBACK_KINDS
    assert CallbackKind("no_input") is CallbackKind.NO_INPUT and CallbackKind.ANSWER == "answer"
    for kind in CallbackKind:
        assert parse_callback_url(f"http://h/callbacks/r1/2/{kind}") == ("r1", 2, kind)
    assert parse_callback_url("http://h/callbacks/r1/2/action") is None
