"""The web console in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`) driven by selenium against a real `callflow serve --sandbox` process.

Each page is saved as a screenshot under test-output/console/ (gitignored). With
CALLFLOW_DOCS_SCREENSHOT=1 the run page of a dynamic-call run is also written to
docs/console.png (the README's picture).

The API's Basic auth reaches every request the page makes through Chrome DevTools'
Network.setExtraHTTPHeaders: no credentials in URLs, no cookies.

Nothing sleeps for a fixed time: every wait polls with a deadline.
"""

from __future__ import annotations

import base64
import http.server
import os
import queue
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import FLOWS, ROOT
from processes import SERVE_READY, CallflowProcess, clean_env

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
AUTH_ID = "MACONSOLEBROWSERTEST"  # MA + 18 letters
AUTH_TOKEN = "console-browser-token"
OUT = ROOT / "test-output" / "console"
DEADLINE = 20.0
TO, CUSTOMER = "+12025550100", "johndoe"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

assert len(AUTH_ID) == 20 and AUTH_ID.startswith("MA") and AUTH_ID.isalpha()


def _why_no_browser() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"no browser: {' and '.join(missing)} not installed (apt-get install chromium chromium-driver; "
                ".ci/run installs them where apt is available)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no browser driver: the selenium package is not installed (pip install -e '.[test]')"
    return None


pytestmark = pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")

# A flow with nodes a run leaves out (Busy, Bye), a step that fails (Lookup: the order
# service answers 503), an error edge that is not taken (Lookup's `error:` goes where its
# `failed` goes), and markup in every text the page shows.
CHECK_FLOW = """\
spec: callflow/v1
id: console-check
name: 'Escaping <b>check</b> & "quotes"'
description: '<img src=x onerror="window.__xss=1"> every text reaches the page as text'
nodes:
  Start:
    type: trigger
    payload:
      from: "+12025551234"
      note: "<script>window.__xss=1</script> & more"
      retries: 3
    required: [to]
    next: Call
  Call:
    type: call_out
    from: "{{{{ Start.http.params.from }}}}"
    to: "{{{{ Start.http.params.to }}}}"
    next:
      answered: Greet
      busy: Busy
      no_answer: Busy
      failed: Busy
      machine: Busy
  Busy:
    type: hangup
  Greet:
    type: speak
    text: "Hello <there> {{{{ Start.http.params.note }}}}"
    next: Lookup
  Lookup:
    type: http_request
    url: "{orders}/orders/{{{{ Start.http.params.retries }}}}"
    timeout: 12
    next:
      success: Bye
      failed: Sorry
    error: Sorry
  Sorry:
    type: speak
    text: "Sorry, the order service is down."
    next: Done
  Bye:
    type: speak
    text: "Goodbye."
    next: Done
  Done:
    type: hangup
"""


def wait_for(predicate, timeout: float = DEADLINE, what: str = "condition", interval: float = 0.05):
    end = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
        except Exception as e:  # the page is re-rendering under us: look again
            value, last_error = None, e
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last_error!r})"
                                                                             if last_error else ""))
        time.sleep(interval)


