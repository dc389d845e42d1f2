"""A hostile, unlucky user of the wandb surface: calls real scripts make with odd arguments. Each
test here reproduced a defect (an internal error reaching the training loop, or data lost) and
reads the result back from the store as a user would."""

from __future__ import annotations

import pytest

import alerts as wandb


def stored(run_id):
    return wandb.Api().run(run_id)


def test_read_only_run_attributes_refuse_assignment_and_summary_assignment_keeps_logging():
    # wandb's Run has no setter for id, project, entity, group, job_type or config: assigning one is
    # an AttributeError there. Here it used to replace the value silently, so the run's rows went to
    # a run id that does not exist, and `run.summary = {...}` made the next log() raise
    # AttributeError ('dict' object has no attribute '_data') inside the training loop.
    run = wandb.init(project="hostile", group="g", job_type="train", config={"lr": 0.1})
    run_id = run.id
    for attr, value in [("id", "other"), ("project", "elsewhere"), ("entity", "mallory"), ("group", "g2"),
                        ("job_type", "eval"), ("config", {"lr": 9})]:
        with pytest.raises(AttributeError):
            setattr(run, attr, value)
    assert (run.id, run.project, run.group, run.job_type, run.config["lr"]) == (run_id, "hostile", "g", "train", 0.1)
    wandb.log({"loss": 1.0})
    run.summary = {"best": 0.5}  # wandb keeps going after this; so must we
    wandb.log({"loss": 0.5})
    wandb.finish()
    back = stored(run_id)
    assert back.state == "finished"
    assert back.project == "hostile"
    assert [row["loss"] for row in back.history(pandas=False)] == [1.0, 0.5]
    assert back.summary["best"] == 0.5
    assert back.summary["loss"] == 0.5


def test_histogram_with_more_bins_than_wandb_allows_is_refused_before_any_work():
    # wandb allows at most 512 bins. The check used to come after np.histogram had allocated the
    # bins: num_bins=10**9 froze the training loop for minutes and took 16 GB; 10**12 was a
    # MemoryError instead of wandb's ValueError.
    with pytest.raises(ValueError, match="512"):
        wandb.Histogram([1.0, 2.0, 3.0], num_bins=10**12)
    assert len(wandb.Histogram([1.0, 2.0, 3.0], num_bins=512).histogram) == 512


def test_bfloat16_and_float16_tensors_are_logged_as_numbers():
    # Mixed-precision training logs bf16 tensors. numpy has no bfloat16, so `.numpy()` raised
    # TypeError: the array was skipped as "not an array of numbers", `Histogram(t)` and
    # `Image(t)` raised "Got unsupported ScalarType BFloat16" into the training loop.
    torch = pytest.importorskip("torch")
    run = wandb.init(project="hostile")
    grads = torch.linspace(-1, 1, 100).to(torch.bfloat16)
    wandb.log({
        "grads": grads,  # over 32 elements: a 32-bin histogram
        "few": torch.tensor([0.5, 1.5], dtype=torch.bfloat16),  # a list
        "hist": wandb.Histogram(grads, num_bins=10),
        "half": torch.ones(3, dtype=torch.float16),
        "img": wandb.Image(torch.zeros(3, 4, 4, dtype=torch.bfloat16)),
        "audio": wandb.Audio(torch.zeros(80, dtype=torch.bfloat16), sample_rate=8000),
    })
    wandb.finish()
    row = stored(run.id).history(pandas=False)[0]
    assert row["grads"]["_type"] == "histogram" and sum(row["grads"]["values"]) == 100
    assert row["few"] == [0.5, 1.5]
    assert sum(row["hist"]["values"]) == 100 and len(row["hist"]["bins"]) == 11
    assert row["half"] == [1.0, 1.0, 1.0]
    assert row["img"]["_type"] == "image-file"
    assert row["audio"]["_type"] == "audio-file"
    assert {m["key"] for m in stored(run.id).media()} >= {"img", "audio"}


def _child_run(name: str) -> None:
    wandb.init(project="hostile", name=name)
    wandb.log({"loss": 1.0})


