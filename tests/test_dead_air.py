"""No dead air (issue 11, contract section 6), in the executor and on the embedded sandbox: a
request made during a call first serves the document built so far, ending in a Redirect
whose callback is answered with the next document once the request is done."""

from __future__ import annotations

import itertools

from engine.events import Callback, Request, Response, ServeDocument, Trigger
from engine.executor import HANGUP_DOCUMENT, Executor
from engine.local.run import SANDBOX_ENV, LocalRun
from engine.local.scenario import parse_scenario
from engine.local.trace import Tracer
from engine.plivoxml import parse
from engine.resend import pending_request
from engine.state import RunState, WaitReason

FLOW = """
Start: {type: trigger, next: Call}
Call: {type: call_out, from: "+12025551234", to: "+12025550100", next: {answered: Hello}}
Hello: {type: speak, text: "One moment.", next: Look}
Look: {type: http_request, url: "https://api.example.com/order", next: {success: Tell, failed: Sorry}}
Tell: {type: speak, text: "It shipped.", next: Bye}
Sorry: {type: speak, text: "Sorry.", next: Bye}
Bye: {type: hangup}
"""
ANSWERED = {"CallUUID": "cu", "CallStatus": "in-progress"}
HUNG_UP = {"CallUUID": "cu", "CallStatus": "completed", "HangupCause": "NORMAL_CLEARING", "Duration": "3"}
SPEAK = '<Speak voice="WOMAN" language="en-US">{}</Speak>'


def redirect(run_id: str, seq: int) -> str:
    return f'<Redirect method="POST">{SANDBOX_ENV.callback_url(run_id, seq, "redirect")}</Redirect>'


def answered_run(flow, clock):
    """An executor and a run whose call was just answered: (executor, state, effects of the answer)."""
    ex = Executor(flow, SANDBOX_ENV, clock=clock)
    state = ex.new_run("r")
    ex.advance(state, Trigger({}))
    ex.advance(state, Response(201, body={"request_uuid": "rq"}, seq=1))
    return ex, state, ex.advance(state, Callback("answer", 1, ANSWERED))


def test_the_document_so_far_is_served_before_the_request_and_the_next_answers_its_redirect(make_flow):
    ticks = itertools.count(100)
    ex, state, effects = answered_run(make_flow(FLOW), lambda: float(next(ticks)))
    first = f"<Response>{SPEAK.format('One moment.')}{redirect('r', 3)}</Response>"
    assert [type(e) for e in effects] == [ServeDocument, Request]  # served first, then the request
    assert effects[0].xml == first and effects[1].seq == 3 and effects[1].node == "Look"
    assert state.served == {"1:answer": 0} and state.answering == "3:redirect" and state.pending_xml == []
    assert state.waits_for(WaitReason.RESPONSE, 3)
    # The Redirect asked for while the request runs: a keep-alive, nothing changes.
    early = ex.advance(state, Callback("redirect", 3, ANSWERED))
    assert not early.changed and [e.xml for e in early] == [
        f'<Response><Wait length="1"/>{redirect("r", 3)}</Response>']
    effects = ex.advance(state, Response(200, body={"ok": True}, seq=3))
    second = f"<Response>{SPEAK.format('It shipped.')}<Hangup/></Response>"
    assert [e.xml for e in effects if isinstance(e, ServeDocument)] == [second]
    assert state.documents == [first, second] and state.served["3:redirect"] == 1
    replay = ex.advance(state, Callback("redirect", 3, ANSWERED))  # once done: its document, every time
    assert not replay.changed and [e.xml for e in replay] == [second]
    # The step times are when things happened: the request's step spans the request.
    look = state.steps[3]
    assert look.node == "Look" and state.steps[2].ended_at < look.started_at < look.ended_at
    for xml in state.documents:
        parse(xml)


def test_requests_in_a_row_each_serve_what_came_before_them(make_flow):
    flow = make_flow(FLOW.replace("next: {success: Tell, failed: Sorry}", "next: {success: Also, failed: Sorry}")
                     + 'Also: {type: http_request, url: "https://api.example.com/more", next: {success: Tell}}\n')
    ex, state, effects = answered_run(flow, lambda: 0.0)
    effects = ex.advance(state, Response(200, body="", seq=3))
    # Nothing was added between the two: the first Redirect is answered by the second.
    assert [type(e) for e in effects] == [ServeDocument, Request] and effects[1].node == "Also"
    assert effects[0].xml == f"<Response>{redirect('r', 4)}</Response>" and state.served["3:redirect"] == 1
    ex.advance(state, Response(200, body="", seq=4))
    assert state.documents[-1] == f"<Response>{SPEAK.format('It shipped.')}<Hangup/></Response>"
    assert state.served["4:redirect"] == 2


