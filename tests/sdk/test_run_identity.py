"""Run ids, names and media paths that both stores keep alike, and one writer per resumed run.

Every test runs against a real store: SQLite in the test's folder and, where the backend matters, the
PostgreSQL at 127.0.0.1:5432/test (``backend_url``); the processes are real interpreters.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import alerts as wandb
from alerts.errors import InvalidArgument
from alerts.sdk import lifecycle, worker
from alerts.sdk.media import media_path
from alerts.store import db

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def backend_url(store_backend, monkeypatch):
    """``ALERTS_DATABASE_URL`` pointing at a fresh store on each backend (children inherit it)."""
    monkeypatch.setenv("ALERTS_DATABASE_URL", store_backend.url)
    yield store_backend.url
    for run in lifecycle.live_runs():
        run.finish()
    worker.close_all()
    db.forget_stores()  # before store_backend drops the PostgreSQL schema


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
