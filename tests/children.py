"""Child interpreters for tests: start a script, read its stdout on a thread, wait with a bound.

Waits are bounds for giving up on a loaded 2-core machine, never timing assertions.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import threading
import time

WAIT = 240.0  # how long to wait for a child before failing (12 children at once on a loaded 2-core machine)


class Child:
    """A child interpreter whose stdout lines are read on a thread, so that every wait is bounded."""

    def __init__(self, proc: subprocess.Popen, stderr_path) -> None:
        self.proc = proc
        self._stderr_path = stderr_path
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)  # end of output

    @property
    def stderr(self) -> str:
        try:
            return self._stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def next_line(self, timeout: float = WAIT) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing from the child within {timeout}s; stdout so far "
                                 f"{self.seen[-5:]!r}\nstderr:\n{self.stderr}") from None
        if line is None:
            self.lines.put(None)  # keep reporting the end
            raise AssertionError(f"child ended (rc={self.proc.wait()}); last stdout {self.seen[-5:]!r}"
                                 f"\nstderr:\n{self.stderr}")
        self.seen.append(line)
        return line

    def expect(self, wanted: str, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while self.next_line(max(0.1, deadline - time.monotonic())) != wanted:
            pass

    def send(self, text: str) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"child still running after {timeout}s\nstderr:\n{self.stderr}") from None


def spawner(tmp_path, store_dir):
    """Start ``source`` with ``args`` in a child process (``run_script``'s environment), not waiting."""
    children: list[Child] = []

    def start(source: str, *args: str, env: dict | None = None) -> Child:
        index = len(children)
        script = tmp_path / f"child{index}.py"
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        stderr_path = tmp_path / f"child{index}.stderr"
        child_env = {**os.environ, "ALERTS_DIR": str(store_dir), "PYTHONUNBUFFERED": "1", **(env or {})}
        with open(stderr_path, "w", encoding="utf-8") as stderr:
            proc = subprocess.Popen([sys.executable, str(script), *args], env=child_env, cwd=tmp_path,
                                    text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
        child = Child(proc, stderr_path)
        children.append(child)
        return child

    return start, children


def stop_children(children: list) -> None:
    """Kill what is still running (a failed test must not leave children behind)."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(10)
        if child.proc.stdin:
            child.proc.stdin.close()