def test_a_hangup_while_the_request_runs_ends_the_run_cleanly(make_flow):
    ex, state, _ = answered_run(make_flow(FLOW), lambda: 0.0)
    hangup = ex.advance(state, Callback("hangup", 1, HUNG_UP))
    assert hangup.changed and state.call.ended and state.waits_for(WaitReason.RESPONSE, 3)
    effects = ex.advance(state, Response(200, body="", seq=3))
    assert state.status == "completed" and len(state.documents) == 1
    assert state.path[-1] == "Look" and state.steps[-1].outcome == "success"  # nobody left to speak to
    assert not any(isinstance(e, (ServeDocument, Request)) for e in effects)
    late = ex.advance(state, Callback("redirect", 3, ANSWERED))  # a Redirect nobody will answer
    assert [e.xml for e in late] == [HANGUP_DOCUMENT]


def test_an_unsent_request_is_rebuilt_as_recorded_and_a_stale_redirect_hangs_up(make_flow):
    ex, state, effects = answered_run(make_flow(FLOW), lambda: 0.0)
    stored = RunState.from_json(state.to_json())  # as a process that died with it queued left it
    assert pending_request(ex, stored) == effects[1]
    assert [e.xml for e in ex.advance(stored, Callback("redirect", 2, ANSWERED))] == [HANGUP_DOCUMENT]


def test_a_run_stored_mid_request_before_redirects_goes_on_as_it_was(make_flow):
    """A run saved by an earlier version while its in-call request ran: its document is
    still open for the answer callback; the response serves it there, whole."""
    ex, state, _ = answered_run(make_flow(FLOW), lambda: 0.0)
    stored = RunState.from_json(state.to_json())  # the same keys: only the values differ
    stored.documents, stored.served = [], {}
    stored.pending_xml, stored.answering = [SPEAK.format("One moment.")], "1:answer"
    ex.advance(stored, Response(200, body="", seq=3))
    assert stored.served == {"1:answer": 0}
    assert stored.documents == [f"<Response>{SPEAK.format('One moment.')}{SPEAK.format('It shipped.')}"
                                "<Hangup/></Response>"]


def test_an_incoming_call_that_starts_with_a_request_is_answered_at_once(make_flow):
    flow = make_flow("""
    Start: {type: trigger, next: {call: Look}}
    Look: {type: http_request, url: "https://api.example.com/who", next: {success: Tell, failed: Tell}}
    Tell: {type: speak, text: "Hi.", next: Bye}
    Bye: {type: hangup}
    """)
    runner = LocalRun(flow, parse_scenario("http: {Look: {status: 200, json: {}}}"))
    state = runner.run_inbound("+12025550123", "+12025551234")
    assert state.status == "completed"
    assert state.documents == [f"<Response>{redirect(state.run_id, 1)}</Response>",
                               f"<Response>{SPEAK.format('Hi.')}<Hangup/></Response>"]
    assert state.served == {"0:answer": 0, "1:redirect": 1}


def test_the_sandbox_follows_the_redirect_as_plivo_does_and_the_trace_says_so(make_flow):
    lines: list[str] = []
    runner = LocalRun(make_flow(FLOW), parse_scenario("http: {Look: {status: 200, json: {}}}"),
                      on_progress=Tracer(lines.append))
    state = runner.run({})
    assert state.status == "completed" and state.path == ["Start", "Call", "Hello", "Look", "Tell", "Bye"]
    log = runner.sandbox.calls[0].log
    assert [c["kind"] for c in log["callbacks"]] == ["ring", "answer", "redirect", "hangup"]
    redirected = log["callbacks"][2]
    assert redirected["url"] == SANDBOX_ENV.callback_url(state.run_id, 3, "redirect")
    assert redirected["method"] == "POST" and redirected["params"]["CallUUID"] == log["call_uuid"]
    assert redirected["params"]["CallStatus"] == "in-progress"  # the call's usual params
    assert log["documents"] == state.documents and len(state.documents) == 2
    assert 'says "One moment.", then silence until the request is done' in "\n".join(lines)


def test_a_node_sending_again_at_its_own_step_adds_no_empty_redirect(make_flow):
    """A request made again by the same step (its Response not yet taken): the document open
    answers that step's own Redirect and holds nothing yet, so nothing is served."""
    ex, state, _ = answered_run(make_flow(FLOW), lambda: 0.0)
    assert state.answering == "3:redirect" and state.pending_xml == []
    assert not ex._speaks_first(state, 3)  # the provider waits on this Redirect already
    assert ex._speaks_first(state, 4)  # a later step's request: its own Redirect answers this one


def test_an_oversized_document_before_a_request_fails_the_run_and_sends_nothing(make_flow):
    flow = make_flow(FLOW.replace('text: "One moment."', 'text: "{{ Start.http.params.long }}"'))
    ex = Executor(flow, SANDBOX_ENV, clock=lambda: 0.0)
    state = ex.new_run("r")
    ex.advance(state, Trigger({"long": "y" * 120_000}))
    ex.advance(state, Response(201, body={"request_uuid": "rq"}, seq=1))
    effects = ex.advance(state, Callback("answer", 1, ANSWERED))
    assert not any(isinstance(e, Request) for e in effects) and state.requests[1:] == []
    assert state.status == "failed" and "Plivo accepts at most" in state.error
    assert [e.xml for e in effects if isinstance(e, ServeDocument)] == [HANGUP_DOCUMENT]
