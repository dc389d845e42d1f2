"""The server's memory with 10,000 live runs heart-beating (issue 9's goal: < 200 MB).

A real ``alerts serve`` process (its scheduled jobs on: the relay, the crash check over the runs, the
tick hooks, /metrics) over a fresh store, SQLite in a temp folder or ``--database-url``. Then:

1. ``idle``: the server's resident memory (``VmRSS`` in ``/proc/PID/status``) once it answers, before
   any run exists: the peer measured in the same run (what the process costs with nothing to do);
2. ``runs``: ``--runs`` runs are created (``POST /api/v1/runs``, as the SDK's remote mode does);
3. ``heartbeats``: for ``--duration`` seconds every run sends a heartbeat each ``--every`` seconds
   (the SDK's interval is 10 s: 10,000 runs make 1,000 heartbeats a second), spread evenly,
   through ``POST /api/v1/runs/{id}/heartbeat`` from ``--clients`` concurrent connections of this
   process. RSS is sampled every second; ``VmHWM`` (the peak resident size) is read at the end.

At the end ``alerts_runs_live`` from ``/metrics`` says how many runs the server sees live (it must
be ``--runs``: the heartbeats arrived), and the achieved heartbeat rate is printed beside the one
asked for: a load generator that could not keep up is said, not hidden. So is the CPU each heartbeat
cost the server (``/proc``) and this process (the load generator, on the same cores).

``--via store`` (for a server without the runs API) writes the runs and their heartbeats straight
into the store instead (batched UPDATEs of ``heartbeat_at``): the server then only runs its jobs over
them; label such figures as such.

Usage:  python benchmarks/bench_server_memory.py [--runs 10000] [--duration 60] [--every 10]
        [--clients 16] [--database-url URL] [--via http|store] [--create http|store] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process, in MB (1e6 bytes), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no {field} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alerts_cli(env: dict, *args: str) -> str:
    return subprocess.run([sys.executable, "-m", "alerts", *args], env=env, check=True, capture_output=True,
                          text=True, cwd=REPO).stdout.strip()


def start_server(env: dict, port: int, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "alerts", "serve", "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"alerts serve exited: {log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("alerts serve did not answer")


def live_runs(url: str) -> float:
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith("alerts_runs_live "):
            return float(line.split()[1])
    return float("nan")


# -- through the API -----------------------------------------------------------------------------------


async def create_runs_http(url: str, key: str, n: int, clients: int) -> list[str]:
    ids = [f"mem-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=60) as client:
        queue: asyncio.Queue = asyncio.Queue()
        for run_id in ids:
            queue.put_nowait(run_id)

        async def worker() -> None:
            while not queue.empty():
                run_id = queue.get_nowait()
                for attempt in range(5):  # a connection reset under load: the SDK retries too
                    try:
                        answer = await client.post("/api/v1/runs", json={"id": run_id, "project": "memory",
                                                                         "host": "bench-node", "pid": 1,
                                                                         "resume": "allow"})
                        break
                    except httpx.TransportError:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(0.5)
                if answer.status_code not in (200, 201):
                    raise RuntimeError(f"POST /api/v1/runs: {answer.status_code} {answer.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(clients)))
    return ids


async def heartbeat_http(url: str, key: str, ids: list[str], duration: float, every: float, clients: int,
                         sample, lean: bool = True) -> dict:
    """Each run heartbeats every ``every`` s for ``duration`` s, spread evenly; returns what was sent.
    ``lean``: through :class:`RawClient` connections (else httpx's)."""
    limits = httpx.Limits(max_connections=clients)
    sent = errors = 0
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                 timeout=60) as client:
        queue: asyncio.Queue = asyncio.Queue(maxsize=clients * 4)

        async def worker() -> None:
            nonlocal sent, errors
            raw = RawClient(url, key) if lean else None
            while True:
                run_id = await queue.get()
                if run_id is None:
                    if raw is not None:
                        await raw.close()
                    return
                try:
                    if raw is not None:
                        status = await raw.post(f"/api/v1/runs/{run_id}/heartbeat")
                    else:
                        status = (await client.post(f"/api/v1/runs/{run_id}/heartbeat")).status_code
                    if status == 204:
                        sent += 1
                    else:
                        errors += 1
                except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError):
                    errors += 1
                    raw = RawClient(url, key) if lean else None

        workers = [asyncio.create_task(worker()) for _ in range(clients)]
        gap = every / len(ids)  # run i beats at i*gap, i*gap + every, ...
        i = 0
        next_sample = start
        while True:
            due = start + i * gap
            now = time.monotonic()
            if due - start >= duration or now - start >= duration:  # a server that cannot keep up: stop on time
                break
            if now >= next_sample:
                sample()
                next_sample += 1.0
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            await queue.put(ids[i % len(ids)])
            i += 1
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return {"asked": i, "sent": sent, "errors": errors, "seconds": time.monotonic() - start}


