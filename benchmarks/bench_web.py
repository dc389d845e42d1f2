"""The inbox page with 100,000 alerts in the store: server time to first byte and to a usable page,
in-process and over HTTP, on SQLite and on PostgreSQL.

The store gets ``--alerts`` alerts (default 100,000) over 400 runs: 90% of them alice's, 10% bob's,
seven projects, thirteen run groups, five rules. Then, signed in as alice (a session cookie, as a
browser), each of these is requested ``--repeat`` times and timed:

- ``/inbox``: the first page (200 alerts grouped into incidents, rendered on the server);
- ``/inbox?project=p3`` (a run column), ``/inbox?rule=rule2`` (an alert column) and a page halfway
  down the list (its ``cursor``);
- beside them, measured in the same run: ``GET /api/v1/alerts?limit=200`` (the same query as JSON,
  what the page's script polls) and ``/healthz`` (the server's floor: routing and the session-free
  path).

"To first byte" is the response's headers arriving (over HTTP; the page is rendered whole before the
first byte is sent, so in-process it is the whole request). "Usable" is the page plus the files it
loads before it works (``style.css``, ``page.js``, ``inbox.js``), fetched one after the other by one
client; the first live poll goes a second later and is timed on its own (``api``). The query plans
of the list's id query are printed for both backends.

    python benchmarks/bench_web.py [--backend sqlite|postgresql|both] [--alerts 100000] [--repeat 30]

PostgreSQL: ALERTS_TEST_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test); the
benchmark works in a schema of its own, dropped afterwards (and runs ANALYZE after the bulk insert, as
autovacuum would).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_ingest import POSTGRES_URL, Server  # noqa: E402  (the same child-process server)

RUNS = 400
CASES = {
    "inbox": "/inbox",
    "inbox project": "/inbox?project=p3",
    "inbox rule": "/inbox?rule=rule2",
    "inbox deep": None,  # filled in: the cursor of a page halfway down
    "api alerts": "/api/v1/alerts?limit=200",
    "healthz": "/healthz",
}
ASSETS = ("/static/style.css", "/static/page.js", "/static/inbox.js")


def fill(store, n_alerts: int) -> None:
    """``n_alerts`` alerts over RUNS runs (alice 90%, bob 10%), committed in batches."""
    from sqlalchemy import insert

    from alerts.store.models import AlertRecord, RunRecord, alert_row

    now = time.time()
    runs = [{"id": f"r{i}", "owner": "bob" if i % 10 == 9 else "alice", "project": f"p{i % 7}", "name": f"run-{i}",
             "group": f"g{i % 13}", "tags": "[]", "config": "{}", "summary": "{}", "state": "running",
             "created_at": now, "updated_at": now, "heartbeat_at": now, "last_step": -1, "last_seq": 0}
            for i in range(RUNS)]
    with store.engine.begin() as conn:
        conn.execute(insert(RunRecord.__table__), runs)
    # One alert every 5 s: a key (rule and group) comes back every 325 s, past the incident gap, so each
    # alert is an incident of its own: the page's worst case, 200 rows to render.
    start = now - n_alerts * 5.0
    for first in range(0, n_alerts, 10_000):
        rows = []
        for j in range(first, min(n_alerts, first + 10_000)):
            run = runs[j % RUNS]
            rows.append(alert_row(uid=uuid.uuid4().hex, run_id=run["id"], created_at=start + j * 5.0, source="rule",
                                  rule=f"rule{j % 5}", metric="loss", value=float("nan"), step=j,
                                  title=f"loss is nan in {run['name']}",
                                  text="loss became nan at step %d: the run has diverged or met a bad batch" % j,
                                  level="ERROR", outcome="notified", wait_duration=60.0))
        with store.engine.begin() as conn:
            conn.execute(insert(AlertRecord.__table__), rows)


def plans(store, backend: str) -> list[str]:
    """The plan of the list's id query (alerts.server.alertquery.page_ids_query) for alice: no filter,
    rule=rule2, project=p3, and a page halfway down."""
    from sqlalchemy import text

    from alerts.server import alertquery
    from alerts.server.accounts import Principal

    cases = {"no filter": (alertquery.AlertFilter(), None), "rule=rule2": (alertquery.AlertFilter(rule="rule2"), None),
             "project=p3": (alertquery.AlertFilter(project="p3"), None),
             "halfway": (alertquery.AlertFilter(), 50_000)}
    out = []
    with store.engine.connect() as conn:
        for name, (f, after) in cases.items():
            query = alertquery.page_ids_query(store, Principal("alice"), f, 200, after)
            sql = str(query.compile(store.engine, compile_kwargs={"literal_binds": True}))
            if backend == "sqlite":
                lines = [row[-1] for row in conn.execute(text("EXPLAIN QUERY PLAN " + sql))]
            else:
                lines = [row[0].strip() for row in conn.execute(text("EXPLAIN " + sql))]
            out.append(f"{name}: " + " | ".join(lines))
    return out


def timed(get, path: str, repeat: int, assets: bool) -> dict:
    """Median and p90 of time to first byte and to usable (ms) over ``repeat`` requests."""
    first, usable = [], []
    for _ in range(repeat + 2):  # the first two warm up
        started = time.perf_counter()
        ttfb = get(path)
        took_first = ttfb - started
        if assets:
            for asset in ASSETS:
                get(asset)
        first.append(took_first)
        usable.append(time.perf_counter() - started)
    first, usable = sorted(first[2:]), sorted(usable[2:])

    def p90(xs):
        return xs[min(len(xs) - 1, int(len(xs) * 0.9))] * 1000

    return {"ttfb_p50": statistics.median(first) * 1000, "ttfb_p90": p90(first),
            "usable_p50": statistics.median(usable) * 1000, "usable_p90": p90(usable)}


def deep_cursor(store) -> str:
    from sqlalchemy import text

    from alerts.server.pagination import encode_cursor

    with store.engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM alerts")).scalar_one()
    return encode_cursor(top - (top // 2))


def measure(get, repeat: int, deep: str) -> dict:
    results = {}
    for name, path in CASES.items():
        path = path or f"/inbox?cursor={deep}"
        results[name] = timed(get, path, repeat, assets=path.startswith("/inbox"))
    return results


def in_process(store, workdir: Path, key: str, repeat: int, deep: str) -> dict:
    from fastapi.testclient import TestClient

    from alerts.server.app import create_app
    from alerts.settings import load_settings

    app = create_app(load_settings(dir=str(workdir), channels=str(workdir / "no-channels"),
                                   rules=str(workdir / "no-rules")), store=store, jobs=False)
    with TestClient(app) as client:
        client.post("/login", data={"key": key}, follow_redirects=False)

        def get(path: str) -> float:
            answer = client.get(path)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: {answer.status_code}")
            return time.perf_counter()  # TestClient hands over the whole response: first byte = last

        return measure(get, repeat, deep)


def over_http(url: str, key: str, repeat: int, deep: str) -> dict:
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/login", data={"key": key}, follow_redirects=False)

        def get(path: str) -> float:
            with client.stream("GET", path) as answer:
                first = time.perf_counter()
                if answer.status_code != 200:
                    raise RuntimeError(f"{path}: {answer.status_code}")
                answer.read()
            return first

        return measure(get, repeat, deep)


def bench_backend(backend: str, args: argparse.Namespace) -> dict:
    from sqlalchemy import create_engine, text

    from alerts.server import accounts
    from alerts.store.db import Store

    workdir = Path(tempfile.mkdtemp(prefix="bench-web-"))
    schema = admin = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'alerts.db'}"
    else:
        schema = f"bench_web_{uuid.uuid4().hex[:8]}"
        admin = create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    store = Store(url)
    try:
        key = accounts.add_user(store, "alice", now=time.time())
        accounts.add_user(store, "bob", now=time.time())
        started = time.perf_counter()
        fill(store, args.alerts)
        filled = time.perf_counter() - started
        if backend == "postgresql":
            with store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        deep = deep_cursor(store)
        result = {"filled_s": filled, "plans": plans(store, backend),
                  "in_process": in_process(store, workdir, key, args.repeat, deep)}
        server = Server({"ALERTS_DIR": str(workdir), "ALERTS_DATABASE_URL": url, "ALERTS_JOBS": "0",
                         "ALERTS_RULES": str(workdir / "no-rules"), "ALERTS_CHANNELS": str(workdir / "no-channels")})
        try:
            result["http"] = over_http(server.url, key, args.repeat, deep)
        finally:
            server.stop()
    finally:
        store.dispose()
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
            admin.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(f"{args.alerts:,} alerts over {RUNS} runs (alice 90%), {args.repeat} requests a case; "
          f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for backend in backends:
        result = bench_backend(backend, args)
        print(f"\n{backend}: filled in {result['filled_s']:.1f} s")
        for line in result["plans"]:
            print(f"  plan {line}")
        print(f"  {'case':<15} {'in-process p50/p90 ms':>22} {'HTTP first byte p50/p90':>24} {'HTTP usable p50/p90':>20}")
        for case in CASES:
            local, http = result["in_process"][case], result["http"][case]
            print(f"  {case:<15} {local['ttfb_p50']:>10.1f} / {local['ttfb_p90']:<9.1f} "
                  f"{http['ttfb_p50']:>12.1f} / {http['ttfb_p90']:<9.1f} "
                  f"{http['usable_p50']:>8.1f} / {http['usable_p90']:<9.1f}")
        print(f"  load average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
