"""``Artifact``, ``log_artifact`` and ``use_artifact``: versioned files stored with the runs that made
and used them, as wandb's artifacts are.

An ``Artifact`` gathers files (``add_file``, ``add_dir``, ``new_file``, ``add`` for a ``Table``) and
references (``add_reference``: the URI is recorded, nothing is fetched). ``add_file`` copies the file
at once into a staging folder, as wandb's default ``policy="mutable"`` does, so a checkpoint
overwritten after the call is kept as it was.

``run.log_artifact(artifact)`` stores it as the next version (``v0``, ``v1``, ...) of its name in the
run's project, unless the same files were logged under that name before (then it is that version):
the files go to ``ALERTS_DIR/artifacts/<project>/<name>/<digest>/``, the version, type, metadata,
aliases and file list to the store's ``artifacts`` table. This happens before ``log_artifact``
returns (the files are moved or copied then, as wandb hashes them then); if the store cannot take
it, a warning is logged and the training goes on with the artifact unlogged.

``run.use_artifact("name:v1" | "name:latest" | "name:alias" | "project/name:...")`` returns the stored
version, recorded as used by the run; ``artifact.download()`` is its folder (copied to ``root`` if
given). A name that is not stored raises :class:`~alerts.errors.CommError`, as wandb's lookup does,
so that ``except wandb.CommError`` fallbacks run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Optional, Sequence

from alerts import clock as _clock
from alerts.errors import CommError, UsageError
from alerts.store import artifacts as stored
from alerts.store import jsoncodec

logger = logging.getLogger("alerts")

ARTIFACTS = "artifacts"  # the folder beside the database
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
# Aliases wandb gives every version itself: never stored.
_IMPLICIT = re.compile(r"latest|v\d+")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(f"Artifact name {name!r} is invalid: use 1-128 letters, digits, '-', '_' or '.'")
    return name


def _entry_name(name: str) -> str:
    parts = PurePosixPath(str(name).replace(os.sep, "/")).parts
    if not parts or ".." in parts or parts[0] == "/":
        raise ValueError(f"artifact entry name {name!r} must be a relative path without '..'")
    return "/".join(parts)


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtifactEntry:
    """One file (or reference) of an artifact."""

    def __init__(self, path: str, local: Optional[Path] = None, ref: Optional[str] = None,
                 size: Optional[int] = None, digest: Optional[str] = None) -> None:
        self.path = path
        self.ref = ref
        self.local_path = str(local) if local is not None else None
        self.size = size
        self.digest = digest

    def download(self, root: Optional[str] = None) -> str:
        """The file's path (copied under ``root`` if given)."""
        if self.local_path is None:
            raise ValueError(f"{self.path!r} is a reference ({self.ref}): nothing was stored to download")
        if root is None:
            return self.local_path
        target = Path(root) / self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.local_path, target)
        return str(target)

    def __repr__(self) -> str:
        return f"ArtifactEntry({self.path!r})"


