"""Artifacts: versions, aliases, files and the runs that logged and used them, read back from the store."""

from __future__ import annotations

import os

import pytest

import alerts as wandb


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_versions_count_up_per_name_and_the_same_files_are_the_same_version(tmp_path):
    model = write(tmp_path / "model.pt", "weights-1")
    producer = wandb.init(project="arts")
    first = wandb.Artifact("model", type="model", metadata={"acc": 0.5}, description="first")
    first.add_file(str(model))
    wandb.log_artifact(first, aliases=["best"])
    assert first.version == "v0" and first.name == "model:v0"
    model.write_text("weights-2")  # overwritten after add_file: v0 keeps what was added
    again = wandb.Artifact("model", type="model")
    again.add_file(str(write(tmp_path / "copy" / "model.pt", "weights-1")))
    wandb.log_artifact(again)
    assert again.version == "v0"  # the same files: the same version, as in wandb
    second = wandb.Artifact("model", type="model")
    second.add_file(str(model))
    producer.log_artifact(second, aliases=["best", "candidate"])
    assert second.version == "v1"
    wandb.finish()

    consumer = wandb.init(project="arts")
    latest = wandb.use_artifact("model:latest")
    assert latest.version == "v1" and sorted(latest.aliases) == ["best", "candidate"]
    assert open(os.path.join(latest.download(), "model.pt")).read() == "weights-2"
    v0 = consumer.use_artifact("model:v0", type="model")
    assert open(v0.file()).read() == "weights-1"
    assert v0.metadata == {"acc": 0.5} and v0.description == "first" and v0.aliases == []  # "best" moved to v1
    assert consumer.use_artifact("arts/model:best").version == "v1"
    copied = v0.download(root=str(tmp_path / "out"))
    assert open(os.path.join(copied, "model.pt")).read() == "weights-1"
    with pytest.raises(wandb.CommError):
        consumer.use_artifact("model:v7")
    with pytest.raises(ValueError, match="type"):
        consumer.use_artifact("model:v0", type="dataset")
    wandb.finish()

    api = wandb.Api()
    assert [a.name for a in api.run(producer.id).logged_artifacts()] == ["model:v0", "model:v1"]
    assert [a.name for a in api.run(consumer.id).used_artifacts()] == ["model:v1", "model:v0"]
    assert api.artifact("arts/model:v1").logged_by_run_id == producer.id


def test_directories_new_files_references_and_paths(tmp_path):
    write(tmp_path / "data" / "train.csv", "a,b\n")
    write(tmp_path / "data" / "sub" / "test.csv", "c,d\n")
    run = wandb.init(project="arts")
    dataset = wandb.Artifact("dataset", type="dataset")
    dataset.add_dir(str(tmp_path / "data"), name="raw")
    with dataset.new_file("README.txt") as handle:
        handle.write("made in the run")
    dataset.add_reference("s3://bucket/big.bin")
    run.log_artifact(dataset)
    folder = dataset.download()
    assert sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs) == [
        "README.txt", "raw/sub/test.csv", "raw/train.csv"]
    assert dataset.get_entry("big.bin").ref == "s3://bucket/big.bin"
    dataset.verify()
    logged = wandb.log_artifact(str(tmp_path / "data" / "train.csv"), name="train", type="dataset")
    assert logged.version == "v0" and logged.type == "dataset"
    model = wandb.log_model(str(tmp_path / "data"), name="tiny-model")
    assert model.type == "model"
    assert os.path.isfile(os.path.join(wandb.use_model("tiny-model:latest"), "train.csv"))
    code = run.log_code(str(tmp_path), include_fn=lambda path, root: path.endswith(".csv"))
    assert sorted(e.path for e in code.files()) == ["data/sub/test.csv", "data/train.csv"]
    with pytest.raises(ValueError, match="not a file"):
        dataset_2 = wandb.Artifact("dataset", type="dataset")
        dataset_2.add_file(str(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="invalid"):
        wandb.Artifact("a/b", type="x")
    wandb.finish()


def test_an_artifact_that_cannot_be_stored_leaves_the_run_going(tmp_path, store_dir):
    run = wandb.init(project="arts")
    (store_dir / "artifacts").write_text("a file where the artifacts folder should be")  # a real failure
    artifact = wandb.Artifact("x", type="t")
    artifact.add_file(str(write(tmp_path / "f.txt", "x")))
    assert wandb.log_artifact(artifact).state == "PENDING"
    wandb.log({"loss": 1.0})
    wandb.finish()
    assert wandb.Api().run(run.id).state == "finished"
