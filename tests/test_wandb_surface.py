"""Every public name of wandb, and every public attribute of its ``Run``, is here or documented.

``tests/data/wandb_surface.json`` lists them, generated from the wandb pinned in
``benchmarks/requirements.txt`` by ``tests/data/make_wandb_surface.py`` (wandb is not needed to run
this test). A name passes if ``alerts`` (or a run) has it and it is not a no-op, or if README.md's
table "wandb calls that do nothing here" names it; every no-op of :mod:`alerts.sdk.noops` must be in
that table too. A new wandb release is taken by regenerating the file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import alerts
from alerts.sdk import noops

REPO = Path(__file__).resolve().parent.parent
SURFACE = json.loads((REPO / "tests" / "data" / "wandb_surface.json").read_text(encoding="utf-8"))
NOOP_HEADING = "### wandb calls that do nothing here"


def documented_noops() -> set[str]:
    """The names in the first column of README's no-op table (several may share a row)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert NOOP_HEADING in text, f"README.md has no section {NOOP_HEADING!r}"
    section = text.split(NOOP_HEADING, 1)[1].split("\n#", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Za-z_][\w.]*)`", first_cell))
    return names


DOCUMENTED = documented_noops()


def test_the_surface_file_is_from_the_pinned_wandb():
    pinned = (REPO / "benchmarks" / "requirements.txt").read_text(encoding="utf-8")
    assert f"wandb=={SURFACE['wandb_version']}" in pinned
    assert len(SURFACE["top_level"]) > 50 and len(SURFACE["run"]) > 30


@pytest.mark.parametrize("name", sorted(SURFACE["top_level"]))
def test_top_level_name_works_or_is_a_documented_no_op(name):
    if name in DOCUMENTED:
        return
    assert SURFACE["top_level"][name] != "module" or hasattr(alerts, name), (
        f"wandb.{name} (a module) is neither here nor in README's no-op table")
    assert hasattr(alerts, name), f"alerts.{name} is missing and not documented as a no-op in README.md"
    assert name not in noops.NOOPS, f"alerts.{name} is a no-op: README.md's table must say so"


@pytest.mark.parametrize("name", sorted(SURFACE["run"]))
def test_run_attribute_works_or_is_a_documented_no_op(name):
    if f"Run.{name}" in DOCUMENTED:
        return
    run = alerts.init(project="surface", mode="disabled")
    try:
        assert hasattr(run, name), f"Run.{name} is missing and not documented as a no-op in README.md"
    finally:
        run.finish()
    assert f"Run.{name}" not in noops.NOOPS and name not in noops.NOOPS or name in DOCUMENTED, (
        f"Run.{name} is a no-op: README.md's table must say so")


def test_every_no_op_is_in_the_readme_table():
    missing = sorted(name for name in noops.NOOPS if name not in DOCUMENTED)
    assert not missing, f"no-ops missing from README.md's table: {missing}"
