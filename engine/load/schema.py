"""The JSON Schema (draft 2020-12) of flow files, generated from the node types' own config
fields, so it cannot drift from what the loader accepts. `callflow schema` prints it;
docs/flow.schema.json is the committed copy editors point at (a test keeps them equal).

The schema is for editors (completion, hover text, early red squiggles); `callflow validate`
remains the reference: it also checks what a schema cannot (graph, templates, call state).
"""

from __future__ import annotations

import json

from engine.fields import fields_schema
from engine.load.build import FLOW_ID, NODE_NAME, SPEC_VERSION, TOP_KEYS
from engine.node import NodeType
from engine.params import PARAM_NAME
from engine.registry import node_types

SCHEMA_ID = "https://callflow.dev/schemas/flow-v1.json"
_NODE_NAME = {"type": "string", "pattern": NODE_NAME.pattern}
_PARAM = {
    "type": "object",
    "description": "A flow parameter; without a default, each environment must give a value.",
    "properties": {
        "default": {"type": ["string", "number", "boolean"], "description": "The value when none is given."},
        "secret": {"type": "boolean", "description": "Shown as *** in run records, traces, logs and the console."},
        "description": {"type": "string", "description": "What the value is for."},
    },
    "additionalProperties": False,
}


def _next_schema(node_type: NodeType) -> dict | None:
    dynamic = type(node_type).node_outcomes is not NodeType.node_outcomes
    target = {"anyOf": [{"$ref": "#/$defs/nodeName"}, {"type": "null"}]}
    if dynamic:  # outcomes come from the config (branch conditions)
        mapping = {"type": "object", "propertyNames": _NODE_NAME, "additionalProperties": target}
    else:
        if not node_type.outcomes:
            return None
        mapping = {"type": "object", "properties": {o: target for o in node_type.outcomes},
                   "additionalProperties": False}
    described = {"description": "Where each outcome goes: outcome -> node name. An outcome with no entry "
                                "ends that path."}
    if node_type.default_outcome({}) is not None:
        outs = node_type.default_outcome({})
        return {**described, "anyOf": [{"$ref": "#/$defs/nodeName", "description": f"The node after {outs!r}."},
                                       mapping]}
    return {**described, **mapping}


def node_schema(node_type: NodeType) -> dict:
    body = fields_schema(node_type.fields)
    props = {"type": {"const": node_type.name, "description": node_type.summary}}
    props.update(body["properties"])
    nxt = _next_schema(node_type)
    if nxt is not None:
        props["next"] = nxt
    props["error"] = {"$ref": "#/$defs/nodeName",
                      "description": "Where to go when this node itself fails; without it, the run fails."}
    schema = {
        "type": "object",
        "description": node_type.summary,
        "properties": props,
        "required": ["type", *body["required"]],
        "additionalProperties": False,
    }
    outcomes = ", ".join(node_type.outcomes) or "none"
    if type(node_type).node_outcomes is not NodeType.node_outcomes:
        outcomes = "one per condition name, and no_match"
    schema["markdownDescription"] = f"**{node_type.name}**: {node_type.summary}\n\nOutcomes: {outcomes}."
    return schema


def flow_schema() -> dict:
    types = node_types()
    names = sorted(types)
    defs: dict = {"nodeName": _NODE_NAME, "param": _PARAM}
    for name in names:
        defs[f"node_{name}"] = node_schema(types[name])
    defs["node"] = {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": names, "description": "The node type."}},
        "allOf": [{"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
                   "then": {"$ref": f"#/$defs/node_{name}"}} for name in names],
    }
    props = {
        "spec": {"const": SPEC_VERSION, "description": "Format version of this file."},
        "id": {"type": "string", "pattern": FLOW_ID.pattern,
               "description": "URL-safe id, unique among loaded flows: lower-case letters, digits and '-'."},
        "name": {"type": "string", "description": "Human-readable name."},
        "description": {"type": "string", "description": "What the flow does."},
        "params": {"type": "object", "description": "Flow parameters: name -> {default, secret, description}. "
                                                   "Templates read {{ params.name }}; values come from "
                                                   "--params FILE and CALLFLOW_PARAM_<NAME>.",
                   "propertyNames": {"type": "string", "pattern": PARAM_NAME.pattern},
                   "additionalProperties": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/param"}]}},
        "nodes": {"type": "object", "description": "Node name -> node. Exactly one trigger.",
                  "propertyNames": _NODE_NAME, "additionalProperties": {"$ref": "#/$defs/node"},
                  "minProperties": 1},
    }
    assert set(props) == set(TOP_KEYS), "flow top-level keys and the schema disagree"
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "callflow flow file",
        "description": "A call flow: a trigger and the nodes it leads to (callflow/v1). "
                       "Generated by `callflow schema`; do not edit.",
        "type": "object",
        "required": ["spec", "id", "nodes"],
        "properties": props,
        "additionalProperties": False,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(flow_schema(), indent=2, ensure_ascii=False) + "\n"