class Artifact:
    """A versioned set of files, as ``wandb.Artifact(name, type, description, metadata)``."""

    def __init__(self, name: str, type: str, description: Optional[str] = None,
                 metadata: Optional[dict] = None, incremental: bool = False, use_as: Optional[str] = None,
                 **_ignored: Any) -> None:
        self._name = _check_name(name)
        self.type = str(type)
        self.description = description
        self.metadata = dict(metadata or {})
        self.aliases: list[str] = []
        self.tags: list[str] = []
        self.ttl = None  # artifacts here never expire
        self._entries: dict[str, ArtifactEntry] = {}
        self._staging: Optional[Path] = None
        self._record = None  # the stored version, once logged
        self._folder: Optional[Path] = None  # where its files are stored

    # -- building ---------------------------------------------------------------------------------

    def _stage(self) -> Path:
        if self._record is not None:
            raise UsageError(f"artifact {self.name} is logged: it cannot change (make a new Artifact)")
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="alerts-artifact-"))
        return self._staging

    def add_file(self, local_path: Any, name: Optional[str] = None, is_tmp: bool = False,
                 skip_cache: Optional[bool] = None, policy: Optional[str] = None,
                 overwrite: bool = False) -> ArtifactEntry:
        """Add a file (copied now) as ``name`` (default: its file name)."""
        source = Path(os.fspath(local_path))
        if not source.is_file():
            raise ValueError(f"Path is not a file: {str(source)!r}")
        entry_name = _entry_name(name or source.name)
        target = self._stage() / entry_name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        entry = self._entries[entry_name] = ArtifactEntry(entry_name, local=target, size=target.stat().st_size)
        return entry

    def add_dir(self, local_path: Any, name: Optional[str] = None, skip_cache: Optional[bool] = None,
                policy: Optional[str] = None, merge: bool = False) -> None:
        """Add every file below a folder, under ``name/`` if given."""
        root = Path(os.fspath(local_path))
        if not root.is_dir():
            raise ValueError(f"Path is not a directory: {str(root)!r}")
        for folder, _dirs, names in os.walk(root):
            for file_name in sorted(names):
                path = Path(folder) / file_name
                rel = path.relative_to(root).as_posix()
                self.add_file(path, name=f"{name}/{rel}" if name else rel)

    def add_reference(self, uri: Any, name: Optional[str] = None, checksum: bool = True,
                      max_objects: Optional[int] = None) -> list[ArtifactEntry]:
        """Record a reference to ``uri`` (nothing is fetched or stored but the URI)."""
        uri = str(uri)
        entry_name = _entry_name(name or (uri.rstrip("/").rsplit("/", 1)[-1] or "reference"))
        self._stage()
        entry = self._entries[entry_name] = ArtifactEntry(entry_name, ref=uri)
        return [entry]

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: Optional[str] = None) -> Iterator[Any]:
        """Open a new file in the artifact for writing."""
        entry_name = _entry_name(name)
        target = self._stage() / entry_name
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle
        self._entries[entry_name] = ArtifactEntry(entry_name, local=target, size=target.stat().st_size)

    def add(self, obj: Any, name: str, overwrite: bool = False) -> ArtifactEntry:
        """Add a ``Table`` or other media as ``name`` + its suffix (``name.table.json``)."""
        if not getattr(obj, "_is_media", False):
            raise ValueError(f"Artifact.add takes a Table, Image or other media, not {type(obj).__name__}")
        staging = self._stage()
        entry_name = _entry_name(name if name.endswith(obj.suffix) else name + obj.suffix)
        target = staging / entry_name
        target.parent.mkdir(parents=True, exist_ok=True)
        obj.snapshot().write(target, staging, "artifact")
        entry = self._entries[entry_name] = ArtifactEntry(entry_name, local=target, size=target.stat().st_size)
        return entry

    def remove(self, item: Any) -> None:
        """Remove an entry (by name) before the artifact is logged."""
        self._stage()
        entry = self._entries.pop(str(getattr(item, "path", item)))
        if entry.local_path is not None:
            Path(entry.local_path).unlink(missing_ok=True)

    # -- reading ----------------------------------------------------------------------------------

    def get_entry(self, name: str) -> ArtifactEntry:
        """The entry ``name`` (a ``KeyError`` if there is none)."""
        return self._entries[name]

    get_path = get_entry

    def get(self, name: str) -> Any:
        """A ``Table`` added as ``name``, read back (None if there is none)."""
        from alerts.sdk.media import Table

        entry = self._entries.get(name) or self._entries.get(name + Table.suffix)
        if entry is None or entry.local_path is None:
            return None
        payload = json.loads(Path(entry.local_path).read_text(encoding="utf-8"))
        if payload.get("_type") == "table":
            table = Table(columns=payload["columns"])
            table.data = payload["data"]
            return table
        return payload

    def files(self) -> list[ArtifactEntry]:
        """The artifact's entries."""
        return list(self._entries.values())

    @property
    def manifest(self) -> dict:
        return {"entries": {n: {"size": e.size, "digest": e.digest, "ref": e.ref} for n, e in self._entries.items()}}

    def download(self, root: Optional[str] = None, allow_missing_references: bool = False,
                 skip_cache: Optional[bool] = None, path_prefix: Optional[str] = None, **_ignored: Any) -> str:
        """The folder of the stored version (copied to ``root`` if given)."""
        if self._folder is None:
            raise UsageError(f"artifact {self._name!r} is not logged yet: log or use it first")
        if root is None:
            return str(self._folder)
        shutil.copytree(self._folder, root, dirs_exist_ok=True)
        return str(root)

    checkout = download

    def file(self, root: Optional[str] = None) -> str:
        """The path of the artifact's one file."""
        local = [e for e in self._entries.values() if e.local_path is not None]
        if len(local) != 1:
            raise ValueError(f"artifact {self.name} has {len(local)} files, not one: use download()")
        return local[0].download(root)

    def verify(self, root: Optional[str] = None) -> None:
        """Check that the files under ``root`` (default: the stored folder) match the stored digests."""
        folder = Path(root) if root is not None else Path(self.download())
        for entry in self._entries.values():
            if entry.ref is None and _md5(folder / entry.path) != entry.digest:
                raise ValueError(f"artifact {self.name}: {entry.path} does not match its digest")

    def wait(self, timeout: Optional[int] = None) -> "Artifact":
        """The artifact (it is stored when ``log_artifact`` returns)."""
        return self

    def save(self, project: Optional[str] = None, settings: Any = None) -> None:
        """Log the artifact with the current run."""
        from alerts.sdk import api

        if api._current is None:
            raise UsageError("Artifact.save() needs a run: call alerts.init() first")
        api._current.log_artifact(self)

    def link(self, target_path: str, aliases: Optional[Sequence[str]] = None) -> None:
        """A no-op: there is no registry to link into."""
        from alerts.sdk import noops

        noops.warn_once("link_artifact")

    # -- identity ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``name:vN`` once logged or used, else the name given."""
        return f"{self._name}:v{self._record.version}" if self._record is not None else self._name

    @property
    def source_name(self) -> str:
        return self.name

    @property
    def version(self) -> str:
        """``vN``; a :class:`UsageError` before it is logged (as wandb's ArtifactNotLoggedError)."""
        if self._record is None:
            raise UsageError(f"artifact {self._name!r} has no version until it is logged")
        return f"v{self._record.version}"

    @property
    def qualified_name(self) -> str:
        project = self._record.project if self._record is not None else "?"
        return f"{project}/{self.name}"

    @property
    def project(self) -> Optional[str]:
        return self._record.project if self._record is not None else None

    @property
    def id(self) -> Optional[str]:
        return str(self._record.id) if self._record is not None else None

    @property
    def digest(self) -> Optional[str]:
        return self._record.digest if self._record is not None else None

    @property
    def state(self) -> str:
        return "COMMITTED" if self._record is not None else "PENDING"

    @property
    def size(self) -> int:
        return sum(e.size or 0 for e in self._entries.values())

    @property
    def created_at(self) -> Optional[float]:
        return self._record.created_at if self._record is not None else None

    @property
    def logged_by_run_id(self) -> Optional[str]:
        """The id of the run that logged this version."""
        return self._record.run_id if self._record is not None else None

    def __repr__(self) -> str:
        return f"<Artifact {self.name} ({self.type})>"

    # -- storing ----------------------------------------------------------------------------------

    def _store_files(self, root: Path, project: str) -> tuple[str, list[dict], str]:
        """Move the staged files to their stored folder; returns (digest, manifest, relative folder)."""
        manifest, lines = [], []
        for entry_name in sorted(self._entries):
            entry = self._entries[entry_name]
            if entry.ref is not None:
                manifest.append({"path": entry_name, "ref": entry.ref})
                lines.append(f"{entry_name}:ref:{entry.ref}")
            else:
                entry.digest = _md5(Path(entry.local_path))
                manifest.append({"path": entry_name, "size": entry.size, "md5": entry.digest})
                lines.append(f"{entry_name}:{entry.digest}")
        digest = hashlib.md5("\n".join(lines).encode("utf-8")).hexdigest()
        relative = f"{project}/{self._name}/{digest}"
        folder = root / relative
        if not folder.is_dir():  # the same files stored before: that folder serves
            folder.parent.mkdir(parents=True, exist_ok=True)
            partial = folder.parent / f".{digest}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir()
            for entry in self._entries.values():
                if entry.local_path is not None:
                    (partial / entry.path).parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(entry.local_path, partial / entry.path)
            try:
                os.replace(partial, folder)
            except OSError:  # another process stored the same files meanwhile
                shutil.rmtree(partial, ignore_errors=True)
        return digest, manifest, relative

    def _bind(self, record: Any, root: Path) -> None:
        """Make this object the stored version ``record`` (its entries point at the stored files)."""
        self._record = record
        self._folder = root / record.path
        self.type = record.type
        self.description = record.description
        self.metadata = jsoncodec.loads(record.meta)
        self.aliases = [*jsoncodec.loads(record.aliases)]
        self._entries = {}
        for item in jsoncodec.loads(record.manifest):
            local = self._folder / item["path"] if "ref" not in item else None
            self._entries[item["path"]] = ArtifactEntry(item["path"], local=local, ref=item.get("ref"),
                                                        size=item.get("size"), digest=item.get("md5"))
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    @classmethod
    def _from_record(cls, record: Any, root: Path) -> "Artifact":
        artifact = cls.__new__(cls)
        artifact._name = record.name
        artifact.tags, artifact.ttl, artifact._staging = [], None, None
        artifact._bind(record, root)
        return artifact


