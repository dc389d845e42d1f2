"""Ingest over HTTP: points stored per second by a real ``alerts serve`` (one uvicorn process), batched,
with the rules evaluated, on SQLite and on PostgreSQL.

A point is one logged value (step, key, value). Each of ``--runs`` runs posts ``--batches`` batches of
``--rows`` rows of ``--keys`` metrics (one of them ``loss``, which the shipped rules/default.yaml
watches with two rules, one a 10-against-50-point change rule), from ``--clients`` client threads at
once; the request bodies are encoded before the clock starts, so the figure is the server's. Reported:
points/s over the wall time of the posting phase, the server process's CPU seconds per million points
(from /proc: less sensitive to a loaded machine than wall time), and each request's latency.

Beside it, measured in the same run on the same store: the same batches applied by the server's
ingest code in-process (no HTTP, no JSON parsing: what the HTTP layer costs is the difference), and
the embedded writer's path, ``Store.write_batch`` of the same rows packed as chunks (no rules, no
seq: the floor of what storing costs).

    python benchmarks/bench_ingest.py [--backend sqlite|postgresql|both] [--runs 8] [--batches 25]
        [--rows 1000] [--keys 10] [--clients 4] [--rules default|none]

PostgreSQL: ALERTS_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test); the
benchmark works in a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

POSTGRES_URL = os.environ.get("ALERTS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def batch_bodies(run: int, batches: int, rows: int, keys: int) -> list[dict]:
    """The batches of one run: finite, slowly falling loss (no rule fires), other metrics random."""
    rng = random.Random(run)
    names = ["loss"] + [f"m{k}" for k in range(1, keys)]
    bodies = []
    step = 0
    for seq in range(1, batches + 1):
        body_rows = []
        for _ in range(rows):
            values = {name: rng.random() for name in names}
            values["loss"] = 2.0 / (1 + step / 1000) + rng.random() * 0.01
            body_rows.append({"step": step, "time": 1.7e9 + step, "values": values})
            step += 1
        bodies.append({"seq": seq, "rows": body_rows})
    return bodies


class Server:
    """``alerts serve`` in a child process over one store."""

    def __init__(self, env: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="bench-ingest-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alerts", "serve", "--port", str(self.port), "--log-level", "warning"],
            env={**os.environ, "PYTHONPATH": str(REPO), **env}, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alerts serve exited: {Path(self.log.name).read_text()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("alerts serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def over_http(server: Server, key: str, bodies: dict[str, list[dict]], clients: int) -> dict:
    """Post every run's batches (each run's in seq order, runs side by side); points/s and latencies."""
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    encoded = {run: [json.dumps(body).encode() for body in run_bodies] for run, run_bodies in bodies.items()}
    points = sum(len(row["values"]) for run_bodies in bodies.values() for body in run_bodies for row in body["rows"])
    latencies: list[float] = []
    lock = threading.Lock()
    local = threading.local()

    def post_run(run: str) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=server.url, headers=headers, timeout=120)
        for content in encoded[run]:
            started = time.perf_counter()
            answer = client.post(f"/api/v1/runs/{run}/batches", content=content)
            took = time.perf_counter() - started
            if answer.status_code != 200 or not answer.json()["stored"]:
                raise RuntimeError(f"batch refused: {answer.status_code} {answer.text[:200]}")
            with lock:
                latencies.append(took)

    cpu_before = cpu_seconds(server.proc.pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(post_run, list(encoded)))
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    latencies.sort()
    return {"points": points, "wall": wall, "points_per_s": points / wall, "server_cpu_s_per_m": cpu / points * 1e6,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


def in_process(store, rules_path: Path, store_dir: Path, owner: str, bodies: dict[str, list[dict]]) -> dict:
    """The same batches through the server's ingest code, without HTTP (one thread)."""
    from alerts.rules.active import ActiveRules
    from alerts.server.ingest import Ingest
    from alerts.server.live import LiveRuns
    from alerts.server.runmodels import BatchIn, RunIn

    ingest = Ingest(store, LiveRuns(store, ActiveRules(rules_path, store_dir)), wake=lambda: None)
    now = time.time()
    records = {}
    for run in bodies:
        record, _ = ingest.create(owner, RunIn(id=f"{run}-direct", project="bench"), now)
        records[run] = record
    points = sum(len(row["values"]) for run_bodies in bodies.values() for body in run_bodies for row in body["rows"])
    started = time.perf_counter()
    for batch_index in range(len(next(iter(bodies.values())))):
        for run, run_bodies in bodies.items():
            body = BatchIn.model_validate(run_bodies[batch_index])
            if not ingest.accept_batch(records[run], body, time.time(), None)[0]["stored"]:
                raise RuntimeError("in-process batch not stored")
    wall = time.perf_counter() - started
    return {"points": points, "wall": wall, "points_per_s": points / wall}


