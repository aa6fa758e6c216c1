"""End-to-end throughput of `callflow serve` on the seed flow, beside a baseline without the engine.

    .venv/bin/python bench/e2e.py [--runs 2000] [--concurrency 50] [--no-baseline]
                                  [--repeat K] [--db-mode thread|inline] [--provider-connections 16]
                                  [--log-level info|warning]

Engine: a `callflow sandbox` process and a `callflow serve` process (SQLite store in a temp
folder); N runs of flows/outbound-sip-headers.yaml are triggered over HTTP by C concurrent
clients; each run places a Call on the sandbox, which posts ring/answer/hangup callbacks
(signed) back to serve. Done when no run is running or waiting (polled on the runs API),
then every run is checked to be completed. Reports runs/s (first trigger -> last run done),
trigger latency p50/p99 and the CPU seconds each process used.

Baseline: the same HTTP exchanges without the engine, against the same sandbox: a tiny
starlette app (its own uvicorn process, like serve) answers the answer callback with the
same fixed XML document and counts hangups; a client posts the same Call API requests with
C concurrent workers. Done when N hangups arrived. The ratio engine/baseline throughput is
printed (target >= 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FLOW = "outbound-sip-headers"
AUTH_ID, AUTH_TOKEN = "MABENCHTRIGGERACCTXX", "bench-trigger-token"
PLIVO_ID, PLIVO_TOKEN = "MABENCHPROVIDERACCTX", "bench-provider-token"
TO, FROM = "+12025550100", "+12025551234"
DOCUMENT = ('<Response><Speak voice="WOMAN" language="en-US">Congratulations! You\'ve made your first outbound call!'
            '</Speak><Hangup/></Response>')  # what the engine serves for the seed flow


# -- processes --------------------------------------------------------------------------------------
class Proc:
    def __init__(self, args: list[str], env: dict, cwd: Path, log: Path):
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True).start()

    def wait_line(self, prefix: str, timeout: float = 30) -> str:
        end = time.monotonic() + timeout
        seen = []
        while time.monotonic() < end:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if line.startswith(prefix):
                return line.split()[-1]
        raise SystemExit(f"{self.proc.args[2:4]} did not start: {''.join(seen)}")

    def cpu(self) -> float:
        """User + system CPU seconds used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def env(**extra) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PLIVO_", "CALLFLOW_"))}
    e.update(PYTHONUNBUFFERED="1", **extra)
    return e


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def workers(n: int, c: int, fn, **client_kw) -> None:
    """C workers, each with its own one-connection httpx client (httpcore's pool cost grows
    with connections x waiting requests: one shared 50-connection pool made the load
    generator itself a bottleneck)."""
    counter = iter(range(n))
    clients = [client(1, **client_kw) for _ in range(c)]  # made up front: ~1 ms each

    async def worker(http):
        async with http:
            for i in counter:
                await fn(http, i)

    await asyncio.gather(*(worker(http) for http in clients))


_SSL = httpx.create_ssl_context()  # one for all clients: making one costs ~20 ms


