"""Per-call cost of ``log()`` with 3 metrics, ours next to wandb (offline) and MLflow, in one run.

Each library is measured in a child process of its own (same interpreter, same machine, one after the
other), so that one's background threads, processes and memory do not weigh on another's figures.

Figures: median and p99 of single ``log()`` calls (``time.perf_counter_ns`` around each call, after
warm-up), the time ``finish()`` then takes to drain, and for ours the resident memory sampled every
100k calls over ``--memory-calls`` calls (flat means the background writer keeps up and nothing
accumulates).

The amortised cost (``--loop-calls``, 1M by default; ``--wandb-loop-calls`` for wandb, which is ~100x
slower a call): a tight loop of ``log()`` calls with 3 metrics, ours with the shipped
``rules/default.yaml`` loaded, timed as a whole. Wall time and process CPU (every thread: the
background writer's share included) divided by the calls, with and without the ``finish()`` that
drains what the loop left queued; and the loop's tail: p99.9 and the longest call, the share of the
loop's time spent in calls over 100 µs, and how many calls took over 10 ms (a stall of the training
thread). A control loop (a dict update in place of ``log()``) in a child of its own shows what the
machine alone does to the tail: the figures mean little on a loaded machine unless it stays flat.

Remote mode (``--remote``, on by default): the same per-call and loop measurements with the script
logging to a real ``alerts serve`` (SQLite, in a temp folder, started by the measuring child on
127.0.0.1; ``--server-tree`` runs it from another checkout). ``log()`` is the same append in both modes;
what differs is the background thread (JSON and HTTP instead of MessagePack and SQLite) and the server
process competing for the same cores. Rules are evaluated by the server in remote mode, so its loop
loads none in the script.

Set-up (peers are optional; a missing one is reported as not installed):

    python3 -m venv .bench && .bench/bin/pip install -e . -r benchmarks/requirements.txt
    .bench/bin/python benchmarks/bench_log.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import _env, _time_calls, measure_mlflow, measure_wandb, summarize  # noqa: E402


def rss_mib() -> float:
    """Resident memory of this process now (Linux), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


RULES_DIR = Path(__file__).resolve().parent.parent / "rules"  # the shipped rules/default.yaml
# A call over this long counts as a stall of the training thread (the goal is none).
STALL_NS = 10_000_000
SLOW_NS = 100_000


