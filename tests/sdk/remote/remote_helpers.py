"""Helpers of the remote-mode tests."""

from __future__ import annotations

import time
from pathlib import Path

from alerts.clock import FakeClock
from alerts.sdk import remote

KEY = "ak_test_alice"


def writer_of(run) -> remote.RemoteWriter:
    writer = run._writer
    assert isinstance(writer, remote.RemoteWriter)
    return writer


def retry_now(run, clock: FakeClock) -> None:
    """Step past any backoff and wake the run's writer."""
    clock.advance(120)
    writer_of(run).wake()


def wait_until(predicate, timeout: float = 30.0, what: str = ""):
    """A bounded wait for the writer's thread (never a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what or predicate}")


def spooled(folder: Path) -> list[str]:
    """The item files of a run's spool folder, oldest first."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name[0].isdigit())
