"""Input that cannot be stored or shown back is refused at the door (400 naming the key),
cursors we did not mint are 400, every stored record reads back, and forged or replayed
callbacks change nothing."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from engine.service.signature import sign_v3_headers
from hostile.harness import FLOW

PAYLOADS = [  # (raw JSON body, the key the error must name)
    ('{"to": "+12025550100", "customer": "c", "n": 1e999}', "'n'"),
    ('{"to": "+12025550100", "customer": "c", "n": -1e999}', "'n'"),
    ('{"to": "+12025550100", "customer": "\\ud800"}', "'customer'"),
    ('{"to": "+12025550100", "customer": "c", "\\udfff": "x"}', "'\\udfff'"),
    ('{"to": "+12025550100", "customer": "a\\u0000b"}', "'customer'"),
    ('{"to": "+12025550100", "customer": "c", "k\\u0000": "x"}', "'k\\x00'"),
    ('{"to": "+12025550100", "customer": "c", "' + "k" * 129 + '": 1}', "'kkkk"),
    ('{"to": "+12025550100", "customer": "' + "v" * 4097 + '"}', "'customer'"),
    ('{"to": "+12025550100", "customer": "c", "n": 18446744073709551616}', "'n'"),
    ('{"to": "+12025550100", "customer": "c", ' + ", ".join(f'"k{i}": {i}' for i in range(100)) + "}", "'k98'"),
]


def _runs(serve) -> int:
    return len(serve.get("/v1/runs", params={"limit": 500}).json()["runs"])


@pytest.mark.parametrize("body,key", PAYLOADS)
def test_payloads_that_cannot_be_stored_are_400_naming_the_key(serve, body, key):
    before = _runs(serve)
    r = httpx.post(f"{serve.url}/v1/account/{serve.auth[0]}/phlo/{FLOW}/", content=body.encode(),
                   auth=serve.auth, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert key in r.json()["error"], r.json()
    assert _runs(serve) == before


@pytest.mark.parametrize("cursor", ["99999999999999999999999", "9" * 5000, "abc", "-1", "0", "1.5", "０１",
                                    "9223372036854775808", " 12"])
def test_cursors_not_minted_here_are_400(serve, cursor):
    r = serve.get("/v1/runs", params={"cursor": cursor})
    assert r.status_code == 400, r.text
    assert "cursor" in r.json()["error"] and "Traceback" not in r.text and "int" not in r.json()["error"]


def test_a_minted_cursor_pages(serve):
    for _ in range(3):
        assert serve.trigger().status_code == 201
    first = serve.get("/v1/runs", params={"limit": 2}).json()
    assert first["next_cursor"]
    assert serve.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]}).status_code == 200


def test_every_stored_record_reads_back_even_an_old_one_holding_infinity(serve, workdir):
    run_id = serve.trigger().json()["api_id"]
    serve.finished(run_id)
    # A record written before the door was shut: an infinity and a lone surrogate in its payload.
    with sqlite3.connect(workdir / "runs.db") as db:
        text = db.execute("SELECT state FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
        state = json.loads(text)
        state["variables"].setdefault("Start", {}).setdefault("http", {}).setdefault("params", {})
        state["variables"]["Start"]["http"]["params"].update(big=float("inf"), odd="\ud800")
        db.execute("UPDATE runs SET state = ? WHERE run_id = ?", (json.dumps(state), run_id))
    db.close()
    for rec in serve.get("/v1/runs", params={"limit": 500}).json()["runs"]:
        r = serve.get(f"/v1/runs/{rec['run_id']}")
        assert r.status_code == 200, (rec["run_id"], r.text)
    assert "Traceback" not in serve.log()


def _signed(serve, url: str, params: dict, token: str, signed_url: str | None = None) -> httpx.Response:
    headers = sign_v3_headers("POST", signed_url or url, params, token)
    return httpx.post(url, data=params, headers=headers)


def test_forged_callbacks_are_refused_and_change_nothing(serve):
    run_id = serve.trigger().json()["api_id"]
    rec = serve.finished(run_id)
    url = f"{serve.url}/callbacks/{run_id}/1/hangup"
    params = {"CallUUID": "forged", "CallStatus": "busy", "HangupCause": "USER_BUSY"}
    forged = [
        httpx.post(url, data=params),  # no signature
        _signed(serve, url, params, "sandbox-dev-token"),  # the documented development token
        _signed(serve, url, params, "guess-" + serve.provider_token[:8]),  # a wrong token
        _signed(serve, url, params, serve.provider_token, signed_url=url.replace("/1/", "/2/")),  # another URL's
    ]
    assert [r.status_code for r in forged] == [403] * 4
    assert serve.get(f"/v1/runs/{run_id}").json() == rec


def test_replayed_callbacks_are_answered_from_the_record_once(serve):
    run_id = serve.trigger().json()["api_id"]
    rec = serve.finished(run_id)
    assert rec["status"] == "completed"
    answer = f"{serve.url}/callbacks/{run_id}/1/answer"
    params = {"CallUUID": "replayed", "CallStatus": "in-progress", "Direction": "outbound", "Event": "StartApp"}
    answers = [_signed(serve, answer, params, serve.provider_token) for _ in range(20)]
    assert {r.status_code for r in answers} == {200}
    assert len({r.text for r in answers}) == 1
    hangup = f"{serve.url}/callbacks/{run_id}/1/hangup"
    for _ in range(20):
        assert _signed(serve, hangup, {"CallUUID": "replayed", "CallStatus": "completed"},
                       serve.provider_token).status_code == 200
    assert serve.get(f"/v1/runs/{run_id}").json() == rec
