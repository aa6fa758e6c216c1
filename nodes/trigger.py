"""trigger: where a run starts: a run request (`http`), an incoming call (`call`) or SMS (`message`).

A run request (the PHLO-compatible trigger API) takes `http`, its payload merged over the
static `payload` (`{{ Start.http.params.to }}`). An incoming call (Plivo's answer URL,
`/callbacks/inbound/{flow_id}`) takes `call`, with the call up: `{{ Start.call.from }}`,
`call.to`, `call.call_uuid`, `call.headers.<name>` (custom SIP headers, `X-PH-` removed). An
incoming SMS (Plivo's message URL, `/callbacks/inbound-message/{flow_id}`) takes `message`,
with no call up (reply with `send_sms`): `{{ Start.message.text }}`, `message.from`,
`message.to`, `message.message_uuid`. Each way's outputs exist only on runs it started;
the static payload only on run requests.
"""

from engine.errors import NodeFailed
from engine.events import InboundCall, InboundMessage, StartEvent, Trigger
from engine.fields import Data, ListOf
from engine.node import Context, Next, NodeType
from engine.registry import register
from engine.scalar_fields import Text

HEADER_PREFIX = "X-PH-"  # the provider's prefix of custom SIP headers in call parameters


@register
class TriggerNode(NodeType):
    name = "trigger"
    summary = "Start of the flow: a run request (http), an incoming call (call) or an incoming SMS (message)."
    fields = {
        "payload": Data(description="Static payload: default values, overridden by the run request. Never rendered."),
        "required": ListOf(item=Text(templated=False), description="Payload keys the run request must supply."),
    }
    outcomes = ("http", "call", "message")
    # Dotted output patterns (engine.load.analysis): `*` is any key below; X-PH- prefixes removed.
    outputs = ("http.params.*", "call.from", "call.to", "call.call_uuid", "call.headers.*",
               "message.from", "message.to", "message.text", "message.message_uuid")
    call_outcomes = frozenset({"call"})  # a message starts a run with no call up, as a run request does
    is_trigger = True
    started_by = {"http": "a run request", "call": "an incoming call", "message": "an incoming message"}

    def default_outcome(self, config):
        return "http"  # `next: Node` on a trigger means the run-request path, as in PHLO

    def run(self, ctx: Context):
        raise NodeFailed("the trigger starts a run; no node can lead back to it")

    # -- starting runs ---------------------------------------------------------------------------
    def start_outcome(self, event_type: type[StartEvent]) -> str:
        return "call" if event_type is InboundCall else "message" if event_type is InboundMessage else "http"

    def start(self, config: dict, event: StartEvent) -> Next:
        if isinstance(event, Trigger):
            params = dict(self._static(config))
            params.update(event.payload)  # the run request overrides the file's defaults
            return Next("http", {"http": {"params": params}})
        p = event.params
        if isinstance(event, InboundMessage):  # Plivo's message URL parameters (an MMS's text is its Body)
            message = {"from": p.get("From", ""), "to": p.get("To", ""), "text": p.get("Text") or p.get("Body", ""),
                       "message_uuid": p.get("MessageUUID", "")}
            return Next("message", {"message": message})
        headers = {k[len(HEADER_PREFIX):]: v for k, v in p.items() if k.startswith(HEADER_PREFIX)}
        call = {"from": p.get("From", ""), "to": p.get("To", ""), "call_uuid": p.get("CallUUID", ""),
                "headers": headers}
        return Next("call", {"call": call})

    # -- the payload -----------------------------------------------------------------------------
    @staticmethod
    def _static(config: dict) -> dict:
        payload = config.get("payload")
        return payload if isinstance(payload, dict) else {}

    @staticmethod
    def _required(config: dict) -> list[str]:
        required = config.get("required")
        return [k for k in required if isinstance(k, str)] if isinstance(required, list) else []

    def missing_payload(self, config: dict, payload: dict) -> list[str]:
        """Required keys the run request leaves out or empty (null or "" supply nothing) and
        the file's static payload has no value for."""
        static = self._static(config)
        return [k for k in self._required(config) if _absent(payload.get(k)) and _absent(static.get(k))]

    def payload_keys(self, config: dict) -> set[str]:
        return {str(k) for k in self._static(config)} | set(self._required(config))

    def payload_key(self, segments: tuple) -> str | None:
        if len(segments) >= 4 and segments[1] == "http" and segments[2] == "params" and isinstance(segments[3], str):
            return segments[3]
        return None

    def payload_fields(self, config: dict) -> list[dict]:
        """The static payload keys (in file order, their values as defaults), then the
        required keys that have no default.

        `editable` is false for a default that is a mapping or a list: the run API takes
        text, numbers and booleans only, so such a value always comes from the file."""
        static = self._static(config)
        required = self._required(config)
        fields = [{"name": str(key), "default": value, "required": str(key) in required,
                   "editable": not isinstance(value, (dict, list))} for key, value in static.items()]
        fields += [{"name": key, "default": None, "required": True, "editable": True}
                   for key in required if key not in static]
        return fields


def _absent(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
