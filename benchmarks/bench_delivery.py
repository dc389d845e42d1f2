"""Delivery latency: from ``alert()`` (or the ``log()`` call that crosses a rule's threshold) to a fake
Slack webhook receiving the message, next to Alertmanager delivering a new alert to a webhook.

Every sample is the FIRST alert of a new group, sent to a destination whose rate limits are not spent:

* ours: each sample starts a new run in a new project (the group key is ``alert|<project>`` or
  ``<rule>|<project>``), so the relay never holds it back for the group interval. The rate limits
  are respected rather than switched off: the samples go round ``--destinations`` users
  (``ALERTS_USER`` per run, one webhook each; more users if needed so that no user gets more than
  its hourly cap's burst), and a destination gets its next sample no sooner than 1.1 s after its
  last delivery, so every message finds a token in its destination's bucket (Slack's ~1 message/s,
  burst 2). Afterwards the outbox is checked: every row ``sent``, none ever deferred
  (``next_attempt_at == created_at``), no message received twice.
* Alertmanager: each sample is a new ``alertname`` with ``group_by: [alertname]`` and
  ``group_wait: 0s``, so it is the first alert of its own aggregation group.

``t0`` is ``time.perf_counter_ns()`` just before the call (``alert()``, ``log()``, or the HTTP POST of
the alert to Alertmanager's ``/api/v2/alerts``, the client's cost included); ``t1`` is taken by the
receiver, a small ``ThreadingHTTPServer`` in a process of its own, when it has read the whole request
(before answering 200 ``ok``). Both clocks are ``CLOCK_MONOTONIC``, one clock for the whole machine.
Warm-up samples (one per destination, so that every sender is built) are not counted. Before each
sample the benchmark sleeps a random 0-50 ms (no phase lock with the writer's 200 ms tick).

Paths measured for ours. The two ``fresh`` paths start a new process for every sample, whose first
call after ``init()`` is the timed ``alert()`` (nothing warm but what ``init()`` prepared):

* ``fresh``: then the process waits for the message;
* ``fresh-busy``: then its main thread spins in pure Python until the message has arrived.

The other three run all their samples in one process (each sample a new run), with its own store in
a temp dir:

* ``alert``: ``alerts.alert(title=..., text=...)``, the main thread then idle (waiting);
* ``log``: a rule ``{metric: loss, condition: '> 10'}``; the run logs 5 normal rows, the writer is
  flushed, then ``log({"loss": 100.0})`` is timed;
* ``alert-busy``: as ``alert``, but the main thread then spins in pure Python (a training loop that
  never releases the GIL), so the writer and relay threads must win the GIL back every time they
  give it up (each SQLite call and socket call gives it up; the switch interval is 5 ms).

Durability on kill -9 is checked, not assumed (``--no-kill-check`` skips it): the receiver answers
503 to the alert, the process holding it is killed with SIGKILL after its first failed attempt, the
receiver is made to answer 200, and we look whether the alert still arrives: for ours from
``alerts relay`` run afterwards on the same store, for Alertmanager from a restart on the same
``--storage.path``. (A control run shows that Alertmanager, not killed, does deliver after a 503.)

``--trace`` also prints where our time goes: the benchmark wraps the writer's cycle and commit, the
relay's pass, claim and send from outside (nothing under ``alerts/`` is changed) and reports, per
step, how long after ``t0`` it happened.

Usage:  python benchmarks/bench_delivery.py [--samples 200] [--fresh-samples 100] [--paths ...] [--trace]
        [--json] [--no-alertmanager]
Needs Alertmanager as ``prometheus-alertmanager`` (Debian: ``apt-get install prometheus-alertmanager``)
or ``alertmanager`` on PATH, or ``--alertmanager PATH``; without it only ours is measured.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve()
SID = re.compile(rb"sid(\d+)x")  # every sample's message carries "sid<N>x" (its title or alertname)
DEST_SPACING_S = 1.1  # a destination's next sample no sooner than this after its last delivery
WAIT_S = 10.0  # a sample not received within this fails the run


def percentile(ordered: list, p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered) / 100) - 1))]


def summary(latencies_ns: list) -> dict:
    ms = sorted(x / 1e6 for x in latencies_ns)
    return {"samples": len(ms), "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99), "max_ms": ms[-1],
            "min_ms": ms[0], "latencies_ms": [round(x / 1e6, 3) for x in latencies_ns]}


# -- the receiver: a process of its own ------------------------------------------------------------

def receiver_main() -> None:
    """Answer every POST with 200 ``ok`` (or 503 for paths under a failing prefix) and print one line
    per request: ``<perf_counter_ns> <status> <path> <sid or ->``. Control: ``GET /_ctl/fail?<prefix>``,
    ``GET /_ctl/ok``."""
    failing: list = []
    out_lock = threading.Lock()
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok"
    down = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\ndown"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            t = time.perf_counter_ns()
            match = SID.search(body)
            status = 503 if any(self.path.startswith(p) for p in failing) else 200
            self.wfile.write(ok if status == 200 else down)  # one write: no Nagle/delayed-ACK stall
            with out_lock:
                sys.stdout.write(f"{t} {status} {self.path} {match.group(1).decode() if match else '-'}\n")
                sys.stdout.flush()

        def do_GET(self) -> None:  # noqa: N802
            if self.path.startswith("/_ctl/fail?"):
                failing.append(self.path.split("?", 1)[1])
            elif self.path == "/_ctl/ok":
                failing.clear()
            self.wfile.write(ok)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.5)


class Receiver:
    """Starts the receiver process and collects what it got, by sample id."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HERE), "--_receiver"], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self.port = int(self.proc.stdout.readline().split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._cond = threading.Condition()
        self.got: dict[int, list] = {}  # sid -> [(t_ns, status, path)]
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            t, status, path, sid = line.split()
            with self._cond:
                if sid != "-":
                    self.got.setdefault(int(sid), []).append((int(t), int(status), path))
                self._cond.notify_all()

    def has(self, sid: int, status: int = 200) -> bool:
        return any(s == status for _, s, _ in self.got.get(sid, ()))

    def wait(self, sid: int, timeout: float = WAIT_S, status: int = 200) -> Optional[int]:
        """The arrival time (ns) of the first request about ``sid`` answered ``status``, or None."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, s, _ in self.got.get(sid, ()):
                    if s == status:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def duplicates(self) -> int:
        """Samples received (answered 200) more than once."""
        return sum(1 for got in self.got.values() if sum(s == 200 for _, s, _ in got) > 1)

    def control(self, what: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", f"/_ctl/{what}")
        conn.getresponse().read()
        conn.close()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


# -- ours: one path per fresh process ---------------------------------------------------------------

def _write_config(tmp: Path, rx: Receiver, users: list) -> dict:
    channels, rules, store = tmp / "channels", tmp / "rules", tmp / "store"
    for folder in (channels, rules, store):
        folder.mkdir(parents=True, exist_ok=True)
    for user in users:
        (channels / f"{user}.yaml").write_text(
            f"user: {user}\nchannels:\n  - type: slack\n    webhook_url: {rx.url}/services/T/B/{user}\n",
            encoding="utf-8")
    (rules / "bench.yaml").write_text(
        "rules:\n  - {name: big, metric: loss, condition: '> 10', title: 'loss is {value} in {run.project}'}\n",
        encoding="utf-8")
    return {"ALERTS_DIR": str(store), "ALERTS_CHANNELS": str(channels), "ALERTS_RULES": str(rules),
            "ALERTS_SLACK_WEBHOOK_HOSTS": "127.0.0.1"}


class Tracer:
    """Timestamps of the steps between the call and the message, taken by wrapping functions from
    outside (nothing under alerts/ is changed). Only the writer cycle that commits the outbox row and
    the relay pass that claims it are kept, not the idle ticks around them."""

    def __init__(self) -> None:
        self.events: dict[str, int] = {}
        self.rows: list = []
        self._cycle_start = 0
        self._pass_start = 0

    def arm(self) -> None:
        self.events = {}

    def mark(self, name: str, at: Optional[int] = None) -> None:
        self.events.setdefault(name, at if at is not None else time.perf_counter_ns())

    def install(self) -> None:
        from alerts.channels.slack import SlackWebhook
        from alerts.delivery import outbox, relay
        from alerts.sdk import worker
        from alerts.store.db import Store

        tracer = self
        cycle, write_batch, run_once = worker.Writer._cycle, Store.write_batch, relay.Relay.run_once
        claim, send_group = outbox.claim, SlackWebhook.send_group

        def traced_cycle(self, *a, **k):
            tracer._cycle_start = time.perf_counter_ns()
            return cycle(self, *a, **k)

        def traced_write_batch(self, batch, *a, **k):
            start = time.perf_counter_ns()
            try:
                return write_batch(self, batch, *a, **k)
            finally:
                if batch.deliveries:
                    tracer.mark("writer: cycle start", tracer._cycle_start)
                    tracer.mark("writer: commit start", start)
                    tracer.mark("writer: commit done")

        def traced_run_once(self, *a, **k):
            tracer._pass_start = time.perf_counter_ns()
            return run_once(self, *a, **k)

        def traced_claim(*a, **k):
            start = time.perf_counter_ns()
            rows = claim(*a, **k)
            if rows:
                tracer.mark("relay: pass start", tracer._pass_start)
                tracer.mark("relay: claim start", start)
                tracer.mark("relay: claim done")
            return rows

        def traced_send(self, *a, **k):
            tracer.mark("relay: send start")
            return send_group(self, *a, **k)

        worker.Writer._cycle = traced_cycle
        Store.write_batch = traced_write_batch
        relay.Relay.run_once = traced_run_once
        outbox.claim = traced_claim
        SlackWebhook.send_group = traced_send

    def record(self, t0: int, t_call: int, t1: int) -> None:
        steps = {"call returned": t_call, **self.events, "received": t1}
        self.rows.append({k: (v - t0) / 1e6 for k, v in steps.items()})


def ours_main(path: str, n: int, destinations: int, trace: bool) -> None:
    """Measure one path of ours in this (fresh) process; print one JSON line on stdout."""
    rx = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    try:
        try:  # a user's hourly cap (if this version has one) must not hold back a sample either
            from alerts.pipeline.ratelimit import USER_BURST
            per_user = max(1, int(USER_BURST) - 2)
        except ImportError:
            per_user = n + destinations
        destinations = max(destinations, math.ceil((n + destinations) / per_user))
        users = [f"u{k}" for k in range(destinations)]
        os.environ.update(_write_config(tmp, rx, users))
        sys.stderr = open(tmp / "console.log", "w")  # the console channel prints every alert there
        import alerts

        tracer = Tracer() if trace else None
        if tracer:
            tracer.install()
        warmup = destinations  # one per destination: every sender is built before we count
        last_delivery: dict[int, float] = {}
        latencies, call_ns = [], []
        busy = path == "alert-busy"
        for i in range(warmup + n):
            k = i % destinations
            pause = last_delivery.get(k, 0.0) + DEST_SPACING_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            os.environ["ALERTS_USER"] = users[k]
            run = alerts.init(project=f"bench-sid{i}x")
            if path == "log":
                for step in range(5):
                    run.log({"loss": 1.0 + step * 0.1})
            run._writer.flush(10)  # the run's row (and its normal points) committed: only the alert is timed
            time.sleep(random.uniform(0, 0.05))
            if tracer:
                tracer.arm()
            t0 = time.perf_counter_ns()
            if path == "log":
                run.log({"loss": 100.0})
            else:
                alerts.alert(title=f"bench sid{i}x", text="latency sample")
            t_call = time.perf_counter_ns()
            if busy:
                x = 0
                while not rx.has(i):  # pure Python: gives up the GIL only when asked to (5 ms)
                    for _ in range(2000):
                        x += 1
            t1 = rx.wait(i)
            if t1 is None:
                raise SystemExit(f"sample {i} not received within {WAIT_S}s")
            last_delivery[k] = time.monotonic()
            run.finish()
            if i >= warmup:
                latencies.append(t1 - t0)
                call_ns.append(t_call - t0)
                if tracer:
                    tracer.record(t0, t_call, t1)
        # Every sample went at once: sent, never deferred by the group interval or a rate limit.
        from alerts.delivery import outbox
        from alerts.settings import load_settings
        from alerts.store.db import open_store

        store = open_store(load_settings().resolved_database_url())
        deadline = time.monotonic() + 5  # the last message is received before the relay records it sent
        while outbox.pending_count(store) and time.monotonic() < deadline:
            time.sleep(0.05)
        rows = outbox.listing(store, limit=100_000)
        result = {"path": path, **summary(latencies), "call_p50_ms": sorted(call_ns)[len(call_ns) // 2] / 1e6,
                  "destinations": destinations, "outbox_rows": len(rows),
                  "deferred": sum(1 for r in rows if r.next_attempt_at != r.created_at),
                  "not_sent": sum(1 for r in rows if r.state != "sent"), "duplicates": rx.duplicates(),
                  "version": alerts.__version__}
        if tracer:
            result["trace"] = tracer.rows
        print(json.dumps(result), file=sys.__stdout__, flush=True)
    finally:
        rx.close()
        shutil.rmtree(tmp, ignore_errors=True)


def fresh_child_main(sid: int, busy: bool, trace: bool) -> None:
    """One sample of the ``fresh`` paths, in a process of its own: ``init()`` then at once ``alert()``,
    the first alert this process raises; print ``<t0> <t_call> <trace events as JSON>``; then idle
    (or spin in pure Python) until the parent writes a line, and finish."""
    import alerts

    tracer = Tracer() if trace else None
    if tracer:
        tracer.install()
    alerts.init(project=f"bench-sid{sid}x")
    if tracer:
        tracer.arm()
    t0 = time.perf_counter_ns()
    alerts.alert(title=f"bench sid{sid}x", text="latency sample")
    t_call = time.perf_counter_ns()
    print(t0, t_call, json.dumps(tracer.events if tracer else {}), flush=True)
    if busy:
        stop = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
        x = 0
        while not stop.is_set():  # pure Python: gives up the GIL only when asked to
            for _ in range(2000):
                x += 1
    else:
        sys.stdin.readline()
    if tracer:  # the send happened after the first line: its events go out on a second one
        print(json.dumps(tracer.events), flush=True)
    alerts.finish()


def fresh_main(path: str, n: int, destinations: int, trace: bool = False) -> None:
    """The ``fresh`` paths: every sample is a new process whose first call after ``init()`` is the
    timed ``alert()``; print one JSON line on stdout."""
    rx = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    try:
        destinations = max(destinations, math.ceil((n + 2) / 18))  # no user past its hourly cap's burst (20)
        users = [f"u{k}" for k in range(destinations)]
        env = {**os.environ, **_write_config(tmp, rx, users)}
        warmup = 2  # the OS's file cache, not our process: every sample is a fresh process anyway
        last_delivery: dict[int, float] = {}
        latencies, call_ns, traced = [], [], []
        for i in range(warmup + n):
            k = i % destinations
            pause = last_delivery.get(k, 0.0) + DEST_SPACING_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            with open(tmp / "console.log", "a") as console:
                child = subprocess.Popen(
                    [sys.executable, str(HERE), "--_fresh-child", str(i)] + (["--busy"] if path == "fresh-busy" else [])
                    + (["--trace"] if trace else []),
                    env={**env, "ALERTS_USER": users[k]}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=console, text=True)
            line = child.stdout.readline()
            if not line:
                raise SystemExit(f"sample {i}: the child died: {(tmp / 'console.log').read_text()[-2000:]}")
            t0, t_call, _ = line.split(" ", 2)
            t0, t_call = int(t0), int(t_call)
            t1 = rx.wait(i)
            child.stdin.write("done\n")
            child.stdin.flush()
            if trace:
                events = json.loads(child.stdout.readline())
                if i >= warmup and t1 is not None:
                    traced.append({"call returned": (t_call - t0) / 1e6,
                                   **{k: (v - t0) / 1e6 for k, v in events.items()}, "received": (t1 - t0) / 1e6})
            child.wait(60)
            if t1 is None:
                raise SystemExit(f"sample {i} not received within {WAIT_S}s")
            last_delivery[k] = time.monotonic()
            if i >= warmup:
                latencies.append(t1 - t0)
                call_ns.append(t_call - t0)
        from alerts.delivery import outbox
        from alerts.settings import load_settings
        from alerts.store.db import open_store
        import alerts

        os.environ.update(_write_config(tmp, rx, users))
        rows = outbox.listing(open_store(load_settings().resolved_database_url()), limit=100_000)
        result = {"path": path, **summary(latencies), "call_p50_ms": sorted(call_ns)[len(call_ns) // 2] / 1e6,
                  "destinations": destinations, "outbox_rows": len(rows),
                  "deferred": sum(1 for r in rows if r.next_attempt_at != r.created_at),
                  "not_sent": sum(1 for r in rows if r.state != "sent"), "duplicates": rx.duplicates(),
                  "version": alerts.__version__}
        if trace:
            result["trace"] = traced
        print(json.dumps(result), file=sys.__stdout__, flush=True)
    finally:
        rx.close()
        shutil.rmtree(tmp, ignore_errors=True)


def run_ours(path: str, n: int, destinations: int, trace: bool) -> dict:
    cmd = [sys.executable, str(HERE), "--_ours", path, "--samples", str(n), "--destinations", str(destinations)]
    if trace:
        cmd.append("--trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"ours ({path}) failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ours_kill_main() -> None:
    """Kill check, the logging process: raise one alert, say so, then wait to be killed."""
    import alerts

    alerts.init(project="kill-check")
    alerts.alert(title="kill check sid999001x", text="must survive kill -9")
    print("ALERTED", flush=True)
    time.sleep(60)


def ours_kill_check(tmp: Path) -> dict:
    """Is an alert that ours accepted, and failed once to deliver, still delivered after kill -9?"""
    rx = Receiver()
    try:
        env = {**os.environ, **_write_config(tmp, rx, ["killer"]), "ALERTS_USER": "killer"}
        rx.control("fail?/services/T/B/killer")
        child = subprocess.Popen([sys.executable, str(HERE), "--_ours-kill"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        child.stdout.readline()
        tried = rx.wait(999001, timeout=10, status=503) is not None
        child.send_signal(signal.SIGKILL)
        child.wait()
        rx.control("ok")
        relay = subprocess.run([sys.executable, "-m", "alerts.cli", "relay", "--timeout", "20"], env=env,
                               capture_output=True, text=True, timeout=60)
        delivered = rx.wait(999001, timeout=5) is not None
        said = relay.stdout.strip().splitlines()[-1] if relay.stdout.strip() else relay.stderr[-200:]
        return {"tried_before_kill": tried, "delivered_after_kill": delivered,
                "how": f"`alerts relay` afterwards on the same store: {said}"}
    finally:
        rx.close()


# -- Alertmanager -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Alertmanager:
    def __init__(self, binary: str, webhook_url: str, tmp: Path, name: str) -> None:
        self.binary = binary
        self.dir = tmp / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "alertmanager.yml"
        self.config.write_text(
            "route:\n  receiver: bench\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 1s\n"
            "  repeat_interval: 4h\n"
            f"receivers:\n  - name: bench\n    webhook_configs:\n      - url: {webhook_url}\n"
            "        send_resolved: false\n", encoding="utf-8")
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        log = open(self.dir / "alertmanager.log", "ab")
        self.proc = subprocess.Popen([
            self.binary, f"--config.file={self.config}", f"--storage.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn",
        ], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/-/ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"alertmanager did not start: {(self.dir / 'alertmanager.log').read_text()[-2000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def post_alert(conn: http.client.HTTPConnection, sid: int) -> None:
    body = json.dumps([{"labels": {"alertname": f"bench-sid{sid}x", "severity": "warning"},
                        "annotations": {"summary": "latency sample"}}])
    conn.request("POST", "/api/v2/alerts", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"alertmanager answered {response.status}")


def am_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True)
    match = re.search(r"version (\S+)", out.stdout + out.stderr)
    return match.group(1) if match else "?"


def measure_alertmanager(binary: str, n: int, warmup: int, tmp: Path) -> dict:
    rx = Receiver()
    am = Alertmanager(binary, f"{rx.url}/am", tmp, "am-latency")
    try:
        am.start()
        conn = http.client.HTTPConnection("127.0.0.1", am.port, timeout=10)
        latencies = []
        for i in range(warmup + n):
            time.sleep(random.uniform(0, 0.05))
            t0 = time.perf_counter_ns()
            post_alert(conn, i)
            t1 = rx.wait(i)
            if t1 is None:
                raise RuntimeError(f"alertmanager: sample {i} not received within {WAIT_S}s")
            if i >= warmup:
                latencies.append(t1 - t0)
        time.sleep(0.5)
        return {"path": "POST /api/v2/alerts", **summary(latencies), "duplicates": rx.duplicates()}
    finally:
        am.stop()
        rx.close()


def am_kill_check(binary: str, tmp: Path) -> dict:
    """Control: a 503 then 200 is retried and delivered. Then: a 503, kill -9, restart on the same
    storage, 200: is the alert delivered?"""
    rx = Receiver()
    am = Alertmanager(binary, f"{rx.url}/amkill", tmp, "am-kill")
    try:
        am.start()
        conn = http.client.HTTPConnection("127.0.0.1", am.port, timeout=10)
        rx.control("fail?/amkill")
        post_alert(conn, 999101)  # control: not killed
        control_tried = rx.wait(999101, timeout=10, status=503) is not None
        rx.control("ok")
        control_delivered = rx.wait(999101, timeout=15) is not None
        rx.control("fail?/amkill")
        post_alert(conn, 999102)
        tried = rx.wait(999102, timeout=10, status=503) is not None
        conn.close()
        am.kill()
        rx.control("ok")
        am.start()  # same config, same --storage.path
        delivered = rx.wait(999102, timeout=15) is not None
        return {"control_tried": control_tried, "control_delivered": control_delivered,
                "tried_before_kill": tried, "delivered_after_kill": delivered,
                "how": "restarted on the same --storage.path, waited 15 s"}
    finally:
        am.stop()
        rx.close()


# -- the report ---------------------------------------------------------------------------------------

def find_alertmanager(explicit: Optional[str]) -> Optional[str]:
    if explicit:
        return shutil.which(explicit)
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def yes_no(check: Optional[dict]) -> str:
    if check is None:
        return "not checked"
    if not check.get("tried_before_kill"):
        return "check inconclusive"
    return "yes" if check["delivered_after_kill"] else "no"


def print_trace(path: str, rows: list) -> None:
    """p50/p99 of the time from t0 to each step, over the samples."""
    if not rows:
        return
    print(f"\nwhere the time goes, ours {path} (ms after t0):\n")
    print("| step | p50 | p99 | max | samples |")
    print("|---|---:|---:|---:|---:|")
    names = list(dict.fromkeys(k for row in rows for k in row))
    for name in names:
        values = sorted(row[name] for row in rows if name in row)
        print(f"| {name} | {values[len(values) // 2]:.2f} | {percentile(values, 99):.2f} | {values[-1]:.2f} | "
              f"{len(values)} |")


FRESH_PATHS = ("fresh", "fresh-busy")
LABELS = {"fresh": "`alert()` right after `init()`, fresh process",
          "fresh-busy": "`alert()` right after `init()`, fresh process, main thread CPU-bound",
          "alert": "`alert()`", "log": "`log()` threshold crossing",
          "alert-busy": "`alert()`, main thread CPU-bound (pure Python)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200, help="samples per path (default 200)")
    parser.add_argument("--destinations", type=int, default=20,
                        help="webhooks (one per user) the samples go round, so that none is rate limited "
                             "(default 20)")
    parser.add_argument("--fresh-samples", type=int, default=100,
                        help="samples of each fresh-process path, one process each (default 100)")
    parser.add_argument("--paths", default="fresh,fresh-busy,alert,log,alert-busy",
                        help="our paths to measure (default all five)")
    parser.add_argument("--alertmanager", help="the Alertmanager binary (default: found on PATH)")
    parser.add_argument("--no-alertmanager", action="store_true", help="measure ours only")
    parser.add_argument("--no-kill-check", action="store_true", help="skip the kill -9 durability checks")
    parser.add_argument("--trace", action="store_true", help="also print where our time goes, step by step")
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    parser.add_argument("--_receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_ours", help=argparse.SUPPRESS)
    parser.add_argument("--_ours-kill", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_fresh-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--busy", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._receiver:
        return receiver_main()
    if args._fresh_child is not None:
        return fresh_child_main(args._fresh_child, args.busy, args.trace)
    if args._ours in FRESH_PATHS:
        return fresh_main(args._ours, args.samples, args.destinations, args.trace)
    if args._ours:
        return ours_main(args._ours, args.samples, args.destinations, args.trace)
    if args._ours_kill:
        return ours_kill_main()

    started = time.monotonic()
    binary = None if args.no_alertmanager else find_alertmanager(args.alertmanager)
    results: dict = {"ours": {}, "alertmanager": None, "kill_check": {"ours": None, "alertmanager": None}}
    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    try:
        for path in args.paths.split(","):
            print(f"measuring ours: {path} ...", file=sys.stderr, flush=True)
            n = args.fresh_samples if path in FRESH_PATHS else args.samples
            results["ours"][path] = run_ours(path, n, args.destinations, args.trace)
        if binary:
            print("measuring Alertmanager ...", file=sys.stderr, flush=True)
            results["alertmanager"] = measure_alertmanager(binary, args.samples, args.destinations, tmp)
            results["alertmanager"]["version"] = am_version(binary)
        if not args.no_kill_check:
            print("kill -9 checks ...", file=sys.stderr, flush=True)
            results["kill_check"]["ours"] = ours_kill_check(tmp / "ours-kill")
            if binary:
                results["kill_check"]["alertmanager"] = am_kill_check(binary, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nDelivery latency of the first alert of a group, {args.samples} samples a path; "
          f"{_dt.date.today().isoformat()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{time.monotonic() - started:.0f} s in all\n")
    print("| system | path | samples | p50 ms | p99 ms | max ms | durable on kill -9 |")
    print("|---|---|---:|---:|---:|---:|---|")
    for path, r in results["ours"].items():
        print(f"| alerts {r['version']} (embedded SQLite, relay thread) | {LABELS.get(path, path)} | {r['samples']} | "
              f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {yes_no(results['kill_check']['ours'])} |")
    if results["alertmanager"]:
        r = results["alertmanager"]
        print(f"| Alertmanager {r['version']} (group_wait 0s) | {r['path']} | {r['samples']} | {r['p50_ms']:.2f} | "
              f"{r['p99_ms']:.2f} | {r['max_ms']:.2f} | {yes_no(results['kill_check']['alertmanager'])} |")
    elif not args.no_alertmanager:
        print("\nAlertmanager not found (apt-get install prometheus-alertmanager): only ours measured.")
    print()
    for path, r in results["ours"].items():
        print(f"ours {path}: the call itself {r['call_p50_ms']:.3f} ms p50; {r['destinations']} destinations; "
              f"outbox rows {r['outbox_rows']}, not sent {r['not_sent']}, deferred {r['deferred']}, "
              f"received twice {r['duplicates']}")
    if results["alertmanager"]:
        print(f"alertmanager: received twice {results['alertmanager']['duplicates']}")
    for system, check in results["kill_check"].items():
        if check:
            print(f"kill -9 check, {system}: {json.dumps(check)}")
    if args.trace:
        for path, r in results["ours"].items():
            print_trace(path, r.get("trace") or [])
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
