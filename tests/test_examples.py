"""The scripts in examples/ run with ``import alerts as wandb`` and their runs read back."""

from __future__ import annotations

import subprocess
import sys

import alerts as wandb
from conftest import REPO


def run_example(name: str, *args: str, env=None, store_dir=None) -> subprocess.CompletedProcess:
    import os

    child_env = {**os.environ, "ALERTS_DIR": str(store_dir), **(env or {})}
    result = subprocess.run([sys.executable, str(REPO / "examples" / name), *args], capture_output=True,
                            text=True, timeout=600, env=child_env)
    assert result.returncode == 0, result.stderr
    return result


def test_simulated_runs(store_dir):
    run_example("simulated_runs.py", store_dir=store_dir)
    runs = wandb.Api().runs("basic-intro")
    assert [r.name for r in runs] == [f"experiment_{i}" for i in range(5)]
    assert all(r.state == "finished" and len(r.history(pandas=False)) == 8 for r in runs)
    assert runs[0].config["dataset"] == "CIFAR-100"


def test_accuracy_alert_raises_one_alert_with_korean_text(store_dir):
    result = run_example("accuracy_alert.py", env={"EXAMPLE_SEED": "1"}, store_dir=store_dir)
    assert "Alert triggered" in result.stdout
    (run,) = wandb.Api().runs("pytorch-intro")
    (record,) = run.alerts()
    assert record["title"] == "낮은 정확도" and record["outcome"] == "notified" and record["level"] == "INFO"
    assert record["wait_duration"] == 60.0
    assert "alerts: [INFO] 낮은 정확도: 정확도" in result.stderr
    history = run.history(pandas=False)
    assert history[-1]["Accuracy"] <= 0.3 and all(r["Accuracy"] > 0.3 for r in history[:-1])
    assert run.state == "finished"


def test_pytorch_classifier_logs_tensors_table_and_summary(store_dir):
    run_example("pytorch_classifier.py", "--runs", "2", "--epochs", "2", "--train-size", "512",
                store_dir=store_dir)
    runs = wandb.Api().runs("pytorch-intro")
    assert len(runs) == 2
    for run in runs:
        assert run.state == "finished"
        assert set(run.config) == {"epochs", "batch_size", "lr", "dropout"}
        history = run.history(pandas=False)
        train_rows = [r for r in history if "train/train_loss" in r]
        assert train_rows and all(isinstance(r["train/train_loss"], float) for r in train_rows)
        val_rows = [r for r in history if "val/val_accuracy" in r]
        assert len(val_rows) == 2 and isinstance(val_rows[-1]["val/val_loss"], float)
        assert val_rows[-1]["predictions_table"]["_type"] == "table-file"  # commit=False joined the next row
        table = run.load_table("predictions_table")
        assert len(table["columns"]) == 13 and len(table["data"]) == 256
        assert run.summary["test_accuracy"] == 0.8
