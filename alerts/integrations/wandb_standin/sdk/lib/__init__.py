"""``wandb.sdk.lib``: ``RunDisabled``, which Lightning imports for an ``isinstance`` check."""

from . import config_util  # noqa: F401


class RunDisabled:
    """Never made here: a run in ``mode="disabled"`` is an :class:`alerts.Run` that stores nothing."""

__all__ = ["RunDisabled", "config_util"]