def store_floor(store, bodies: dict[str, list[dict]]) -> dict:
    """The embedded writer's path: the same rows as chunks, ``Store.write_batch``, one transaction each."""
    from alerts.store import jsoncodec
    from alerts.store.db import Batch

    now = time.time()
    for run in bodies:
        store.create_run({"id": f"{run}-floor", "owner": "bench", "project": "bench", "name": run,
                          "created_at": now, "updated_at": now, "heartbeat_at": now})
    points = sum(len(row["values"]) for run_bodies in bodies.values() for body in run_bodies for row in body["rows"])
    started = time.perf_counter()
    for batch_index in range(len(next(iter(bodies.values())))):
        for run, run_bodies in bodies.items():
            rows = [{**row["values"], "_step": row["step"], "_timestamp": row["time"]}
                    for row in run_bodies[batch_index]["rows"]]
            chunk = {"run_id": f"{run}-floor", "first_step": rows[0]["_step"], "last_step": rows[-1]["_step"],
                     "n_rows": len(rows), "last_time": rows[-1]["_timestamp"], "data": jsoncodec.pack_rows(rows)}
            store.write_batch(Batch(history=[chunk], run_updates={f"{run}-floor": {"last_step": rows[-1]["_step"]}}))
    wall = time.perf_counter() - started
    return {"points": points, "wall": wall, "points_per_s": points / wall}


def bench_backend(backend: str, args: argparse.Namespace) -> dict:
    from sqlalchemy import create_engine, text

    from alerts.server import accounts
    from alerts.store.db import Store

    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    schema = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'alerts.db'}"
    else:
        schema = f"bench_ingest_{uuid.uuid4().hex[:8]}"
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    rules_path = REPO / "rules" if args.rules == "default" else workdir / "no-rules"
    store = Store(url)
    try:
        key = accounts.add_user(store, "bench", now=time.time())
        env = {"ALERTS_DIR": str(workdir), "ALERTS_DATABASE_URL": url, "ALERTS_RULES": str(rules_path),
               "ALERTS_CHANNELS": str(workdir / "no-channels")}
        server = Server(env)
        try:
            runs = [f"run{i}" for i in range(args.runs)]
            with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as client:
                for run in runs + ["warm"]:
                    answer = client.post("/api/v1/runs", json={"id": run, "project": "bench"})
                    if answer.status_code != 201:
                        raise RuntimeError(answer.text)
            over_http(server, key, {"warm": batch_bodies(99, 3, args.rows, args.keys)}, 1)  # warm-up
            bodies = {run: batch_bodies(i, args.batches, args.rows, args.keys) for i, run in enumerate(runs)}
            http = over_http(server, key, bodies, args.clients)
        finally:
            server.stop()
        direct = in_process(store, rules_path, workdir, "bench", bodies)
        floor = store_floor(store, bodies)
    finally:
        store.dispose()
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    return {"http": http, "in_process": direct, "store_floor": floor}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--batches", type=int, default=25)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rules", choices=("default", "none"), default="default")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(f"{args.runs} runs x {args.batches} batches x {args.rows} rows x {args.keys} keys, {args.clients} "
          f"clients, rules: {args.rules}; load average before: {os.getloadavg()[0]:.1f}")
    for backend in backends:
        result = bench_backend(backend, args)
        http, direct, floor = result["http"], result["in_process"], result["store_floor"]
        print(f"{backend:>10}: HTTP {http['points_per_s']:>9,.0f} points/s ({http['points']:,} points in "
              f"{http['wall']:.2f} s; server CPU {http['server_cpu_s_per_m']:.2f} s per million points; request "
              f"p50 {http['p50_ms']:.0f} ms, p99 {http['p99_ms']:.0f} ms)")
        print(f"{'':>10}  in-process ingest {direct['points_per_s']:>9,.0f} points/s; store floor (write_batch) "
              f"{floor['points_per_s']:>9,.0f} points/s")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