def artifacts_root(store_dir: Path) -> Path:
    """Where artifact files are stored: ``ALERTS_DIR/artifacts``."""
    return Path(store_dir) / ARTIFACTS


def _as_artifact(run: Any, artifact_or_path: Any, name: Optional[str], type: Optional[str]) -> Artifact:
    if isinstance(artifact_or_path, Artifact):
        return artifact_or_path
    text = os.fspath(artifact_or_path) if not isinstance(artifact_or_path, str) else artifact_or_path
    path = Path(text)
    artifact = Artifact(name or f"run-{run.id}-{path.name or 'artifact'}", type or "unspecified")
    if "://" in text:
        artifact.add_reference(text)
    elif path.is_dir():
        artifact.add_dir(path)
    else:
        artifact.add_file(path)
    return artifact


def _alias_list(aliases: Any) -> list[str]:
    """Aliases as wandb takes them: one string is one alias (not its letters); an alias with ``/``
    or ``:``, which no reference could name, is a ``ValueError``."""
    if aliases is None:
        return []
    listed = [aliases] if isinstance(aliases, str) else list(aliases)
    if any(not isinstance(alias, str) or "/" in alias or ":" in alias for alias in listed):
        raise ValueError(f"Aliases must be strings without any of the following characters: '/', ':' (got {listed!r})")
    return listed


