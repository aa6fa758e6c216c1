"""ivr_menu: a spoken menu; each key names an outcome; no input or a wrong key asks again.

    Menu:
      type: ivr_menu
      prompt: "For sales press 1, for support press 2."
      choices: {"1": sales, "2": support}
      retries: 2                      # extra attempts after the first
      no_input_prompt: "Sorry, I did not hear anything."
      wrong_input_prompt: "Sorry, that is not an option."
      next: {sales: Sales, support: Support, no_input: Bye, wrong_input: Bye}

Each attempt is a `<GetDigits numDigits="1">` holding the prompt (after the apology on a
re-prompt), followed by a `<Redirect>` for no input, as get_input does. An attempt that is
asked again is its own step in the run record (outcome `again`), so the record shows each
prompt the caller heard; after the last one, no input takes `no_input` and a key that is
not a choice `wrong_input`.
"""

from engine import codes
from engine.events import Callback
from engine.fields import MapOf
from engine.node import Context, Listen, Next, NodeType, Repeat
from engine.plivoxml import element
from engine.registry import register
from engine.scalar_fields import Integer, Text
from nodes.branch import WORD

RESERVED = ("no_input", "wrong_input", "again", "error")


@register
class IvrMenu(NodeType):
    name = "ivr_menu"
    summary = "A spoken menu: a key per outcome, re-prompts on no input or a wrong key (Plivo <GetDigits>)."
    fields = {
        "prompt": Text(required=True, description="The menu, spoken while waiting for a key."),
        "choices": MapOf(required=True, value=Text(templated=False), key_pattern=r"[0-9*#]",
                         key_hint="a choice is one key: 0-9, * or #",
                         description="Key -> the outcome it takes, e.g. {\"1\": sales}."),
        "retries": Integer(minimum=0, maximum=5, default=2, templated=False,
                           description="Attempts after the first when no key or a wrong key is pressed."),
        "no_input_prompt": Text(description="Said before asking again when no key was pressed."),
        "wrong_input_prompt": Text(description="Said before asking again when the key is not a choice."),
        "timeout": Integer(minimum=1, maximum=100, default=5, description="Seconds to wait for a key."),
        "voice": Text(default="WOMAN", description="Voice of the prompts."),
        "language": Text(default="en-US", description="Language of the prompts."),
    }
    outputs = ("digits", "choice", "attempts")
    needs_call = "required"
    waits = True

    def node_outcomes(self, config):
        names = [v for v in (config.get("choices") or {}).values() if isinstance(v, str)]
        return tuple(dict.fromkeys(names)) + ("no_input", "wrong_input")

    def default_outcome(self, config):
        return None

    def possible_outcomes(self, config):
        return self.node_outcomes(config)

    def check(self, config, path, report):
        choices = config.get("choices")
        for key, name in (choices.items() if isinstance(choices, dict) else ()):
            if isinstance(name, str) and (not WORD.match(name) or name in RESERVED):
                report.error(path + ("choices", key), codes.INVALID_NAME,
                             f"choice {name!r} names an outcome: a word (letters, digits, '_'), "
                             f"not {', '.join(RESERVED)}")

    def _attempt(self, ctx: Context) -> tuple[int, str | None]:
        """(this attempt's number, why the previous one asked again or None)."""
        steps = ctx.state.steps
        previous = steps[ctx.seq - 1] if ctx.seq > 0 else None
        if previous is None or previous.node != ctx.name or previous.outcome != "again":
            return 1, None
        last = ctx.state.variables.get(ctx.name) or {}
        return int(last.get("attempts", 1)) + 1, "wrong_input" if last.get("digits") else "no_input"

    def run(self, ctx: Context):
        attempt, why = self._attempt(ctx)
        speak = lambda text: element("Speak", text, voice=ctx.value("voice"), language=ctx.value("language"))  # noqa: E731
        inner = [speak(ctx.value("prompt"))]
        apology = ctx.value(f"{why}_prompt") if why else None
        if apology:
            inner.insert(0, speak(apology))
        choices = ctx.value("choices") or {}
        # "#" ends the input by default (with no digit): when it is a choice, another key does.
        finish = next(k for k in "*#0123456789" if k not in choices) if "#" in choices else None
        gather = element("GetDigits", children=inner, action=ctx.callback_url("digits"), method="POST",
                         timeout=ctx.value("timeout"), numDigits=1, finishOnKey=finish, redirect=True)
        return Listen((gather, element("Redirect", ctx.callback_url("no_input"), method="POST")))

    def resume(self, ctx: Context, event: Callback):
        attempt, _ = self._attempt(ctx)
        digits = event.params.get("Digits", "") if event.kind == "digits" else ""
        choice = (ctx.value("choices") or {}).get(digits)
        outputs = {"digits": digits, "choice": choice, "attempts": attempt}
        if choice:
            return Next(choice, outputs)
        why = "wrong_input" if digits else "no_input"
        retries = ctx.value("retries")
        if attempt <= retries:
            shown = f"key {digits!r} is not a choice" if digits else "no key pressed"
            return Repeat(outputs, f"{shown}: asking again (attempt {attempt + 1} of {retries + 1})")
        return Next(why, outputs)
