"""Run ids, names and media paths that both stores keep alike, and one writer per resumed run.

Every test runs against a real store: SQLite in the test's folder and, where the backend matters, the
PostgreSQL at 127.0.0.1:5432/test (``backend_url``); the processes are real interpreters.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from sqlalchemy import update

import alerts as wandb
from alerts import clock as _clock
from alerts.errors import InvalidArgument, RunInUseError
from alerts.sdk import claims, crashes
from alerts.sdk.media import media_path
from alerts.settings import load_settings
from alerts.store import db
from alerts.store.models import RunRecord

pytestmark = pytest.mark.timeout(180)


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


# -- 1. ids and names: what init() accepts, both stores keep ---------------------------------------


@pytest.mark.parametrize("bad", ["x" * 65, "../../escaped/x", "a/b", "", "with space", "dot.ted", "ünï"])
def test_an_id_outside_the_rule_is_refused_at_init_naming_the_rule(backend_url, bad):
    with pytest.raises(InvalidArgument, match=r"1-64 characters, each a letter, a digit, '-' or '_'"):
        wandb.init(project="p", id=bad)
    assert wandb.run is None
    assert wandb.Api().runs("p") == []


def test_the_id_error_is_a_value_error_and_an_alerts_error_and_says_how_long():
    with pytest.raises(ValueError, match=r"\(this one has 65\)") as caught:
        wandb.init(project="p", id="x" * 65)
    assert isinstance(caught.value, wandb.Error)
    with pytest.raises(TypeError, match="id must be a string"):
        wandb.init(project="p", id=12345)


def test_a_64_character_id_and_long_names_are_stored_alike_on_both_backends(backend_url):
    long = "".join(chr(0x41 + i % 26) for i in range(10_000))
    run = wandb.init(project="p" * 128, id="i" * 64, name=long, group=long[:5000], job_type=long[:3000],
                     tags=[long[:3000], "é ✓"], notes=long * 10)
    wandb.log({"x": 1})
    wandb.finish()
    stored = wandb.Api().run("i" * 64)
    assert (stored.name, stored.group, stored.job_type, stored.tags, stored.notes) == (
        long, long[:5000], long[:3000], [long[:3000], "é ✓"], long * 10)
    assert stored.project == "p" * 128 and stored.state == "finished"
    assert [row["x"] for row in stored.history(pandas=False)] == [1]
    assert run.id == "i" * 64


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"name": "a\x00b"}, InvalidArgument, "name 'a\\\\x00b' contains a NUL character"),
    ({"group": "g\ud800"}, InvalidArgument, "group .* lone surrogate"),
    ({"notes": "\x00"}, InvalidArgument, "notes .* NUL"),
    ({"job_type": "t\x00"}, InvalidArgument, "job_type .* NUL"),
    ({"tags": ["ok", "b\x00d"]}, InvalidArgument, "a tag .* NUL"),
    ({"project": "p" * 129}, InvalidArgument, "at most 128 characters"),
    ({"project": "team/p"}, InvalidArgument, "not a valid project name"),
    ({"name": 123}, TypeError, "name must be a string, not int"),
    ({"tags": ["ok", 3]}, TypeError, "a tag must be a string"),
    ({"tags": "baseline"}, TypeError, r"pass \['baseline'\]"),
])
def test_names_the_store_cannot_keep_are_refused_at_init_on_both_backends(backend_url, kwargs, error, message):
    with pytest.raises(error, match=message):
        wandb.init(**{"project": "p", **kwargs})
    assert wandb.Api().runs() == []


def test_wandb_run_id_from_the_environment_is_used_and_checked(monkeypatch):
    monkeypatch.setenv("WANDB_RUN_ID", "../../escaped/env")
    with pytest.raises(InvalidArgument, match="WANDB_RUN_ID '../../escaped/env' is not a valid run id"):
        wandb.init(project="p")
    monkeypatch.setenv("WANDB_RUN_ID", "from-env_1")
    run = wandb.init(project="p")
    wandb.finish()
    assert run.id == "from-env_1"
    monkeypatch.setenv("WANDB_RESUME", "allow")
    again = wandb.init(project="p")  # WANDB_RUN_ID + WANDB_RESUME: wandb's way to resume from a launcher
    wandb.finish()
    assert again.id == "from-env_1" and again._resumed


def test_a_disabled_run_checks_its_id_too():
    """The same script must not fail only once logging is switched on."""
    with pytest.raises(InvalidArgument):
        wandb.init(project="p", id="a/b", mode="disabled")


# -- 2. media files stay inside ALERTS_DIR/media --------------------------------------------------


def test_a_run_id_cannot_write_media_outside_the_media_folder(tmp_path, store_dir):
    with pytest.raises(InvalidArgument):
        wandb.init(project="p", id="../../escaped/x")
        wandb.log({"img": wandb.Image(np.zeros((2, 2, 3))), "t": wandb.Table(columns=["a"], data=[[1]])})
        wandb.finish()
    outside = [f for f in files_under(tmp_path) if not f.startswith("store/")]
    assert outside == []


def test_keys_become_confined_bounded_file_names(tmp_path, store_dir):
    keys = ["../../x", "/etc/passwd", "a/../../b", "..", "k" * 300, "ok"]
    run = wandb.init(project="p", id="media-run")
    wandb.log({key: wandb.Table(columns=["a"], data=[[i]]) for i, key in enumerate(keys)})
    wandb.log({"../../img": wandb.Image(np.zeros((2, 2, 3)))})
    wandb.finish()
    stored = wandb.Api().run(run.id)
    assert sorted(m["key"] for m in stored.media()) == sorted(keys + ["../../img"])  # none lost, the long key too
    for i, key in enumerate(keys):
        assert stored.load_table(key)["data"] == [[i]]
    written = files_under(tmp_path)
    assert all(f.startswith("store/media/media-run/") for f in written if not f.startswith("store/alerts.db"))
    assert max(len(os.path.basename(f)) for f in written) <= 130


def test_a_symlink_inside_the_media_folder_does_not_lead_files_out(tmp_path, store_dir):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (store_dir / "media").mkdir(parents=True)
    (store_dir / "media" / "linked").symlink_to(outside, target_is_directory=True)
    wandb.init(project="p", id="linked")
    wandb.log({"t": wandb.Table(columns=["a"], data=[[1]]), "x": 1})
    wandb.finish()
    assert list(outside.iterdir()) == []
    stored = wandb.Api().run("linked")
    assert [row["x"] for row in stored.history(pandas=False)] == [1]  # the run goes on without the file


def test_media_path_refuses_what_resolves_outside(tmp_path):
    root = tmp_path / "media"
    assert media_path(root, "run/t_0_1.table.json") == (root / "run" / "t_0_1.table.json").resolve()
    for bad in ("../x", "run/../../x", "/etc/x", ".", ""):
        with pytest.raises(ValueError, match="outside the media folder"):
            media_path(root, bad)


# -- 3. one writer per run --------------------------------------------------------------------------


# Resumes run argv[1] and prints where it starts (or why it may not), then on "go" logs argv[2] steps
# and finishes with exit code argv[3].
RESUMER = """
    import sys
    import alerts

    run_id, steps, code = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        run = alerts.init(project="p", id=run_id, resume="allow")
    except alerts.Error as exc:
        print(f"refused: {type(exc).__name__}: {exc}", flush=True)
        sys.exit(3)
    print(f"started at {run.step}", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no start signal")
    for _ in range(steps):
        alerts.log({"x": run.step})
    alerts.finish(exit_code=code)
    print("done", flush=True)
"""


def first_hundred_steps(run_id: str) -> None:
    wandb.init(project="p", id=run_id)
    for i in range(100):
        wandb.log({"x": i})
    wandb.finish()


def steps_of(run_id: str) -> list[int]:
    return [row["_step"] for row in wandb.Api().run(run_id).scan_history()]


def test_a_second_process_cannot_resume_a_run_another_live_process_writes(spawn, backend_url):
    first_hundred_steps("shared")
    holder = spawn(RESUMER, "shared", "100", "1")
    holder.expect("started at 100")

    second = spawn(RESUMER, "shared", "100", "0")
    line = second.next_line()
    assert line.startswith("refused: RunInUseError: run 'shared' is being written by process "
                           f"{holder.proc.pid} on {socket.gethostname()}"), line
    assert "one process writes a run at a time" in line and "Resume it" in line
    assert second.wait() == 3

    holder.send("go\n")
    holder.expect("done")
    assert holder.wait() == 0
    assert steps_of("shared") == list(range(200))  # steps 100-199 once
    assert wandb.Api().run("shared").state == "failed"  # the holder's end, not overwritten

    later = spawn(RESUMER, "shared", "10", "0")  # the holder has ended: resuming works
    later.expect("started at 200")
    later.send("go\n")
    later.expect("done")
    assert later.wait() == 0
    assert steps_of("shared") == list(range(210))
    assert wandb.Api().run("shared").state == "finished"


def test_a_run_whose_process_was_killed_can_be_resumed_at_once(spawn, backend_url):
    first_hundred_steps("victim")
    holder = spawn(RESUMER, "victim", "0", "0")
    holder.expect("started at 100")
    holder.proc.send_signal(signal.SIGKILL)
    holder.wait()
    assert wandb.Api().run("victim").state == "running"  # no heartbeat gone stale yet: only the pid tells

    again = spawn(RESUMER, "victim", "5", "0")
    again.expect("started at 100")
    again.send("go\n")
    again.expect("done")
    assert again.wait() == 0
    assert steps_of("victim") == list(range(105))


def set_holder(run_id: str, **fields) -> None:
    store = db.open_store(load_settings().resolved_database_url())
    with store.engine.begin() as conn:
        conn.execute(update(RunRecord).where(RunRecord.id == run_id).values(state="running", **fields))


def test_a_fresh_heartbeat_from_another_host_holds_the_run_and_a_stale_one_does_not(backend_url):
    first_hundred_steps("remote")
    now = _clock.now()
    set_holder("remote", host="gpu-node-7", pid=4242, heartbeat_at=now - 30)
    with pytest.raises(RunInUseError, match="process 4242 on gpu-node-7 .*last heartbeat 30 s ago"):
        wandb.init(project="p", id="remote", resume="must")
    set_holder("remote", host="gpu-node-7", pid=4242, heartbeat_at=now - crashes.CRASH_AFTER - 1)
    run = wandb.init(project="p", id="remote", resume="must")
    assert run.step == 100
    wandb.finish()
    stored = wandb.Api().run("remote")
    assert stored.state == "finished"


def test_a_dead_pid_on_this_host_frees_the_run_even_with_a_fresh_heartbeat(backend_url):
    first_hundred_steps("local")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    set_holder("local", host=socket.gethostname(), pid=int(gone.stdout), heartbeat_at=_clock.now())
    run = wandb.init(project="p", id="local", resume="allow")
    assert run.step == 100


def test_this_process_cannot_resume_a_run_it_is_still_writing():
    first = wandb.init(project="p", id="twice")
    with pytest.raises(RunInUseError, match="this process"):
        wandb.init(project="p", id="twice", resume="allow", reinit="create_new")
    first.finish()
    assert wandb.init(project="p", id="twice", resume="allow").step == 0


def test_of_two_claims_on_one_reading_only_the_first_wins(store_backend):
    now = _clock.now()
    store_backend.create_run({"id": "r", "owner": "o", "project": "p", "name": "n", "created_at": now,
                              "updated_at": now, "heartbeat_at": now, "state": "finished", "pid": 1, "host": "h"})
    seen = store_backend.get_run("r")
    assert store_backend.claim_run(seen, {"state": "running", "pid": 2, "heartbeat_at": now + 1})
    assert not store_backend.claim_run(seen, {"state": "running", "pid": 3, "heartbeat_at": now + 2})
    assert store_backend.get_run("r").pid == 2
    assert not store_backend.create_run({"id": "r", "owner": "o", "project": "p", "name": "again",
                                         "created_at": now, "updated_at": now, "heartbeat_at": now})
    assert store_backend.get_run("r").name == "n"


def test_the_crash_watchdog_does_not_mark_a_run_resumed_under_its_feet(store_backend):
    """The watchdog reads a stale run, then checks its pid: a resume landing in between keeps the run."""
    now = _clock.now()
    store_backend.create_run({"id": "r", "owner": "o", "project": "p", "name": "n", "created_at": now - 500,
                              "updated_at": now - 500, "heartbeat_at": now - 500, "state": "running",
                              "pid": 1, "host": "here"})

    def resumed_meanwhile(_pid: int) -> bool:
        claims.claim(store_backend, "r", lambda _r: {"heartbeat_at": now, "pid": os.getpid(), "host": "here"},
                     now, "here")
        return False

    assert crashes.find_crashed(store_backend, now, "here", is_alive=resumed_meanwhile) == []
    record = store_backend.get_run("r")
    assert (record.state, record.pid, record.heartbeat_at) == ("running", os.getpid(), now)


@pytest.mark.parametrize("env", [{"ALERTS_USER": "bob\udcff"}, {"LOGNAME": "jos\udce9", "USER": "jos\udce9"}])
def test_an_owner_name_that_is_not_utf8_is_repaired_also_with_an_explicit_id(store_backend, monkeypatch, env):
    """init(id=...) inserts its run row itself: a login name with a lone surrogate (not UTF-8) made
    it raise UnicodeEncodeError, while the queued insert of a random id repaired the same owner."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    if "ALERTS_USER" not in env:
        monkeypatch.delenv("ALERTS_USER")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    run = wandb.init(project="p", id="explicit-1")
    run.finish()
    expected = env.get("ALERTS_USER", env.get("LOGNAME")).replace("\udcff", "\ufffd").replace("\udce9", "\ufffd")
    assert store_backend.get_run("explicit-1").owner == expected


def test_init_with_an_id_on_a_locked_store_raises_a_clear_error(store_dir, monkeypatch):
    """init(id=X) must create its row now; with another program holding the write lock past the busy
    timeout it raised a raw sqlalchemy OperationalError (the probe)."""
    import sqlite3

    from alerts.errors import StoreUnavailable

    wandb.init(project="p").finish()  # the store and its tables exist
    db.forget_stores()
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(store_dir / "alerts.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked past its busy timeout"):
            wandb.init(project="p", id="held-1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert wandb.run is None
    run = wandb.init(project="p", id="held-1")  # once the lock is gone, the same call works
    run.finish()