@pytest.mark.timeout(120)
def test_a_child_forked_while_the_parent_commits_can_still_start_its_run():
    # SQLite keeps its lock bookkeeping in process memory, and a forked child inherits a copy. A
    # fork during one of the parent's write transactions (the writer commits every 0.2 s) left the
    # child believing the WAL write lock taken, by a connection no thread of the child would ever
    # release: its init() waited the 30 s busy timeout and raised StoreUnavailable, and the child's
    # run was never stored. Here the parent is held inside a write transaction while it forks.
    import multiprocessing
    import threading
    import time

    from alerts.store.db import sqlite_write_transaction

    parent = wandb.init(project="hostile", name="parent")
    wandb.log({"loss": 2.0})
    parent._writer.flush()
    inside, done = threading.Event(), threading.Event()

    def hold_a_write_transaction():
        with sqlite_write_transaction(parent._writer.store.engine) as conn:
            conn.exec_driver_sql("UPDATE runs SET notes = notes WHERE id = 'nobody'")
            inside.set()
            time.sleep(1.0)  # a commit in progress (a slow disk) when the main thread forks
        done.set()

    holder = threading.Thread(target=hold_a_write_transaction)
    holder.start()
    assert inside.wait(30)
    child = multiprocessing.get_context("fork").Process(target=_child_run, args=("forked-mid-commit",))
    child.start()
    holder.join()
    child.join(100)
    assert child.exitcode == 0
    wandb.finish()
    runs = {r.name: r for r in wandb.Api().runs("hostile")}
    assert runs["forked-mid-commit"].state == "finished"
    assert [row["loss"] for row in runs["forked-mid-commit"].history(pandas=False)] == [1.0]


def test_restore_of_an_absolute_name_is_not_found_instead_of_opening_that_file(tmp_path, monkeypatch):
    # The run's folder joined with an absolute name is that absolute path: restore("/etc/hostname")
    # opened the machine's file as if the run had saved it. wandb answers "not found".
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the run's")
    (tmp_path / "kept.txt").write_text("the run's")
    first = wandb.init(project="hostile")
    wandb.save("kept.txt", policy="now")
    wandb.finish()
    wandb.init(project="hostile")
    with pytest.raises(ValueError, match="not found"):
        wandb.restore(str(outside), run_path=first.id, root=str(tmp_path / "restored"))
    with wandb.restore("kept.txt", run_path=first.id, root=str(tmp_path / "restored")) as handle:
        assert handle.read() == "the run's"
    wandb.finish()


def test_artifact_aliases_given_as_one_string_and_aliases_wandb_refuses(tmp_path):
    # wandb takes aliases="best" as ["best"]; it was split into the aliases b, e, s, t, so
    # use_artifact("weights:best") failed after log_model(path, aliases="best"). An alias with
    # "/" or ":" (which no reference can name) is a ValueError in wandb; it was stored silently.
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"\x00" * 8)
    run = wandb.init(project="hostile")
    run.log_model(str(weights), name="weights", aliases="best")
    assert run.use_artifact("weights:best").version == "v0"
    with pytest.raises(wandb.CommError):
        run.use_artifact("weights:b")
    weights.write_bytes(b"\x01" * 8)
    other = wandb.Artifact("weights", type="model")
    other.add_file(str(weights))
    with pytest.raises(ValueError, match="Aliases"):
        run.log_artifact(other, aliases=["ok", "epoch:3"])
    assert run.use_artifact("weights:latest").version == "v0"  # the refused version was not stored
    wandb.finish()


def test_html_with_a_lone_surrogate_is_written_with_it_repaired():
    # Text scraped from a tokenizer can hold lone surrogates. The README: they become U+FFFD when
    # written. The .html file was not written at all (UnicodeEncodeError in the writer), while
    # the row pointed to it.
    run = wandb.init(project="hostile")
    wandb.log({"sample": wandb.Html("<p>tok \ud800 en</p>")})
    wandb.finish()
    media = [m for m in stored(run.id).media() if m["key"] == "sample"]
    assert len(media) == 1
    with open(media[0]["file"], encoding="utf-8") as handle:
        assert "tok \ufffd en" in handle.read()
