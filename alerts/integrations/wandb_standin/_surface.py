"""The wandb names that transformers', Lightning's and accelerate's wandb integrations call and
alerts' public API lacks: each works, or is a documented no-op that says so once."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional

import alerts
from alerts.errors import AlertsWarning
from alerts.sdk.run import Run

_said: set = set()


def _write(level: str, message: str, repeat: bool) -> None:
    if not repeat:
        if message in _said:
            return
        _said.add(message)
    prefix = "alerts (as wandb): " + (f"{level}: " if level else "")
    sys.stderr.write(prefix + str(message) + "\n")


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """``wandb.termlog``: a line on stderr."""
    _write("", string, repeat)


def termwarn(string: str, repeat: bool = True, prefix: bool = True) -> None:
    """``wandb.termwarn``: a warning line on stderr (``repeat=False``: once per message)."""
    _write("WARNING", string, repeat)


def termerror(string: str, repeat: bool = True, prefix: bool = True) -> None:
    """``wandb.termerror``: an error line on stderr."""
    _write("ERROR", string, repeat)


def require(requirement: Any = None, experiment: Any = None) -> None:
    """``wandb.require("service")`` (Lightning calls it): nothing to require here."""
    return None


def setup(settings: Any = None) -> None:
    """``wandb.setup()``: there is no service process to start."""
    return None


class Artifact:
    """``wandb.Artifact``, enough for the frameworks' model logging (``WANDB_LOG_MODEL``,
    ``WandbLogger(log_model=True)``) to run: files, folders and metadata are collected, and
    :func:`log_artifact` says once that artifacts are not stored yet (the files stay where they are).
    """

    def __init__(self, name: str, type: str, description: Optional[str] = None,
                 metadata: Optional[dict] = None, **_ignored: Any) -> None:
        self.name = name
        self.type = type
        self.description = description
        self.metadata = dict(metadata or {})
        self.files: dict[str, str] = {}  # name in the artifact -> local path
        self._tmp: Optional[tempfile.TemporaryDirectory] = None

    def add_file(self, local_path: str, name: Optional[str] = None, **_ignored: Any) -> None:
        """Add a file under ``name`` (default: its file name)."""
        self.files[name or os.path.basename(local_path)] = str(local_path)

    def add_dir(self, local_path: str, name: Optional[str] = None, **_ignored: Any) -> None:
        """Add every file below a folder, under ``name/`` (default: at the top)."""
        root = Path(local_path)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root).as_posix()
            self.files[f"{name}/{relative}" if name else relative] = str(path)

    @contextlib.contextmanager
    def new_file(self, name: str, mode: str = "x", encoding: Optional[str] = None) -> Iterator[Any]:
        """Write a new file into the artifact (kept in a temporary folder it owns)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="alerts-artifact-")
        path = Path(self._tmp.name, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode, encoding=encoding) as handle:
            yield handle
        self.files[name] = str(path)

    def add_reference(self, uri: str, name: Optional[str] = None, **_ignored: Any) -> None:
        """References are remembered by name only."""
        self.files[name or uri] = uri

    def wait(self, timeout: Optional[float] = None) -> "Artifact":
        return self

    def __repr__(self) -> str:
        return f"<Artifact {self.name} type={self.type} files={len(self.files)}>"


def _run_log_artifact(self: Run, artifact: Any, name: Optional[str] = None, type: Optional[str] = None,
                      aliases: Any = None, **kwargs: Any) -> Any:
    """``run.log_artifact``: artifacts are not stored; warns once per run and returns ``artifact``."""
    if not getattr(self, "_artifact_warned", False):
        self._artifact_warned = True
        label = name or getattr(artifact, "name", None) or "artifact"
        warnings.warn(f"alerts: artifacts are not stored yet; log_artifact({label!r}) was ignored "
                      "(its files stay where they are)", AlertsWarning, stacklevel=2)
    return artifact


def _run_url(self: Run) -> None:
    """``run.url``: there is no web page for a run yet, so None (as wandb offline)."""
    return None


def complete_run() -> None:
    """Give :class:`alerts.Run` the two members the frameworks' model logging calls, where alerts
    does not have them yet (the general wandb surface in alerts.sdk brings its own, which then stay)."""
    if not hasattr(Run, "log_artifact"):
        Run.log_artifact = _run_log_artifact
    if not hasattr(Run, "url"):
        Run.url = property(_run_url)


def log_artifact(artifact: Any, name: Optional[str] = None, type: Optional[str] = None,
                 aliases: Any = None, **kwargs: Any) -> Any:
    """``wandb.log_artifact``: the current run's :meth:`~alerts.Run.log_artifact`."""
    run = alerts.run
    if run is None:
        warnings.warn("alerts: log_artifact() before init(): ignored", AlertsWarning, stacklevel=2)
        return artifact
    return run.log_artifact(artifact, name=name, type=type, aliases=aliases, **kwargs)
