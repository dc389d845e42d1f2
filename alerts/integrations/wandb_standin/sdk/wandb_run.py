"""``wandb.sdk.wandb_run``: ``Run`` is :class:`alerts.Run`."""

from alerts import Run  # noqa: F401

__all__ = ["Run"]
