"""CPU of one relay pass that sends the first alert of a group (issue 8): what load distorts less than
the latency ``bench_delivery.py`` measures.

Each sample is a real alert: a new run in a new project raises ``alert()`` with the in-process relay
turned off (``ALERTS_RELAY=0``), the writer commits the alert and its outbox row, and then the
benchmark calls ``Relay.run_once()`` itself, on the main thread, and measures that call: its CPU
(``time.thread_time``: the pass's own thread, other processes' load barely counts), its wall time, and
the SQL statements it issued (an engine event). The message goes to a webhook receiver in a process
of its own (bench_delivery's), one of ``--destinations`` users per sample, and the relay's clock
is the wall clock with samples 1.1 s apart per destination, so no sample is held back by a group
interval, a token bucket or a user's cap: every pass is claim, decide, send, mark sent.

``--profile`` also prints the pass's hottest functions (cProfile, cumulative).

Usage:  python benchmarks/bench_relay_pass.py [--samples 100] [--destinations 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_delivery import DEST_SPACING_S, Receiver, _write_config, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--destinations", type=int, default=20)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rx = Receiver()
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-pass-"))
    try:
        destinations = max(args.destinations, math.ceil((args.samples + args.destinations) / 18))
        users = [f"u{k}" for k in range(destinations)]
        os.environ.update(_write_config(tmp, rx, users))
        os.environ["ALERTS_RELAY"] = "0"
        sys.stderr = open(tmp / "console.log", "w")
        import alerts
        from sqlalchemy import event

        from alerts.delivery import embedded, outbox
        from alerts.delivery.relay import Relay
        from alerts.settings import load_settings
        from alerts.store.db import open_store

        settings = load_settings()
        store = open_store(settings.resolved_database_url())
        relay = Relay(store, embedded.channels_for(settings), settings)
        statements: list = []
        event.listen(store.engine, "before_cursor_execute",
                     lambda conn, cursor, sql, *a: statements.append(sql.split(None, 1)[0].upper()))
        profiler = cProfile.Profile() if args.profile else None
        cpu, wall, counted, kinds = [], [], [], {}
        last: dict[int, float] = {}
        warmup = destinations
        for i in range(warmup + args.samples):
            k = i % destinations
            pause = last.get(k, 0.0) + DEST_SPACING_S - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            os.environ["ALERTS_USER"] = users[k]
            run = alerts.init(project=f"bench-sid{i}x")
            alerts.alert(title=f"bench sid{i}x", text="relay pass sample")
            run._writer.flush(10)
            statements.clear()
            if profiler and i >= warmup:
                profiler.enable()
            c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            claimed = relay.run_once()
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            if profiler and i >= warmup:
                profiler.disable()
            if claimed != 1 or rx.wait(i) is None:
                raise SystemExit(f"sample {i}: claimed {claimed}, received {rx.has(i)}")
            last[k] = time.monotonic()
            if i >= warmup:
                cpu.append((c1 - c0) / 1e6)
                wall.append((w1 - w0) / 1e6)
                counted.append(len(statements))
                for s in statements:
                    kinds[s] = kinds.get(s, 0) + 1
            run.finish()
        rows = outbox.listing(store, limit=100_000)
        cpu.sort(), wall.sort(), counted.sort()
        result = {"samples": len(cpu), "cpu_p50_ms": cpu[len(cpu) // 2], "cpu_p90_ms": percentile(cpu, 90),
                  "wall_p50_ms": wall[len(wall) // 2], "wall_p90_ms": percentile(wall, 90),
                  "statements_p50": counted[len(counted) // 2], "statements_max": counted[-1],
                  "statements_per_pass": {k: round(v / len(cpu), 2) for k, v in sorted(kinds.items())},
                  "not_sent": sum(r.state != "sent" for r in rows), "duplicates": rx.duplicates(),
                  "load": os.getloadavg()}
        out = sys.__stdout__
        print(f"relay pass, first alert of a group, {result['samples']} samples, load {result['load'][0]:.1f}: "
              f"CPU p50 {result['cpu_p50_ms']:.2f} ms, p90 {result['cpu_p90_ms']:.2f}; wall p50 "
              f"{result['wall_p50_ms']:.2f}, p90 {result['wall_p90_ms']:.2f}; SQL statements p50 "
              f"{result['statements_p50']} (max {result['statements_max']}) {result['statements_per_pass']}; "
              f"not sent {result['not_sent']}, received twice {result['duplicates']}", file=out)
        if args.json:
            print(json.dumps(result), file=out)
        if profiler:
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(45)
            print(stream.getvalue(), file=out)
    finally:
        rx.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
