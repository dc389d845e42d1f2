"""The spool: what a remote run sent (or meant to send) that the server has not acknowledged, on disk.

While the server is unreachable, the remote writer appends each request to its run's spool instead of
sending it, and replays the spool in order once the server is back. One folder per run::

    ALERTS_DIR/spool/<run id>/
        .lock                           flock()ed by the one process writing or replaying this folder
        run.json                        {"run_id", "server", "key_id", "offset"}
        000000000001.create.0.json      the items, in the order they must reach the server:
        000000000002.batch.1500.json    <index>.<kind>.<history rows>.json
        000000000003.finish.0.json

A batch's seq is ``index + offset``: ``offset`` is the run's ``last_seq`` when this log began (what
the server said when the run was created or resumed), so a run resumed by a later process numbers
its batches after everything stored before, and a replay of a batch the server stored already is
answered ``stored=false``. Until the offset is known (the run's create is itself in the spool), no
batch of the run is sent. ``key_id`` is a fingerprint of the API key (never the key): another
process replays a folder only for the same server and key.

Every file is written whole and fsync'd (temporary name, fsync, rename, fsync of the folder), so a
crash leaves either the old state or the new one. A folder is locked by its writer for as long as it
exists, and made under a temporary name with its lock already held, so a replaying process never
sees a folder before its owner holds it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterator, Optional

CREATE, BATCH, FINISH = "create", "batch", "finish"
META = "run.json"
LOCK = ".lock"


class Item:
    """One request waiting for the server: a run's create, a batch, or its finish.

    ``body`` is the JSON to send (a batch's without its seq); None while it is on disk and not read.
    """

    __slots__ = ("index", "kind", "body", "rows", "alerts", "on_disk")

    def __init__(self, index: int, kind: str, body: Optional[bytes], rows: int = 0, alerts: int = 0,
                 on_disk: bool = False) -> None:
        self.index = index
        self.kind = kind
        self.body = body
        self.rows = rows
        self.alerts = alerts
        self.on_disk = on_disk

    @property
    def file_name(self) -> str:
        return f"{self.index:012d}.{self.kind}.{self.rows}.json"

    def __repr__(self) -> str:
        return f"<Item {self.index} {self.kind} rows={self.rows}{' on disk' if self.on_disk else ''}>"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(folder: Path, name: str, data: bytes) -> None:
    """Write ``folder/name`` whole: a temporary file, fsync, rename, fsync of the folder."""
    tmp = folder / f".tmp-{name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, folder / name)
    _fsync_dir(folder)


class RunSpool:
    """One run's spool folder, locked by this process for as long as it holds the object."""

    def __init__(self, folder: Path, lock_fd: int, meta: dict) -> None:
        self.folder = folder
        self._lock_fd = lock_fd
        self.meta = meta
        self.size = sum(p.stat().st_size for p in folder.iterdir() if p.name[0].isdigit())

    @property
    def run_id(self) -> str:
        return self.meta["run_id"]

    @property
    def offset(self) -> Optional[int]:
        return self.meta.get("offset")

    @classmethod
    def create(cls, root: Path, run_id: str, meta: dict) -> "RunSpool":
        """Make ``root/run_id`` with its lock held (raises FileExistsError if the folder exists)."""
        root.mkdir(parents=True, exist_ok=True)
        final = root / run_id
        if final.exists():
            raise FileExistsError(final)
        tmp = root / f".new-{run_id}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(mode=0o700)
        fd = os.open(tmp / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh file: nobody else can hold it
        write_file(tmp, META, json.dumps(meta).encode())
        try:
            os.rename(tmp, final)  # fails if another process made the folder meanwhile
        except OSError:
            os.close(fd)
            shutil.rmtree(tmp, ignore_errors=True)
            raise FileExistsError(final) from None
        _fsync_dir(root)
        return cls(final, fd, meta)

    @classmethod
    def claim(cls, root: Path, run_id: str) -> Optional["RunSpool"]:
        """Lock the existing folder ``root/run_id``; None if it is gone, locked by another process,
        or not a spool this code can read."""
        folder = root / run_id
        try:
            fd = os.open(folder / LOCK, os.O_RDWR)  # never created here: a removed folder stays removed
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            meta = json.loads((folder / META).read_text())
            if not isinstance(meta, dict) or meta.get("run_id") != run_id:
                raise ValueError("not a spool")
            return cls(folder, fd, meta)
        except (OSError, ValueError):
            os.close(fd)
            return None

    def set_offset(self, offset: int) -> None:
        """Record the run's seq base (once: batches on disk are numbered with it)."""
        if self.meta.get("offset") is None:
            self.meta["offset"] = offset
            write_file(self.folder, META, json.dumps(self.meta).encode())

    def items(self) -> list[Item]:
        """The items on disk, oldest first (bodies not read). Leftover temporary files are removed."""
        found = []
        for path in self.folder.iterdir():
            name = path.name
            if name.startswith(".tmp-"):
                path.unlink(missing_ok=True)
                continue
            parts = name.split(".")
            if len(parts) != 4 or not parts[0].isdigit() or parts[1] not in (CREATE, BATCH, FINISH):
                continue
            found.append(Item(int(parts[0]), parts[1], None, rows=int(parts[2]), on_disk=True))
        found.sort(key=lambda item: item.index)
        return found

    def write(self, item: Item) -> None:
        """Put ``item`` on disk (its body must be in memory)."""
        assert item.body is not None
        write_file(self.folder, item.file_name, item.body)
        self.size += len(item.body)
        item.on_disk = True

    def read(self, item: Item) -> bytes:
        return (self.folder / item.file_name).read_bytes()

    def remove(self, item: Item) -> None:
        path = self.folder / item.file_name
        try:
            self.size -= path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            pass
        item.on_disk = False

    def replace(self, old: Item, new: Item) -> None:
        """Put ``new`` (same index) in place of ``old`` on disk, as one step for a reader."""
        self.write(new)
        if old.file_name != new.file_name:
            self.remove(old)

    def release(self, remove: bool) -> None:
        """Unlock; with ``remove``, delete the folder first (while still holding the lock)."""
        if remove:
            for path in self.folder.iterdir():
                if path.name != LOCK:
                    path.unlink(missing_ok=True)
            (self.folder / LOCK).unlink(missing_ok=True)
            try:
                self.folder.rmdir()
            except OSError:  # something appeared meanwhile: leave it for a later replay
                pass
        os.close(self._lock_fd)
        self._lock_fd = -1


def folders(root: Path) -> Iterator[str]:
    """The run ids that have a spool folder under ``root``."""
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return
    for name in names:
        if not name.startswith(".") and (root / name / META).exists():
            yield name
