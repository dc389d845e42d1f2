"""Install ``run_alerts_as_wandb.pth`` at the top of site-packages, beside the ``alerts`` package.

pyproject.toml holds everything else. A ``.pth`` file is the one thing setuptools cannot place by
configuration: it must sit directly in site-packages, for a regular wheel (``pip install .``) and
for the editable wheel that ``pip install -e .`` (CI's install) builds alike. Its one line does
nothing unless ``ALERTS_AS_WANDB=1`` (see ``alerts/integrations/as_wandb.py``). The name starts with
a lower-case letter so that Python reads it after the editable install's ``__editable__*.pth``,
which is what makes ``alerts`` importable in an editable install.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

PTH = Path(__file__).resolve().parent / "alerts" / "integrations" / "run_alerts_as_wandb.pth"


class BuildPyWithPth(build_py):
    """A regular wheel: the .pth goes to the root of build_lib, which is the wheel's purelib root."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):  # the editable wheel adds it itself (below)
            self.copy_file(str(PTH), str(Path(self.build_lib) / PTH.name))


class _StrategyWithPth:
    """Wraps setuptools' editable strategy: the editable wheel gets the .pth beside its own."""

    def __init__(self, inner):
        self.inner = inner

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self.inner.__exit__(*exc)

    def __call__(self, wheel, files, mapping):
        self.inner(wheel, files, mapping)
        wheel.writestr(PTH.name, PTH.read_bytes())


class EditableWheelWithPth(editable_wheel):
    # _select_strategy is setuptools' (>= 64) one place that writes the editable wheel's own .pth;
    # tests/integrations/test_as_wandb_packaging.py builds an editable wheel and checks ours is in it.
    def _select_strategy(self, name, tag, build_lib):
        return _StrategyWithPth(super()._select_strategy(name, tag, build_lib))


setup(cmdclass={"build_py": BuildPyWithPth, "editable_wheel": EditableWheelWithPth})
