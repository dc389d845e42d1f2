"""Where training code already lives: integrations with training frameworks.

Each framework is an optional dependency (``pip install 'run-alerts[transformers]'``, ``[lightning]``,
``[accelerate]``) and is imported only by its own module here, so ``import alerts`` never imports a
framework, and the core (sdk/, rules/, pipeline/, delivery/, channels/, store/) never imports this
package:

- :mod:`alerts.integrations.transformers`: ``AlertsCallback``, a ``TrainerCallback``;
- :mod:`alerts.integrations.lightning`: ``AlertsLogger``, a Lightning ``Logger``;
- :mod:`alerts.integrations.accelerate`: ``AlertsTracker``, an accelerate ``GeneralTracker``;
- :mod:`alerts.integrations.as_wandb`: the opt-in ``ALERTS_AS_WANDB=1``, under which the frameworks'
  own wandb integrations (``report_to="wandb"``, ``WandbLogger``, ``log_with="wandb"``) log here
  without a change to the script.
"""
