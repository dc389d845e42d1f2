"""How a run ends when the script does not (or cannot) call ``finish()``: the exit hooks of
``alerts.sdk.lifecycle`` and the ``with`` form of :class:`alerts.Run`.

Every test runs a real child interpreter against the test's store and reads the outcome back through
``alerts.Api()``: the hooks only mean something in a process that actually exits, crashes or is signalled.
"""

from __future__ import annotations

import signal

import pytest

from conftest import read_runs

pytestmark = pytest.mark.timeout(120)



def only_run(project: str):
    runs = read_runs(project)
    assert len(runs) == 1, f"expected one run in {project!r}, found {runs!r}"
    return runs[0]


def steps_of(run) -> list[int]:
    return [row["_step"] for row in run.scan_history()]


def explain(result) -> str:
    return f"rc={result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


# -- crashes and exits without finish() -----------------------------------------------------------


def test_uncaught_exception_ends_the_run_failed_with_its_traceback(run_script):
    result = run_script("""
        import alerts

        def train():
            for i in range(5):
                alerts.log({"loss": 1.0 / (i + 1), "i": i})
            raise ValueError("boom")

        alerts.init(project="crash", name="crasher")
        train()
        print("unreachable")
    """)
    assert result.returncode == 1, explain(result)
    # our excepthook hands the exception on: Python still prints it
    assert "ValueError: boom" in result.stderr
    assert "unreachable" not in result.stdout

    run = only_run("crash")
    assert run.name == "crasher"
    assert run.state == "failed"
    assert run.exit_code == 1
    assert run.error_type == "ValueError"
    assert "boom" in run.error_text
    assert 'raise ValueError("boom")' in run.error_text  # a line of the traceback, not just the message
    assert "in train" in run.error_text
    assert run.finished_at is not None
    rows = list(run.scan_history())
    assert [r["_step"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["i"] for r in rows] == [0, 1, 2, 3, 4]
    assert run.last_step == 4
    assert run.summary["i"] == 4
    assert run.summary["loss"] == pytest.approx(0.2)


@pytest.mark.parametrize(("call", "code"), [("sys.exit(3)", 3), ("sys.exit('giving up')", 1)])
def test_non_zero_sys_exit_without_finish_ends_the_run_failed(run_script, call, code):
    result = run_script(f"""
        import sys
        import alerts

        alerts.init(project="exits", name="quitter")
        for i in range(3):
            alerts.log({{"acc": i * 10}})
        {call}
    """)
    assert result.returncode == code, explain(result)
    run = only_run("exits")
    assert run.state == "failed"
    assert run.exit_code == code
    assert run.error_type is None  # SystemExit is an exit, not a crash
    assert steps_of(run) == [0, 1, 2]
    assert run.summary["acc"] == 20


@pytest.mark.parametrize("ending", ["sys.exit(0)", "sys.exit()", "pass"], ids=["exit0", "exit-none", "falls-off-end"])
def test_clean_end_without_finish_ends_the_run_finished(run_script, ending):
    result = run_script(f"""
        import sys
        import alerts

        alerts.init(project="clean", name="forgetful", config={{"lr": 0.1}})
        for i in range(10):
            alerts.log({{"loss": 10 - i, "epoch": i // 5}})
        alerts.log({{"extra": "last"}}, commit=False)  # pending at exit: still committed by the hook
        {ending}
    """)
    assert result.returncode == 0, explain(result)
    run = only_run("clean")
    assert run.state == "finished"
    assert run.exit_code == 0
    assert run.error_type is None and run.error_text is None
    assert run.finished_at is not None
    assert run.config == {"lr": 0.1}
    rows = list(run.scan_history())
    assert [r["_step"] for r in rows] == list(range(11))
    assert [r.get("loss") for r in rows[:10]] == [10 - i for i in range(10)]
    assert rows[10]["extra"] == "last"
    assert run.summary["loss"] == 1
    assert run.summary["epoch"] == 1
    assert run.summary["extra"] == "last"
    assert run.last_step == 10


def test_finish_with_exit_code_ends_the_run_failed_and_exit_hooks_leave_it(run_script):
    result = run_script("""
        import alerts

        alerts.init(project="codes", name="explicit")
        alerts.log({"x": 1})
        alerts.log({"x": 2})
        alerts.finish(exit_code=2)
        print("after finish")
    """)
    assert result.returncode == 0, explain(result)
    assert result.stdout.splitlines() == ["after finish"]
    run = only_run("codes")
    assert run.state == "failed"  # and not overwritten by the at-exit hook of a clean exit
    assert run.exit_code == 2
    assert run.error_type is None
    assert steps_of(run) == [0, 1]
    assert run.summary["x"] == 2


def test_finish_called_twice_or_after_exit_code_zero_is_finished(run_script):
    result = run_script("""
        import alerts

        run = alerts.init(project="twice")
        alerts.log({"x": 1})
        run.finish()
        run.finish(exit_code=5)  # a second call does nothing
        assert alerts.run is None
    """)
    assert result.returncode == 0, explain(result)
    run = only_run("twice")
    assert run.state == "finished"
    assert run.exit_code is None
    assert steps_of(run) == [0]


# -- signals --------------------------------------------------------------------------------------

LOGGING_LOOP = """
    import os
    import signal
    import sys
    import time
    import alerts

    alerts.init(project={project!r}, name="looper")
    {before}
    i = 0
    while True:
        alerts.log({{"x": i}})
        i += 1
        if i == 50:
            print("ready", flush=True)
        time.sleep(0.002)
"""


def check_complete_prefix(run, at_least: int) -> int:
    """The history is 0..k-1 with nothing missing, k >= at_least, and the summary agrees with it."""
    rows = list(run.scan_history())
    k = len(rows)
    assert k >= at_least, f"only {k} rows kept"
    assert [r["_step"] for r in rows] == list(range(k))
    assert [r["x"] for r in rows] == list(range(k))
    # The hook flushed everything that was logged: the summary (written after every row, in the same
    # queue) ends at the last stored row. One row of slack: the signal can land inside log() itself,
    # between the summary update and the queue append (or before the step counter moves on); the loop
    # sleeps between logs, so that is rare, but it must not make the test flaky.
    assert k - 1 <= run.summary["x"] <= k
    assert k - 2 <= run.last_step <= k - 1
    return k


def test_sigterm_ends_the_run_killed_and_the_process_still_dies_of_it(spawn):
    child = spawn(LOGGING_LOOP.format(project="term", before=""))
    child.expect("ready")
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM, child.stderr

    run = only_run("term")
    assert run.state == "killed"
    assert run.exit_code == 128 + signal.SIGTERM
    assert run.finished_at is not None
    check_complete_prefix(run, at_least=50)


def test_sigint_keyboard_interrupt_ends_the_run_killed(spawn):
    child = spawn(LOGGING_LOOP.format(project="ctrlc", before=""))
    child.expect("ready")
    child.proc.send_signal(signal.SIGINT)
    rc = child.wait()
    # CPython ends a process whose KeyboardInterrupt went uncaught by re-raising SIGINT
    assert rc == -signal.SIGINT, child.stderr
    assert "KeyboardInterrupt" in child.stderr

    run = only_run("ctrlc")
    assert run.state == "killed"
    assert run.exit_code == 130
    assert run.error_type == "KeyboardInterrupt"
    check_complete_prefix(run, at_least=50)


def test_mark_preempting_then_sigterm_ends_the_run_preempted(spawn):
    child = spawn(LOGGING_LOOP.format(project="preempt", before="alerts.mark_preempting()"))
    child.expect("ready")
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM, child.stderr

    run = only_run("preempt")
    assert run.state == "preempted"
    assert run.exit_code == 128 + signal.SIGTERM
    check_complete_prefix(run, at_least=50)


def test_mark_preempting_then_crash_ends_the_run_preempted(run_script):
    result = run_script("""
        import alerts

        alerts.init(project="preempt-crash")
        alerts.log({"x": 0})
        alerts.mark_preempting()
        raise RuntimeError("node going away")
    """)
    assert result.returncode == 1, explain(result)
    run = only_run("preempt-crash")
    assert run.state == "preempted"
    assert run.error_type == "RuntimeError"
    assert "node going away" in run.error_text
    assert steps_of(run) == [0]


def test_a_sigterm_handler_installed_before_init_is_kept(spawn):
    child = spawn("""
        import signal
        import time
        import alerts

        stop = []

        def on_term(signum, frame):
            stop.append(signum)

        signal.signal(signal.SIGTERM, on_term)
        alerts.init(project="own-handler", name="polite")
        print("handler kept" if signal.getsignal(signal.SIGTERM) is on_term else "handler replaced", flush=True)
        i = 0
        while not stop:
            alerts.log({"x": i})
            i += 1
            if i == 50:
                print("ready", flush=True)
            time.sleep(0.002)
        alerts.log({"stopped_by": stop[0]})
        alerts.finish()
        print("finished cleanly", flush=True)
    """)
    child.expect("ready")
    assert child.seen[0] == "handler kept"
    child.proc.send_signal(signal.SIGTERM)
    child.expect("finished cleanly")
    assert child.wait() == 0, child.stderr

    run = only_run("own-handler")
    assert run.state == "finished"
    assert run.exit_code is None
    assert run.summary["stopped_by"] == signal.SIGTERM
    rows = list(run.scan_history())
    k = len(rows) - 1  # the last row is the "stopped_by" one
    assert k >= 50
    assert [r["_step"] for r in rows] == list(range(k + 1))
    assert [r["x"] for r in rows[:k]] == list(range(k))
    assert rows[k]["stopped_by"] == signal.SIGTERM


# -- with alerts.init(...) as run -----------------------------------------------------------------


def test_with_block_that_raises_ends_the_run_failed_with_the_exception(run_script):
    result = run_script("""
        import alerts

        try:
            with alerts.init(project="ctx", name="raiser") as run:
                for i in range(3):
                    run.log({"x": i})
                raise RuntimeError("inside the block")
        except RuntimeError:
            print("caught outside", run.finished, alerts.run is None)
        # the process itself ends cleanly: the state comes from the with block, not the exit hooks
    """)
    assert result.returncode == 0, explain(result)
    assert result.stdout.splitlines() == ["caught outside True True"]
    run = only_run("ctx")
    assert run.state == "failed"
    assert run.exit_code == 1
    assert run.error_type == "RuntimeError"
    assert "inside the block" in run.error_text
    assert 'raise RuntimeError("inside the block")' in run.error_text
    assert steps_of(run) == [0, 1, 2]
    assert run.summary["x"] == 2


def test_with_block_that_raises_uncaught_is_recorded_once_as_failed(run_script):
    result = run_script("""
        import alerts

        with alerts.init(project="ctx-uncaught") as run:
            run.log({"x": 0})
            raise KeyError("missing")
    """)
    assert result.returncode == 1, explain(result)
    run = only_run("ctx-uncaught")
    assert run.state == "failed"
    assert run.error_type == "KeyError"
    assert "missing" in run.error_text
    assert steps_of(run) == [0]


def test_with_block_left_normally_ends_the_run_finished(run_script):
    result = run_script("""
        import alerts

        with alerts.init(project="ctx-ok", name="tidy") as run:
            for i in range(4):
                run.log({"x": i})
        print("finished" if run.finished else "still live")
        try:
            run.log({"x": 99})
        except alerts.UsageError:
            print("log after the block refused")
        # an exit code afterwards no longer touches the finished run
        import sys
        sys.exit(4)
    """)
    assert result.returncode == 4, explain(result)
    assert result.stdout.splitlines() == ["finished", "log after the block refused"]
    run = only_run("ctx-ok")
    assert run.state == "finished"
    assert run.exit_code is None
    assert run.error_type is None
    assert steps_of(run) == [0, 1, 2, 3]
    assert run.summary["x"] == 3
