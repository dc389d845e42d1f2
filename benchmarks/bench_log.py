"""Per-call cost of ``log()`` with 3 metrics, ours next to wandb (offline) and MLflow, in one run.

Each library is measured in a child process of its own (same interpreter, same machine, one after the
other), so that one's background threads, processes and memory do not weigh on another's figures.

Figures: median and p99 of single ``log()`` calls (``time.perf_counter_ns`` around each call, after
warm-up), the time ``finish()`` then takes to drain, and for ours the resident memory sampled every
100k calls over ``--memory-calls`` calls (flat means the background writer keeps up and nothing
accumulates).

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import _time_calls, measure_mlflow, measure_wandb, summarize  # noqa: E402


def rss_mib() -> float:
    """Resident memory of this process now (Linux), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


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


def worker(name: str, calls: int, mlflow_calls: int, memory_calls: int) -> None:
    if name == "ours":
        result = measure_ours(calls, memory_calls)
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
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.calls, args.mlflow_calls, args.memory_calls)
        return 0

    results = []
    for name in ["ours", *[p for p in args.peers.split(",") if p]]:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--calls", str(args.calls),
             "--mlflow-calls", str(args.mlflow_calls), "--memory-calls", str(args.memory_calls)],
            capture_output=True, text=True)
        lines = [l for l in child.stdout.splitlines() if l.startswith("RESULT ")]
        if child.returncode != 0 or not lines:
            print(f"  {name} failed:\n{child.stderr[-2000:]}", file=sys.stderr)
            continue
        results.append(json.loads(lines[-1][len("RESULT "):]))

    print(f"\nlog() with 3 float metrics; python {sys.version.split()[0]}; {os.cpu_count()} cores\n")
    print("| library | calls | median µs | p99 µs | finish() ms |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        if r.get("skipped"):
            print(f"| {r['name']} | not installed | | | |")
        else:
            print(f"| {r['name']} | {r['calls']:,} | {r['median_us']:.2f} | {r['p99_us']:.2f} | {r['finish_ms']} |")
    for r in results:
        if "memory" in r:
            m = r["memory"]
            print(f"\nmemory of ours over {m['calls']:,} calls (RSS MiB every 10%): {m['rss_mib_every_10pct']}; "
                  f"peak {m['peak_rss_mib']} MiB; {m['loop_s']} s; rows stored {m['rows_stored']:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
