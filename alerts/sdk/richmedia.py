"""``Audio``, ``Video`` and ``Html``: media kept as files beside the database, as ``Image`` is.

- ``Audio(array, sample_rate=...)`` is written as a 16-bit PCM WAV file (floats in [-1, 1], as wandb
  reads them; a 2-D array is samples x channels); ``Audio(path)`` copies the file.
- ``Video(path)`` copies the file. ``Video(array)`` (time, channels, height, width, as in wandb) is
  kept as its frames in a ``.npy`` file with ``fps`` in its record: encoding GIF or MP4 needs moviepy,
  which this package does not require.
- ``Html(text or path or open file)`` is written as an ``.html`` file.

As with ``Image``, the data is copied when the object is made (the caller may reuse its buffers) and
the file is written by the background writer.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path
from typing import Any, Optional

from alerts.sdk.media import Media
from alerts.sdk.tensors import host_data
from alerts.store.jsoncodec import clean_text


def _as_numpy(data: Any):
    import numpy as np  # arrays need numpy; nothing else in the logger does

    return np.array(host_data(data))  # a copy


class _FileOrData(Media):
    """A media value given as a path (copied when written) or as data."""

    def __init__(self, data_or_path: Any, caption: Optional[str]) -> None:
        self.caption = caption
        self._path: Optional[Path] = None
        if isinstance(data_or_path, (str, Path)):
            self._path = Path(data_or_path)
            if not self._path.is_file():
                raise ValueError(f"{type(self).__name__}: no such file {str(self._path)!r}")
            self.suffix = self._path.suffix or self.suffix

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        meta = {"format": path.suffix.lstrip(".")}
        if self._path is not None:
            shutil.copyfile(self._path, path)
        else:
            meta.update(self._write_data(path))
        if self.caption is not None:
            meta["caption"] = self.caption
        return meta

    def _write_data(self, path: Path) -> dict:
        raise NotImplementedError


class Audio(_FileOrData):
    """A sound: a path to an audio file, or samples with ``sample_rate``, as ``wandb.Audio``."""

    kind = "audio"
    suffix = ".wav"

    def __init__(self, data_or_path: Any, sample_rate: Optional[int] = None, caption: Optional[str] = None) -> None:
        super().__init__(data_or_path, caption)
        self.sample_rate = sample_rate
        self._samples = None
        if self._path is None:
            if sample_rate is None:
                raise ValueError("Argument sample_rate is required when initializing with raw data.")
            self._samples = _as_numpy(data_or_path)
            if self._samples.ndim not in (1, 2):
                raise ValueError(f"Audio expects samples (n,) or (n, channels), got {self._samples.shape}")

    def _write_data(self, path: Path) -> dict:
        import numpy as np

        samples = self._samples
        if samples.dtype.kind == "f":
            pcm = np.clip(np.nan_to_num(samples), -1.0, 1.0) * 32767
        else:
            pcm = np.clip(samples, -32768, 32767)
        pcm = np.ascontiguousarray(pcm.astype("<i2"))
        channels = 1 if pcm.ndim == 1 else pcm.shape[1]
        with wave.open(str(path), "wb") as out:
            out.setnchannels(channels)
            out.setsampwidth(2)
            out.setframerate(int(self.sample_rate))
            out.writeframes(pcm.tobytes())
        return {"sample_rate": int(self.sample_rate), "duration": len(pcm) / float(self.sample_rate)}


class Video(_FileOrData):
    """A video: a path to a video file, or frames (time, channels, height, width), as ``wandb.Video``."""

    kind = "video"
    suffix = ".npy"

    def __init__(self, data_or_path: Any, caption: Optional[str] = None, fps: Optional[int] = None,
                 format: Optional[str] = None) -> None:
        super().__init__(data_or_path, caption)
        self.fps = fps if fps is not None else 4  # wandb's default
        self._frames = None
        if self._path is None:
            frames = _as_numpy(data_or_path)
            if frames.ndim not in (4, 5):
                raise ValueError(f"Video expects frames (time, channels, height, width), got {frames.shape}")
            self._frames = frames

    def _write_data(self, path: Path) -> dict:
        import numpy as np

        with open(path, "wb") as out:
            np.save(out, self._frames)
        return {"fps": self.fps, "shape": list(self._frames.shape), "format": "npy"}


class Html(Media):
    """HTML text, a path to an ``.html`` file, or an open file, as ``wandb.Html``."""

    kind = "html"
    suffix = ".html"

    def __init__(self, data: Any, inject: bool = True, data_is_not_path: bool = False) -> None:
        if hasattr(data, "read"):
            text = data.read()
        elif (not data_is_not_path and isinstance(data, (str, Path)) and str(data).lower().endswith((".html", ".htm"))
              and Path(data).is_file()):
            text = Path(data).read_text(encoding="utf-8")
        elif isinstance(data, str):
            text = data
        else:
            raise ValueError("Html expects a string of HTML, a path to an .html file or an open file")
        self.html = text if isinstance(text, str) else text.decode("utf-8", errors="replace")

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        try:
            data = self.html.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (text cut from a tokenizer): U+FFFD, not a lost file
            data = clean_text(self.html).encode("utf-8")
        path.write_bytes(data)
        return {"format": "html", "size": len(self.html)}
