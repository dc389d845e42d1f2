"""Stress: N processes call ``alerts.init()`` at once on a fresh SQLite folder, many rounds.

Reproduces the start-up race of DDP ranks on a new store (tests/store/test_schema_concurrency.py at
scale). Each child waits on its stdin; each round the parent gives all of them the same new folder at
once. A failing child reports the full traceback of the underlying error (the statement SQLite
refused) and how long after it was handed the job it failed.

    PYTHONPATH=. /work/main/.venv/bin/python scripts/stress_fresh_store.py --procs 6 --rounds 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, os, sys, time, traceback
import alerts

print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    os.environ["ALERTS_DIR"] = job["dir"]
    start = time.monotonic()
    try:
        run = alerts.init(project="stress", id=job["run_id"])
        run.log({"x": 1.0})
        run.finish()
        print(json.dumps({"ok": True, "s": time.monotonic() - start}), flush=True)
    except Exception as exc:
        elapsed = time.monotonic() - start
        cause = exc.__cause__ or exc.__context__ or exc
        tb = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
        ours = [f for f in traceback.extract_tb(cause.__traceback__) if "/alerts/" in f.filename]
        where = f"{ours[-1].filename.split('/alerts/')[-1]}:{ours[-1].lineno} {ours[-1].line}" if ours else "?"
        print(json.dumps({"ok": False, "s": elapsed, "error": f"{type(exc).__name__}: {exc}",
                          "where": where, "traceback": tb}), flush=True)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--show", type=int, default=3, help="full tracebacks to print")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="alerts-stress-"))
    env = dict(os.environ, ALERTS_RULES=str(base / "no-rules"), ALERTS_CHANNELS=str(base / "no-channels"),
               ALERTS_USER="stress", XDG_CONFIG_HOME=str(base / "config"))
    for name in ("ALERTS_DATABASE_URL", "ALERTS_URL", "ALERTS_API_KEY", "ALERTS_MODE", "WANDB_MODE"):
        env.pop(name, None)
    children = [subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True, env=env) for _ in range(args.procs)]
    for child in children:
        assert json.loads(child.stdout.readline())["ready"]
    failures, shown, slowest = [], 0, 0.0
    started = time.monotonic()
    for round_no in range(args.rounds):
        folder = base / f"round{round_no}"
        for index, child in enumerate(children):
            child.stdin.write(json.dumps({"dir": str(folder), "run_id": f"r{round_no}-{index}"}) + "\n")
            child.stdin.flush()
        for index, child in enumerate(children):
            answer = json.loads(child.stdout.readline())
            slowest = max(slowest, answer["s"])
            if not answer["ok"]:
                failures.append((round_no, index, answer))
                print(f"round {round_no} child {index}: failed after {answer['s']:.3f} s at {answer['where']}: "
                      f"{answer['error'][-80:]}")
                if shown < args.show:
                    shown += 1
                    print(answer["traceback"])
    by_place: dict[str, int] = {}
    for _round, _index, answer in failures:
        by_place[answer["where"]] = by_place.get(answer["where"], 0) + 1
    for place, count in sorted(by_place.items(), key=lambda item: -item[1]):
        print(f"{count:4d} x {place}")
    for child in children:
        child.stdin.close()
        child.wait(30)
    print(f"{len(failures)} failures in {args.rounds} rounds x {args.procs} processes "
          f"({time.monotonic() - started:.1f} s, slowest init {slowest:.2f} s, load {os.getloadavg()[0]:.2f})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
