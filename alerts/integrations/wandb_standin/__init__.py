"""What ``import wandb`` gives while ``ALERTS_AS_WANDB=1``: alerts, under wandb's names.

Loaded as the module ``wandb`` by :mod:`alerts.integrations.as_wandb` (never import this package by
its own name). It holds no state: ``wandb.run``, ``wandb.config`` and ``wandb.summary`` are read from
``alerts`` on each access, so they follow ``init()`` and ``finish()``; every other name alerts has
(including names added to alerts later) is alerts' own object, so ``isinstance(run, wandb.Run)``
holds. The few names the frameworks' wandb integrations need and alerts' public API lacks are
defined in :mod:`._surface` (a name alerts gains later takes over from its stand-in here).
"""

from __future__ import annotations

from types import ModuleType as _ModuleType
from typing import Any as _Any

import alerts as _alerts
from alerts import (  # noqa: F401 - re-exported as wandb's names
    AlertLevel,
    AlertsWarning,
    Api,
    Error,
    Image,
    Run,
    Table,
    alert,
    define_metric,
    finish,
    log,
    login,
    mark_preempting,
    watch,
)
from alerts.integrations.as_wandb import WANDB_VERSION as __version__  # noqa: F401

from . import _surface

# Names alerts may gain from the general wandb surface: alerts' own wins over the stand-in.
Artifact = getattr(_alerts, "Artifact", None) or _surface.Artifact
log_artifact = getattr(_alerts, "log_artifact", None) or _surface.log_artifact
termlog = getattr(_alerts, "termlog", None) or _surface.termlog
termwarn = getattr(_alerts, "termwarn", None) or _surface.termwarn
termerror = getattr(_alerts, "termerror", None) or _surface.termerror
require = getattr(_alerts, "require", None) or _surface.require
setup = getattr(_alerts, "setup", None) or _surface.setup
_surface.complete_run()

from . import sdk, wandb_run  # noqa: E402,F401 - wandb imports these eagerly; integrations reach them as attributes


__all__ = [
    "AlertLevel", "AlertsWarning", "Api", "Artifact", "Error", "Image", "Run", "Table", "__version__", "alert",
    "define_metric", "finish", "init", "log", "log_artifact", "login", "mark_preempting", "require", "sdk",
    "setup", "termerror", "termlog", "termwarn", "wandb_run", "watch",
]


def init(*args: _Any, dir: _Any = None, **kwargs: _Any) -> Run:
    """``wandb.init``: :func:`alerts.init`, except that ``dir`` never moves the store.

    Frameworks pass their own output folder as ``dir`` (Lightning's ``WandbLogger`` passes its
    ``save_dir``, ``"."`` by default); wandb keeps only its own files there. The store stays where
    ``ALERTS_DIR`` (default ``./.alerts``) puts it, so ``alerts runs`` finds every run."""
    return _alerts.init(*args, **kwargs)


def __getattr__(name: str) -> _Any:
    # run, config and summary change with init()/finish(): read them from alerts each time. alerts'
    # own submodules (alerts.cli...) are not wandb's: they are not passed on.
    value = getattr(_alerts, name, None)
    if value is None and name not in ("run", "config", "summary") or isinstance(value, _ModuleType):
        raise AttributeError(
            f"module 'wandb' has no attribute {name!r} (this is alerts standing in for wandb because "
            f"ALERTS_AS_WANDB=1; unset it to use a real wandb)")
    return value

