"""``wandb.sdk.lib.config_util``: the error transformers catches around config updates."""

from alerts.errors import Error


class ConfigError(Error):
    """A config value that cannot be set (alerts never raises it: it skips such a value with a warning)."""
