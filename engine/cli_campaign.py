"""`callflow campaign ...` (contract section 8): outbound campaigns on a `callflow serve`
(`--server`, credentials from CALLFLOW_AUTH_ID / CALLFLOW_AUTH_TOKEN), and `campaign run`
offline on the embedded sandbox (engine/local/campaign_run.py). Bad input is one `error:`
line (a refused CSV: one line per bad row, `FILE:LINE: reason`), exit status 2."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
FINAL = ("done", "cancelled")


def fail(message: str, status: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")  # a BOM from spreadsheet exports is not a column name
    except OSError as e:
        fail(f"cannot read {what} {path}: {e.strerror or e}")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text (save the {what} as UTF-8)")


def read_window(path: str | None) -> dict | None:
    """The calling window file: the `business_hours` spec (timezone, hours, closed_on), as YAML."""
    if path is None:
        return None
    import yaml

    try:
        spec = yaml.safe_load(read_text(path, "window file"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        fail(f"{where}: not YAML ({getattr(e, 'problem', None) or e})")
    if isinstance(spec, dict):
        spec = {k: v for k, v in spec.items() if k not in ("type", "next")}  # a business_hours node pasted whole
        if isinstance(spec.get("closed_on"), list):
            spec["closed_on"] = [str(d) for d in spec["closed_on"]]
    return spec


def read_dnc_file(path: str | None) -> list[str]:
    if path is None:
        return []
    from engine.campaign_rows import read_dnc

    return sorted(read_dnc(read_text(path, "do-not-call list").splitlines()))


class Client:
    """The service's campaigns API over httpx, with the trigger API's Basic auth."""

    def __init__(self, server: str):
        import httpx

        auth_id, token = os.environ.get("CALLFLOW_AUTH_ID"), os.environ.get("CALLFLOW_AUTH_TOKEN")
        if not auth_id or not token:
            fail("set CALLFLOW_AUTH_ID and CALLFLOW_AUTH_TOKEN to the service's API credentials")
        self.httpx = httpx
        self.client = httpx.Client(base_url=server.rstrip("/"), auth=(auth_id, token), timeout=300.0)
        self.server = server

    def call(self, method: str, path: str, **kw):
        try:
            r = self.client.request(method, path, **kw)
        except self.httpx.HTTPError as e:
            fail(f"cannot reach {self.server}: {e}", EXIT_FAILED)
        if r.status_code >= 400:
            try:
                body = r.json()
            except ValueError:
                body = {"error": r.text[:200]}
            return r.status_code, body
        return r.status_code, (r.json() if "json" in r.headers.get("content-type", "") else r.text)

    def ok(self, method: str, path: str, **kw):
        status, body = self.call(method, path, **kw)
        if status >= 400:
            fail(body.get("error") or f"HTTP {status}", EXIT_BAD_INPUT if status < 500 else EXIT_FAILED)
        return body


server_option = click.option("--server", envvar="CALLFLOW_SERVER", required=True, metavar="URL",
                             help="The callflow serve to talk to (default: $CALLFLOW_SERVER).")


@click.group()
def campaign() -> None:
    """Outbound campaigns: one run per CSV row, paced, resumable, with results."""


def pacing_options(fn):
    for option in reversed([
        click.option("--rate", default="2/s", show_default=True, help="New runs per second at most (2/s, 120/m)."),
        click.option("--max-in-flight", type=click.IntRange(1), metavar="N", help="Unfinished runs at most."),
        click.option("--window", "window_file", type=click.Path(dir_okay=False), metavar="FILE.yaml",
                     help="Calling window (business_hours format: timezone, hours, closed_on)."),
        click.option("--dnc", "dnc_file", type=click.Path(dir_okay=False), metavar="FILE",
                     help="Do-not-call list: one number a line."),
        click.option("--skip-bad-rows", is_flag=True, help="Start the good rows even if some are bad."),
    ]):
        fn = option(fn)
    return fn


@campaign.command()
@click.argument("flow_id")
@click.argument("contacts", type=click.Path(dir_okay=False))
@server_option
@pacing_options
@click.option("--name", help="A name to know the campaign by.")
def start(flow_id, contacts, server, rate, max_in_flight, window_file, dnc_file, skip_bad_rows, name):
    """Start a campaign of FLOW_ID on the service: one run per row of CONTACTS.csv."""
    body = {"flow_id": flow_id, "csv": read_text(contacts, "CSV"), "rate": rate, "max_in_flight": max_in_flight,
            "window": read_window(window_file), "dnc": read_dnc_file(dnc_file), "skip_bad_rows": skip_bad_rows,
            "name": name or Path(contacts).stem}
    status, record = Client(server).call("POST", "/v1/campaigns", json=body)
    if status == 422:
        report_problems(contacts, record.get("problems", []))
        fail(record["error"])
    if status >= 400:
        fail(record.get("error") or f"HTTP {status}", EXIT_BAD_INPUT if status < 500 else EXIT_FAILED)
    for problem in record.get("skipped_rows", []):
        click.echo(f"{contacts}:{problem['line']}: skipped: {problem['reason']}", err=True)
    p = record["progress"]
    click.echo(f"campaign {record['id']} {record['status']}: {p['rows']} rows, {p['skipped']} skipped, "
               f"at most {record['rate']:g}/s")


def report_problems(path: str, problems: list[dict]) -> None:
    for problem in problems:
        click.echo(f"{path}:{problem['line']}: {problem['reason']}", err=True)


def describe(record: dict) -> str:
    p = record["progress"]
    pace = f", {p['achieved_rate']:g}/s achieved" if p.get("achieved_rate") else ""
    return (f"{record['id']} {record['name']!r} {record['status']}: {p['started']}/{p['rows']} started, "
            f"{p['in_flight']} in flight, {p['completed']} completed, {p['failed']} failed, "
            f"{p['skipped']} skipped, {p['remaining']} remaining{pace}")


@campaign.command()
@click.argument("campaign_id", required=False)
@server_option
@click.option("--watch", is_flag=True, help="A progress bar until the campaign is done or cancelled.")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON.")
def status(campaign_id, server, watch, as_json):
    """Progress of CAMPAIGN_ID (without it: every campaign)."""
    import json

    client = Client(server)
    if campaign_id is None:
        for record in client.ok("GET", "/v1/campaigns")["campaigns"]:
            click.echo(json.dumps(record) if as_json else describe(record))
        return
    record = client.ok("GET", f"/v1/campaigns/{campaign_id}")
    if watch:
        from engine.local.progress import CampaignProgress

        with CampaignProgress(record["progress"]["rows"]) as bar:
            while True:
                bar.show(record["progress"], record["status"])
                if record["status"] in FINAL and record["progress"]["in_flight"] == 0:
                    break
                time.sleep(0.5)
                record = client.ok("GET", f"/v1/campaigns/{campaign_id}")
    click.echo(json.dumps(record) if as_json else describe(record))


def _action(name: str):
    @campaign.command(name, help=f"{name.capitalize()} CAMPAIGN_ID.")
    @click.argument("campaign_id")
    @server_option
    def command(campaign_id, server):
        click.echo(describe(Client(server).ok("POST", f"/v1/campaigns/{campaign_id}/{name}", json={})))
    return command


pause, resume, cancel = _action("pause"), _action("resume"), _action("cancel")


@campaign.command()
@click.argument("campaign_id")
@server_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the CSV to a file.")
def results(campaign_id, server, output):
    """Each row's run as CSV: row, destination, run_id, status, last_node, error, started_at."""
    text = Client(server).ok("GET", f"/v1/campaigns/{campaign_id}/results")
    write_output(text, output)


