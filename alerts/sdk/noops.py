"""The wandb calls that do nothing here, each with why: called, each warns once per process.

README.md's table "wandb calls that do nothing here" says the same, and the test that walks wandb's
public names (tests/test_wandb_surface.py) checks that every name missing here, or a no-op, is in it.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Optional

from alerts.errors import AlertsWarning

# name -> why it does nothing here.
NOOPS = {
    "watch": "gradient and parameter histograms are not recorded (log a Histogram yourself)",
    "unwatch": "watch() records nothing",
    "agent": "sweeps need W&B's sweep server, which does not exist here; the function is not called",
    "sweep": "sweeps need W&B's sweep server; returns a sweep id that nothing serves",
    "controller": "sweeps need W&B's sweep server",
    "attach": "a run is attached to its own process here; returns None",
    "link_artifact": "there is no artifact registry; the artifact stays stored as logged",
    "link_model": "there is no model registry; the model is logged as an artifact, not linked",
    "pin_config_keys": "it pins keys on wandb's web page, which does not exist here",
    "Run.status": "wandb asks its server how far the run is synced; everything is local here",
    "require": "wandb's experimental features have no meaning here",
    "setup": "there is no service process to set up",
    "teardown": "there is no service process to stop",
    "ensure_configured": "deprecated in wandb, and nothing to configure",
    "termsetup": "terminal output needs no set-up",
    "sagemaker_auth": "there is no account to authenticate",
    "plot_table": "custom charts need wandb's web page; the data table is returned and kept when logged",
    "visualize": "custom charts need wandb's web page; the data table is returned and kept when logged",
    "box3d": "3D objects are not stored",
    "Object3D": "3D objects are not stored; logging one skips it with a warning",
    "Molecule": "molecules are not stored; logging one skips it with a warning",
    "Plotly": "Plotly figures are not stored; logging one skips it with a warning",
    "Graph": "model graphs are not stored; logging one skips it with a warning",
    "Classes": "segmentation class sets are accepted and not stored",
    "JoinedTable": "joined tables are not stored; logging one skips it with a warning",
    "ArtifactTTL": "artifacts here never expire",
}

_warned: set = set()
_lock = threading.Lock()


def warn_once(name: str, why: Optional[str] = None) -> None:
    """Warn (an :class:`AlertsWarning`) that ``name`` does nothing here, once per process."""
    with _lock:
        if name in _warned:
            return
        _warned.add(name)
    reason = why or NOOPS.get(name, "it has no meaning here")
    warnings.warn(f"alerts: {name} does nothing here: {reason}", AlertsWarning, stacklevel=3)


def forget() -> None:
    """Warn again (tests)."""
    with _lock:
        _warned.clear()


class Unsupported:
    """Stands for a wandb media type that is not stored: accepted, warned about once; logging one
    skips its key with a warning (see :func:`alerts.sdk.convert.convert_value`)."""

    _unsupported = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        warn_once(type(self).__name__)

    @classmethod
    def from_json(cls, *args: Any, **kwargs: Any) -> "Unsupported":
        return cls()


def unsupported(name: str) -> type:
    """A class named ``name`` that is :class:`Unsupported`."""
    return type(name, (Unsupported,), {"__doc__": f"wandb.{name}: not stored here ({NOOPS.get(name, '')})."})
