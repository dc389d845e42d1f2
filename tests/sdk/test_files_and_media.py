"""Files kept with a run (save, restore, run.dir), histograms, arrays, media lists and the media
file types, each read back from the store as a user would."""

from __future__ import annotations

import json
import os
import wave

import numpy as np
import pytest
import torch

import alerts as wandb


def history(run_id):
    return wandb.Api().run(run_id).history(pandas=False)


def test_save_keeps_files_by_policy_with_their_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "a.txt").write_text("a0")
    (tmp_path / "ckpt" / "b.txt").write_text("b0")
    (tmp_path / "end.txt").write_text("end0")
    run = wandb.init(project="files")
    saved = wandb.save("ckpt/*.txt")  # live: copied now, and again at the end if changed
    assert saved == [os.path.join(run.dir, "ckpt", "a.txt"), os.path.join(run.dir, "ckpt", "b.txt")]
    wandb.save("end.txt", policy="end")
    wandb.save("later.bin", policy="live")  # written after the call: kept at the end
    run.save(str(tmp_path / "ckpt" / "a.txt"), base_path=str(tmp_path), policy="now")
    assert run.save() is True  # the old no-argument form
    run._writer.flush()
    (tmp_path / "ckpt" / "a.txt").write_text("a1")  # changed after the first copy
    (tmp_path / "end.txt").write_text("end1")
    (tmp_path / "later.bin").write_bytes(b"\x00\x01")
    with open(os.path.join(run.dir, "notes.md"), "w") as handle:  # written into run.dir by the script
        handle.write("kept")
    wandb.finish()

    kept = {f["name"]: open(f["file"], "rb").read() for f in wandb.Api().run(run.id).files()}
    assert kept == {"ckpt/a.txt": b"a1", "ckpt/b.txt": b"b0", "end.txt": b"end1", "later.bin": b"\x00\x01",
                    "notes.md": b"kept"}


def test_save_refuses_paths_outside_base_and_bad_policies(tmp_path):
    run = wandb.init(project="files")
    with pytest.raises(ValueError):
        run.save(str(tmp_path / "x.txt"), base_path=str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="policies"):
        run.save("x.txt", policy="sometimes")
    wandb.finish()


def test_restore_opens_a_saved_file_of_another_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.yaml").write_text("lr: 0.1\n")
    first = wandb.init(project="files")
    wandb.save("config.yaml", policy="now")
    wandb.finish()
    wandb.init(project="files")
    with wandb.restore("config.yaml", run_path=f"files/{first.id}", root=str(tmp_path / "restored")) as handle:
        assert handle.read() == "lr: 0.1\n"
    with pytest.raises(ValueError, match="not found"):
        wandb.restore("missing.txt", run_path=first.id)
    wandb.finish()


def test_histograms_arrays_and_tensors_are_stored_as_wandb_stores_them():
    run = wandb.init(project="media")
    values = np.arange(100, dtype=np.float32)
    wandb.log({
        "hist": wandb.Histogram(values, num_bins=10),
        "precomputed": wandb.Histogram(np_histogram=np.histogram([1, 2, 2, 3], bins=3)),
        "big_array": values,  # more than 32 elements: a 32-bin histogram
        "small_array": np.array([[1, 2], [3, 4]]),  # 32 or fewer: a list
        "grad": torch.ones(3, 3),
        "with_nan": np.array([1.0, np.nan] * 20),  # histograms count the finite values
    })
    wandb.finish()
    (row,) = history(run.id)
    assert row["hist"]["_type"] == "histogram" and sum(row["hist"]["values"]) == 100
    assert len(row["hist"]["bins"]) == 11 and row["hist"]["bins"][0] == 0 and row["hist"]["bins"][-1] == 99
    assert row["precomputed"]["values"] == [1, 2, 1]
    assert row["big_array"]["_type"] == "histogram" and len(row["big_array"]["values"]) == 32
    assert sum(row["big_array"]["values"]) == 100
    assert row["small_array"] == [[1, 2], [3, 4]]
    assert row["grad"] == [[1.0] * 3] * 3
    assert sum(row["with_nan"]["values"]) == 20
    with pytest.raises(ValueError, match="maximum length"):
        wandb.Histogram(values, num_bins=513)


