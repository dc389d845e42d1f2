"""Rules engine throughput, and what rules add to ``log()``.

1. Points evaluated per second, on one core, with 100 rules over 1,000 live runs, each run logging
   rows of 10 metrics; a point is one (run, metric, value), the figure is points / wall time of the
   evaluation loop alone. The 100 rules mix thresholds (with and without windows and ``for``),
   change rules, globs and run selectors. Sparse: the rules watch 100 distinct metrics, so one rule
   watches each point. Dense: all 100 rules watch the same 10 metrics, 8 rules each point.
2. ``log()`` with 3 metrics (loss, acc, lr) timed per call, with no rules and with the shipped
   default rule set (rules/default.yaml, whose loss rules watch ``loss`` on every call).

    python benchmarks/bench_rules.py [--points 1000000] [--calls 100000]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
METRICS = [f"{group}/{name}" for group in ("train", "val") for name in ("loss", "acc", "lr", "grad_norm", "f1")]


def rule_specs(count: int = 100) -> list[dict]:
    """``count`` rules spread over the 10 metrics: thresholds (last, windowed, with for), changes, globs."""
    specs = []
    for i in range(count):
        metric = METRICS[i % len(METRICS)]
        kind = i % 5
        if kind == 0:
            specs.append({"name": f"r{i}", "metric": metric, "condition": f"> {1000 + i}"})
        elif kind == 1:
            specs.append({"name": f"r{i}", "metric": metric, "condition": "non-finite"})
        elif kind == 2:
            specs.append({"name": f"r{i}", "metric": metric, "condition": f"< {-1 - i}", "window": 5,
                          "aggregate": "mean", "for": 3})
        elif kind == 3:
            specs.append({"name": f"r{i}", "kind": "change", "metric": metric,
                          "change": {"by": 10.0, "relative": True, "direction": "increase", "window": 5,
                                     "prior_window": 20}})
        else:  # a glob watching one metric in the other group, and run selectors that half the runs pass
            specs.append({"name": f"r{i}", "metric": "*" + metric.split("/")[1] + "_never",
                          "condition": "> 0", "runs": {"tags": ["odd"]}})
    return specs


def sparse_specs(count: int = 100) -> list[dict]:
    """``count`` rules on ``count`` distinct metrics (m0..m99), the same mix of kinds as rule_specs."""
    specs = []
    for i, spec in enumerate(rule_specs(count)):
        spec = dict(spec, metric=f"m{i}")
        spec.pop("runs", None)
        specs.append(spec)
    return specs


def engine_throughput(points: int, runs: int = 1000, rules: int = 100, sparse: bool = False) -> dict:
    """Points/s through RunRules.observe_row. Dense: each run logs the 10 METRICS, each watched by
    several of the 100 rules. Sparse: 100 rules on 100 metric names; run r logs 10 of them, so each
    point is watched by one rule."""
    from alerts.rules.engine import RunRules
    from alerts.rules.schema import RuleFile, RunInfo

    parsed = RuleFile.model_validate({"rules": sparse_specs(rules) if sparse else rule_specs(rules)}).rules
    engines = [RunRules(parsed, RunInfo(id=f"run{r}", name=f"run-{r}", project="bench",
                                        tags=("odd",) if r % 2 else ()), start=0.0) for r in range(runs)]
    rng = random.Random(0)
    if sparse:
        row_sets = [[{f"m{(r * 10 + k) % 100}": rng.random() for k in range(10)} for _ in range(8)] for r in range(runs)]
    else:
        shared = [{m: rng.random() for m in METRICS} for _ in range(8)]
        row_sets = [shared] * runs
    n_rows = points // 10
    fired = 0
    started = time.perf_counter()
    for i in range(n_rows):
        r = i % runs
        out = engines[r].observe_row(row_sets[r][(i // runs) & 7], i // runs, float(i))
        if out:
            fired += len(out)
    elapsed = time.perf_counter() - started
    watched = sum(len(e) for e in engines[0]._cache.values())
    return {"points": n_rows * 10, "seconds": round(elapsed, 3),
            "points_per_second": round(n_rows * 10 / elapsed), "rules": rules, "runs": runs,
            "rules_per_point": round(watched / 10, 2), "transitions": fired}


def log_cost(calls: int, rules_path: str) -> float:
    """Median µs of log() with 3 metrics, in a child process with ALERTS_RULES=rules_path."""
    code = f"""
import time, statistics, alerts
run = alerts.init(project="bench")
log = alerts.log
times = [0] * {calls}
pc = time.perf_counter_ns
for i in range(100):
    log({{"loss": 0.5, "acc": 0.9, "lr": 3e-4}})
for i in range({calls}):
    t = pc(); log({{"loss": 1.0 / (i + 2), "acc": i * 1e-6, "lr": 3e-4}}); times[i] = pc() - t
print(statistics.median(times) / 1000, sorted(times)[int({calls} * 0.99)] / 1000, len(run._rules.metric_rules) if run._rules else 0)
alerts.finish()
"""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ALERTS_DIR": tmp, "ALERTS_RULES": rules_path}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    median, p99, n_rules = out.stdout.split()
    return float(median), float(p99), int(n_rules)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=100_000)
    args = parser.parse_args()
    for sparse in (True, False):
        result = engine_throughput(args.points, sparse=sparse)
        print(f"engine ({'sparse' if sparse else 'dense'}): {result['points']:,} points over {result['runs']} "
              f"runs with {result['rules']} rules ({result['rules_per_point']} rules watch each point): "
              f"{result['points_per_second']:,} points/s ({result['seconds']} s, {result['transitions']} transitions)")
    empty = tempfile.mkdtemp()
    for label, path in (("no rules", empty), ("default rules", str(REPO / "rules"))):
        median, p99, n_rules = log_cost(args.calls, path)
        print(f"log() with 3 metrics, {label} ({n_rules} metric rules on this run): median {median:.2f} µs, p99 {p99:.2f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
