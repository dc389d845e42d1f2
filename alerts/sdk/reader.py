"""``Api``: read runs back, as ``wandb.Api()`` does (``Api().runs("project")``, ``run.history()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from alerts.errors import Error
from alerts.settings import load_settings
from alerts.store import jsoncodec
from alerts.store.db import Store, open_store
from alerts.store.models import RunRecord


class ApiRun:
    """A stored run: its identity, ``config``, ``summary``, ``state``, history and alerts."""

    def __init__(self, store: Store, record: RunRecord, media_root: Path) -> None:
        self._store = store
        self._media_root = media_root
        self.id = record.id
        self.name = record.name
        self.project = record.project
        self.entity = record.owner
        self.group = record.group
        self.job_type = record.job_type
        self.tags = jsoncodec.loads(record.tags)
        self.notes = record.notes
        self.config: dict = jsoncodec.loads(record.config)
        self.summary: dict = jsoncodec.loads(record.summary)
        self.state = record.state
        self.created_at = record.created_at
        self.heartbeat_at = record.heartbeat_at
        self.finished_at = record.finished_at
        self.exit_code = record.exit_code
        self.error_type = record.error_type
        self.error_text = record.error_text
        self.last_step = record.last_step

    @property
    def path(self) -> list[str]:
        return [self.entity, self.project, self.id]

    def __repr__(self) -> str:
        return f"<ApiRun {'/'.join(self.path)} ({self.state})>"

    def scan_history(self, keys: Optional[Sequence[str]] = None) -> Iterator[dict]:
        """Every history row (one per ``log()`` commit), in step order, read page by page.

        With ``keys``, only the rows that have all of them, reduced to ``_step`` and those keys.
        """
        for row in self._store.iter_history(self.id):
            if keys is None:
                yield row
            elif all(k in row for k in keys):
                yield {k: row.get(k) for k in ("_step", *keys)}

    def history(self, samples: int = 500, keys: Optional[Sequence[str]] = None, x_axis: str = "_step",
                pandas: bool = True, stream: str = "default") -> Any:
        """Up to ``samples`` history rows, evenly spread over the run (all of them if fewer).

        A pandas DataFrame when ``pandas`` is true and pandas is installed (wandb's default), else a
        list of dicts.
        """
        total = self._store.count_history(self.id)
        stride = max(1, -(-total // samples)) if samples else 1
        rows = [row for i, row in enumerate(self.scan_history(keys)) if i % stride == 0]
        if pandas:
            try:
                import pandas as pd
            except ImportError:
                return rows
            return pd.DataFrame(rows)
        return rows

    def alerts(self) -> list[dict]:
        """Every alert of the run, oldest first, with its outcome (``notified``/``suppressed``)."""
        return [record.model_dump(exclude={"run_id"}) for record in self._store.alerts_of(self.id)]

    def media(self) -> list[dict]:
        """The files logged with the run (tables, images), with absolute paths."""
        out = []
        for record in self._store.media_of(self.id):
            item = record.model_dump(exclude={"run_id", "meta"})
            item["meta"] = jsoncodec.loads(record.meta)
            item["file"] = str(self._media_root / record.path)
            out.append(item)
        return out

    def files(self) -> list[dict]:
        """The files kept with the run (``save()``, and what the script wrote into ``run.dir``):
        ``{"name", "file", "size"}`` each, the latest copy of each name."""
        latest: dict[str, dict] = {}
        for item in self.media():
            if item["kind"] == "file":
                latest[item["key"]] = {"name": item["key"], "file": item["file"], "size": item["meta"].get("size")}
        return list(latest.values())

    def logged_artifacts(self) -> list:
        """The artifact versions this run logged, as :class:`alerts.Artifact`\\ s."""
        from alerts.sdk.artifacts import Artifact
        from alerts.store import artifacts as stored

        return [Artifact._from_record(r, self._artifacts_root) for r in stored.logged_by(self._store, self.id)]

    def used_artifacts(self) -> list:
        """The artifact versions this run used."""
        from alerts.sdk.artifacts import Artifact
        from alerts.store import artifacts as stored

        return [Artifact._from_record(r, self._artifacts_root) for r in stored.used_by(self._store, self.id)]

    @property
    def _artifacts_root(self) -> Path:
        return self._media_root.parent / "artifacts"

    def load_table(self, key: str) -> dict:
        """The last ``Table`` logged under ``key``: ``{"columns": [...], "data": [[...]]}``."""
        tables = [m for m in self.media() if m["key"] == key and m["kind"] == "table"]
        if not tables:
            raise KeyError(f"run {self.name!r} has no table {key!r}")
        import json

        return json.loads(Path(tables[-1]["file"]).read_text(encoding="utf-8"))


class Api:
    """Reads the embedded store (``ALERTS_DIR``, or ``dir``)."""

    def __init__(self, overrides: Optional[dict] = None, dir: Optional[str] = None, **_ignored: Any) -> None:
        self.settings = load_settings(dir=Path(dir) if dir else None)
        self._store = open_store(self.settings.resolved_database_url())

    def _wrap(self, record: RunRecord) -> ApiRun:
        return ApiRun(self._store, record, self.settings.media_dir())

    def runs(self, path: Optional[str] = None, filters: Optional[dict] = None, order: str = "+created_at",
             per_page: int = 50) -> list[ApiRun]:
        """Runs of a project (``"project"`` or ``"owner/project"``; all runs if no path), oldest first as
        in wandb (``order="-created_at"`` for newest first)."""
        owner = project = None
        if path:
            parts = path.strip("/").split("/")
            if len(parts) == 1:
                project = parts[0]
            elif len(parts) == 2:
                owner, project = parts
            else:
                raise ValueError(f"runs() takes 'project' or 'owner/project', not {path!r}")
        records = self._store.find_runs(project=project, owner=owner)
        runs = [self._wrap(r) for r in records]
        if order.lstrip("+") == "created_at":
            runs.reverse()  # the store returns newest first
        return runs

    def artifact(self, name: str, type: Optional[str] = None) -> Any:
        """A stored artifact version: ``"project/name:v1"``, ``"name:latest"``, ``"name:alias"``
        (``name`` alone: the latest, in any project). A :class:`~alerts.errors.CommError` if there is none."""
        from alerts.errors import CommError
        from alerts.sdk.artifacts import Artifact, artifacts_root, parse_ref
        from alerts.store import artifacts as stored

        project, artifact_name, version = parse_ref(name, None)
        record = stored.find_version(self._store, project, artifact_name, version)
        if record is None or (type is not None and record.type != type):
            raise CommError(f"artifact {name!r} not found in {self.settings.dir}")
        return Artifact._from_record(record, artifacts_root(self.settings.dir))

    def run(self, path: str) -> ApiRun:
        """One run by ``id``, ``project/id``, ``owner/project/id`` or name."""
        record = self._store.resolve_run(path)
        if record is None:
            raise Error(f"no run {path!r} in {self.settings.dir}")
        return self._wrap(record)
