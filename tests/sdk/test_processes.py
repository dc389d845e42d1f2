"""Several processes against one store folder, and a process killed with SIGKILL.

The children are real interpreters logging through ``alerts``; the test process reads what reached the
store through ``alerts.Api()``. Waits are bounded (so a hang fails instead of blocking the suite), and
nothing asserts on speed.
"""

from __future__ import annotations

import signal
import time

import pytest

from conftest import read_runs

pytestmark = pytest.mark.timeout(180)



# Logs ROWS rows in chunks, with a short pause between chunks, so that the writers of concurrent
# processes commit many batches each, interleaved, instead of one burst apiece. Starts on "go" on stdin.
CONCURRENT_LOGGER = """
    import sys
    import time
    import alerts

    project, name, group, rows = sys.argv[1], sys.argv[2], sys.argv[3] or None, int(sys.argv[4])
    rank = int(name.rsplit("-", 1)[-1])
    run = alerts.init(project=project, name=name, group=group, job_type="train",
                      config={"rank": rank})
    print("waiting", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no start signal")
    for i in range(rows):
        alerts.log({"i": i, "rank": rank, "value": rank * 1_000_000 + i})
        if i % 1000 == 999:
            time.sleep(0.03)
    alerts.finish()
    print("done", flush=True)
"""


def start_together(spawn, specs: list[tuple[str, str, str, int]]) -> None:
    """Start one logger per (project, name, group, rows), release them at once, wait for all."""
    children = [spawn(CONCURRENT_LOGGER, project, name, group, str(rows)) for project, name, group, rows in specs]
    for child in children:
        child.expect("waiting")  # every one has imported, opened the store and started its run
    for child in children:
        child.send("go\n")
    for child in children:
        child.expect("done")
    for child in children:
        assert child.wait() == 0, child.stderr


def check_full_history(run, rank: int, rows: int) -> None:
    history = list(run.scan_history())
    assert len(history) == rows, f"{run.name}: {len(history)} rows of {rows}"
    assert [r["_step"] for r in history] == list(range(rows))
    assert [r["i"] for r in history] == list(range(rows))
    assert all(r["rank"] == rank for r in history)
    assert [r["value"] for r in history] == [rank * 1_000_000 + i for i in range(rows)]
    assert run.state == "finished"
    assert run.last_step == rows - 1
    assert run.summary["i"] == rows - 1
    assert run.summary["value"] == rank * 1_000_000 + rows - 1


def test_two_processes_logging_to_one_folder_at_once_lose_nothing(spawn):
    rows = 20_000
    start_together(spawn, [("proj-a", "writer-0", "", rows), ("proj-b", "writer-1", "", rows)])

    for project, rank in (("proj-a", 0), ("proj-b", 1)):
        runs = read_runs(project)
        assert [r.name for r in runs] == [f"writer-{rank}"]
        assert runs[0].config == {"rank": rank}
        assert runs[0].group is None
        check_full_history(runs[0], rank, rows)
    assert len(read_runs()) == 2


def test_ddp_ranks_with_one_group_log_concurrently(spawn):
    rows, world = 3_000, 4
    start_together(spawn, [("ddp", f"rank-{r}", "exp-42", rows) for r in range(world)])

    runs = read_runs("ddp")
    assert len(runs) == world
    assert sorted(r.name for r in runs) == [f"rank-{r}" for r in range(world)]
    assert len({r.id for r in runs}) == world
    for run in runs:
        rank = int(run.name.rsplit("-", 1)[-1])
        assert run.group == "exp-42"
        assert run.job_type == "train"
        assert run.entity == "alice"
        assert run.config == {"rank": rank}
        check_full_history(run, rank, rows)


# Logs as fast as it can (or with a pause per step), printing how many steps it has logged every 1000.
ENDLESS_LOGGER = """
    import sys
    import time
    import alerts

    pause = float(sys.argv[1])
    alerts.init(project="sigkill", name="victim")
    i = 0
    while True:
        alerts.log({"x": i})
        i += 1
        if i % 1000 == 0:
            print(i, flush=True)
        if pause:
            time.sleep(pause)
"""


@pytest.mark.parametrize(("pause", "min_steps"), [(0.0, 20_000), (0.0001, 2_000)], ids=["tight-loop", "paced"])
def test_sigkill_keeps_a_contiguous_prefix_up_to_about_one_flush_interval_ago(spawn, pause, min_steps):
    """DESIGN guarantee: a kill -9 loses at most what was queued since the last commit (the writer
    commits every ALERTS_FLUSH_INTERVAL = 0.2 s). So every step reported well over a second before the
    kill must be stored, as a gap-free prefix, and the run stays "running": nobody finished it.

    The step we hold the store to is the one reported after the child has been logging for a second
    (and at least ``min_steps`` in), not the first report: the guarantee is for a run that has been
    going a while, not only for the first commit after init().
    """
    child = spawn(ENDLESS_LOGGER, str(pause), env={"ALERTS_FLUSH_INTERVAL": "0.2"})
    first = int(child.next_line())
    started = time.monotonic()
    reported = first
    while reported < min_steps or time.monotonic() - started < 1.0:
        reported = int(child.next_line())
    seen_at = time.monotonic()  # the child printed `reported` no later than this
    latest = reported
    while time.monotonic() - seen_at < 1.5:  # ~7 flush intervals, measured on our side
        latest = int(child.next_line())
    assert latest > reported  # it was still logging when killed
    child.proc.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    runs = read_runs("sigkill")
    assert len(runs) == 1, f"the run itself was never committed ({latest} steps logged before the kill)"
    run = runs[0]
    history = list(run.scan_history())
    k = len(history)
    assert [r["_step"] for r in history] == list(range(k)), "the stored history has a gap"
    assert [r["x"] for r in history] == list(range(k))
    assert k >= reported, (f"only {k} rows stored, but {reported} steps were logged at least 1.5 s "
                           f"before the kill (latest report {latest})")
    assert run.state == "running"
    assert run.finished_at is None
    assert run.exit_code is None
    assert run.last_step >= k - 1



def test_a_forked_child_does_not_end_the_parents_run(store_dir):
    """A forked child (a multiprocessing worker) inherited the parent's live runs: its SIGTERM handler
    (Pool.terminate) or its exit finished them from a process that is not their writer, waited for a
    writer thread it does not have, and warned "not everything was written" (the probe)."""
    import os

    import alerts
    from alerts.sdk import lifecycle

    run = alerts.init(project="p")
    alerts.log({"loss": 1.0})
    pid = os.fork()
    if pid == 0:  # the child: what its exit hooks would end
        os._exit(len(lifecycle.live_runs()))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # no run of the parent's is the child's to end
    assert lifecycle.live_runs() == [run]
    run.finish()
    assert read_runs("p")[0].state == "finished"