def write_output(text: str, output: str | None) -> None:
    if output and output != "-":
        try:
            Path(output).write_text(text)
        except OSError as e:
            fail(f"cannot write {output}: {e.strerror or e}")
    else:
        click.echo(text, nl=False)


@campaign.command("run")
@click.argument("flow", type=click.Path(dir_okay=False))
@click.argument("contacts", type=click.Path(dir_okay=False))
@click.option("--scenario", type=click.Path(dir_okay=False), help="How simulated callees behave (YAML).")
@pacing_options
@click.option("--real-time", is_flag=True, help="Pace on the wall clock (default: a simulated clock).")
@click.option("--start-at", metavar="ISO-TIME", help="Where the simulated clock starts (default: now).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the results CSV to a file.")
def run_command(flow, contacts, scenario, rate, max_in_flight, window_file, dnc_file, skip_bad_rows, real_time,
                start_at, output):
    """Play a whole campaign offline on the embedded sandbox: no real call is placed."""
    from engine.local.campaign_run import run_campaign

    body = {"rate": rate, "max_in_flight": max_in_flight, "window": read_window(window_file),
            "dnc": read_dnc_file(dnc_file), "skip_bad_rows": skip_bad_rows}
    sys.exit(run_campaign(flow, contacts, read_text(contacts, "CSV"), body, scenario=scenario, real_time=real_time,
                          start_at=start_at, output=output, echo=click.echo))