class RawClient:
    """A lean HTTP/1.1 keep-alive client for the heartbeats (one socket, requests written as prepared
    bytes, the answer's status and Content-Length parsed by hand): httpx cost the load generator about
    2 ms of CPU a heartbeat, twice the server's, so on two shared cores it measured itself."""

    def __init__(self, url: str, key: str) -> None:
        self.host, self.port = url.split("//", 1)[1].split(":")
        self.key = key
        self.reader: Optional[asyncio.StreamReader] = None
        self.writer: Optional[asyncio.StreamWriter] = None

    async def post(self, path: str) -> int:
        """POST ``path`` with no body; the answer's status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, int(self.port))
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
                          f"Content-Length: 0\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def warm_up_http(url: str, key: str, ids: list[str], clients: int) -> None:
    """One heartbeat of every run, ``clients`` at a time (not measured)."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                 limits=httpx.Limits(max_connections=clients), timeout=120) as client:
        gate = asyncio.Semaphore(clients)

        async def beat(run_id: str) -> None:
            async with gate:
                answer = await client.post(f"/api/v1/runs/{run_id}/heartbeat")
                if answer.status_code != 204:
                    raise RuntimeError(f"warm-up heartbeat refused: {answer.status_code} {answer.text[:200]}")

        await asyncio.gather(*(beat(run_id) for run_id in ids))


# -- straight into the store ----------------------------------------------------------------------------


def create_runs_store(database_url: str, n: int, owner: str) -> list[str]:
    from sqlalchemy import insert

    from alerts.store.db import Store
    from alerts.store.models import RunRecord

    store = Store(database_url)
    now = time.time()
    ids = [f"mem-{i}-{uuid.uuid4().hex[:6]}" for i in range(n)]

    with store.engine.begin() as conn:
        conn.execute(insert(RunRecord), [{"id": run_id, "owner": owner, "project": "memory", "name": run_id,
                                          "state": "running", "created_at": now, "updated_at": now,
                                          "heartbeat_at": now, "host": "bench-node", "pid": 1} for run_id in ids])
    store.dispose()
    return ids


