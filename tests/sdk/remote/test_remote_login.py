"""``alerts.login`` / ``alerts login`` (the key checked, stored 0600, never shown) and ``alerts sync``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

import alerts
from alerts.errors import AuthenticationError, Error
from alerts.sdk import credentials, remote
from remote.remote_helpers import KEY, spooled, writer_of


def _cli(*args: str, stdin: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "alerts", *args], input=stdin, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_login_checks_the_key_stores_it_for_the_owner_only_and_scripts_then_log_there(fake, clock):
    assert alerts.login(key=KEY, host=fake.url + "/")
    path = credentials.path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.load()["hosts"][fake.url] == {"key": KEY, "user": "alice"}

    run = alerts.init(project="p")  # no ALERTS_URL, no ALERTS_API_KEY: the stored login
    alerts.log({"loss": 1.0})
    run.finish()
    assert fake.runs[run.id].owner == "alice" and run.entity == "alice"
    remote.close_all(timeout=1)


def test_a_refused_key_is_not_stored(fake):
    with pytest.raises(AuthenticationError):
        alerts.login(key="ak_wrong", host=fake.url)
    assert not credentials.path().exists()


def test_login_to_a_server_that_is_down_says_so(fake):
    fake.stop()
    with pytest.raises(Error, match="could not check the key"):
        alerts.login(key=KEY, host=fake.url)
    assert not credentials.path().exists()


def test_offline_mode_stays_local_even_when_logged_in(fake, store_dir):
    alerts.login(key=KEY, host=fake.url)
    run = alerts.init(project="p", mode="offline")
    run.finish()
    assert fake.runs == {} and (store_dir / "alerts.db").exists()


def test_the_login_command_reads_the_key_from_stdin_and_never_prints_it(fake):
    done = _cli("login", "--host", fake.url, stdin=KEY + "\n")
    assert done.returncode == 0, done.stderr
    assert "logged in" in done.stdout and "alice" in done.stdout
    assert KEY not in done.stdout + done.stderr
    assert credentials.load()["default"] == fake.url

    refused = _cli("login", "--host", fake.url, stdin="ak_wrong\n")
    assert refused.returncode == 1 and "refused" in refused.stderr and "ak_wrong" not in refused.stderr


def test_sync_sends_what_a_run_left_in_the_spool(online, clock, store_dir, fake):
    run = alerts.init(project="p")
    fake.stop()
    for step in range(40):
        alerts.log({"loss": float(step)})
    run.finish(timeout=1)
    remote.close_all(timeout=1)
    folder = store_dir / "spool" / run.id
    assert spooled(folder)
    fake.start()
    done = _cli("sync", env={"ALERTS_DIR": str(store_dir)})
    assert done.returncode == 0, done.stderr
    assert f"run {run.id}: sent" in done.stdout and "40 history rows" in done.stdout
    assert fake.steps(run.id) == list(range(40)) and fake.runs[run.id].state == "finished"
    assert not folder.exists()


def test_sync_leaves_a_spool_held_by_a_live_run_alone(online, clock, store_dir, fake):
    run = alerts.init(project="p")
    fake.stop()
    alerts.log({"loss": 1.0})
    assert writer_of(run).commit_now(30)  # spooled, and this process holds the folder
    fake.start()
    done = _cli("sync", env={"ALERTS_DIR": str(store_dir)})
    assert "held by a live process" in done.stdout
    assert fake.runs[run.id].rows == []
