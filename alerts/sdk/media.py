"""``Table`` and ``Image``: rich values logged with a run, written as files beside the database.

Creating one is cheap and happens on the caller's thread; encoding (PNG, JSON) and writing the file
happen on the background writer, like every other write.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from alerts.sdk.convert import plain_cell
from alerts.sdk.tensors import host_data


class Media:
    """Base of the values that are stored as files."""

    _is_media = True
    kind = "media"
    suffix = ".bin"

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        """Write the file at ``path``; return metadata for the media record."""
        raise NotImplementedError

    def snapshot(self) -> "Media":
        """What was logged, frozen: the file is written later, and the caller may change the object."""
        return self

    def placeholder(self, relpath: str) -> dict:
        """What the history row holds in place of the value."""
        return {"_type": f"{self.kind}-file", "path": relpath}


# The longest key fragment in a file name: the step, a counter and a suffix follow, and most file
# systems refuse names over 255 bytes.
MAX_NAME = 100


def safe_name(key: str) -> str:
    """A key as a file-name fragment: letters, digits, ``_ . -`` only (no ``/``, no leading dot),
    at most ``MAX_NAME`` characters; the file name adds a counter, so two keys never share a file."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key).strip("._")[:MAX_NAME] or "media"


def media_path(media_root: Path, relpath: str) -> Path:
    """The absolute path of the media file ``relpath``, which must resolve inside ``media_root``
    (a ``ValueError`` otherwise): whatever a run id, a key or a symbolic link says, nothing is written
    outside the store's media folder."""
    root = media_root.resolve()
    path = (root / relpath).resolve()
    if path == root or not path.is_relative_to(root):
        raise ValueError(f"media path {relpath!r} is outside the media folder {str(root)!r}")
    return path


# -- Image -------------------------------------------------------------------------------------------


def _to_uint8_hwc(data: Any):
    import numpy as np  # Images need numpy; nothing else in the logger does.

    array = np.asarray(host_data(data))  # a torch tensor, perhaps on a GPU, perhaps bfloat16
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = np.transpose(array, (1, 2, 0))  # channels first (torch) -> channels last
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise ValueError(f"Image expects HxW, HxWx3 or HxWx4 pixels (or channels first), got {array.shape}")
    if array.dtype != np.uint8:
        array = np.nan_to_num(array.astype(np.float64))
        if array.size and array.min() >= 0 and array.max() <= 1.0:
            array = array * 255.0  # floats in [0, 1], as wandb reads them
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def encode_png(pixels) -> bytes:
    """A PNG file of an HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA) uint8 array."""
    height, width = pixels.shape[:2]
    colour_type = 0 if pixels.ndim == 2 else (2 if pixels.shape[2] == 3 else 6)  # grey, RGB, RGBA
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


class Image(Media):
    """An image: a numpy array, a tensor, a PIL image or a path to an image file.

    ``wandb.Image(img.numpy() * 255)`` works as in wandb: floats are rounded and clipped to 0..255,
    floats all within [0, 1] are scaled by 255, channels-first arrays are transposed.
    """

    kind = "image"
    suffix = ".png"

    def __init__(self, data_or_path: Any, mode: Optional[str] = None, caption: Optional[str] = None, **_ignored: Any):
        self.caption = caption
        self._path: Optional[Path] = None
        self._pil = None
        self._pixels = None
        if isinstance(data_or_path, (str, Path)):
            self._path = Path(data_or_path)
            if not self._path.is_file():
                raise ValueError(f"Image: no such file {str(self._path)!r}")
            self.suffix = self._path.suffix or ".png"
        elif hasattr(data_or_path, "save") and hasattr(data_or_path, "size") and not hasattr(data_or_path, "shape"):
            self._pil = data_or_path  # a PIL image
        else:
            self._pixels = _to_uint8_hwc(data_or_path)  # copied now: the caller may reuse its buffer

    @property
    def shape(self) -> tuple:
        if self._pixels is not None:
            return tuple(self._pixels.shape)
        if self._pil is not None:
            return (self._pil.size[1], self._pil.size[0])
        return ()

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        if self._path is not None:
            path.write_bytes(self._path.read_bytes())
        elif self._pil is not None:
            self._pil.save(path, format="PNG")
        else:
            path.write_bytes(encode_png(self._pixels))
        meta = {"format": path.suffix.lstrip(".")}
        if self._pixels is not None:
            meta.update(height=int(self._pixels.shape[0]), width=int(self._pixels.shape[1]))
        if self.caption is not None:
            meta["caption"] = self.caption
        return meta


# -- Table -------------------------------------------------------------------------------------------


class Table(Media):
    """Rows of values (numbers, strings, ``Image``\\ s), as ``wandb.Table``."""

    kind = "table"
    suffix = ".table.json"

    def __init__(
        self,
        columns: Optional[Sequence[str]] = None,
        data: Optional[Iterable[Sequence[Any]]] = None,
        rows: Optional[Iterable[Sequence[Any]]] = None,
        dataframe: Any = None,
        **_ignored: Any,
    ) -> None:
        if dataframe is not None:
            columns = [str(c) for c in dataframe.columns]
            data = dataframe.itertuples(index=False)
        data = data if data is not None else rows
        self.data: list[list[Any]] = []
        rows_in = [list(row) for row in data] if data is not None else []
        if columns is None:
            width = len(rows_in[0]) if rows_in else 2
            columns = ["Input", "Output", "Expected"][:width] if width <= 3 else [f"col{i}" for i in range(width)]
        self.columns: list[str] = [str(c) for c in columns]
        for row in rows_in:
            self.add_data(*row)

    def add_data(self, *values: Any) -> None:
        """Append one row; it must have one value per column."""
        if len(values) != len(self.columns):
            raise ValueError(f"Table.add_data: expected {len(self.columns)} values, got {len(values)}")
        self.data.append([plain_cell(v) for v in values])

    def add_column(self, name: str, data: Sequence[Any]) -> None:
        """Append a column; it must have one value per row."""
        if len(data) != len(self.data):
            raise ValueError(f"Table.add_column: expected {len(self.data)} values, got {len(data)}")
        self.columns.append(str(name))
        for row, value in zip(self.data, data):
            row.append(plain_cell(value))

    def snapshot(self) -> "Table":
        copy = Table.__new__(Table)
        copy.columns = list(self.columns)
        copy.data = [list(row) for row in self.data]
        return copy

    def get_column(self, name: str) -> list[Any]:
        """The values of one column."""
        index = self.columns.index(name)
        return [row[index] for row in self.data]

    def placeholder(self, relpath: str) -> dict:
        return {"_type": "table-file", "path": relpath, "nrows": len(self.data), "ncols": len(self.columns)}

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        cells = []
        for row_index, row in enumerate(self.data):
            out_row = []
            for col_index, value in enumerate(row):
                if getattr(value, "_is_media", False):
                    name = f"{path.name.removesuffix(self.suffix)}_r{row_index}c{col_index}{value.suffix}"
                    relpath = str((path.parent / name).relative_to(media_root.resolve()))
                    cell_path = media_path(media_root, relpath)
                    meta = value.write(cell_path, media_root, run_id)
                    value = {**value.placeholder(relpath), **meta}
                out_row.append(value)
            cells.append(out_row)
        payload = {"_type": "table", "columns": self.columns, "data": cells}
        path.write_text(json.dumps(payload, default=str), encoding="utf-8")
        return {"nrows": len(self.data), "ncols": len(self.columns)}