# -- the order service: answers 503 once the test lets it --------------------------------------------
class Orders:
    """A local HTTP service whose answers wait until `release()`: a run stays `waiting` on
    its http_request for as long as the test needs to look at it."""

    def __init__(self):
        self.released = threading.Event()
        self.hits: queue.Queue[str] = queue.Queue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.put(self.path)
                outer.released.wait(15)
                body = b'{"status": "down"}'
                self.send_response(503)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def release(self) -> None:
        self.released.set()

    def hold(self) -> None:
        self.released.clear()

    def close(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


# -- `callflow serve --sandbox` --------------------------------------------------------------------
def start_serve(workdir: Path) -> CallflowProcess:
    env = clean_env(CALLFLOW_HTTP_ALLOW_PRIVATE="1", CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, CALLFLOW_DB=str(workdir / "runs.db"),
                    PYTHONPATH=str(ROOT))
    return CallflowProcess.start(["serve", str(workdir / "flows"), "--sandbox", "--host", "127.0.0.1", "--port", "0"],
                                 env, SERVE_READY, workdir / "serve.log", cwd=workdir, timeout=DEADLINE)


def auth_header() -> str:
    return "Basic " + base64.b64encode(f"{AUTH_ID}:{AUTH_TOKEN}".encode()).decode()


@pytest.fixture(scope="module")
def orders():
    service = Orders()
    yield service
    service.close()


@pytest.fixture(scope="module")
def serve(tmp_path_factory, orders):
    workdir = tmp_path_factory.mktemp("console")
    shutil.copytree(FLOWS, workdir / "flows")
    (workdir / "flows" / "console-check.yaml").write_text(CHECK_FLOW.format(orders=orders.url))
    server = start_serve(workdir)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(serve):
    with httpx.Client(base_url=serve.url, headers={"Authorization": auth_header()}, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--hide-scrollbars", "--window-size=1280,1000", "--lang=en-US",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: selenium-manager never runs (and never downloads anything).
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(DEADLINE)
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": auth_header()}})
    OUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


# -- page helpers -----------------------------------------------------------------------------------
def shot(driver, name: str, full: bool = True) -> Path:
    """Save the page; `full` grows the window to the page's height first."""
    path = OUT / f"{name}.png"
    size = driver.get_window_size()
    if full:
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1280, min(max(int(height) + 120, 600), 4000))
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 5000, f"{path}: blank screenshot?"
    return path


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def node_classes(driver) -> dict[str, set[str]]:
    return driver.execute_script("""
        const out = {};
        for (const g of document.querySelectorAll('svg.flow-graph g.node[data-name]'))
            out[g.getAttribute('data-name')] = Array.from(g.classList);
        return out;""")


def edge_classes(driver) -> list[tuple[str, str, bool, bool]]:
    """(source, target, is error edge, taken) per drawn edge."""
    rows = driver.execute_script("""
        return Array.from(document.querySelectorAll('svg.flow-graph path.edge')).map((p) =>
            [p.getAttribute('data-source'), p.getAttribute('data-target'), p.classList.contains('error'),
             p.classList.contains('taken')]);""")
    return [tuple(r) for r in rows]


def run_status(driver) -> str | None:
    return driver.execute_script("return document.body.getAttribute('data-run-status')")


def no_script_ran(driver) -> None:
    assert driver.execute_script("return window.__xss === undefined")
    assert not css(driver, "main script, main img, main iframe, svg script, svg foreignObject")


def no_console_errors(driver) -> None:
    logs = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not logs, logs


def open_console(driver, serve, fragment: str = "") -> None:
    driver.get_log("browser")  # start each page with an empty log: errors seen after are this page's
    driver.get(serve.url + "/" + fragment)
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", what="the console")


# -- tests ------------------------------------------------------------------------------------------
def test_flows_flow_form_run_and_path(browser, serve, api):
    """The brief's walk: flows list -> outbound-sip-headers -> form -> run page -> completed,
    the path drawn on the graph."""
    d = browser
    open_console(d, serve)
    rows = wait_for(lambda: css(d, "table.flows tr[data-flow]"), what="the flows list")
    listed = {r.get_attribute("data-flow"): r.text for r in rows}
    assert set(listed) >= {"dynamic-call", "ivr-order-status", "outbound-sip-headers", "console-check"}
    assert " 4 " in f" {listed['outbound-sip-headers']} " and "valid" in listed["outbound-sip-headers"]
    assert " 12 " in f" {listed['ivr-order-status']} "
    assert d.title.startswith("Flows")
    shot(d, "01-flows")

    css(d, 'tr[data-flow="outbound-sip-headers"] a.flow-link')[0].click()
    wait_for(lambda: len(css(d, "svg.flow-graph g.node[data-name]")) == 4, what="the flow's graph")
    assert d.current_url.endswith("#/flows/outbound-sip-headers")
    assert "Outbound call with custom SIP headers" in css(d, "h1")[0].text
    fields = {i.get_attribute("data-field"): i for i in css(d, "form.run-form input[data-field]")}
    assert list(fields) == ["from", "to", "customer"]
    assert fields["from"].get_attribute("value") == "+12025551234"
    assert fields["to"].get_attribute("required") is not None and fields["customer"].get_attribute("required") is not None
    assert not fields["from"].get_attribute("required")
    shot(d, "02-flow")

    fields["to"].send_keys(TO)
    fields["customer"].send_keys(CUSTOMER)
    css(d, "form.run-form button[type=submit]")[0].click()
    wait_for(lambda: "#/runs/" in d.current_url, what="the run page")
    run_id = d.current_url.rsplit("/", 1)[1]
    assert UUID.match(run_id), run_id
    wait_for(lambda: run_status(d) == "completed", what="the run to complete on the page")
    wait_for(lambda: "on-path" in node_classes(d).get("Done", []), what="the path on the graph")

    classes = node_classes(d)
    for name in ("Start", "Call", "Greet", "Done"):
        assert "on-path" in classes[name], (name, classes)
        assert "failed" not in classes[name] and "current" not in classes[name]
    edges = edge_classes(d)
    assert ("Call", "Greet", False, True) in edges
    assert ("Call", "Done", False, False) in edges  # the no_answer/busy/failed/machine branch: not taken
    assert [e[:2] for e in edges if e[3]] == [("Start", "Call"), ("Call", "Greet"), ("Greet", "Done")]

    steps = [r.text.split() for r in css(d, "table.steps tbody tr")]
    assert [s[1:4] for s in steps[:3]] == [["Start", "trigger", "http"], ["Call", "call_out", "answered"],
                                           ["Greet", "speak", "done"]]
    assert steps[3][1:3] == ["Done", "hangup"]
    request = css(d, ".request")[0].text
    assert "POST" in request and "/Call/" in request and TO in request and "customer=johndoe" in request
    response = css(d, ".request .response")[0]  # the Call API's answer: status and the start of its body
    assert response.get_attribute("data-status") == "201" and "call fired" in response.text
    documents = [p.text for p in css(d, "pre.xml")]
    assert len(documents) == 1 and "<Speak" in documents[0] and "Congratulations!" in documents[0]
    assert "completed" in css(d, ".title-row .badge")[0].text
    assert not css(d, ".title-row .live")  # finished: no longer polling
    shot(d, "03-run")

    record = api.get(f"/v1/runs/{run_id}").json()  # what the page drew is the run record
    assert record["status"] == "completed" and record["path"] == ["Start", "Call", "Greet", "Done"]
    assert record["requests"][0]["json"]["to"] == TO
    no_console_errors(d)


def completed_run_of(api, flow: str, body: dict) -> None:
    """A completed run of `flow` on this serve: the one an earlier test left, else a new one. (Under
    `pytest -n` the tests of this file may be spread over workers, each with its own serve.)"""
    if api.get("/v1/runs", params={"flow_id": flow, "status": "completed", "limit": 1}).json()["runs"]:
        return
    r = api.post(f"/v1/account/{AUTH_ID}/phlo/{flow}/", json=body)
    assert r.status_code == 201, r.text
    run_id = r.json()["api_id"]
    wait_for(lambda: api.get(f"/v1/runs/{run_id}").json()["status"] == "completed", what=f"a run of {flow}")


def test_runs_list_is_live_and_filters(browser, serve, api):
    d = browser
    completed_run_of(api, "outbound-sip-headers", {"to": TO, "customer": CUSTOMER})
    open_console(d, serve, "#/runs")
    wait_for(lambda: css(d, "table.runs tbody tr[data-run]"), what="the runs list")
    before = {r.get_attribute("data-run") for r in css(d, "table.runs tbody tr[data-run]")}
    # a run started elsewhere shows up without a reload
    r = api.post(f"/v1/account/{AUTH_ID}/phlo/dynamic-call/", json={"from": "+12025551234", "to": TO})
    assert r.status_code == 201, r.text
    new = r.json()["api_id"]
    row = f'table.runs tbody tr[data-run="{new}"]'
    wait_for(lambda: css(d, row), what="the new run in the list")
    wait_for(lambda: css(d, row)[0].get_attribute("data-status") == "completed", what="its status to update")
    assert new not in before
    assert "dynamic-call" in css(d, row)[0].text
    shot(d, "04-runs")

    from selenium.webdriver.support.ui import Select

    Select(css(d, "#filter-flow")[0]).select_by_value("outbound-sip-headers")
    wait_for(lambda: "flow=outbound-sip-headers" in d.current_url, what="the filter in the URL")
    wait_for(lambda: css(d, "table.runs tbody tr[data-run]") and not css(d, row), what="the flow filter")
    flows = {r.text.split()[1] for r in css(d, "table.runs tbody tr[data-run]")}
    assert flows == {"outbound-sip-headers"}
    Select(css(d, "#filter-status")[0]).select_by_value("failed")
    wait_for(lambda: "status=failed" in d.current_url and css(d, ".runs-box .notice.empty:not([hidden])"),
             what="no failed run of that flow")
    assert not css(d, "table.runs tbody tr[data-run]")
    # the filters survive a reload: they live in the URL
    d.refresh()
    wait_for(lambda: Select(css(d, "#filter-flow")[0]).first_selected_option.get_attribute("value")
             == "outbound-sip-headers", what="the flow filter after a reload")
    assert Select(css(d, "#filter-status")[0]).first_selected_option.get_attribute("value") == "failed"
    no_console_errors(d)
    # a run id nobody knows: the page says so and stops asking
    open_console(d, serve, "#/runs/no-such-run")
    message = wait_for(lambda: css(d, ".run-meta .notice.error")[0].text, what="the unknown run's message")
    assert "no run with this id" in message
    assert not css(d, ".title-row .live")


def test_run_page_follows_a_run_live_and_marks_the_failed_step(browser, serve, api, orders):
    """console-check: the run waits on its http_request while the page shows it; then the
    order service answers 503: the page moves on by itself to `completed`, with Lookup
    marked failed and the nodes the run left out (Busy, Bye) not on the path."""
    d = browser
    orders.hold()
    open_console(d, serve, "#/flows/console-check")
    wait_for(lambda: css(d, "svg.flow-graph g.node[data-name]"), what="the console-check graph")
    # every text from the flow is shown as text
    assert css(d, "h1")[0].text == 'Escaping <b>check</b> & "quotes"'
    assert css(d, "p.description")[0].text.startswith('<img src=x onerror="window.__xss=1">')
    fields = {i.get_attribute("data-field"): i for i in css(d, "form.run-form input[data-field]")}
    assert list(fields) == ["from", "note", "retries", "to"]
    assert fields["note"].get_attribute("value") == "<script>window.__xss=1</script> & more"
    assert fields["retries"].get_attribute("value") == "3"
    no_script_ran(d)
    shot(d, "05-flow-escaping")

    # a missing required value: the form says so and stays
    fields["to"].send_keys(TO)
    d.execute_script("arguments[0].value = ''", fields["to"])
    css(d, "form.run-form button[type=submit]")[0].click()
    assert "#/flows/console-check" in d.current_url  # the browser's own check stops an empty `to`
    fields["to"].send_keys(TO)
    css(d, "form.run-form button[type=submit]")[0].click()
    wait_for(lambda: "#/runs/" in d.current_url, what="the run page")
    run_id = d.current_url.rsplit("/", 1)[1]

    assert orders.hits.get(timeout=DEADLINE) == "/orders/3"
    wait_for(lambda: run_status(d) == "waiting", what="the run waiting on the order service")
    wait_for(lambda: "current" in node_classes(d).get("Lookup", []), what="Lookup marked as where the run is")
    assert css(d, ".title-row .live")
    steps = css(d, "table.steps tbody tr")
    assert steps[-1].text.split()[1] == "Lookup" and "running" in steps[-1].text
    shot(d, "06-run-waiting")

    orders.release()
    wait_for(lambda: run_status(d) == "completed", what="the page to follow the run to its end")
    wait_for(lambda: "failed" in node_classes(d).get("Lookup", []), what="Lookup marked failed")
    classes = node_classes(d)
    on = {n for n, c in classes.items() if "on-path" in c}
    assert on == {"Start", "Call", "Greet", "Lookup", "Sorry", "Done"}, classes
    for name in ("Busy", "Bye"):
        assert "on-path" not in classes[name] and "off-path" in classes[name]
    assert {n for n, c in classes.items() if "failed" in c} == {"Lookup"}
    assert not any("current" in c for c in classes.values())
    edges = edge_classes(d)
    assert ("Lookup", "Sorry", False, True) in edges  # the `failed` outcome
    assert ("Lookup", "Sorry", True, False) in edges  # the `error:` edge: not taken
    assert ("Call", "Busy", False, False) in edges and ("Lookup", "Bye", False, False) in edges
    failed_rows = css(d, "table.steps tbody tr.failed")
    assert len(failed_rows) == 1 and "Lookup" in failed_rows[0].text and "HTTP 503" in failed_rows[0].text
    documents = "\n".join(p.text for p in css(d, "pre.xml"))
    assert "Hello &lt;there&gt; &lt;script&gt;window.__xss=1&lt;/script&gt; &amp; more" in documents
    assert "Sorry, the order service is down." in documents
    assert "orders/3" in css(d, ".request")[-1].text
    answered = css(d, ".request .response")[-1]
    assert answered.get_attribute("data-status") == "503" and '{"status":"down"}' in answered.text
    assert "bad" in answered.get_attribute("class")
    no_script_ran(d)
    shot(d, "07-run-failed-step")

    # clicking a node picks its steps out
    d.execute_script("document.querySelector('svg.flow-graph g.node[data-name=\"Lookup\"]')"
                     ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    wait_for(lambda: css(d, 'table.steps tr.selected[data-node="Lookup"]'), what="Lookup's step selected")

    record = api.get(f"/v1/runs/{run_id}").json()
    assert record["status"] == "completed"
    assert record["path"] == ["Start", "Call", "Greet", "Lookup", "Sorry", "Done"]
    assert [s["node"] for s in record["steps"] if s["error"]] == ["Lookup"]
    params = record["variables"]["Start"]["http"]["params"]
    assert params["retries"] == 3 and params["to"] == TO  # an untouched default keeps its type
    no_console_errors(d)


def test_a_refused_run_request_is_shown_on_the_form(browser, serve, api):
    d = browser
    open_console(d, serve, "#/flows/dynamic-call")
    fields = wait_for(lambda: {i.get_attribute("data-field"): i for i in css(d, "form.run-form input[data-field]")},
                      what="the run form")
    fields["from"].send_keys("+12025551234")
    fields["to"].send_keys(TO)
    # a run request the API refuses (a body over 64 KiB): its error shows on the form
    css(d, "form.run-form .form-actions button.secondary")[0].click()
    css(d, ".extra-key")[0].send_keys("blob")
    d.execute_script("arguments[0].value = 'x'.repeat(70000)", css(d, ".extra-value")[0])
    css(d, "form.run-form button[type=submit]")[0].click()
    status = wait_for(lambda: css(d, ".form-status.error")[0].text, what="the refusal on the form")
    assert "larger than" in status
    assert "#/flows/dynamic-call" in d.current_url


def docs_shot(driver, name: str) -> None:
    """docs/<name>.png, only with CALLFLOW_DOCS_SCREENSHOT=1 (the docs' pictures, redrawn on purpose)."""
    if os.environ.get("CALLFLOW_DOCS_SCREENSHOT") == "1":
        driver.save_screenshot(str(ROOT / "docs" / f"{name}.png"))


def graph_state(driver) -> tuple[float, list[float]]:
    """(zoom level, the graph's viewBox) as the page has them."""
    zoom, box = driver.execute_script("""
        const view = document.querySelector('.graph-scroll');
        return [view.getAttribute('data-zoom'), view.querySelector('svg').getAttribute('viewBox')];""")
    return float(zoom), [float(v) for v in box.split()]


def test_zoom_pan_and_the_node_panel(browser, serve):
    """ivr-order-status (12 nodes): the buttons, the wheel and a drag move the camera; a click
    on a node opens its panel (settings as written, outcomes and targets, file:line:col); a
    drag that starts on a node opens nothing."""
    from selenium.webdriver.common.action_chains import ActionChains

    d = browser
    open_console(d, serve, "#/flows/ivr-order-status")
    wait_for(lambda: len(css(d, "svg.flow-graph g.node[data-name]")) == 12, what="the graph")
    zoom, full = graph_state(d)
    assert zoom == 1.0
    css(d, ".graph-tools .zoom-in")[0].click()
    zoom, box = graph_state(d)
    assert zoom == 1.25 and box[2] == pytest.approx(full[2] / 1.25)
    css(d, ".graph-tools .zoom-out")[0].click()
    assert graph_state(d)[0] == 1.0
    # the wheel zooms around the pointer: the point under it stays where it was
    before, after = d.execute_script("""
        const svg = document.querySelector('svg.flow-graph'), r = svg.getBoundingClientRect();
        const x = r.left + r.width * 0.3, y = r.top + r.height * 0.3;
        const under = () => { const p = new DOMPoint(x, y).matrixTransform(svg.getScreenCTM().inverse());
                              return [p.x, p.y]; };
        const before = under();
        svg.dispatchEvent(new WheelEvent('wheel', {deltaY: -300, clientX: x, clientY: y, bubbles: true,
                                                   cancelable: true}));
        return [before, under()];""")
    zoom, box = graph_state(d)
    assert zoom > 1.5 and box[2] < full[2] / 1.5
    assert after == pytest.approx(before, abs=0.5)
    # a drag pans (starting on a node, it does not open the node's panel)
    lookup = css(d, 'svg.flow-graph g.node[data-name="Lookup"]')[0]
    ActionChains(d).move_to_element(lookup).click_and_hold().move_by_offset(-60, -40).release().perform()
    zoom_after, panned = graph_state(d)
    assert zoom_after == zoom and panned[0] > box[0] and panned[1] > box[1]
    assert not css(d, ".node-panel:not([hidden])")
    css(d, ".graph-tools .zoom-fit")[0].click()
    assert graph_state(d) == (1.0, full)

    ActionChains(d).move_to_element(css(d, 'svg.flow-graph g.node[data-name="Lookup"]')[0]).click().perform()
    panel = wait_for(lambda: css(d, '.node-panel[data-node="Lookup"]:not([hidden])'), what="Lookup's panel")[0]
    assert "http_request" in panel.find_element("css selector", ".panel-head").text
    assert panel.find_element("css selector", ".where").text.endswith("ivr-order-status.yaml:64:3")
    settings = {dd.get_attribute("data-key"): dd.text for dd in panel.find_elements("css selector", "dl.config dd")}
    assert settings["url"] == "{{ Start.http.params.api }}/orders/{{ Start.http.params.order_id }}"  # raw
    assert settings["method"] == "GET" and settings["timeout"] == "5" and "application/json" in settings["headers"]
    outcomes = [r.text.split() for r in panel.find_elements("css selector", "table.outcomes tr")]
    assert outcomes == [["success", "Status"], ["failed", "Unavailable"]]
    assert "Unavailable" in panel.find_element("css selector", ".on-error").text
    assert "selected" in node_classes(d)["Lookup"]
    css(d, "svg.flow-graph g.node[data-name=Lookup]")  # still drawn
    docs_shot(d, "console-node-panel")
    shot(d, "08-node-panel")
    # an outcome's target opens that node's panel
    panel.find_element("css selector", 'tr[data-outcome="success"] a.target').click()
    wait_for(lambda: css(d, '.node-panel[data-node="Status"]:not([hidden])'), what="Status's panel")
    text = css(d, ".node-panel dl.config dd")[0].text
    assert "{{ Lookup.body.status | default: 'being processed' }}" in text
    assert "selected" in node_classes(d)["Status"] and "selected" not in node_classes(d)["Lookup"]
    no_console_errors(d)


def test_an_incoming_call_from_the_flow_page(browser, serve, api):
    """inbound-support on serve --sandbox: the form places a simulated incoming call with a SIP
    header; the run takes the call path and the gold branch, and its page opens."""
    d = browser
    open_console(d, serve, "#/flows/inbound-support")
    fields = wait_for(lambda: {i.get_attribute("data-incoming"): i for i in css(d, "form.incoming-form input")},
                      what="the incoming-call form")
    assert fields["from"].get_attribute("value") == "+12025550123"
    submit = css(d, "form.incoming-form button[type=submit]")[0]
    fields["from"].clear()
    fields["from"].send_keys("12025550123")  # no +: the sandbox says how to write it
    submit.click()
    status = wait_for(lambda: css(d, "form.incoming-form .form-status.error")[0].text, what="the refusal")
    assert "write it as '+12025550123'" in status and "#/flows/inbound-support" in d.current_url
    d.get_log("browser")  # the 400 the browser logged for it was expected
    fields["from"].clear()
    fields["from"].send_keys("+12025550123")
    fields["headers"].send_keys("tier=gold")
    fields["digits"].send_keys("1")
    shot(d, "09-incoming-form")
    submit.click()
    wait_for(lambda: "#/runs/" in d.current_url, what="the incoming call's run page")
    run_id = d.current_url.rsplit("/", 1)[1]
    wait_for(lambda: run_status(d) == "completed", what="the run to complete")
    wait_for(lambda: "on-path" in node_classes(d).get("GoldWelcome", []), what="the gold branch on the graph")
    classes = node_classes(d)
    assert "off-path" in classes["Welcome"] and "on-path" in classes["Sales"]
    steps = [r.text.split()[1:4] for r in css(d, "table.steps tbody tr")]
    assert steps[:2] == [["Start", "trigger", "call"], ["Tier", "branch", "gold"]]
    docs_shot(d, "console-incoming-call")
    shot(d, "10-incoming-run")
    record = api.get(f"/v1/runs/{run_id}").json()
    assert record["variables"]["Start"]["call"]["headers"] == {"tier": "gold"}
    assert run_id in [r["run_id"] for r in api.get("/v1/runs", params={"flow_id": "inbound-support"}).json()["runs"]]
    no_console_errors(d)


def test_an_incoming_sms_from_the_flow_page(browser, serve, api):
    """sms-auto-reply on serve --sandbox: the form sends a simulated SMS; the run takes the
    message path, its page opens, and its reply went to the sandbox's Message API."""
    d = browser
    open_console(d, serve, "#/flows/sms-auto-reply")
    fields = wait_for(lambda: {i.get_attribute("data-message"): i for i in css(d, "form.message-form input")},
                      what="the incoming-SMS form")
    assert set(fields) == {"from", "to", "text"} and not css(d, "form.incoming-form:not(.message-form) input")
    fields["text"].send_keys("Where is order A1234?")
    shot(d, "11-message-form")
    css(d, "form.message-form button[type=submit]")[0].click()
    wait_for(lambda: "#/runs/" in d.current_url, what="the message's run page")
    run_id = d.current_url.rsplit("/", 1)[1]
    wait_for(lambda: run_status(d) == "completed", what="the run to complete")
    steps = [r.text.split()[1:4] for r in css(d, "table.steps tbody tr")]
    assert steps[0] == ["Start", "trigger", "message"] and steps[-1][:2] in (["Reply", "send_sms"], ["Sorry", "send_sms"])
    shot(d, "12-message-run")
    record = api.get(f"/v1/runs/{run_id}").json()
    assert record["variables"]["Start"]["message"]["text"] == "Where is order A1234?"
    assert record["requests"][-1]["json"]["dst"] == "+12025550123"
    no_console_errors(d)


def test_console_asks_the_browser_for_credentials(serve):
    r = httpx.get(serve.url + "/")
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="callflow"'
    ok = httpx.get(serve.url + "/", headers={"Authorization": auth_header()})
    assert ok.status_code == 200 and "/console/app.js" in ok.text


@pytest.mark.skipif(os.environ.get("CALLFLOW_DOCS_SCREENSHOT") != "1",
                    reason="set CALLFLOW_DOCS_SCREENSHOT=1 to write docs/console.png")
def test_docs_screenshot(browser, serve, api):
    """docs/console.png: a dynamic-call run, its path drawn (Missed left out)."""
    d = browser
    r = api.post(f"/v1/account/{AUTH_ID}/phlo/dynamic-call/", json={"from": "+12025551234", "to": TO})
    run_id = r.json()["api_id"]
    open_console(d, serve, f"#/runs/{run_id}")
    wait_for(lambda: run_status(d) == "completed", what="the run")
    wait_for(lambda: "on-path" in node_classes(d).get("Done", []) and "off-path" in node_classes(d).get("Missed", []),
             what="the path")
    d.set_window_size(1280, 1120)
    d.execute_script("window.scrollTo(0, 0)")
    d.save_screenshot(str(ROOT / "docs" / "console.png"))