def loop_figures(log, n_calls: int, finish, sample=None) -> dict:
    """Amortised cost and tail of ``n_calls`` calls of ``log(i)`` in a tight loop, then ``finish()``.

    Each call is also timed on its own (two ``perf_counter_ns`` reads, the same for every library).
    ``sample()``, if given, is read every 1,024 calls and its maximum reported (our rows held)."""
    times = array("q", bytes(8 * n_calls))
    clock = time.perf_counter_ns
    peak = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(n_calls):
        t0 = clock()
        log(i)
        times[i] = clock() - t0
        if sample is not None and not i & 1023:
            peak = max(peak, sample())
    wall1, cpu1 = time.perf_counter(), time.process_time()
    finish()
    wall2, cpu2 = time.perf_counter(), time.process_time()
    ordered = sorted(times)
    total = sum(times)
    per = 1e6 / n_calls
    out = {
        "loop_calls": n_calls,
        "wall_us": round((wall1 - wall0) * per, 2), "cpu_us": round((cpu1 - cpu0) * per, 2),
        "wall_finish_us": round((wall2 - wall0) * per, 2), "cpu_finish_us": round((cpu2 - cpu0) * per, 2),
        "p50_us": ordered[n_calls // 2] / 1e3, "p99_us": ordered[int(n_calls * 0.99)] / 1e3,
        "p999_us": ordered[int(n_calls * 0.999)] / 1e3, "max_ms": round(ordered[-1] / 1e6, 2),
        "slow_share": round(sum(t for t in times if t > SLOW_NS) / total, 4),
        "stalls": sum(1 for t in times if t > STALL_NS),
    }
    if sample is not None:
        out["peak_held_rows"] = peak
    return out


def loop_ours(n_calls: int) -> dict:
    """The amortised loop for ours: embedded SQLite in a temp dir, the shipped default rules."""
    with tempfile.TemporaryDirectory(prefix="bench-alerts-loop-") as tmp:
        os.environ["ALERTS_DIR"] = tmp
        os.environ["ALERTS_RULES"] = str(RULES_DIR)
        import alerts

        run = alerts.init(project="bench-loop")
        writer = run._writer
        log = alerts.log

        def one(i: int) -> None:
            log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

        figures = loop_figures(one, n_calls, run.finish, lambda: writer.held_rows)
        stored = alerts.Api().run(run.id).last_step + 1
        figures.update(name=f"alerts {alerts.__version__} (embedded SQLite, default rules)",
                       rules=run._rules is not None, dropped_rows=writer.dropped_rows, rows_stored=stored)
        return figures


def loop_wandb(n_calls: int) -> dict | None:
    """The amortised loop for wandb offline (its records go to the wandb-core process, whose CPU is
    not in ours: process CPU here is the training process's only)."""
    with tempfile.TemporaryDirectory(prefix="bench-wandb-loop-") as tmp:
        with _env(WANDB_MODE="offline", WANDB_DIR=tmp, WANDB_SILENT="true", WANDB_CONSOLE="off"):
            try:
                import wandb
            except Exception:
                return None
            run = wandb.init(project="bench-loop", dir=tmp)
            log = run.log

            def one(i: int) -> None:
                log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

            figures = loop_figures(one, n_calls, run.finish)
    figures["name"] = f"wandb {wandb.__version__} offline"
    return figures


def loop_control(n_calls: int) -> dict:
    """The same loop with a dict update in place of ``log()``: what the machine does to the tail."""
    latest: dict = {}
    update = latest.update

    def one(i: int) -> None:
        update({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

    figures = loop_figures(one, n_calls, lambda: None)
    figures["name"] = "control (dict.update)"
    return figures


SERVER_TREE = Path(__file__).resolve().parent.parent  # --server-tree


class BenchServer:
    """``alerts serve`` over a temp folder with one user, for the remote measurements."""

    def __init__(self, folder: Path, tree: str) -> None:
        import socket

        import httpx

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        # PYTHONSAFEPATH: `python -m alerts` takes the package from the tree asked for, not the cwd.
        env = {**os.environ, "PYTHONPATH": tree, "PYTHONSAFEPATH": "1", "ALERTS_DIR": str(folder / "server"),
               "ALERTS_RULES": str(RULES_DIR), "ALERTS_CHANNELS": str(folder / "no-channels")}
        for name in ("ALERTS_URL", "ALERTS_API_KEY"):
            env.pop(name, None)
        self.key = subprocess.run([sys.executable, "-m", "alerts", "users", "add", "bench"], env=env,
                                  capture_output=True, text=True, check=True).stdout.strip()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "alerts", "serve", "--port", str(port),
                                      "--log-level", "warning"], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        paths = httpx.get(self.url + "/openapi.json", timeout=10).json()["paths"]
        if "/api/v1/runs/{run_id}/batches" not in paths:
            self.stop()
            raise SystemExit(f"the server in {tree} has no runs API (--server-tree)")

    def rows_stored(self, run_id: str) -> int:
        import httpx

        answer = httpx.get(f"{self.url}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {self.key}"},
                           timeout=30)
        return answer.json()["last_step"] + 1

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def measure_ours_remote(n_calls: int, server_tree: str) -> dict:
    """Median/p99 of ``alerts.log`` with 3 floats, logging to ``alerts serve`` on this machine."""
    with tempfile.TemporaryDirectory(prefix="bench-alerts-remote-") as tmp:
        server = BenchServer(Path(tmp), server_tree)
        try:
            os.environ.update(ALERTS_DIR=str(Path(tmp) / "client"), ALERTS_URL=server.url, ALERTS_API_KEY=server.key)
            import alerts

            run = alerts.init(project="bench")
            log = alerts.log

            def one(i: int) -> None:
                log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

            started = time.perf_counter()
            times = _time_calls(one, n_calls, warmup=100)
            loop_s = time.perf_counter() - started
            t1 = time.perf_counter()
            run.finish()
            finish_ms = (time.perf_counter() - t1) * 1000
            return summarize(f"alerts {alerts.__version__} (remote: alerts serve, SQLite, same machine)", times,
                             loop_s=round(loop_s, 3), finish_ms=round(finish_ms, 1),
                             rows_stored=server.rows_stored(run.id))
        finally:
            server.stop()


def loop_ours_remote(n_calls: int, server_tree: str) -> dict:
    """The amortised loop for ours in remote mode (the default rules loaded by the server)."""
    with tempfile.TemporaryDirectory(prefix="bench-alerts-remote-loop-") as tmp:
        server = BenchServer(Path(tmp), server_tree)
        try:
            os.environ.update(ALERTS_DIR=str(Path(tmp) / "client"), ALERTS_URL=server.url, ALERTS_API_KEY=server.key)
            import alerts

            run = alerts.init(project="bench-loop")
            writer = run._writer
            log = alerts.log

            def one(i: int) -> None:
                log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

            figures = loop_figures(one, n_calls, run.finish, lambda: writer.held_rows)
            figures.update(name=f"alerts {alerts.__version__} (remote, rules on the server)", rules=False,
                           dropped_rows=writer.dropped_rows, rows_stored=server.rows_stored(run.id))
            return figures
        finally:
            server.stop()


def measure_ours(n_calls: int, memory_calls: int) -> dict:
    """Median/p99 of ``alerts.log`` with 3 floats, embedded store in a temp dir; then memory."""
    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp:
        os.environ["ALERTS_DIR"] = tmp
        import alerts

        run = alerts.init(project="bench")
        log = alerts.log

        def one(i: int) -> None:
            log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

        started = time.perf_counter()
        times = _time_calls(one, n_calls, warmup=100)
        loop_s = time.perf_counter() - started
        t1 = time.perf_counter()
        run.finish()
        finish_ms = (time.perf_counter() - t1) * 1000
        result = summarize(f"alerts {alerts.__version__} (embedded SQLite)", times,
                           loop_s=round(loop_s, 3), finish_ms=round(finish_ms, 1))

        if memory_calls:
            run = alerts.init(project="bench-memory")
            samples = [round(rss_mib(), 1)]
            step = max(1, memory_calls // 10)
            started = time.perf_counter()
            for i in range(memory_calls):
                log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})
                if (i + 1) % step == 0:
                    samples.append(round(rss_mib(), 1))
            loop_s = time.perf_counter() - started
            run.finish()
            stored = alerts.Api().run(run.id).last_step + 1
            result["memory"] = {"calls": memory_calls, "rss_mib_every_10pct": samples,
                                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                                "loop_s": round(loop_s, 2), "rows_stored": stored}
        return result


