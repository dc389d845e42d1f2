"""Defects found by probing the remote mode as a user would (issue 9), each kept as a regression test."""

from __future__ import annotations

from pathlib import Path

import alerts
from alerts.sdk import remote_init


def test_a_run_whose_writer_thread_cycles_during_init_keeps_its_data(online, monkeypatch):
    """init() hands a fresh run's log to the writer thread before the Run exists; a thread cycle in
    that window (a loaded machine, a slow import) used to forget the log, and then everything the run
    logged was dropped ("data for run ..., which this writer does not know") and it never finished."""
    fake = online

    class SlowRun(remote_init.Run):
        def __init__(self, *args, writer=None, **kwargs):
            writer.flush(timeout=10)  # one whole cycle of the writer's thread, right in the window
            super().__init__(*args, writer=writer, **kwargs)

    monkeypatch.setattr(remote_init, "Run", SlowRun)
    run = alerts.init(project="p")
    for step in range(5):
        alerts.log({"loss": 1.0 / (step + 1)})
    alerts.alert("still here", "after a slow init")
    alerts.finish()

    stored = fake.runs[run.id]
    assert [row["step"] for row in stored.rows] == list(range(5))
    assert [a["title"] for a in stored.alerts] == ["still here"]
    assert stored.state == "finished"


def test_run_dir_and_save_work_in_remote_mode(online, store_dir, tmp_path, caplog):
    """``wandb.run.dir`` and ``wandb.save`` are common in training scripts; in remote mode they raised
    AttributeError into the script (the remote writer had no media folder), and every finish() logged
    a traceback ("could not keep its files")."""
    run = alerts.init(project="p")
    folder = Path(run.dir)
    assert folder.is_dir() and store_dir in folder.parents  # a local folder, under ALERTS_DIR
    (folder / "notes.txt").write_text("kept locally")
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"weights")
    alerts.save(str(checkpoint), policy="now")
    alerts.log({"loss": 0.5})
    with caplog.at_level("ERROR", logger="alerts"):
        alerts.finish()
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert online.runs[run.id].state == "finished"
