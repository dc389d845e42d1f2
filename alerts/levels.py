"""Alert levels: the vocabulary that the SDK, the rules, routing and the channels share."""

from __future__ import annotations

from enum import Enum


class AlertLevel(str, Enum):
    """How serious an alert is; channels filter on it (``min_level``)."""

    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


#: Levels from least to most serious: a channel with ``min_level: WARN`` gets WARN and ERROR.
LEVEL_ORDER = {AlertLevel.INFO.value: 0, AlertLevel.WARN.value: 1, AlertLevel.ERROR.value: 2}