def heartbeat_store(database_url: str, ids: list[str], duration: float, every: float, sample) -> dict:
    from sqlalchemy import update

    from alerts.store.db import Store
    from alerts.store.models import RunRecord

    store = Store(database_url)
    start = time.monotonic()
    sent = 0
    per_second = max(1, int(len(ids) / every))
    i = 0
    while time.monotonic() - start < duration:
        tick = time.monotonic()
        batch = [ids[(i + k) % len(ids)] for k in range(per_second)]
        i += per_second
        with store.engine.begin() as conn:
            conn.execute(update(RunRecord).where(RunRecord.id.in_(batch)).values(heartbeat_at=time.time()))
        sent += len(batch)
        sample()
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    store.dispose()
    return {"asked": sent, "sent": sent, "errors": 0, "seconds": time.monotonic() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between two heartbeats of a run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent connections sending heartbeats")
    parser.add_argument("--database-url", help="default: SQLite in a temp ALERTS_DIR")
    parser.add_argument("--via", choices=["http", "store"], default="http")
    parser.add_argument("--create", choices=["http", "store"],
                        help="how the runs are made (default: as --via); store + --via http: runs written "
                        "straight into the store, heartbeats through the API (creating 10,000 runs through "
                        "the API takes minutes on a loaded machine)")
    parser.add_argument("--warm-up", action="store_true",
                        help="--via http: every run heartbeats once before the measured phase (the server "
                        "then holds each run's engine, as it does for runs it created or heard from; without "
                        "it, runs made with --create store each cost an engine build at their first beat)")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw",
                        help="--via http: the heartbeats' client: raw (a lean keep-alive client, the default) "
                        "or httpx (what measured before; it costs ~2 ms of CPU a heartbeat here)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="alerts-mem-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "ALERTS_DIR": str(folder / "store"), "ALERTS_RULES": str(REPO / "rules"),
               "ALERTS_CHANNELS": str(folder / "no-channels"), "PYTHONPATH": str(REPO)}
        if args.database_url:
            env["ALERTS_DATABASE_URL"] = args.database_url
        database_url = args.database_url or f"sqlite:///{folder / 'store' / 'alerts.db'}"
        key = alerts_cli(env, "users", "add", "bench").splitlines()[-1]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(env, port, folder / "serve.log")
        try:
            time.sleep(3)
            idle = rss_mb(server.pid)
            samples: list[float] = []

            def sample() -> None:
                samples.append(rss_mb(server.pid))

            started = time.monotonic()
            if (args.create or args.via) == "http":
                ids = asyncio.run(create_runs_http(url, key, args.runs, args.clients))
            else:
                ids = create_runs_store(database_url, args.runs, owner="bench")
            created_in = time.monotonic() - started
            after_runs = rss_mb(server.pid)
            warmed_in = None
            if args.via == "http" and args.warm_up:
                started = time.monotonic()
                asyncio.run(warm_up_http(url, key, ids, args.clients))
                warmed_in = round(time.monotonic() - started, 1)
            server_cpu, own_cpu = cpu_seconds(server.pid), time.process_time()
            if args.via == "http":
                beats = asyncio.run(heartbeat_http(url, key, ids, args.duration, args.every, args.clients, sample,
                                                   lean=args.client == "raw"))
            else:
                beats = heartbeat_store(database_url, ids, args.duration, args.every, sample)
            server_cpu, own_cpu = cpu_seconds(server.pid) - server_cpu, time.process_time() - own_cpu
            live = live_runs(url)
            end, peak = rss_mb(server.pid), rss_mb(server.pid, "VmHWM")
        except BaseException:
            print((folder / "serve.log").read_text()[-3000:], file=sys.stderr)
            raise
        finally:
            server.terminate()
            server.wait(30)
        result = {
            "via": args.via, "client": args.client if args.via == "http" else None, "created_via": args.create or args.via, "distinct_runs_beaten": min(args.runs, beats["sent"]),
            "backend": "postgresql" if args.database_url else "sqlite", "runs": args.runs,
            "runs_created_s": round(created_in, 1), "warm_up_s": warmed_in, "heartbeats_asked_per_s": round(args.runs / args.every, 1),
            "heartbeats_sent_per_s": round(beats["sent"] / beats["seconds"], 1), "heartbeat_errors": beats["errors"],
            # CPU per heartbeat (the load disturbs it less than the rate): the server's, and this load
            # generator's (httpx), which competes with the server for the same cores.
            "server_cpu_ms_per_heartbeat": round(server_cpu / max(beats["sent"], 1) * 1e3, 3),
            "client_cpu_ms_per_heartbeat": round(own_cpu / max(beats["sent"], 1) * 1e3, 3),
            "live_runs_per_metrics": live, "rss_idle_mb": round(idle, 1), "rss_after_runs_mb": round(after_runs, 1),
            "rss_during_median_mb": round(sorted(samples)[len(samples) // 2], 1) if samples else None,
            "rss_end_mb": round(end, 1), "rss_peak_mb": round(peak, 1),
        }
    if args.json:
        print(json.dumps(result))
    else:
        width = max(len(k) for k in result)
        for name, value in result.items():
            print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
