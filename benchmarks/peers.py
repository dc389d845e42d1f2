"""Per-call cost of ``log()`` in peer libraries, measured in this process.

Peers:
  * wandb, offline mode (WANDB_MODE=offline, WANDB_DIR=<tempdir>, WANDB_SILENT=true):
    ``run.log({"loss": .., "acc": .., "lr": ..})``
  * MLflow: ``mlflow.log_metrics({...}, step=i)`` inside ``mlflow.start_run()``
    against a tracking store in a temp dir. Backend "file" uses a
    ``file:<tmp>/mlruns`` URI (FileStore, available in mlflow-skinny; mlflow
    3.x refuses it unless MLFLOW_ALLOW_FILE_STORE=true, which we set);
    backend "sqlite" uses ``sqlite:///<tmp>/mlflow.db`` (needs sqlalchemy +
    alembic, which mlflow-skinny does not pull in).

Every peer is optional: if its package cannot be imported the function
returns None. This module imports neither wandb nor mlflow at import time.

Each call is timed on its own with ``time.perf_counter_ns``; results go to a
preallocated ``array('q')``. A few warm-up calls (not counted) run first.
Run setup (init/start_run) is not timed; teardown (finish/end_run) is timed
once and reported separately as ``finish_ms`` because wandb hands records to a
background process and the drain cost shows up there.

Usage:
  python benchmarks/peers.py [--calls 100000] [--mlflow-calls 2000]
                             [--mlflow-backend file|sqlite|both] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from array import array
from typing import Any, Callable, Iterator

__all__ = ["measure_wandb", "measure_mlflow", "summarize"]


def summarize(name: str, times_ns: array, **extra: Any) -> dict:
    """Reduce per-call nanosecond timings to median/p99 in microseconds."""
    n = len(times_ns)
    if n == 0:
        return {"name": name, "median_us": None, "p99_us": None, "calls": 0, **extra}
    ordered = sorted(times_ns)
    p99_index = min(n - 1, max(0, -(-99 * n // 100) - 1))  # nearest-rank p99
    return {
        "name": name,
        "median_us": statistics.median(ordered) / 1000.0,
        "p99_us": ordered[p99_index] / 1000.0,
        "calls": n,
        **extra,
    }


def _time_calls(fn: Callable[[int], Any], n_calls: int, warmup: int) -> array:
    for i in range(warmup):
        fn(i)
    times = array("q", bytes(8 * n_calls))  # preallocated, zero-filled
    clock = time.perf_counter_ns
    for i in range(n_calls):
        t0 = clock()
        fn(i)
        times[i] = clock() - t0
    return times


@contextlib.contextmanager
def _env(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _warmup_for(n_calls: int) -> int:
    return min(100, max(1, n_calls // 100))


def measure_wandb(n_calls: int) -> dict | None:
    """Median/p99 of ``run.log`` with 3 floats, wandb offline mode."""
    with tempfile.TemporaryDirectory(prefix="peers-wandb-") as tmp:
        with _env(WANDB_MODE="offline", WANDB_DIR=tmp, WANDB_SILENT="true",
                  WANDB_CONSOLE="off"):
            try:
                import wandb
            except Exception:
                return None
            run = wandb.init(project="peers-bench", dir=tmp)
            try:
                log = run.log

                def one(i: int) -> None:
                    log({"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4})

                t0 = time.perf_counter()
                times = _time_calls(one, n_calls, _warmup_for(n_calls))
                loop_s = time.perf_counter() - t0
            finally:
                t1 = time.perf_counter()
                run.finish()
                finish_s = time.perf_counter() - t1
    return summarize(
        f"wandb {wandb.__version__} offline",
        times,
        loop_s=round(loop_s, 3),
        finish_ms=round(finish_s * 1000, 1),
    )


def measure_mlflow(n_calls: int, backend: str = "file") -> dict | None:
    """Median/p99 of ``mlflow.log_metrics`` with 3 floats.

    backend: "file" (file: URI, FileStore) or "sqlite" (sqlite:/// URI).
    Returns None if mlflow (or, for sqlite, sqlalchemy/alembic) is missing.
    """
    if backend not in ("file", "sqlite"):
        raise ValueError("backend must be 'file' or 'sqlite'")
    try:
        import mlflow
        if backend == "sqlite":
            import alembic  # noqa: F401
            import sqlalchemy  # noqa: F401
    except Exception:
        return None
    with tempfile.TemporaryDirectory(prefix="peers-mlflow-") as tmp:
        if backend == "file":
            uri = "file:" + os.path.join(tmp, "mlruns")
        else:
            uri = "sqlite:///" + os.path.join(tmp, "mlflow.db")
        # mlflow 3.x raises MlflowException when a FileStore is created unless
        # MLFLOW_ALLOW_FILE_STORE=true (file backend is "in maintenance mode").
        # Async logging is off so each log_metrics call is synchronous.
        with _env(MLFLOW_TRACKING_URI=uri,
                  MLFLOW_ALLOW_FILE_STORE="true",
                  MLFLOW_ENABLE_ASYNC_LOGGING="false"):
            mlflow.set_tracking_uri(uri)
            exp_id = mlflow.create_experiment(
                "peers-bench", artifact_location="file:" + os.path.join(tmp, "art"))
            run = mlflow.start_run(experiment_id=exp_id)
            try:
                log_metrics = mlflow.log_metrics

                def one(i: int) -> None:
                    log_metrics({"loss": 1.0 / (i + 2),
                                 "acc": i * 1e-6, "lr": 3e-4},
                                step=i)

                t0 = time.perf_counter()
                times = _time_calls(one, n_calls, _warmup_for(n_calls))
                loop_s = time.perf_counter() - t0
            finally:
                t1 = time.perf_counter()
                mlflow.end_run()
                finish_s = time.perf_counter() - t1
                mlflow.set_tracking_uri("")  # drop the global pointing at tmp
        del run
    return summarize(
        f"mlflow {mlflow.__version__} ({backend})",
        times,
        tracking_uri_kind=backend,
        loop_s=round(loop_s, 3),
        finish_ms=round(finish_s * 1000, 1),
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=100_000,
                   help="log() calls for wandb (default 100000)")
    p.add_argument("--mlflow-calls", type=int, default=2_000,
                   help="log_metrics() calls for MLflow (default 2000; it is slow)")
    p.add_argument("--mlflow-backend", choices=("file", "sqlite", "both"),
                   default="file")
    p.add_argument("--skip", action="append", default=[],
                   choices=("wandb", "mlflow"), help="skip a peer")
    p.add_argument("--json", action="store_true", help="print JSON lines instead")
    a = p.parse_args(argv)

    results: list[tuple[str, dict | None]] = []
    if "wandb" not in a.skip:
        results.append(("wandb", measure_wandb(a.calls)))
    if "mlflow" not in a.skip:
        backends = ("file", "sqlite") if a.mlflow_backend == "both" else (a.mlflow_backend,)
        for b in backends:
            results.append((f"mlflow/{b}", measure_mlflow(a.mlflow_calls, b)))

    if a.json:
        for label, r in results:
            print(json.dumps(r if r is not None else {"name": label, "skipped": True}))
        return 0
    cols = ("name", "calls", "median_us", "p99_us", "loop_s", "finish_ms")
    rows = [[(r or {}).get(c) if r else (label + " (not installed)" if c == "name" else None)
             for c in cols] for label, r in results]
    widths = [max(len(c), *(len(_fmt(row[i])) for row in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for row in rows:
        print("  ".join(_fmt(v).ljust(w) for v, w in zip(row, widths)))
    print(f"python {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