def test_a_list_of_images_keeps_every_image_at_its_rows_step():
    run = wandb.init(project="media")
    wandb.log({"loss": 1.0})
    images = [wandb.Image(np.full((4, 4), i * 60, dtype=np.uint8), caption=f"c{i}") for i in range(3)]
    wandb.log({"examples": images, "loss": 0.5})
    wandb.finish()
    rows = history(run.id)
    assert rows[1]["examples"]["_type"] == "image-files" and rows[1]["examples"]["count"] == 3
    media = wandb.Api().run(run.id).media()
    assert [m["key"] for m in media] == ["examples"] * 3
    assert {m["step"] for m in media} == {rows[1]["_step"]}
    assert [m["meta"]["caption"] for m in media] == ["c0", "c1", "c2"]
    assert [m["path"] for m in media] == rows[1]["examples"]["paths"]
    assert all(open(m["file"], "rb").read(8) == b"\x89PNG\r\n\x1a\n" for m in media)


def test_media_logged_with_an_explicit_step_is_recorded_at_that_step():
    run = wandb.init(project="media")
    wandb.log({"loss": 1.0}, step=0)
    wandb.log({"img": wandb.Image(np.zeros((2, 2), dtype=np.uint8)), "loss": 0.5}, step=5)
    wandb.log({"table": wandb.Table(columns=["a"], data=[[1]])}, step=7, commit=True)
    wandb.finish()
    rows = {row["_step"]: row for row in history(run.id)}
    media = {m["key"]: m for m in wandb.Api().run(run.id).media()}
    assert media["img"]["step"] == 5 and "img" in rows[5]
    assert media["table"]["step"] == 7 and "table" in rows[7]
    assert rows[5]["img"]["path"] == media["img"]["path"]


def test_audio_video_and_html_are_kept_as_files(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<b>from a file</b>")
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"not really a video")
    run = wandb.init(project="media")
    tone = np.sin(np.linspace(0, 2 * np.pi * 440, 8000)).astype(np.float32)
    wandb.log({
        "audio": wandb.Audio(tone, sample_rate=8000, caption="A4"),
        "frames": wandb.Video(np.zeros((5, 3, 8, 8), dtype=np.uint8), fps=10),
        "clip": wandb.Video(str(clip)),
        "html": wandb.Html("<p>hi</p>"),
        "html_file": wandb.Html(str(page)),
    })
    wandb.finish()
    media = {m["key"]: m for m in wandb.Api().run(run.id).media()}
    with wave.open(media["audio"]["file"]) as sound:
        assert (sound.getframerate(), sound.getnframes(), sound.getsampwidth()) == (8000, 8000, 2)
    assert media["audio"]["meta"]["caption"] == "A4" and media["audio"]["kind"] == "audio"
    assert np.load(media["frames"]["file"]).shape == (5, 3, 8, 8) and media["frames"]["meta"]["fps"] == 10
    assert open(media["clip"]["file"], "rb").read() == b"not really a video"
    assert open(media["html"]["file"]).read() == "<p>hi</p>"
    assert open(media["html_file"]["file"]).read() == "<b>from a file</b>"
    with pytest.raises(ValueError, match="sample_rate"):
        wandb.Audio(tone)


def test_unsupported_media_is_skipped_with_a_warning_and_the_row_kept():
    run = wandb.init(project="media")
    with pytest.warns(wandb.AlertsWarning, match="Object3D"):
        point_cloud = wandb.Object3D(np.zeros((3, 3)))
    with pytest.warns(wandb.AlertsWarning, match="'cloud'.*not stored"):
        wandb.log({"cloud": point_cloud, "loss": 0.1})
    wandb.finish()
    (row,) = history(run.id)
    assert row["loss"] == 0.1 and "cloud" not in row


def test_table_added_to_an_artifact_reads_back(tmp_path):
    table = wandb.Table(columns=["x", "y"], data=[[1, "a"], [2, "b"]])
    wandb.init(project="media")
    artifact = wandb.Artifact("samples", type="dataset")
    artifact.add(table, "preds")
    wandb.log_artifact(artifact)
    wandb.finish()
    stored = wandb.Api().artifact("media/samples:v0")
    assert stored.get("preds").data == [[1, "a"], [2, "b"]]
    assert json.loads(open(os.path.join(stored.download(), "preds.table.json")).read())["columns"] == ["x", "y"]
