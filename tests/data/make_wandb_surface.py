"""Write ``wandb_surface.json``: wandb's public top-level names and ``Run``'s public attributes.

Run it with the wandb pinned in ``benchmarks/requirements.txt`` installed (in a venv of its own: the
tests must not need wandb)::

    python -m venv /tmp/wandb-venv && /tmp/wandb-venv/bin/pip install -r benchmarks/requirements.txt
    /tmp/wandb-venv/bin/python tests/data/make_wandb_surface.py

``tests/test_wandb_surface.py`` reads the file and fails on any name that is missing from ``alerts``
without being a documented no-op.
"""

from __future__ import annotations

import __future__
import json
import types
from pathlib import Path

import wandb
from wandb.sdk.wandb_run import Run


def kind(value) -> str:
    if isinstance(value, types.ModuleType):
        return "module"
    if isinstance(value, type):
        return "class"
    if callable(value):
        return "function"
    return "object"


def main() -> None:
    names = set(wandb.__all__) | {n for n in dir(wandb) if not n.startswith("_")}
    top = {}
    for name in sorted(n for n in names if not n.startswith("_")):
        value = getattr(wandb, name)
        if isinstance(value, __future__._Feature):  # `from __future__ import annotations` in wandb's __init__
            continue
        top[name] = kind(value)
    run = {}
    for name in sorted(n for n in dir(Run) if not n.startswith("_")):
        value = getattr(Run, name)
        run[name] = "property" if isinstance(value, property) else kind(value)
    out = {"wandb_version": wandb.__version__, "top_level": top, "run": run}
    path = Path(__file__).with_name("wandb_surface.json")
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{path}: {len(top)} top-level names, {len(run)} Run attributes (wandb {wandb.__version__})")


if __name__ == "__main__":
    main()
