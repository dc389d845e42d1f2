"""What ``log()`` accepts, how steps and commits work, and what it does with values it cannot store."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import alerts as wandb


def history(run):
    return wandb.Api().run(run.id).history(pandas=False)


def test_values_training_code_passes_are_stored_as_numbers():
    run = wandb.init(project="p")
    wandb.log({
        "int": 3, "float": 0.5, "bool": True, "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
        "np_float32": np.float32(0.25), "np_int64": np.int64(7), "np_0d": np.array(1.5),
        "np_1elem": np.array([2.5]), "torch_loss": torch.tensor(0.75, requires_grad=True) * 1,
        "torch_int": torch.tensor(4), "string": "hello", "none": None,
        "nested": {"a": 1, "deeper": {"b": 2}}, "list": [1, 2.5, "x"],
    })
    wandb.finish()
    (row,) = history(run)
    assert row["int"] == 3 and type(row["int"]) is int
    assert row["float"] == 0.5 and row["bool"] is True
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["-inf"] == -math.inf
    assert row["np_float32"] == 0.25 and row["np_int64"] == 7 and row["np_0d"] == 1.5 and row["np_1elem"] == 2.5
    assert row["torch_loss"] == 0.75 and row["torch_int"] == 4
    assert row["string"] == "hello" and row["none"] is None
    assert row["nested/a"] == 1 and row["nested/deeper/b"] == 2 and "nested" not in row
    assert row["list"] == [1, 2.5, "x"]
    assert row["_step"] == 0 and row["_timestamp"] > 0 and row["_runtime"] >= 0


def test_unstorable_value_warns_naming_the_key_and_keeps_the_rest():
    run = wandb.init(project="p")
    with pytest.warns(wandb.AlertsWarning, match="'weights'.*not an array of numbers"):
        wandb.log({"weights": np.array([object(), object()]), "loss": 0.1})
    with pytest.warns(wandb.AlertsWarning, match="'model'.*object"):
        wandb.log({"model": object(), "loss": 0.2})
    wandb.finish()
    rows = history(run)
    assert [r["loss"] for r in rows] == [0.1, 0.2]
    assert all("weights" not in r and "model" not in r for r in rows)


def test_step_auto_increments_and_commit_false_accumulates():
    run = wandb.init(project="p")
    wandb.log({"a": 1})
    wandb.log({"b": 2}, commit=False)
    wandb.log({"c": 3}, commit=False)
    wandb.log({"d": 4})
    wandb.log({"e": 5})
    assert run.step == 3
    wandb.finish()
    rows = history(run)
    assert [r["_step"] for r in rows] == [0, 1, 2]
    assert {k: rows[1][k] for k in "bcd"} == {"b": 2, "c": 3, "d": 4}


def test_explicit_steps_merge_equal_steps_and_drop_lower_ones_with_a_warning():
    run = wandb.init(project="p")
    wandb.log({"a": 1}, step=10)
    wandb.log({"b": 2}, step=10)  # same step: merged into one row
    wandb.log({"a": 3}, step=12)  # higher: row 10 committed, now at 12
    with pytest.warns(wandb.AlertsWarning, match="step 5 that is less than the current step 12"):
        wandb.log({"a": 99}, step=5)
    wandb.log({"a": 4}, step=13, commit=True)
    assert run.step == 14
    wandb.log({"z": 0})  # implicit step continues after 13
    wandb.finish()
    rows = history(run)
    assert [(r["_step"], r.get("a"), r.get("b")) for r in rows] == [
        (10, 1, 2), (12, 3, None), (13, 4, None), (14, None, None)]
    assert all(r.get("a") != 99 for r in rows)


def test_log_rejects_non_dicts_with_a_type_error_as_wandb_does():
    wandb.init(project="p")
    with pytest.raises(TypeError, match="dictionary"):
        wandb.log([("a", 1)])
    wandb.finish()


def test_summary_holds_last_logged_values_and_explicit_keys():
    run = wandb.init(project="p")
    wandb.summary["best"] = 0.9
    wandb.summary["loss"] = 123.0
    for i in range(3):
        wandb.log({"loss": float(i)})
    wandb.finish()
    summary = wandb.Api().run(run.id).summary
    assert summary["best"] == 0.9
    assert summary["loss"] == 2.0  # a later log() of the key overwrites an explicit value, as in wandb
    assert summary["_step"] == 2


def test_summary_is_visible_to_readers_while_the_run_is_live():
    run = wandb.init(project="p")
    wandb.log({"loss": 0.5})
    assert run._writer.flush(10)
    stored = wandb.Api().run(run.id)
    assert stored.state == "running" and stored.summary["loss"] == 0.5 and stored.last_step == 0
    wandb.finish()


def test_history_keys_and_sampling():
    run = wandb.init(project="p")
    for i in range(1000):
        wandb.log({"loss": float(i), **({"val": i} if i % 10 == 0 else {})})
    wandb.finish()
    stored = wandb.Api().run(run.id)
    sampled = stored.history(samples=100, pandas=False)
    assert len(sampled) == 100 and sampled[0]["_step"] == 0
    val_rows = list(stored.scan_history(keys=["val"]))
    assert len(val_rows) == 100 and set(val_rows[0]) == {"_step", "val"}
    assert len(list(stored.scan_history())) == 1000


def test_log_after_many_calls_keeps_every_row():
    run = wandb.init(project="p")
    for i in range(50_000):
        wandb.log({"i": i, "loss": 1.0 / (i + 1), "acc": 0.5})
    wandb.finish()
    rows = list(wandb.Api().run(run.id).scan_history())
    assert len(rows) == 50_000
    assert [r["i"] for r in rows] == list(range(50_000))


def test_log_does_not_raise_when_the_store_fails(store_dir, caplog):
    """A broken database must not reach the training loop: rows are kept and retried."""
    run = wandb.init(project="p")
    writer = run._writer
    original = writer.store.write_batch
    calls = {"n": 0}

    def failing(batch):
        calls["n"] += 1
        if calls["n"] <= 12:  # well past the writer's salvage threshold: nothing may be dropped
            raise OSError("disk full")
        return original(batch)

    writer.store.write_batch = failing
    try:
        for i in range(100):
            wandb.log({"i": i})
        wandb.finish()
    finally:
        writer.store.write_batch = original
    assert calls["n"] >= 13
    assert [r["i"] for r in history(run)] == list(range(100))
    assert "could not write" in caplog.text
    assert run._writer.dropped_items == 0 and "dropping" not in caplog.text


def test_a_row_the_store_refuses_is_dropped_with_an_error_and_the_rest_is_kept(caplog):
    """One poisoned row (here an alert without its NOT NULL title) must not block every later commit."""
    from alerts.sdk.worker import ALERT

    run = wandb.init(project="p")
    wandb.log({"i": 0})
    run._writer.append((ALERT, {"run_id": run.id, "created_at": 0.0, "source": "alert", "title": None,
                                "text": "x", "level": "INFO", "outcome": "notified", "rule": None,
                                "status": "firing", "metric": None, "value": None, "reason": None,
                                "wait_duration": 60.0, "step": 0}))
    wandb.alert(title="good", text="kept")
    for i in range(1, 5):
        wandb.log({"i": i})
    wandb.finish()
    stored = wandb.Api().run(run.id)
    assert [r["i"] for r in stored.history(pandas=False)] == [0, 1, 2, 3, 4]
    assert [a["title"] for a in stored.alerts()] == ["good"]
    assert stored.state == "finished"
    assert "dropping one alerts row that the store refuses" in caplog.text
    assert run._writer.dropped_items == 1


def test_values_no_encoder_takes_are_sanitized_not_lost():
    """A lone surrogate (os.listdir on a non-UTF-8 name), tuple keys in the summary, a huge int."""
    run = wandb.init(project="p")
    for i in range(50):
        wandb.log({"i": i, **({"path": "bad\udcff.png"} if i == 10 else {})})
    wandb.summary["confusion"] = {(0, 1): 3}
    wandb.config["huge"] = 10**30
    wandb.log({"big": 10**30})
    wandb.finish()
    stored = wandb.Api().run(run.id)
    rows = stored.history(pandas=False)
    assert [r.get("i") for r in rows[:50]] == list(range(50))
    assert rows[10]["path"].startswith("bad") and stored.state == "finished"
    assert stored.summary["confusion"] == {"(0, 1)": 3}
    assert rows[50]["big"] in (10**30, str(10**30))
