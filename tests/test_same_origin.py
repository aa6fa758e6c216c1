"""A page on another site cannot use the console's remembered credentials to start runs,
reload flows or start campaigns; SDKs, curl, the console itself and the provider's callbacks
are not affected (engine/service/same_origin.py)."""

from __future__ import annotations

import pytest
from test_server import AUTH_ID, FLOW, PUBLIC, basic, drain, go, serving, trigger

from engine.service.same_origin import cross_site

TRIGGER = f"/v1/account/{AUTH_ID}/phlo/{FLOW}/"


def headers(**named) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in named.items()]


@pytest.mark.parametrize("named, refused", [
    ({}, False),                                                    # curl, the SDK, Plivo
    ({"host": "calls.example.com", "origin": "https://calls.example.com"}, False),
    ({"host": "calls.example.com", "origin": "https://evil.example"}, True),
    ({"host": "calls.example.com", "origin": "null"}, True),        # a sandboxed frame
    ({"host": "10.0.0.5:8080", "origin": "https://flows.example.com"}, False),  # behind a proxy: the public URL
    ({"sec_fetch_site": "cross-site", "origin": "https://calls.example.com"}, True),
    ({"sec_fetch_site": "same-site"}, True),                        # a sibling subdomain is another site's page
    ({"sec_fetch_site": "same-origin", "origin": "https://evil.example"}, False),  # the browser's own word wins
    ({"sec_fetch_site": "none"}, False),
])
def test_cross_site_reads_what_browsers_say(named, refused):
    assert cross_site(headers(**named), "flows.example.com") is refused


def test_a_cross_site_trigger_is_refused_and_starts_nothing(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            r = await client.post(TRIGGER, json={"to": "+12025550100", "customer": "c1"},
                                  headers={**basic(), "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
            assert r.status_code == 403 and "cross-site" in r.json()["error"]
            r = await client.post("/v1/flows/reload", headers={**basic(), "Origin": "https://evil.example"})
            assert r.status_code == 403
            assert (await client.get("/v1/runs", headers=basic())).json()["runs"] == []

    go(main())


def test_same_site_and_non_browser_clients_still_trigger(tmp_path):
    async def main():
        async with serving(tmp_path) as (service, client):
            assert (await trigger(client)).status_code == 201  # no Origin: an SDK
            r = await client.post(TRIGGER, json={"to": "+12025550100", "customer": "c1"},
                                  headers={**basic(), "Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"})
            assert r.status_code == 201
            # A cross-site GET is not guarded: it changes nothing (and reads need the credentials anyway).
            r = await client.get("/v1/runs", headers={**basic(), "Origin": "https://evil.example"})
            assert r.status_code == 200 and len(r.json()["runs"]) == 2
            await drain(service)

    go(main())
