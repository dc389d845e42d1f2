"""``wandb.wandb_run`` (Lightning imports ``Run`` from here): ``Run`` is :class:`alerts.Run`."""

from alerts import Run  # noqa: F401

__all__ = ["Run"]
