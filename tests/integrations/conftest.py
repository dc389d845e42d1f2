"""Fixtures for the framework integrations: examples run in this process, scripts run as wandb scripts.

Frameworks are imported once per test session (seconds each on this machine), so the examples run
here, through ``runpy``, rather than in child interpreters; only what needs a fresh interpreter
(``ALERTS_AS_WANDB=1`` acts at start-up; DDP launches its ranks) runs as a child.
"""

from __future__ import annotations

import os
import runpy
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

PTH = REPO / "alerts" / "integrations" / "run_alerts_as_wandb.pth"
CHILD_TIMEOUT = 600  # a bound for giving up on a loaded 2-core machine, never a timing assertion


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models train faster on one thread than on two that wait for each other (and for the
    other tests on a shared 2-core machine); the thread count is put back afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def default_rules(monkeypatch):
    """The repository's default rules (``rules/``), as a user's script would load them."""
    monkeypatch.setenv("ALERTS_RULES", str(REPO / "rules"))


@pytest.fixture
def run_example(monkeypatch):
    """Run ``examples/NAME`` in this process with ``args`` as its command line."""

    def run(name: str, *args: str) -> None:
        monkeypatch.setattr(sys, "argv", [name, *args])
        runpy.run_path(str(REPO / "examples" / name), run_name="__main__")

    return run


def installed_pth() -> Path | None:
    """The ``run_alerts_as_wandb.pth`` that ``pip install`` put in site-packages, if any."""
    for folder in site.getsitepackages():
        candidate = Path(folder) / PTH.name
        if candidate.exists():
            return candidate
    return None


@pytest.fixture
def wandb_script(tmp_path, store_dir):
    """Run a wandb script (no ``import alerts``) in a child interpreter, ``ALERTS_AS_WANDB=1`` unless
    ``env`` says otherwise; returns the CompletedProcess.

    The switch acts through the ``.pth`` file that installing the package puts in site-packages (CI
    installs it with ``pip install -e``). Where the package was installed from another checkout,
    without this branch's ``.pth``, the child reads this checkout's copy of it as Python reads a
    ``.pth`` at start-up (``site.addsitedir``) before running the script; CI must have the real one.
    """

    def run(source: str, *args: str, env: dict | None = None, check: bool = True):
        script = tmp_path / "wandb_script.py"
        script.write_text(textwrap.dedent(source), encoding="utf-8")
        child_env = {**os.environ, "ALERTS_DIR": str(store_dir), "ALERTS_AS_WANDB": "1", "OMP_NUM_THREADS": "1",
                     "PYTHONPATH": str(REPO), **(env or {})}
        if installed_pth() is not None:
            command = [sys.executable, str(script), *args]
        else:
            assert not os.environ.get("CI"), "CI installs the package: run_alerts_as_wandb.pth must be in site-packages"
            site_dir = tmp_path / "site"
            site_dir.mkdir(exist_ok=True)
            shutil.copy(PTH, site_dir / PTH.name)
            boot = (f"import runpy, site, sys; site.addsitedir({str(site_dir)!r}); sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__')")
            command = [sys.executable, "-c", boot, str(script), *args]
        result = subprocess.run(command, env=child_env, capture_output=True, text=True, timeout=CHILD_TIMEOUT,
                                cwd=tmp_path)
        if check and result.returncode != 0:
            raise AssertionError(f"script failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    return run
