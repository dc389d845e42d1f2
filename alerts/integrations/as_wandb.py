"""``ALERTS_AS_WANDB=1``: ``import wandb`` and the ``wandb`` distribution resolve to alerts.

For scripts that reach wandb through a framework (transformers' ``report_to="wandb"``, Lightning's
``WandbLogger``, accelerate's ``log_with="wandb"``) and cannot change a line. Those integrations look
for wandb in three ways, and each must find us:

- ``importlib.util.find_spec("wandb")`` and ``import wandb``, ``wandb.sdk.lib``, ``wandb.wandb_run``
  (transformers, Lightning): :class:`WandbFinder` answers ``find_spec("wandb")`` with the package
  ``alerts/integrations/wandb_standin``, whose folder then serves the submodules;
- ``importlib.metadata.version("wandb")`` / ``metadata("wandb")`` (Lightning's ``wandb>=0.12.10``,
  accelerate): :meth:`WandbFinder.find_distributions` answers for the name ``wandb`` with
  :class:`StandInDistribution`, whose version is the wandb whose surface we follow;
- attributes and calls (``wandb.run``, ``run._label``, ``Artifact``...): the stand-in package.

How it is switched on: the package installs ``run_alerts_as_wandb.pth`` into site-packages (see
``setup.py``). Python runs that one line at every start; it reads ``ALERTS_AS_WANDB`` and, only when
it is ``1``, loads this file (by path, without importing ``alerts``, so a process that never imports
wandb pays nothing more) and calls :func:`install`, which puts the finder first on ``sys.meta_path``.
Without the switch the line does nothing else: no finder, no module named ``wandb`` is touched, and
a real wandb installed beside us is imported as usual. With it, a real wandb is shadowed (not
removed): unset the variable to get it back.

This module is standard library only: it runs during interpreter start-up.
"""

from __future__ import annotations

import os
import re
import sys
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from importlib.metadata import Distribution, DistributionFinder
from importlib.util import spec_from_file_location
from pathlib import Path
from typing import Iterable, Optional

ENV = "ALERTS_AS_WANDB"
# The wandb release whose surface the stand-in follows (the one benchmarks/requirements.txt pins):
# what importlib.metadata.version("wandb") and wandb.__version__ say, so version checks pass.
WANDB_VERSION = "0.31.0"
STANDIN_DIR = Path(__file__).resolve().with_name("wandb_standin")
# Set on the finder so that two copies of this module (the one the .pth line loads by path and
# ``alerts.integrations.as_wandb``) recognise each other's finder.
MARKER = "_alerts_as_wandb"


def enabled(environ=os.environ) -> bool:
    """Whether the switch is on: ``ALERTS_AS_WANDB=1`` (any other value, or none, is off)."""
    return environ.get(ENV, "").strip() == "1"


class StandInDistribution(Distribution):
    """The ``wandb`` distribution as importlib.metadata reports it while the switch is on."""

    def read_text(self, filename: str) -> Optional[str]:
        if filename in ("METADATA", "PKG-INFO"):
            return (
                "Metadata-Version: 2.1\n"
                "Name: wandb\n"
                f"Version: {WANDB_VERSION}\n"
                "Summary: alerts standing in for wandb (ALERTS_AS_WANDB=1); see alerts.integrations.as_wandb\n"
            )
        return None

    def locate_file(self, path) -> Path:
        return STANDIN_DIR / str(path)


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


class WandbFinder(MetaPathFinder):
    """Finds the stand-in for the top-level module ``wandb`` and the distribution named ``wandb``.

    Submodules (``wandb.sdk.lib``...) need no help: they are looked up in the stand-in package's
    folder, as for any package."""

    _alerts_as_wandb = True

    def find_spec(self, fullname: str, path=None, target=None) -> Optional[ModuleSpec]:
        if fullname != "wandb":
            return None
        return spec_from_file_location("wandb", STANDIN_DIR / "__init__.py",
                                       submodule_search_locations=[str(STANDIN_DIR)])

    def find_distributions(self, context=DistributionFinder.Context()) -> Iterable[Distribution]:
        # Only when asked for wandb by name: listings of every distribution are left alone.
        if context.name is not None and _normalize(context.name) == "wandb":
            return iter([StandInDistribution()])
        return iter(())

    def __repr__(self) -> str:
        return f"<alerts WandbFinder ({ENV}=1): wandb -> {STANDIN_DIR}>"


def installed() -> bool:
    """Whether a stand-in finder is on ``sys.meta_path``."""
    return any(getattr(finder, MARKER, False) for finder in sys.meta_path)


def install() -> None:
    """Make ``import wandb`` and ``importlib.metadata`` for ``wandb`` resolve to alerts (idempotent).

    The ``.pth`` line calls this at start-up when ``ALERTS_AS_WANDB=1``; a notebook whose kernel
    started without the variable may call it before anything imports wandb."""
    if not installed():
        sys.meta_path.insert(0, WandbFinder())


def uninstall() -> None:
    """Take the finder off ``sys.meta_path`` and forget the stand-in modules, so that the next
    ``import wandb`` finds a real wandb if one is installed."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if not getattr(finder, MARKER, False)]
    for name in [n for n in sys.modules if n == "wandb" or n.startswith("wandb.")]:
        origin = getattr(sys.modules[name], "__file__", None) or ""
        if origin.startswith(str(STANDIN_DIR)):
            del sys.modules[name]
