"""The run page with a run of 1,000,000 points: time to first byte of the page and of its series call.

One run logs ``--points`` steps of ``loss``, ``acc`` and ``lr`` (bench_log.py's row), with a NaN every
100,000 steps and an alert every 100,000 steps, stored as the embedded writer stores it: history
chunks of ``--chunk-rows`` rows (10,000: a tight loop's writer cycle; 20: a slow loop's, 50,000 chunks).

Measured, each ``--repeat`` times (median, min and max reported; the first call of each is also shown
on its own: the process has decoded nothing yet):

* in process: ``run_series()`` (the query and the downsampling, what the route calls) for the chart's
  default request (loss and acc, 1,000 points, all steps) and a zoom (a tenth of the steps); the page
  and the series through the app in-process (FastAPI's TestClient: routing, session, rendering);
* over HTTP against a real ``alerts serve``: time to first byte (status line received) and to the
  last byte, of the page and of the series call, with a session cookie as the browser sends it.

Peer, measured in the same run on the same store: decoding every row of the run's chunks with
MessagePack (what ``/history`` and ``Api().run().scan_history()`` do per row), the floor of any
approach that reads all points without msgspec's key selection.

    python benchmarks/bench_web_runs.py [--points 1000000] [--chunk-rows 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RULES = """
rules:
  - name: loss-high
    metric: loss
    condition: "> 5"
  - name: loss-nan
    metric: loss
    condition: nan
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fill(store, run_id: str, points: int, chunk_rows: int) -> str:
    from alerts.server import accounts
    from alerts.store import jsoncodec
    from alerts.store.db import Batch
    from alerts.store.models import alert_row

    rng = random.Random(7)
    now = time.time()
    store.write_batch(Batch(runs=[{"id": run_id, "owner": "alice", "project": "bench", "name": "million",
                                   "group": None, "tags": "[]", "config": '{"lr": 0.001}',
                                   "summary": '{"loss": 0.5, "acc": 0.9, "lr": 0.001}', "state": "finished",
                                   "created_at": now, "updated_at": now, "heartbeat_at": now,
                                   "last_step": points - 1}]))
    batch = Batch()
    for first in range(0, points, chunk_rows):
        rows = []
        for step in range(first, min(first + chunk_rows, points)):
            loss = math.nan if step % 100_000 == 50_000 else 3.0 * math.exp(-step / 300_000) + rng.random() * 0.1
            rows.append({"_step": step, "_timestamp": now + step * 0.01, "_runtime": step * 0.01, "loss": loss,
                         "acc": 1.0 - loss / 4, "lr": 0.001})
        batch.history.append({"run_id": run_id, "first_step": first, "last_step": rows[-1]["_step"],
                              "n_rows": len(rows), "last_time": rows[-1]["_timestamp"],
                              "data": jsoncodec.pack_rows(rows)})
        if len(batch.history) >= 500:
            store.write_batch(batch)
            batch = Batch()
    batch.alerts = [alert_row(uid=f"a{step}", run_id=run_id, created_at=now, source="rule", rule="loss-nan",
                              metric="loss", value=math.nan, title="loss is nan", text="", level="ERROR",
                              outcome="notified", step=step) for step in range(50_000, points, 100_000)]
    store.write_batch(batch)
    return accounts.add_user(store, "alice", now=now)