def worker(name: str, calls: int, mlflow_calls: int, memory_calls: int, server_tree: str) -> None:
    if name.startswith("loop/"):
        kind, n = name.split("/")[1], int(name.split("/")[2])
        if kind == "ours-remote":
            result = loop_ours_remote(n, server_tree)
        else:
            result = {"ours": loop_ours, "wandb": loop_wandb, "control": loop_control}[kind](n)
        if result is not None:
            result["loop"] = True
    elif name == "ours":
        result = measure_ours(calls, memory_calls)
    elif name == "ours-remote":
        result = measure_ours_remote(calls, server_tree)
    elif name == "wandb":
        result = measure_wandb(calls)
    elif name.startswith("mlflow"):
        result = measure_mlflow(mlflow_calls, name.split("/", 1)[1] if "/" in name else "file")
    else:
        raise SystemExit(f"unknown worker {name}")
    print("RESULT " + json.dumps(result if result is not None else {"name": name, "skipped": True}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="timed log() calls for ours and wandb")
    parser.add_argument("--mlflow-calls", type=int, default=2_000, help="timed calls for MLflow (slow)")
    parser.add_argument("--memory-calls", type=int, default=1_000_000, help="calls for our memory profile")
    parser.add_argument("--peers", default="wandb,mlflow/file", help="comma-separated; '' for none")
    parser.add_argument("--loop-calls", type=int, default=1_000_000, help="calls of the amortised loop; 0 for none")
    parser.add_argument("--wandb-loop-calls", type=int, default=100_000, help="calls of wandb's amortised loop")
    parser.add_argument("--only-loop", action="store_true", help="measure the amortised loops only")
    parser.add_argument("--remote", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure ours logging to alerts serve on this machine (default: yes)")
    parser.add_argument("--server-tree", default=str(SERVER_TREE), help="the checkout alerts serve runs from")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.calls, args.mlflow_calls, args.memory_calls, args.server_tree)
        return 0

    remote = ["ours-remote"] if args.remote else []
    names = [] if args.only_loop else ["ours", *remote, *[p for p in args.peers.split(",") if p]]
    if args.loop_calls:
        names += [f"loop/control/{args.loop_calls}", f"loop/ours/{args.loop_calls}"]
        if args.remote:
            names.append(f"loop/ours-remote/{args.loop_calls}")
        if "wandb" in args.peers.split(","):
            names.append(f"loop/wandb/{args.wandb_loop_calls}")
    results = []
    for name in names:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--calls", str(args.calls),
             "--mlflow-calls", str(args.mlflow_calls), "--memory-calls", str(args.memory_calls),
             "--server-tree", args.server_tree],
            capture_output=True, text=True)
        lines = [l for l in child.stdout.splitlines() if l.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            print(f"  {name} failed:\n{child.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))

    loops = [r for r in results if r.get("loop")]
    results = [r for r in results if not r.get("loop")]
    print(f"\nlog() with 3 float metrics; python {sys.version.split()[0]}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    if results:
        print_per_call(results)
    if loops:
        print_loops(loops)
    return 0


def print_loops(loops: list) -> None:
    """The amortised loops: cost a call, then the tail, then what ours held and dropped."""
    print("\nAmortised: a tight loop of log() calls, wall and process CPU divided by the calls "
          "(with finish()'s drain), and its tail\n")
    print("| library | calls | wall µs/call | CPU µs/call | with finish() wall / CPU | p50 µs | p99 µs "
          "| p99.9 µs | max ms | time in calls > 100 µs | calls > 10 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in loops:
        if r.get("skipped"):
            print(f"| {r['name']} | not installed | | | | | | | | | |")
            continue
        print(f"| {r['name']} | {r['loop_calls']:,} | {r['wall_us']:.2f} | {r['cpu_us']:.2f} | "
              f"{r['wall_finish_us']:.2f} / {r['cpu_finish_us']:.2f} | {r['p50_us']:.2f} | {r['p99_us']:.2f} | "
              f"{r['p999_us']:.2f} | {r['max_ms']} | {r['slow_share']:.1%} | {r['stalls']} |")
    for r in loops:
        if "peak_held_rows" in r:
            print(f"\n{r['name']}: at most {r['peak_held_rows']:,} rows held ahead of the store (sampled every 1,024 "
                  f"calls: ~{r['peak_held_rows'] * r['wall_us'] / 1e6:.2f} s of this loop, what a kill -9 "
                  f"would lose); {r['dropped_rows']:,} rows dropped; {r['rows_stored']:,} rows stored; "
                  f"rules loaded: {r['rules']}")


def print_per_call(results: list) -> None:
    """The per-call table: median and p99 of single calls, then our memory profile."""
    print("| library | calls | median µs | p99 µs | finish() ms |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        if r.get("skipped"):
            print(f"| {r['name']} | not installed | | | |")
        else:
            stored = f" ({r['rows_stored']:,} rows stored)" if "rows_stored" in r else ""
            print(f"| {r['name']} | {r['calls']:,} | {r['median_us']:.2f} | {r['p99_us']:.2f} | {r['finish_ms']}{stored} |")
    for r in results:
        if "memory" in r:
            m = r["memory"]
            print(f"\nmemory of ours over {m['calls']:,} calls (RSS MiB every 10%): {m['rss_mib_every_10pct']}; "
                  f"peak {m['peak_rss_mib']} MiB; {m['loop_s']} s; rows stored {m['rows_stored']:,}")


if __name__ == "__main__":
    raise SystemExit(main())
