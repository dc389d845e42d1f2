"""The rest of wandb's module-level calls: files, artifacts, ``join``, and the documented no-ops.

Calls that act on a run act on the current one (``alerts.run``) and, as in wandb, need ``init()``
first. The no-ops (sweeps, registries, custom charts, service set-up) each warn once per process
and say why (:mod:`alerts.sdk.noops`); none raises an ``AttributeError``.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any, Optional, Sequence

from alerts.errors import UsageError
from alerts.sdk import api, files, noops
from alerts.sdk.media import Table


def save(glob_str: Any = None, base_path: Any = None, policy: str = "live", glob: bool = True) -> Any:
    """Keep files with the current run (see :meth:`alerts.Run.save`)."""
    return api._require_run("save").save(glob_str, base_path=base_path, policy=policy, glob=glob)


def restore(name: str, run_path: Optional[str] = None, replace: bool = False, root: Optional[str] = None) -> Any:
    """Open a file saved with a run (the current one unless ``run_path`` names another), copied into
    ``root`` (default: the current run's folder, else the working directory)."""
    run = api._current
    if run is not None:
        return run.restore(name, run_path=run_path, replace=replace, root=root)
    if run_path is None:
        raise UsageError("You must call alerts.init() before alerts.restore(), or pass run_path")
    return files.restore(name, run_path=run_path, replace=replace, root=root or ".")


def join(exit_code: Optional[int] = None) -> None:
    """``finish()``, under wandb's older name."""
    api.finish(exit_code=exit_code)


def log_artifact(artifact_or_path: Any, name: Optional[str] = None, type: Optional[str] = None,
                 aliases: Optional[Sequence[str]] = None, tags: Optional[Sequence[str]] = None) -> Any:
    """Store an artifact with the current run (see :mod:`alerts.sdk.artifacts`)."""
    return api._require_run("log_artifact").log_artifact(artifact_or_path, name=name, type=type, aliases=aliases)


def use_artifact(artifact_or_name: Any, type: Optional[str] = None, aliases: Optional[Sequence[str]] = None,
                 use_as: Optional[str] = None) -> Any:
    """A stored artifact version, recorded as used by the current run."""
    return api._require_run("use_artifact").use_artifact(artifact_or_name, type=type, aliases=aliases)


def log_model(path: Any, name: Optional[str] = None, aliases: Optional[Sequence[str]] = None) -> Any:
    """Store a model file or folder as a ``model`` artifact of the current run."""
    return api._require_run("log_model").log_model(path, name=name, aliases=aliases)


def use_model(name: str) -> str:
    """The folder of a stored model artifact, recorded as used by the current run."""
    return api._require_run("use_model").use_model(name)


def link_model(path: Any, registered_model_name: str, name: Optional[str] = None,
               aliases: Optional[Sequence[str]] = None) -> Any:
    """``log_model``; there is no registry to link to (a warned no-op for that part)."""
    return api._require_run("link_model").link_model(path, registered_model_name, name=name, aliases=aliases)


def unwatch(models: Any = None) -> None:
    """A no-op, as ``watch()`` is."""
    return None


def pin_config_keys(keys: Sequence[str] = ()) -> None:
    """A no-op: it pins keys on wandb's web page."""
    noops.warn_once("pin_config_keys")


# -- documented no-ops -------------------------------------------------------------------------------


def sweep(sweep: Any, entity: Optional[str] = None, project: Optional[str] = None,
          prior_runs: Optional[list] = None) -> str:
    """A no-op: returns a sweep id that nothing serves (sweeps need W&B's sweep server)."""
    noops.warn_once("sweep")
    return uuid.uuid4().hex[:8]


def agent(sweep_id: str, function: Any = None, entity: Optional[str] = None, project: Optional[str] = None,
          count: Optional[int] = None, **_ignored: Any) -> None:
    """A no-op: the function is not called (sweeps need W&B's sweep server)."""
    noops.warn_once("agent")


def controller(sweep_id_or_config: Any = None, entity: Optional[str] = None, project: Optional[str] = None) -> None:
    """A no-op (sweeps need W&B's sweep server)."""
    noops.warn_once("controller")


def attach(attach_id: Optional[str] = None, run_id: Optional[str] = None, *, run: Any = None) -> None:
    """A no-op: a run belongs to the process that started it; returns None."""
    noops.warn_once("attach")


def require(requirement: Any = None, experiment: Any = None) -> None:
    """A no-op: wandb's experimental features have no meaning here."""
    noops.warn_once("require")


def setup(settings: Any = None) -> None:
    """A no-op: there is no service process to set up."""
    noops.warn_once("setup")


def teardown(exit_code: Optional[int] = None) -> None:
    """A no-op: there is no service process to stop."""
    noops.warn_once("teardown")


def ensure_configured() -> None:
    """A no-op (deprecated in wandb too)."""
    noops.warn_once("ensure_configured")


def sagemaker_auth(overrides: Optional[dict] = None, path: str = ".", api_key: Optional[str] = None) -> None:
    """A no-op: there is no account to authenticate."""
    noops.warn_once("sagemaker_auth")


def box3d(*, center: Any = None, size: Any = None, orientation: Any = None, color: Any = None,
          label: Optional[str] = None, score: Any = None) -> None:
    """A no-op: 3D objects are not stored."""
    noops.warn_once("box3d")


def plot_table(vega_spec_name: str, data_table: Any, fields: Any = None, string_fields: Any = None,
               split_table: bool = False) -> Any:
    """The data table (the chart spec needs wandb's web page): logged, it is kept as a table."""
    noops.warn_once("plot_table")
    return data_table


def visualize(id: str, value: Any) -> Any:
    """The table (the visualisation needs wandb's web page): logged, it is kept as a table."""
    noops.warn_once("visualize")
    return value


class EvalTable(Table):
    """wandb's table of evaluation results: a :class:`~alerts.sdk.media.Table` here."""


class ArtifactTTL(enum.Enum):
    """wandb's artifact time-to-live setting; artifacts here never expire."""

    INHERIT = 0


Object3D = noops.unsupported("Object3D")
Molecule = noops.unsupported("Molecule")
Plotly = noops.unsupported("Plotly")
Graph = noops.unsupported("Graph")
Classes = noops.unsupported("Classes")
JoinedTable = noops.unsupported("JoinedTable")
