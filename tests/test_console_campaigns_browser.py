"""The console's campaigns page in a real browser (headless Chromium, the fixtures of
tests/test_console_browser.py) against a real `callflow serve --sandbox`: a campaign's
progress, its pause button, its rows linked to their runs, markup shown as text."""

from __future__ import annotations

from test_console_browser import (  # noqa: F401  (the module's fixtures, shared)
    api,
    browser,
    css,
    no_console_errors,
    orders,
    pytestmark,
    serve,
    shot,
    wait_for,
)

NAME = '<img src=x onerror="window.__xss=1"> reminders'


def test_the_campaigns_page_shows_progress_pauses_and_links_rows_to_runs(browser, serve, api):  # noqa: F811
    rows = [{"to": f"+1202555{i:04d}", "customer": f"c{i}"} for i in range(30)]
    r = api.post("/v1/campaigns", json={"flow_id": "outbound-sip-headers", "name": NAME, "rate": "2/s", "rows": rows})
    assert r.status_code == 201, r.text
    campaign_id = r.json()["id"]
    browser.get_log("browser")
    browser.get(serve.url + "/console/campaigns.html")
    wait_for(lambda: any(NAME in row.text for row in css(browser, "#campaigns tbody tr")), what="the campaign row")
    wait_for(lambda: api.get(f"/v1/campaigns/{campaign_id}").json()["progress"]["started"] >= 2, what="starts")
    row = next(r for r in css(browser, "#campaigns tbody tr") if NAME in r.text)
    assert "outbound-sip-headers" in row.text and "2/s" in row.text and "running" in row.text
    [pause] = [b for b in row.find_elements("css selector", "button") if b.text == "pause"]
    pause.click()
    wait_for(lambda: api.get(f"/v1/campaigns/{campaign_id}").json()["status"] == "paused", what="the pause")
    wait_for(lambda: any("paused" in r.text and NAME in r.text for r in css(browser, "#campaigns tbody tr")),
             what="the page to show it paused")
    row = next(r for r in css(browser, "#campaigns tbody tr") if NAME in r.text)
    row.find_element("link text", "rows").click()
    wait_for(lambda: css(browser, "#rows tbody tr a"), what="the rows with their runs")
    link = css(browser, "#rows tbody tr a")[0]
    assert link.get_attribute("href").startswith(serve.url + "/#/runs/")
    assert browser.execute_script("return window.__xss") is None  # the name's markup stayed text
    shot(browser, "campaigns")
    no_console_errors(browser)
    api.post(f"/v1/campaigns/{campaign_id}/cancel", json={})
