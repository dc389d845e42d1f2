"""Files kept with a run: ``save()``, ``restore()``, and the run's own folder ``run.dir``.

A run's files live in ``<ALERTS_DIR>/media/<run id>/files/``, which is ``run.dir``: what a script
writes there is kept as it is, and recorded with the run (``Api().run(...).files()``) when it ends.
``save(glob)`` copies the matching files there, keeping their folders below ``base_path`` (as wandb
does): ``policy="now"`` copies now, ``"end"`` when the run ends, ``"live"`` (the default) now and
again at the end if the file changed. The copies are made by the background writer, like every
other write, never on the training loop's thread. A literal path that does not exist yet (a
checkpoint written later) is copied at the end if it exists then.
"""

from __future__ import annotations

import glob as globmod
import logging
import os
import shutil
from pathlib import Path, PurePath
from typing import Any, Optional

from alerts.sdk.media import Media
from alerts.sdk.worker import MEDIA

logger = logging.getLogger("alerts")

FILES = "files"
POLICIES = ("live", "now", "end")


def files_root(media_root: Path, run_id: str) -> Path:
    """``run.dir``: the folder of a run's files."""
    return Path(media_root) / run_id / FILES


class KeptFile(Media):
    """A file kept with the run: copied from ``source`` by the writer (or, when the script wrote it
    into ``run.dir`` itself, only recorded)."""

    kind = "file"
    suffix = ""

    def __init__(self, source: Path) -> None:
        self.source = source

    def write(self, path: Path, media_root: Path, run_id: str) -> dict:
        if self.source.resolve() != path.resolve():
            shutil.copy2(self.source, path)
        return {"size": path.stat().st_size}


class SavedFiles:
    """What ``save()`` was asked to keep at the end: ``(source, path in run.dir, policy, stamp)``."""

    def __init__(self) -> None:
        self.later: dict[str, tuple[Path, str, Optional[tuple]]] = {}  # rel path -> (source, policy, stamp copied)
        self.recorded: set[str] = set()  # rel paths with a media record


def _stamp(path: Path) -> Optional[tuple]:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


def _relative(path: PurePath, base: PurePath) -> str:
    rel = path.relative_to(base)  # a ValueError when base_path is not a prefix, as in wandb
    if ".." in rel.parts or not rel.parts:
        raise ValueError(f"cannot save {str(path)!r}: it must lie below {str(base)!r}")
    return rel.as_posix()


def save(run: Any, glob_str: Any, base_path: Any, policy: str, glob: bool) -> list[str]:
    """``run.save(...)``: see the module docstring. Returns the files' paths in ``run.dir``."""
    if policy not in POLICIES:
        raise ValueError('Only "live", "end" and "now" policies are currently supported.')
    if isinstance(glob_str, bytes):
        glob_str = glob_str.decode("utf-8")
    glob_str = os.fspath(glob_str)
    if glob_str.startswith(("gs://", "s3://")):
        from alerts.sdk.terminal import termlog

        termlog(f"{glob_str} is a cloud storage url, can't save file to the run.")
        return []
    root = Path(run.dir)
    pattern = PurePath(os.path.abspath(glob_str))
    if base_path is not None:
        base = PurePath(os.path.abspath(base_path))
    elif pattern.is_relative_to(root.resolve()) or pattern.is_relative_to(root):
        base = PurePath(root)  # a file the script wrote into run.dir: kept where it is
    elif not PurePath(glob_str).is_absolute():
        base = PurePath(os.path.abspath("."))
    else:
        base = pattern.parent.parent  # wandb keeps one folder level of an absolute path
    matches = sorted(globmod.glob(str(pattern))) if glob and globmod.has_magic(str(pattern)) else [str(pattern)]
    out = []
    for match in matches:
        source = Path(match)
        if source.is_dir():
            continue
        rel = _relative(PurePath(match), base)
        if not source.exists() and policy == "now":
            continue  # nothing to copy now, and "now" means only now
        stamp = None
        if policy in ("now", "live") and source.exists():
            _keep(run, source, rel)
            stamp = _stamp(source)
        if policy in ("live", "end"):
            run._saved.later[rel] = (source, policy, stamp)
        out.append(str(root / rel))
    return out


def _keep(run: Any, source: Path, rel: str) -> None:
    """Queue the copy of ``source`` to ``rel`` in ``run.dir``, recorded at the run's current step."""
    run._saved.recorded.add(rel)
    run._append((MEDIA, run.id, run._step, rel, KeptFile(source), f"{run.id}/{FILES}/{rel}"))


def at_finish(run: Any) -> None:
    """At ``finish()``: copy the ``"end"`` files and the ``"live"`` ones that changed, and record the
    files the script wrote into ``run.dir`` itself."""
    for rel, (source, policy, stamp) in run._saved.later.items():
        now = _stamp(source)
        if now is not None and (policy == "end" or now != stamp):
            _keep(run, source, rel)
    if run._files_dir is None and not files_root(run._writer.media_root, run.id).is_dir():
        return
    root = Path(run.dir)
    for folder, _dirs, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            rel = path.relative_to(root).as_posix()
            if rel not in run._saved.recorded and rel not in run._saved.later and path.is_file():
                _keep(run, path, rel)


def restore(name: str, run_path: str, replace: bool, root: Any, store_dir: Optional[Path] = None) -> Any:
    """``wandb.restore``: the file ``name`` saved with run ``run_path``, copied into ``root`` (unless
    it is there already and not ``replace``), opened for reading. A ``ValueError`` if the run has no
    such file."""
    from alerts.sdk.reader import Api

    api = Api(dir=str(store_dir) if store_dir else None)
    run = api.run(run_path)
    source = files_root(api.settings.media_dir(), run.id) / name
    if PurePath(name).is_absolute() or ".." in PurePath(name).parts or not source.is_file():
        raise ValueError(f"File {name} not found in {run_path}.")
    target = Path(root) / name
    if source.resolve() != target.resolve() and (replace or not target.exists()):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return open(target, "r")