def log_artifact(run: Any, artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                 aliases: Optional[Sequence[str]] = None) -> Artifact:
    """``run.log_artifact``: see the module docstring."""
    given = _alias_list(aliases)  # checked before any file is copied
    artifact = _as_artifact(run, artifact_or_path, name, type)
    wanted = [a for a in [*given, *_alias_list(artifact.aliases)] if not _IMPLICIT.fullmatch(a)]
    if run._writer is None or run._store_dir is None:
        return artifact
    if artifact._record is not None:
        return artifact  # logged already: wandb keeps the version it has
    try:
        root = artifacts_root(run._store_dir)
        digest, manifest, relative = artifact._store_files(root, run.project)
        row = {"project": run.project, "name": artifact._name, "type": artifact.type, "digest": digest,
               "description": artifact.description, "meta": jsoncodec.dumps(artifact.metadata),
               "aliases": "[]", "manifest": jsoncodec.dumps(manifest), "path": relative, "run_id": run.id,
               "created_at": _clock.now()}
        record = stored.record_version(run._writer.store, row, list(dict.fromkeys(wanted)))
        artifact._bind(record, root)
    except Exception:  # the training goes on; the artifact stays unlogged
        logger.exception("alerts: run %s: could not store artifact %r", run.id, artifact._name)
    return artifact


