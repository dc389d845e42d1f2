"""How a run ends when the script does not call ``finish()``.

Installed once per process at the first ``init()``:

- ``sys.excepthook``: an uncaught exception is remembered (``KeyboardInterrupt`` means killed);
- ``sys.exit``: the exit code is remembered (``SystemExit`` bypasses the excepthook);
- ``atexit``: every run still live is finished as ``failed`` (exception or non-zero exit),
  ``killed`` (Ctrl-C), ``preempted`` (after ``mark_preempting()``) or ``finished``, then the writers
  are flushed;
- SIGTERM, when nobody else handles it: live runs are finished as ``killed`` (or ``preempted``), then
  the signal is delivered again with its default action, so the process still dies of SIGTERM.

A forked child is a process of its own: the runs it inherits stay its parent's (what it logs to them
is not stored, with a warning), and the runs it starts have their own writer, heartbeat and exit
hooks. A ``multiprocessing`` child never runs ``atexit`` (it leaves through ``os._exit``), so there
the same ending is hooked into multiprocessing's own exit (``multiprocessing.util.Finalize``), which
runs whether the target returned, raised (the exception is read from ``sys.exc_info()``) or called
``sys.exit``. A child that calls ``os._exit()`` itself runs no hook at all: its run stays
``running`` until its heartbeat is two minutes old, and is then marked ``crashed`` (alerts/sdk/crashes.py).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from typing import Optional

from alerts.delivery import embedded as delivery
from alerts.sdk import worker
from alerts.sdk.run import KILLED, PREEMPTED, Run, end_state

_live: dict[str, Run] = {}
_lock = threading.RLock()
_installed = False
_exception: Optional[BaseException] = None
_exit_code: Optional[int] = None
_exiting = False
_forked = False  # this process is a forked child of one that had imported alerts
_child_hooked = False  # multiprocessing's exit runs _at_child_exit in this child

# multiprocessing's exit hooks run in priority order, highest first: ours before its own clean-ups.
CHILD_EXIT_PRIORITY = 10


def register(run: Run) -> None:
    """Track a live run so the exit hooks can end it."""
    _install()
    if _forked and not _child_hooked:
        _hook_multiprocessing_exit()
    with _lock:
        _live[run.id] = run


def forked() -> bool:
    """Whether this process is a forked child (its runs are written at once by ``init()``)."""
    return _forked


def _hook_multiprocessing_exit() -> None:
    """In a multiprocessing child, end the live runs when the child's target is done."""
    global _child_hooked
    _child_hooked = True
    process = sys.modules.get("multiprocessing.process")
    util = sys.modules.get("multiprocessing.util")
    if process is None or util is None or process.parent_process() is None:
        return  # os.fork() by hand: the child leaves through atexit like any process
    util.Finalize(None, _at_child_exit, exitpriority=CHILD_EXIT_PRIORITY)


def _at_child_exit() -> None:
    # Called by multiprocessing from the `finally` around the target, so sys.exc_info() is what the
    # target raised, if anything. A SystemExit is no failure in itself: as in the parent, the exit
    # code is the one sys.exit() was called with.
    global _exiting
    exception = sys.exc_info()[1]
    if isinstance(exception, SystemExit):
        exception = None
    _exiting = True
    finish_live_runs(exception, _exit_code)
    worker.close_all()
    delivery.drain_all()


def unregister(run: Run) -> None:
    with _lock:
        _live.pop(run.id, None)


def live_runs() -> list[Run]:
    with _lock:
        return list(_live.values())


def _install() -> None:
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
        previous_hook = sys.excepthook
        previous_exit = sys.exit

        def excepthook(exc_type, exc, tb):
            global _exception
            _exception = exc
            previous_hook(exc_type, exc, tb)

        def exit(code=None):  # noqa: A001 - it stands in for sys.exit
            global _exit_code
            _exit_code = _code_of(code)
            previous_exit(code)

        sys.excepthook = excepthook
        sys.exit = exit
        atexit.register(_at_exit)
        if threading.current_thread() is threading.main_thread():
            try:
                if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                    signal.signal(signal.SIGTERM, _on_sigterm)
            except (ValueError, OSError):  # not allowed here (embedded interpreters)
                pass


def _code_of(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # sys.exit("message") exits with 1


def finish_live_runs(exception: Optional[BaseException], exit_code: Optional[int], timeout: float = 30.0) -> None:
    """Finish every live run with the state that ``exception``/``exit_code`` mean."""
    for run in live_runs():
        state, code = end_state(run._preempting, exception, exit_code)
        try:
            run.finish(exit_code=code, state=state, error=exception, timeout=timeout)
        except Exception:  # at exit, one run's trouble must not stop the others from being saved
            pass


def exiting() -> bool:
    """Whether the exit hooks have begun (background work that can wait should not start now)."""
    return _exiting


def _at_exit() -> None:
    global _exiting
    _exiting = True
    finish_live_runs(_exception, _exit_code)
    worker.close_all()
    _close_remote_writers()
    delivery.drain_all()


def _close_remote_writers(timeout: float = 30.0) -> None:
    # Imported only by a run that logs to a server: an embedded process never loads httpx for this.
    remote = sys.modules.get("alerts.sdk.remote")
    if remote is not None:
        remote.close_all(timeout)


def _after_fork_in_child() -> None:
    # A forked child (a multiprocessing worker) inherits the parent's live runs but is not their
    # writer: its exit or its SIGTERM (Pool.terminate) must not finish them, nor wait for them, and
    # what it logs to them would only pile up in a queue no thread drains. The lock is made anew:
    # another thread of the parent may have held it at the fork.
    global _lock, _forked, _child_hooked, _exception, _exit_code, _exiting
    _lock = threading.RLock()
    inherited = list(_live.values())
    _live.clear()
    for run in inherited:
        run._orphan()
    _forked, _child_hooked = True, False
    _exception, _exit_code, _exiting = None, None, False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum, _frame) -> None:
    for run in live_runs():
        try:
            run.finish(exit_code=128 + signum, state=PREEMPTED if run._preempting else KILLED, timeout=10.0)
        except Exception:
            pass
    worker.close_all(timeout=10.0)
    _close_remote_writers(timeout=5.0)
    delivery.drain_all(timeout=5.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
