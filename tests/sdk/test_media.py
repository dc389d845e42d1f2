"""``Table`` and ``Image``: logged as files beside the database, readable back."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import alerts as wandb
from alerts.sdk.media import encode_png


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, colour type, raw scanlines) of a PNG written by encode_png."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(tag + body) & 0xFFFFFFFF
        chunks.setdefault(tag, b"")
        chunks[tag] += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 8
    return width, height, colour, zlib.decompress(chunks[b"IDAT"])


@pytest.mark.parametrize("shape, colour, channels", [((28, 28), 0, 1), ((5, 7, 3), 2, 3), ((5, 7, 4), 6, 4)])
def test_png_round_trip(shape, colour, channels):
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    width, height, got_colour, raw = decode_png(encode_png(pixels))
    assert (height, width, got_colour) == (shape[0], shape[1], colour)
    stride = 1 + width * channels
    rows = [raw[i * stride + 1:(i + 1) * stride] for i in range(height)]
    assert b"".join(rows) == pixels.tobytes()


def test_image_scales_clips_and_transposes_like_wandb():
    assert wandb.Image(np.full((2, 2), 0.5)).shape == (2, 2)  # floats in [0,1] are scaled by 255
    assert int(wandb.Image(np.full((2, 2), 0.5))._pixels[0, 0]) == 128
    assert int(wandb.Image(np.full((2, 2), 300.0))._pixels[0, 0]) == 255
    assert wandb.Image(torch.zeros(3, 4, 5)).shape == (4, 5, 3)  # channels first -> last
    assert wandb.Image(torch.zeros(1, 4, 5)).shape == (4, 5)
    with pytest.raises(ValueError, match="HxW"):
        wandb.Image(np.zeros((2, 2, 2, 2)))


def test_the_tutorials_predictions_table_is_stored_and_read_back(store_dir):
    run = wandb.init(project="pytorch-intro")
    images = torch.rand(4, 1, 28, 28)
    predicted = torch.tensor([1, 2, 3, 4])
    labels = torch.tensor([1, 2, 0, 4])
    probs = torch.rand(4, 10).softmax(dim=1)
    table = wandb.Table(columns=["image", "pred", "target"] + [f"score_{i}" for i in range(10)])
    for img, pred, targ, prob in zip(images, predicted, labels, probs):
        table.add_data(wandb.Image(img[0].numpy() * 255), pred, targ, *prob.numpy())
    wandb.log({"predictions_table": table}, commit=False)
    wandb.log({"val/val_accuracy": 0.75})
    wandb.finish()

    stored = wandb.Api().run(run.id)
    (row,) = stored.history(pandas=False)
    assert row["val/val_accuracy"] == 0.75
    assert row["predictions_table"]["_type"] == "table-file"
    assert (row["predictions_table"]["nrows"], row["predictions_table"]["ncols"]) == (4, 13)
    loaded = stored.load_table("predictions_table")
    assert loaded["columns"][:3] == ["image", "pred", "target"]
    assert [r[1] for r in loaded["data"]] == [1, 2, 3, 4] and [r[2] for r in loaded["data"]] == [1, 2, 0, 4]
    assert loaded["data"][0][3] == pytest.approx(float(probs[0, 0]))
    image_cell = loaded["data"][0][0]
    assert image_cell["_type"] == "image-file" and (image_cell["width"], image_cell["height"]) == (28, 28)
    png = (store_dir / "media" / image_cell["path"]).read_bytes()
    width, height, colour, _ = decode_png(png)
    assert (width, height, colour) == (28, 28, 0)


def test_image_logged_directly(store_dir, tmp_path):
    run = wandb.init(project="p")
    wandb.log({"sample": wandb.Image(np.zeros((8, 8, 3), dtype=np.uint8), caption="zeros")})
    wandb.finish()
    (media,) = wandb.Api().run(run.id).media()
    assert media["kind"] == "image" and media["key"] == "sample" and media["meta"]["caption"] == "zeros"
    assert Path(media["file"]).read_bytes().startswith(b"\x89PNG")


def test_table_checks_row_width():
    table = wandb.Table(columns=["a", "b"])
    with pytest.raises(ValueError, match="expected 2 values, got 3"):
        table.add_data(1, 2, 3)
    table.add_data(np.float32(1.5), torch.tensor(2))
    assert table.data == [[1.5, 2]]
    table.add_column("c", ["x"])
    assert table.get_column("c") == ["x"]


def test_tables_under_a_dotted_key_keep_their_own_images(store_dir):
    run = wandb.init(project="p")
    for step in range(3):
        table = wandb.Table(columns=["image"])
        table.add_data(wandb.Image(np.full((4, 4), step * 60, dtype=np.uint8)))
        wandb.log({"eval.preds": table})
    wandb.finish()
    stored = wandb.Api().run(run.id)
    tables = [m for m in stored.media() if m["kind"] == "table"]
    cells = [json_cell(Path(t["file"])) for t in tables]
    assert len({c["path"] for c in cells}) == 3  # one image file per table, none overwritten
    pixels = {decode_png((store_dir / "media" / c["path"]).read_bytes())[3][1] for c in cells}
    assert pixels == {0, 60, 120}


def json_cell(path: Path) -> dict:
    import json

    return json.loads(path.read_text())["data"][0][0]


def test_a_table_changed_after_log_is_stored_as_it_was_logged():
    run = wandb.init(project="p")
    table = wandb.Table(columns=["a"])
    table.add_data(1)
    wandb.log({"t": table})
    for i in range(5):
        table.add_data(i)  # the script goes on using its table
    wandb.finish()
    assert wandb.Api().run(run.id).load_table("t")["data"] == [[1]]


def test_a_script_that_changes_directory_keeps_its_files_in_the_store(tmp_path, monkeypatch):
    monkeypatch.setenv("ALERTS_DIR", "relative-store")
    monkeypatch.chdir(tmp_path)
    run = wandb.init(project="p")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    wandb.log({"img": wandb.Image(np.zeros((2, 2), dtype=np.uint8))})
    wandb.finish()
    monkeypatch.chdir(tmp_path)
    (media,) = wandb.Api().run(run.id).media()
    assert Path(media["file"]).exists() and str(tmp_path / "relative-store") in media["file"]
    assert not (elsewhere / "relative-store").exists()