def parse_ref(ref: str, default_project: Optional[str]) -> tuple[Optional[str], str, Optional[str]]:
    """``[entity/][project/]name[:version or alias]`` -> (project, name, version or alias)."""
    parts = str(ref).split("/")
    project = parts[-2] if len(parts) >= 2 else default_project
    name, _, version = parts[-1].partition(":")
    return project, name, version or None


def use_artifact(run: Any, artifact_or_name: Any, type: Optional[str] = None,
                 aliases: Optional[Sequence[str]] = None) -> Artifact:
    """``run.use_artifact``: see the module docstring."""
    if isinstance(artifact_or_name, Artifact):
        artifact = artifact_or_name
        if artifact._record is None:
            log_artifact(run, artifact, aliases=aliases)
    else:
        if run._writer is None or run._store_dir is None:
            raise CommError(f"artifact {artifact_or_name!r}: a disabled run has no store to find it in")
        project, name, version = parse_ref(artifact_or_name, run.project)
        record = stored.find_version(run._writer.store, project, name, version)
        if record is None:
            raise CommError(f"artifact {artifact_or_name!r} not found in project {project!r}")
        if type is not None and record.type != type:
            raise ValueError(f"artifact {artifact_or_name!r} is of type {record.type!r}, not {type!r}")
        artifact = Artifact._from_record(record, artifacts_root(run._store_dir))
    if artifact._record is not None and run._writer is not None:
        try:
            stored.record_use(run._writer.store, run.id, artifact._record.id, _clock.now())
        except Exception:
            logger.exception("alerts: run %s: could not record the use of artifact %s", run.id, artifact.name)
    return artifact


_SKIPPED_FOLDERS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", "wandb", ".alerts"}


def log_code(run: Any, root: Any = ".", name: Optional[str] = None, include_fn: Optional[Callable] = None,
             exclude_fn: Optional[Callable] = None) -> Optional[Artifact]:
    """``run.log_code``: the source files below ``root`` as a ``code`` artifact (None if there are none)."""
    root = Path(os.fspath(root)).resolve()
    include = include_fn or (lambda path, root=None: str(path).endswith(".py"))
    exclude = exclude_fn or (lambda path, root=None: False)
    store_dir = run._store_dir.resolve() if run._store_dir is not None else None
    artifact = Artifact(name or re.sub(r"[^A-Za-z0-9_.-]", "_", f"source-{run.project}-{run.id}"), "code")
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _SKIPPED_FOLDERS and (store_dir is None or Path(folder, d) != store_dir)]
        for file_name in sorted(names):
            path = Path(folder) / file_name
            if _call(include, path, root) and not _call(exclude, path, root):
                artifact.add_file(path, name=path.relative_to(root).as_posix())
    if not artifact._entries:
        from alerts.sdk.terminal import termwarn

        termwarn("No relevant files were detected in the specified directory. No code will be logged to your run.")
        return None
    return log_artifact(run, artifact)


def _call(predicate: Callable, path: Path, root: Path) -> bool:
    try:
        return bool(predicate(str(path), str(root)))
    except TypeError:  # wandb's predicates take (path, root); older ones take the path alone
        return bool(predicate(str(path)))
