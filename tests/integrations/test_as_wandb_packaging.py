"""The package installs run_alerts_as_wandb.pth into site-packages, editable install (CI's) or not."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

PTH = REPO / "alerts" / "integrations" / "run_alerts_as_wandb.pth"

BUILD = """
import sys
from setuptools import build_meta
print(getattr(build_meta, sys.argv[1])(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    """The files a build reads, copied (a build writes *.egg-info and build/ into its source tree)."""
    pytest.importorskip("setuptools")
    folder = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, folder / name)
    shutil.copytree(REPO / "alerts", folder / "alerts", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


@pytest.mark.parametrize("hook", ["build_editable", "build_wheel"])
def test_the_wheel_puts_the_pth_at_the_top_of_site_packages(source_copy, tmp_path, hook):
    result = subprocess.run([sys.executable, "-c", BUILD, hook, str(tmp_path)], cwd=source_copy,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    wheel = tmp_path / result.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert PTH.name in names  # at the wheel's root: installed into site-packages itself
        assert archive.read(PTH.name) == PTH.read_bytes()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        assert PTH.name in archive.read(record).decode()  # so `pip uninstall` removes it
    if hook == "build_editable":
        # Python reads .pth files in sorted order: ours must come after the one that makes the
        # editable `alerts` importable.
        editable = [n for n in names if n.startswith("__editable__") and n.endswith(".pth")]
        assert editable and all(e < PTH.name for e in editable)
