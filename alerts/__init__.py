"""alerts: self-hosted alerting for machine-learning training runs.

A drop-in for the parts of wandb that training scripts use: ``import alerts as wandb`` and keep the
script. ``init`` starts a run, ``log`` records metrics (microseconds a call; the writing happens on a
background thread), ``alert`` notifies, ``finish`` ends the run; ``Api`` reads runs back. The rest
of wandb's public surface is here too, working or as a documented no-op that warns once
(``alerts.sdk.noops``; README, "wandb calls that do nothing here").
"""

from alerts.errors import AlertsWarning, CommError, Error, UsageError
from alerts.levels import AlertLevel
from alerts.sdk.api import alert, define_metric, finish, init, log, login, mark_preempting, watch
from alerts.sdk.artifacts import Artifact
from alerts.sdk.config import Config, PreInit
from alerts.sdk.extras import (
    ArtifactTTL, Classes, EvalTable, Graph, JoinedTable, Molecule, Object3D, Plotly, agent, attach, box3d,
    controller, ensure_configured, join, link_model, log_artifact, log_model, pin_config_keys, plot_table,
    require, restore, sagemaker_auth, save, setup, sweep, teardown, unwatch, use_artifact, use_model, visualize,
)
from alerts.sdk.histogram import Histogram
from alerts.sdk.media import Image, Table
from alerts.sdk.reader import Api
from alerts.sdk.richmedia import Audio, Html, Video
from alerts.sdk.run import Run
from alerts.sdk.runsettings import Settings
from alerts.sdk.terminal import termerror, termlog, termsetup, termwarn

__version__ = "0.1.0"

# Set by init(), put back by finish(): the current run, its config and summary (wandb.run, ...).
run = None
config = PreInit("alerts.config")
summary = PreInit("alerts.summary")

__all__ = [
    "AlertLevel",
    "AlertsWarning",
    "Api",
    "Artifact",
    "ArtifactTTL",
    "Audio",
    "Classes",
    "CommError",
    "Config",
    "Error",
    "EvalTable",
    "Graph",
    "Histogram",
    "Html",
    "Image",
    "JoinedTable",
    "Molecule",
    "Object3D",
    "Plotly",
    "Run",
    "Settings",
    "Table",
    "UsageError",
    "Video",
    "agent",
    "alert",
    "attach",
    "box3d",
    "config",
    "controller",
    "define_metric",
    "ensure_configured",
    "finish",
    "init",
    "join",
    "link_model",
    "log",
    "log_artifact",
    "log_model",
    "login",
    "mark_preempting",
    "pin_config_keys",
    "plot_table",
    "require",
    "restore",
    "run",
    "sagemaker_auth",
    "save",
    "setup",
    "summary",
    "sweep",
    "teardown",
    "termerror",
    "termlog",
    "termsetup",
    "termwarn",
    "unwatch",
    "use_artifact",
    "use_model",
    "visualize",
    "watch",
]