def client(c: int, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(limits=httpx.Limits(max_connections=c, max_keepalive_connections=c), timeout=60,
                             verify=_SSL, **kw)


# -- the engine ---------------------------------------------------------------------------------------
async def engine_phase(serve: str, n: int, c: int) -> dict:
    latencies: list[float] = []
    ids: list[str] = []
    url = f"{serve}/v1/account/{AUTH_ID}/phlo/{FLOW}/"
    async with client(c, auth=(AUTH_ID, AUTH_TOKEN)) as http:
        async def one(conn: httpx.AsyncClient, i: int) -> None:
            t0 = time.perf_counter()
            r = await conn.post(url, json={"to": TO, "customer": f"c{i}"})
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                raise SystemExit(f"trigger failed: {r.status_code} {r.text}")
            ids.append(r.json()["api_id"])

        start = time.perf_counter()
        await workers(n, c, one, auth=(AUTH_ID, AUTH_TOKEN))
        triggered = time.perf_counter()
        while True:  # done when nothing is running or waiting
            pending = 0
            for status in ("running", "waiting"):
                page = (await http.get(f"{serve}/v1/runs", params={"status": status, "limit": 1})).json()
                pending += len(page["runs"])
            if not pending:
                break
            await asyncio.sleep(0.05)
        done = time.perf_counter()
        completed, cursor = set(), None
        while True:
            params = {"flow_id": FLOW, "status": "completed", "limit": 500, **({"cursor": cursor} if cursor else {})}
            page = (await http.get(f"{serve}/v1/runs", params=params)).json()
            completed.update(r["run_id"] for r in page["runs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
    lost = set(ids) - completed
    return {"seconds": done - start, "trigger_seconds": triggered - start, "latencies": latencies,
            "runs": len(ids), "not_completed": len(lost)}


# -- the baseline ----------------------------------------------------------------------------------------
def baseline_app_main(port: int) -> None:
    """A minimal app for the same callbacks: fixed XML for answer, 200 for ring, count hangups."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    hangups = 0

    async def answer(request):
        await request.body()
        return Response(DOCUMENT, media_type="application/xml")

    async def ring(request):
        await request.body()
        return Response("<Response></Response>", media_type="application/xml")

    async def hangup(request):
        nonlocal hangups
        await request.body()
        hangups += 1
        return Response("<Response></Response>", media_type="application/xml")

    async def count(request):
        return JSONResponse({"hangups": hangups})

    app = Starlette(routes=[Route("/answer", answer, methods=["POST"]), Route("/ring", ring, methods=["POST"]),
                            Route("/hangup", hangup, methods=["POST"]), Route("/count", count)])
    from engine.service.http import bind

    sock = bind("127.0.0.1", port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    orig = server.startup

    async def startup(sockets=None):
        await orig(sockets=sockets)
        print(f"baseline listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)

    server.startup = startup
    server.run(sockets=[sock])


async def baseline_phase(sandbox: str, app: str, n: int, c: int) -> dict:
    url = f"{sandbox}/v1/Account/{PLIVO_ID}/Call/"
    latencies: list[float] = []
    async with client(c, auth=(PLIVO_ID, PLIVO_TOKEN)) as http:
        async def one(conn: httpx.AsyncClient, i: int) -> None:
            body = {"from": FROM, "to": TO, "answer_url": f"{app}/answer", "answer_method": "POST",
                    "hangup_url": f"{app}/hangup", "hangup_method": "POST", "ring_url": f"{app}/ring",
                    "ring_method": "POST", "sip_headers": f"customer=c{i}"}
            t0 = time.perf_counter()
            r = await conn.post(url, json=body)
            latencies.append(time.perf_counter() - t0)
            if r.status_code != 201:
                raise SystemExit(f"Call request failed: {r.status_code} {r.text}")

        start = time.perf_counter()
        await workers(n, c, one, auth=(PLIVO_ID, PLIVO_TOKEN))
        while (await http.get(f"{app}/count")).json()["hangups"] < n:
            await asyncio.sleep(0.05)
        done = time.perf_counter()
    return {"seconds": done - start, "latencies": latencies, "runs": n}


# -- main -------------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate engine and baseline rounds this many times; report medians")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--db-mode", choices=("thread", "inline"), default="thread",
                    help="SQLite calls on the store thread (default) or inline on the event loop")
    ap.add_argument("--provider-connections", type=int, default=None,
                    help="serve's connection pool size for the provider API (CALLFLOW_PROVIDER_CONNECTIONS)")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default=None,
                    help="serve's CALLFLOW_LOG_LEVEL (default: serve's own, info: a JSON line per run event)")
    ap.add_argument("--baseline-app", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_app is not None:
        baseline_app_main(args.baseline_app)
        return

    tmp = Path(tempfile.mkdtemp(prefix="callflow-bench-"))
    (tmp / "flows").mkdir()
    shutil.copy(ROOT / "flows" / f"{FLOW}.yaml", tmp / "flows")
    procs: list[Proc] = []
    py = [sys.executable, "-m", "engine.cli"]
    try:
        sandbox = Proc([*py, "sandbox", "--port", "0"], env(PLIVO_AUTH_ID=PLIVO_ID, PLIVO_AUTH_TOKEN=PLIVO_TOKEN),
                       ROOT, tmp / "sandbox.log")
        procs.append(sandbox)
        sandbox_url = sandbox.wait_line("sandbox listening on ")
        db = f"sqlite:///{tmp}/bench.db" + ("?inline=1" if args.db_mode == "inline" else "")
        extra = {"CALLFLOW_PROVIDER_CONNECTIONS": str(args.provider_connections)} if args.provider_connections else {}
        if args.log_level:
            extra["CALLFLOW_LOG_LEVEL"] = args.log_level
        serve = Proc([*py, "serve", str(tmp / "flows"), "--port", "0", "--db", db],
                     env(CALLFLOW_AUTH_ID=AUTH_ID, CALLFLOW_AUTH_TOKEN=AUTH_TOKEN, PLIVO_AUTH_ID=PLIVO_ID,
                         PLIVO_AUTH_TOKEN=PLIVO_TOKEN, PLIVO_API_URL=sandbox_url, **extra), ROOT, tmp / "serve.log")
        procs.append(serve)
        serve_url = serve.wait_line("callflow serving on ")
        app_url = None
        if not args.no_baseline:
            app = Proc([sys.executable, str(Path(__file__).resolve()), "--baseline-app", "0"], env(), ROOT,
                       tmp / "baseline.log")
            procs.append(app)
            app_url = app.wait_line("baseline listening on ")
        print(f"runs={args.runs} concurrency={args.concurrency} repeat={args.repeat} db={args.db_mode} "
              f"provider_connections={args.provider_connections or 'default'} cores={os.cpu_count()}")
        e_rates, b_rates, ratios, e_lat, b_lat = [], [], [], [], []
        for round_ in range(1, args.repeat + 1):
            cpu0 = (serve.cpu(), sandbox.cpu(), time.process_time())
            e = asyncio.run(engine_phase(serve_url, args.runs, args.concurrency))
            cpu = (serve.cpu() - cpu0[0], sandbox.cpu() - cpu0[1], time.process_time() - cpu0[2])
            e_rate = e["runs"] / e["seconds"]
            e_rates.append(e_rate)
            e_lat += e["latencies"]
            print(f"[{round_}] engine:   {e['runs']} runs in {e['seconds']:6.2f} s = {e_rate:6.1f} runs/s  "
                  f"trigger p50 {pct(e['latencies'], 50)*1000:5.1f} ms p99 {pct(e['latencies'], 99)*1000:6.1f} ms  "
                  f"not completed: {e['not_completed']}  CPU ms/run: serve {cpu[0]/e['runs']*1000:.2f} "
                  f"sandbox {cpu[1]/e['runs']*1000:.2f} client {cpu[2]/e['runs']*1000:.2f}")
            httpx.delete(f"{sandbox_url}/sandbox/calls")
            if app_url is None:
                continue
            cpu0 = (app.cpu(), sandbox.cpu(), time.process_time())
            b = asyncio.run(baseline_phase(sandbox_url, app_url, args.runs, args.concurrency))
            cpu = (app.cpu() - cpu0[0], sandbox.cpu() - cpu0[1], time.process_time() - cpu0[2])
            b_rate = b["runs"] / b["seconds"]
            b_rates.append(b_rate)
            b_lat += b["latencies"]
            ratios.append(e_rate / b_rate)
            print(f"[{round_}] baseline: {b['runs']} runs in {b['seconds']:6.2f} s = {b_rate:6.1f} runs/s  "
                  f"Call p50 {pct(b['latencies'], 50)*1000:5.1f} ms p99 {pct(b['latencies'], 99)*1000:6.1f} ms  "
                  f"CPU ms/run: app {cpu[0]/b['runs']*1000:.2f} sandbox {cpu[1]/b['runs']*1000:.2f} "
                  f"client {cpu[2]/b['runs']*1000:.2f}   ratio {e_rate / b_rate:.2f}")
            httpx.delete(f"{sandbox_url}/sandbox/calls")
        med = statistics.median
        print(f"engine:   {med(e_rates):6.1f} runs/s (median of {len(e_rates)}), trigger latency "
              f"p50 {pct(e_lat, 50)*1000:.1f} ms p99 {pct(e_lat, 99)*1000:.1f} ms")
        if ratios:
            print(f"baseline: {med(b_rates):6.1f} runs/s (median of {len(b_rates)})")
            print(f"ratio engine/baseline throughput: {med(ratios):.2f} (median of the rounds; target >= 0.7)")
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