def timed(fn, repeat: int) -> tuple[float, list[float], float, list[float]]:
    """(the first call's ms, the ms of every call after it), wall time then this process's CPU time
    (less sensitive to the other processes of a loaded machine)."""
    times, cpu = [], []
    for _ in range(repeat + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return times[0], times[1:], cpu[0], cpu[1:]


def line(name: str, first: float, rest: list[float], cpu_first=None, cpu_rest=None) -> str:
    """A table row: wall ms of the first call, median and range of the others; CPU ms when measured."""
    cpu = f"{cpu_first:.0f} | {statistics.median(cpu_rest):.0f}" if cpu_rest else "- | -"
    return f"| {name} | {first:.0f} | {statistics.median(rest):.0f} | {min(rest):.0f}-{max(rest):.0f} | {cpu} |"


def http_times(port: int, path: str, cookie: str) -> tuple[float, float, int]:
    """(ms to the status line, ms to the last byte, body bytes) of one GET on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    conn.request("GET", path, headers={"Cookie": cookie, "Accept": "*/*"})
    response = conn.getresponse()
    t1 = time.perf_counter()
    body = response.read()
    t2 = time.perf_counter()
    conn.close()
    assert response.status == 200, (response.status, body[:200])
    return (t1 - t0) * 1000, (t2 - t0) * 1000, len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-web-runs-"))
    (folder / "rules.yaml").write_text(RULES)
    os.environ.update(ALERTS_DIR=str(folder / "store"), ALERTS_RULES=str(folder / "rules.yaml"),
                      ALERTS_CHANNELS=str(folder / "no-channels"), ALERTS_RELAY="0", ALERTS_JOBS="0")
    from fastapi.testclient import TestClient

    from alerts.server.app import create_app
    from alerts.server.seriesquery import run_series
    from alerts.settings import load_settings
    from alerts.store import jsoncodec
    from alerts.store.db import open_store
    from alerts.store.models import HistoryChunk
    from sqlalchemy import select

    store = open_store(load_settings().resolved_database_url())
    t0 = time.perf_counter()
    key = fill(store, "million", args.points, args.chunk_rows)
    print(f"stored {args.points:,} steps x 3 keys in chunks of {args.chunk_rows} rows in "
          f"{time.perf_counter() - t0:.1f} s; load average {os.getloadavg()}", flush=True)

    rows = ["| measure | first call ms | median ms | min-max ms | CPU ms, first | CPU ms, median |",
            "|---|---:|---:|---:|---:|---:|"]
    lo, hi = args.points // 2, args.points // 2 + args.points // 10
    rows.append(line("run_series(loss, acc), all steps, 1,000 points",
                     *timed(lambda: run_series(store, "million", ["loss", "acc"], points=1000), args.repeat)))
    rows.append(line("run_series(loss, acc), a tenth of the steps",
                     *timed(lambda: run_series(store, "million", ["loss", "acc"], lo, hi, 1000), args.repeat)))

    def decode_all():
        with store.engine.connect() as conn:
            for (data,) in conn.execute(select(HistoryChunk.data).where(HistoryChunk.run_id == "million")):
                jsoncodec.unpack_rows(data)

    rows.append(line("peer: MessagePack decode of every row (as /history)", *timed(decode_all, min(3, args.repeat))))

    app = create_app(load_settings(), store=store, jobs=False)
    with TestClient(app) as client:
        client.post("/login", data={"key": key})
        series_path = "/api/v1/runs/million/series?keys=loss,acc&points=1000"
        rows.append(line("in process (TestClient): GET /runs/million (the page)",
                         *timed(lambda: client.get("/runs/million").raise_for_status(), args.repeat)))
        rows.append(line("in process (TestClient): GET series",
                         *timed(lambda: client.get(series_path).raise_for_status(), args.repeat)))

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen([sys.executable, "-m", "alerts", "serve", "--port", str(port), "--log-level", "warning"],
                              env=env, cwd=folder)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/login", body=f"key={key}",
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        cookie = re.match(r"[^;]+", response.getheader("set-cookie")).group(0)
        response.read()
        for name, path in (("page", "/runs/million"), ("series", series_path),
                           ("series, a tenth of the steps", f"{series_path}&start={lo}&end={hi}")):
            samples = [http_times(port, path, cookie) for _ in range(args.repeat + 1)]
            first, rest = samples[0], samples[1:]
            rows.append(line(f"HTTP: {name}, time to first byte", first[0], [s[0] for s in rest]))
            rows.append(line(f"HTTP: {name}, to the last byte ({rest[0][2]:,} bytes)", first[1],
                             [s[1] for s in rest]))
    finally:
        server.terminate()
        server.wait(10)
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
