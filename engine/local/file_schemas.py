"""JSON Schemas (draft 2020-12) of flow test files and scenario files, for editors.

Built from the same constants the readers check against (engine.local.testfile and
engine.local.scenario), so a key the reader knows is a key the schema knows.
`callflow schema --kind test|scenario` prints them; docs/test.schema.json and
docs/scenario.schema.json are the committed copies (a test keeps them equal). As with flow
files, the reader stays the reference: it also checks what a schema cannot (phone numbers
as destinations, mocks naming the flow's http_request nodes).
"""

from __future__ import annotations

import json

from engine.local import in_call, scenario, testfile

TEST_SCHEMA_ID = "https://callflow.dev/schemas/flow-test-v1.json"
SCENARIO_SCHEMA_ID = "https://callflow.dev/schemas/scenario-v1.json"

_SECONDS = {"type": "number", "minimum": 0}
_DIGITS_ITEM = {"type": ["string", "integer"]}
_NOW = {"type": "string", "format": "date-time",
        "description": "Fix the run's clock: ISO 8601 with its offset, e.g. 2026-12-24T16:00:00-05:00."}


def _object(properties: dict, description: str, required: tuple = ()) -> dict:
    out = {"type": "object", "description": description, "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = list(required)
    return out


def _defs() -> dict:
    behaviour_props = {
        "result": {"enum": list(scenario.RESULTS), "description": "How the call ends up.", "default": "answered"},
        "digits": {"description": "The keys pressed at each get_input, in order; \"\" presses nothing.",
                   "anyOf": [_DIGITS_ITEM, {"type": "array", "items": _DIGITS_ITEM}]},
        "speech": {"description": "What is said at each speech get_input, in order; \"\" says nothing.",
                   "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "record": _object({"duration": {**_SECONDS, "description": "Seconds of message left at a record node."},
                           "digits": {"type": "string", "description": "The key that ends it (else silence)."}},
                          "What the callee leaves at a <Record>.", ("duration",)),
        "forward": {"type": "object", "additionalProperties": {"enum": list(in_call.FORWARD_RESULTS)},
                    "description": "How numbers a call_forward (<Dial>) rings behave; unlisted ones answer."},
        "conference": _object({"members": {"type": "integer", "minimum": 0, "description": "Already in the room."},
                               "stay": {**_SECONDS, "description": "Seconds the callee stays in the room."}},
                              "The room a <Conference> puts the callee in."),
        "answer_after": {**_SECONDS, "description": "Seconds of ringing before the result."},
        "hangup_after": {**_SECONDS, "description": "The callee hangs up this many seconds after answering."},
        "sms": {"enum": list(scenario.SMS_RESULTS), "description": "Whether the Message API accepts SMS to it."},
        "drop": {"description": "Callbacks of its call lost on the way (the run learns the call's end from "
                                "the provider's call record).",
                 "anyOf": [{"enum": list(scenario.DROPPABLE)},
                           {"type": "array", "items": {"enum": list(scenario.DROPPABLE)}}]},
    }
    mock_props = {
        "status": {"type": "integer", "minimum": 100, "maximum": 599, "description": "The HTTP status code."},
        "json": {"description": "The response body, as JSON."},
        "body": {"description": "The response body, as text."},
        "headers": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                    "description": "Response headers."},
        "error": {"type": "string", "description": "No response at all, and why (e.g. timed out)."},
    }
    return {
        "behaviour": {
            "description": "How a simulated callee behaves: a result, or a mapping.",
            "anyOf": [{"enum": list(scenario.RESULTS)},
                      _object(behaviour_props, "A callee's behaviour in detail.")],
        },
        "behaviours": {"description": "A behaviour, or a list of them: one per call placed to the destination, "
                                      "in order (the last for every call after).",
                       "anyOf": [{"$ref": "#/$defs/behaviour"},
                                 {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/behaviour"}}]},
        "destinations": {"type": "object", "additionalProperties": {"$ref": "#/$defs/behaviours"},
                         "description": "Behaviour per destination (E.164 number or SIP URI)."},
        "httpMock": _object(mock_props, "A mocked response for an http_request node."),
        "httpMocks": {"type": "object",
                      "additionalProperties": {"anyOf": [
                          {"$ref": "#/$defs/httpMock"},
                          {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/httpMock"},
                           "description": "One response per request the node makes (each retry), in order; "
                                          "the last for every request after."}]},
                      "description": "Mocked responses by http_request node name."},
        "refusal": {"description": "An API request refused before processing: a status, or {status, retry_after}.",
                    "anyOf": [{"type": "integer", "minimum": 400, "maximum": 599},
                              _object({"status": {"type": "integer", "minimum": 400, "maximum": 599},
                                       "retry_after": {**_SECONDS, "description": "The Retry-After header, seconds."}},
                                      "A refusal with a Retry-After header.")]},
    }


def scenario_schema() -> dict:
    """The JSON Schema of scenario files (`--scenario FILE`)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCENARIO_SCHEMA_ID,
        "title": "callflow scenario file",
        **_object({"default": {"$ref": "#/$defs/behaviours", "description": "How every destination behaves."},
                   "destinations": {"$ref": "#/$defs/destinations"},
                   "http": {"$ref": "#/$defs/httpMocks"},
                   "api": _object({name: {"type": "array", "items": {"$ref": "#/$defs/refusal"}}
                                   for name in scenario.APIS},
                                  "The first requests to each provider API refused (429, 503...), then as usual."),
                   "numbers": {"type": "object", "additionalProperties": {"type": "string"},
                               "description": "Incoming calls (POST /sandbox/inbound): number dialled -> a flow "
                                              "id (served by serve --sandbox) or the answer URL."},
                   "now": _NOW},
                  "How the sandbox's simulated callees behave, and mocked HTTP responses."),
        "$defs": _defs(),
    }


def _expect_schema() -> dict:
    document = {"anyOf": [{"type": "string", "description": "The exact XML text."},
                          _object({"contains": {"anyOf": [{"type": "string"},
                                                          {"type": "array", "items": {"type": "string"}}]}},
                                  "Text the document must contain.", ("contains",))]}
    request = _object({k: {} for k in ("node", "method", "url", "json", "form")},
                      "A subset of one request the run made.")
    request["properties"]["node"] = {"type": "string"}
    request["properties"]["method"] = {"type": "string"}
    request["properties"]["url"] = {"type": "string"}
    props = {
        "status": {"enum": list(testfile.STATUSES)},
        "error": {"type": "string", "description": "Text the run's error must contain."},
        "path": {"type": "array", "items": {"type": "string"}, "description": "The node names, in order."},
        "requests": {"type": "array", "items": request},
        "documents": {"type": "array", "items": document},
        "variables": {"type": "object", "description": "A subset of the run's variables: node -> outputs."},
    }
    return _object(props, "What the run must do; every key is optional.")


def flow_test_schema() -> dict:
    """The JSON Schema of flow test files (`<flow>.test.yaml`)."""
    scalar = {"type": ["string", "number", "boolean"]}
    call = _object({"from": {"type": "string", "description": "The caller: E.164 or SIP URI."},
                    "to": {"type": "string", "description": "The number dialled."},
                    "headers": {"type": "object", "propertyNames": {"pattern": testfile.SIP_PART.pattern + "$"},
                                "additionalProperties": {"type": ["string", "integer"]},
                                "description": "Custom SIP headers the caller sends ({{ Start.call.headers.x }})."}},
                   "Start the run with an incoming call.", ("from", "to"))
    message = _object({"from": {"type": "string", "description": "The sender: E.164."},
                       "to": {"type": "string", "description": "The number the SMS was sent to (default +12025551234)."},
                       "text": {"type": "string", "description": "The SMS text ({{ Start.message.text }})."}},
                      "Start the run with an incoming SMS.", ("from",))
    case_props = {
        "description": {"type": "string"},
        "payload": {"type": "object", "additionalProperties": scalar, "description": "The run request's payload."},
        "call": call,
        "message": message,
        "callee": {"$ref": "#/$defs/behaviours"},
        "destinations": {"$ref": "#/$defs/destinations"},
        "http": {"$ref": "#/$defs/httpMocks"},
        "scenario": {"type": "string", "description": "A scenario file, relative to this file."},
        "now": _NOW,
        "expect": _expect_schema(),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": TEST_SCHEMA_ID,
        "title": "callflow flow test file",
        **_object({"flow": {"type": "string", "description": "The flow file, relative to this file."},
                   "description": {"type": "string"},
                   "cases": {"type": "object", "minProperties": 1,
                             "propertyNames": {"pattern": testfile.CASE_NAME.pattern},
                             "additionalProperties": _object(case_props, "One run of the flow.")}},
                  "Test cases of a flow: each one run on the embedded sandbox.", ("cases",)),
        "$defs": _defs(),
    }


def schema_text(kind: str) -> str:
    schema = flow_test_schema() if kind == "test" else scenario_schema()
    return json.dumps(schema, indent=2) + "\n"
