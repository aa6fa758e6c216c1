"""The parts of `callflow serve` that bench/e2e.py showed to matter, measured alone.

    .venv/bin/python bench/serve_parts.py [--requests 3000] [--ops 3000]

1. HTTP client layers for a provider-style JSON POST with Basic auth, 16 in flight, against
   a local uvicorn app (bench/e2e.py's baseline app, its own process): httpx.AsyncClient,
   httpx's transport, one httpcore pool, sharded httpx clients (sharded_client.ShardedClient),
   sharded httpcore pools, one aiohttp.ClientSession, and `provider.Provider.perform` for a
   Call request (aiohttp underneath, with the request encoding and the response decoding).
   CPU microseconds per request in this process.
2. The run store: load + save of a run state, SQLite inline on the event loop vs the store
   thread (group commit), 1 and 50 concurrent.
3. RunState.to_json and a whole run through the executor (5 events), for scale.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

import aiohttp
import httpcore
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.events import Callback, Request, Response, Trigger  # noqa: E402
from engine.executor import Executor  # noqa: E402
from engine.load.build import load_flow  # noqa: E402
from engine.local.sharded_client import ShardedClient  # noqa: E402
from engine.service.provider import Provider, ProviderConfig  # noqa: E402
from engine.service.sqlite_store import SQLiteStore  # noqa: E402

BODY = {"from": "+12025551234", "to": "+12025550100", "answer_url": "http://127.0.0.1:1/callbacks/x/1/answer",
        "answer_method": "POST", "sip_headers": "customer=johndoe"}
C = 16


async def clients(url: str, n: int) -> None:
    auth = "Basic " + base64.b64encode(b"MAXXXXXXXXXXXXXXXXXX:token").decode()
    target = url + "/ring"

    async def measure(name, do):
        sem = asyncio.Semaphore(C)

        async def one():
            async with sem:
                await do()

        for _ in range(100):  # warm up the connections
            await one()
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        print(f"  {name:40s} {(time.process_time() - cpu) / n * 1e6:6.0f} us CPU/request "
              f"{(time.perf_counter() - wall) / n * 1e6:6.0f} us wall")

    limits = httpx.Limits(max_connections=C, max_keepalive_connections=C)
    async with httpx.AsyncClient(limits=limits) as client:
        async def via_client():
            (await client.post(target, json=BODY, headers={"authorization": auth})).content
        await measure("httpx.AsyncClient (16 connections)", via_client)
    async with httpx.AsyncHTTPTransport(limits=limits) as transport:
        async def via_transport():
            r = await transport.handle_async_request(
                httpx.Request("POST", target, json=BODY, headers={"authorization": auth}))
            await r.aread()
            await r.aclose()
        await measure("httpx.AsyncHTTPTransport", via_transport)
    headers = [(b"authorization", auth.encode()), (b"content-type", b"application/json")]
    async with httpcore.AsyncConnectionPool(max_connections=C, max_keepalive_connections=C) as pool:
        async def via_pool():
            await pool.request("POST", target, headers=headers, content=json.dumps(BODY).encode())
        await measure("httpcore pool (16 connections)", via_pool)
    sharded = ShardedClient(C, 4)

    async def via_sharded():
        async with sharded.stream("POST", target, json=BODY, headers={"authorization": auth}) as r:
            await r.aread()
    await measure("sharded_client.ShardedClient (4 x 4)", via_sharded)
    await sharded.aclose()
    pools = [httpcore.AsyncConnectionPool(max_connections=4, max_keepalive_connections=4) for _ in range(C // 4)]
    busy = [0] * len(pools)

    async def via_pools():
        i = busy.index(min(busy))
        busy[i] += 1
        try:
            await pools[i].request("POST", target, headers=headers, content=json.dumps(BODY).encode())
        finally:
            busy[i] -= 1
    await measure("httpcore pools (4 x 4)", via_pools)
    for pool in pools:
        await pool.aclose()
    connector = aiohttp.TCPConnector(limit=C, keepalive_timeout=4)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def via_aiohttp():
            async with session.post(target, json=BODY, headers={"authorization": auth}) as r:
                await r.read()
        await measure("aiohttp.ClientSession (16 connections)", via_aiohttp)
    provider = Provider(ProviderConfig("MAXXXXXXXXXXXXXXXXXX", "token", url), max_connections=C)
    call = Request("Call", "POST", f"{url}/ring", json=BODY, provider=True)

    async def via_provider():
        r = await provider.perform(call)
        assert r.status == 200, r
    await measure("provider.Provider.perform (Call)", via_provider)
    await provider.aclose()


async def store(inline: bool, conc: int, n: int, folder: Path) -> None:
    flow = load_flow(ROOT / "flows" / "outbound-sip-headers.yaml")
    ex = Executor(flow)
    s = SQLiteStore(str(folder / f"store-{inline}-{conc}.db"), inline=inline)
    state = ex.new_run("r0")
    ex.advance(state, Trigger({"to": "+12025550100", "customer": "x"}))
    for i in range(conc):
        state.run_id = f"r{i}"
        await s.create_run(state)

    async def worker(k):
        for _ in range(n // conc):
            got = await s.load(f"r{k}")
            await s.save(got.state, got.version)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(conc)))
    print(f"  {'inline' if inline else 'store thread':12s} {conc:2d} concurrent: "
          f"{(time.perf_counter() - wall) / n * 1e6:5.0f} us wall, {(time.process_time() - cpu) / n * 1e6:5.0f} us CPU "
          "per load+save")
    await s.close()


def executor_numbers() -> None:
    ex = Executor(load_flow(ROOT / "flows" / "outbound-sip-headers.yaml"))
    p = {"CallUUID": "c-1", "From": "+12025551234", "To": "+12025550100", "CallStatus": "in-progress",
         "X-PH-customer": "johndoe"}

    def whole_run():
        s = ex.new_run("r")
        ex.advance(s, Trigger({"to": "+12025550100", "customer": "x"}))
        ex.advance(s, Response(status=201, body={"request_uuid": "x"}))
        ex.advance(s, Callback("ring", 1, p))
        ex.advance(s, Callback("answer", 1, p))
        ex.advance(s, Callback("hangup", 1, dict(p, CallStatus="completed", Duration="3")))
        return s

    state = whole_run()
    n = 2000
    print(f"  RunState.to_json ({len(state.to_json())} bytes): "
          f"{timeit.timeit(state.to_json, number=n) / n * 1e6:.0f} us")
    print(f"  executor, a whole run (5 events): {timeit.timeit(whole_run, number=n) / n * 1e6:.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--ops", type=int, default=3000)
    args = ap.parse_args()
    app = subprocess.Popen([sys.executable, str(ROOT / "bench" / "e2e.py"), "--baseline-app", "0"],
                           stdout=subprocess.PIPE, text=True)
    try:
        url = app.stdout.readline().split()[-1]
        print(f"1. HTTP client layers ({args.requests} JSON POSTs, {C} in flight, server {url})")
        asyncio.run(clients(url, args.requests))
    finally:
        app.terminate()
        app.wait(10)
    print(f"2. run store ({args.ops} load+save pairs, WAL, synchronous=NORMAL)")
    with tempfile.TemporaryDirectory() as d:
        for conc in (1, 50):
            for inline in (True, False):
                asyncio.run(store(inline, conc, args.ops, Path(d)))
    print("3. for scale")
    executor_numbers()


if __name__ == "__main__":
    main()
