"""``alerts.Settings``: wandb's ``Settings`` object, as scripts pass it to ``init(settings=...)``.

It takes any keyword (wandb has hundreds: ``start_method``, ``_disable_stats``, ``silent``, ...) and
keeps them as attributes. ``init()`` reads the ones that name a run, each used only when the
matching ``init()`` argument is not given: ``project``, ``run_name``, ``run_id``, ``run_group``,
``run_job_type``, ``run_tags``, ``run_notes``, ``resume``, ``mode``, ``entity``, ``sweep_id``,
``allow_val_change``. The rest have no meaning here and are kept only to be read back.
(The package's own settings, read from ``ALERTS_*`` variables, are :mod:`alerts.settings`.)
"""

from __future__ import annotations

from typing import Any, Mapping

# What init() takes from a Settings (wandb's names).
RUN_FIELDS = ("project", "run_name", "run_id", "run_group", "run_job_type", "run_tags", "run_notes", "resume",
              "mode", "entity", "sweep_id", "allow_val_change")


class Settings:
    """wandb's ``Settings(**kwargs)``: every keyword is kept as an attribute (see the module docstring)."""

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None  # a setting nobody set: wandb's default is as good as None here

    def update(self, settings: Any = None, **kwargs: Any) -> None:
        """Set more keywords (from a dict, another Settings, or keyword arguments)."""
        if settings is not None:
            self.__dict__.update(vars(settings) if isinstance(settings, Settings) else dict(settings))
        self.__dict__.update(kwargs)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __repr__(self) -> str:
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


def from_settings(settings: Any) -> dict:
    """The run fields a ``Settings`` or a dict gives (those set and not None)."""
    if settings is None:
        return {}
    if isinstance(settings, Settings):
        values = settings.__dict__
    elif isinstance(settings, Mapping):
        values = settings
    else:  # a real wandb.Settings, or anything with attributes
        values = {name: getattr(settings, name, None) for name in RUN_FIELDS}
    return {name: values.get(name) for name in RUN_FIELDS if values.get(name) is not None}
