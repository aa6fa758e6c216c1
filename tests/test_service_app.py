"""engine/service/app.py and its seams: the one JSON error shape, module-level endpoints that
find their service and credentials in `app.state` (so two apps in one process never mix),
and the lifespan that runs the sweeper."""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
from conftest import FLOWS

from engine.load.build import load_flow
from engine.service.app import create_app
from engine.service.auth import BasicAuth
from engine.service.http import AUTH_FAILED, deny, error
from engine.service.provider import ProviderConfig
from engine.service.runs import Service
from engine.service.settings import Settings
from engine.service.sqlite_store import SQLiteStore

FLOW = "outbound-sip-headers"


class DoubtfulProvider:
    """Every request leaves the far end in doubt."""

    def __init__(self):
        self.requests = []

    async def perform(self, req, handing=None):
        from engine.events import Response

        if handing is not None:
            await handing(True)
        self.requests.append(req)
        return Response(error="no answer", in_doubt=True)

    async def aclose(self):
        pass


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def service(tmp_path, name: str, flow_ids=(FLOW,), grace: float = 60.0, provider=None) -> Service:
    flows = {FLOW: load_flow(FLOWS / f"{FLOW}.yaml")}
    settings = Settings(auth_id=f"MA{name.upper():0<18}", auth_token=f"token-{name}", public_url="https://x.example",
                        provider=ProviderConfig("MAPROVIDERACCOUNT001", "p", "https://api.example.com"),
                        in_doubt_seconds=grace)
    return Service({fid: flows[fid] for fid in flow_ids}, SQLiteStore(str(tmp_path / f"{name}.db")),
                   provider or DoubtfulProvider(), settings)


def client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


def test_error_is_plivo_shaped_json_and_deny_adds_the_challenge():
    r = error(404, "no flow with id 'x'", {"X-Extra": "1"})
    body = json.loads(r.body)
    assert r.status_code == 404 and set(body) == {"api_id", "error"} and body["error"] == "no flow with id 'x'"
    assert len(body["api_id"]) == 36 and r.headers["x-extra"] == "1"
    assert json.loads(error(400, "x").body)["api_id"] != body["api_id"]  # fresh per answer
    d = deny({"Cache-Control": "no-store"})
    assert d.status_code == 401 and json.loads(d.body)["error"] == AUTH_FAILED
    assert d.headers["www-authenticate"] == 'Basic realm="callflow"' and d.headers["cache-control"] == "no-store"
    assert deny().headers["www-authenticate"] == 'Basic realm="callflow"'


def test_basic_auth_never_shows_its_token():
    assert "s3cret" not in repr(BasicAuth("MAXXXXXXXXXXXXXXXXXX", "s3cret"))


def test_two_apps_in_one_process_each_serve_their_own_service(tmp_path):
    async def main():
        one, two = service(tmp_path, "one"), service(tmp_path, "two", flow_ids=())
        app_one, app_two = create_app(one), create_app(two)
        async with client(app_one) as c1, client(app_two) as c2:
            ok = await c1.get("/v1/flows", headers=basic(one.settings.auth_id, "token-one"))
            crossed = await c2.get("/v1/flows", headers=basic(one.settings.auth_id, "token-one"))
            empty = await c2.get("/v1/flows", headers=basic(two.settings.auth_id, "token-two"))
            health = [(await c.get("/health")).json()["flows"] for c in (c1, c2)]
            detail = await c1.get(f"/v1/flows/{FLOW}", headers=basic(one.settings.auth_id, "token-one"))
            missing = await c2.get(f"/v1/flows/{FLOW}", headers=basic(two.settings.auth_id, "token-two"))
        for s in (one, two):
            await s.store.close()
        assert [f["id"] for f in ok.json()["flows"]] == [FLOW]
        assert crossed.status_code == 401 and empty.json()["flows"] == [] and health == [1, 0]
        assert detail.json()["run_url"] == f"/v1/account/{one.settings.auth_id}/phlo/{FLOW}/"
        assert missing.status_code == 404
        assert app_one.state.service is one and app_two.state.service is two

    asyncio.run(main())


def test_the_lifespan_runs_the_sweeper_and_drains_at_shutdown(tmp_path):
    async def main():
        s = service(tmp_path, "sweep", grace=0.0)
        app = create_app(s)
        async with client(app) as c:
            r = await c.post(f"/v1/account/{s.settings.auth_id}/phlo/{FLOW}/", json={"to": "+12025550100", "customer": "c"},
                             headers=basic(s.settings.auth_id, "token-sweep"))
            run_id = r.json()["api_id"]
            async with app.router.lifespan_context(app):
                for _ in range(100):
                    state = (await s.store.load(run_id)).state
                    if state.finished:
                        break
                    await asyncio.sleep(0.05)
        await s.store.close()
        record = state.record()
        assert r.status_code == 201 and record["path"] == ["Start", "Call", "Done"]
        assert record["steps"][1]["outcome"] == "failed" and "doubt" in record["steps"][1]["error"]
        assert len(s.provider.requests) == 1 and not s.tasks

    asyncio.run(main())
