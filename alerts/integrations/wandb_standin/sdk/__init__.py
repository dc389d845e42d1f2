"""``wandb.sdk`` as the frameworks reach it: ``wandb.sdk.lib`` and ``wandb.sdk.wandb_run``."""

from . import lib, wandb_run  # noqa: F401

__all__ = ["lib", "wandb_run"]
