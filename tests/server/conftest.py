"""Fixtures for the server: the app in-process (FastAPI's TestClient, the lifespan run) and a real
``alerts serve`` process on 127.0.0.1, each over a store of the test's own; users with API keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from alerts.clock import FakeClock
from alerts.server import accounts
from alerts.server.app import create_app
from alerts.settings import load_settings
from alerts.store.db import open_store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_clock() -> FakeClock:
    """The app's clock: tests step it."""
    return FakeClock()


@pytest.fixture
def server_store(store_dir):
    """The store the in-process app serves: SQLite in the test's ALERTS_DIR."""
    return open_store(load_settings().resolved_database_url())


@pytest.fixture
def app(server_store, server_clock):
    """The app over the test's store and clock. Its scheduler does not run (jobs would race the test on
    real time): drive the jobs with ``app.state.jobs.run(name, now)`` after stepping ``server_clock``."""
    return create_app(load_settings(), store=server_store, clock=server_clock, jobs=False)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    """An HTTP client of the in-process app (lifespan run), no key set."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def make_user(server_store, server_clock) -> Callable[..., str]:
    """``make_user("bob", admin=False)`` adds a user to the store and returns their API key."""

    def make(name: str, admin: bool = False) -> str:
        return accounts.add_user(server_store, name, admin=admin, now=server_clock())

    return make


def auth(key: str) -> dict:
    """Headers that present ``key``."""
    return {"Authorization": f"Bearer {key}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """A real ``alerts serve`` child process; ``url`` is its base URL."""

    def __init__(self, env: dict, port: int, log: Path) -> None:
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "LiveServer":
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alerts", "serve", "--port", str(self.port), "--log-level", "warning"],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alerts serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"alerts serve did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def live_server(tmp_path, store_dir) -> Iterator[Callable[..., LiveServer]]:
    """``live_server(**env)`` starts ``alerts serve`` over the test's ALERTS_DIR (plus ``env``); every
    server started is stopped at the end."""
    started: list[LiveServer] = []

    def start(**extra_env: str) -> LiveServer:
        env = {**os.environ, "PYTHONPATH": str(REPO), **extra_env}
        server = LiveServer(env, free_port(), tmp_path / f"serve-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
