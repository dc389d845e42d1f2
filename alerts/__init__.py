"""alerts: self-hosted alerting for machine-learning training runs.

A drop-in for the parts of wandb that training scripts use: ``import alerts as wandb`` and keep the
script. ``init`` starts a run, ``log`` records metrics (microseconds a call; the writing happens on a
background thread), ``alert`` notifies, ``finish`` ends the run; ``Api`` reads runs back.
"""

from alerts.errors import AlertsWarning, Error, UsageError
from alerts.levels import AlertLevel
from alerts.sdk.api import alert, define_metric, finish, init, log, login, mark_preempting, watch
from alerts.sdk.config import PreInit
from alerts.sdk.media import Image, Table
from alerts.sdk.reader import Api
from alerts.sdk.run import Run

__version__ = "0.1.0"

# Set by init(), put back by finish(): the current run, its config and summary (wandb.run, ...).
run = None
config = PreInit("alerts.config")
summary = PreInit("alerts.summary")

__all__ = [
    "AlertLevel",
    "AlertsWarning",
    "Api",
    "Error",
    "Image",
    "Run",
    "Table",
    "UsageError",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "login",
    "mark_preempting",
    "run",
    "summary",
    "watch",
]
