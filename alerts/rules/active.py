"""The rule set a process is using, and its reload.

The logging process loads ``ALERTS_RULES`` once, at its first ``init()``. ``alerts rules reload``
checks the files and, if they load, touches ``<ALERTS_DIR>/rules.reload``; every live process notices
the marker on its writer's next cycle and reloads. A rule set that fails to load leaves the previous
one active, and the reason is logged; a process never stops logging because of a rule file.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Optional

from alerts.rules.loader import RuleLoadError, RuleSet, load_rules

logger = logging.getLogger("alerts")

RELOAD_MARKER = "rules.reload"


class ActiveRules:
    """The current :class:`RuleSet` of one rules path, reloaded when the marker file changes."""

    def __init__(self, rules_path: Path, store_dir: Path) -> None:
        self.rules_path = rules_path
        self.marker = store_dir / RELOAD_MARKER
        self._marker_mtime = self._mtime()
        self.ruleset = RuleSet()
        self.generation = 0
        self.last_error: Optional[str] = None
        self.load()

    def _mtime(self) -> Optional[float]:
        try:
            return os.stat(self.marker).st_mtime
        except OSError:
            return None

    def load(self) -> bool:
        """Load the rules; on failure keep the previous set and remember why. True if it loaded.

        No rules folder at the first load means no rules; on a reload it is an error (a folder that
        vanished must not silently switch every rule off).
        """
        if not self.rules_path.exists():
            if self.generation:
                self.last_error = f"{self.rules_path}: no such file or folder"
                logger.error("alerts: %s; keeping the previous rules", self.last_error)
                return False
            self.ruleset, self.last_error = RuleSet(), None
            self.generation += 1
            return True
        try:
            ruleset = load_rules([self.rules_path])
        except RuleLoadError as exc:
            self.last_error = str(exc)
            logger.error("alerts: rules in %s did not load; %s:\n%s", self.rules_path,
                         "keeping the previous rules" if self.generation else "running without rules", exc)
            return False
        self.ruleset, self.last_error = ruleset, None
        self.generation += 1
        return True

    def reload_if_asked(self) -> bool:
        """Reload if ``alerts rules reload`` touched the marker since we last looked. True if reloaded."""
        mtime = self._mtime()
        if mtime is None or mtime == self._marker_mtime:
            return False
        self._marker_mtime = mtime
        if self.load():
            logger.warning("alerts: rules reloaded from %s (%d rules)", self.rules_path, len(self.ruleset))
            return True
        return False


_active: dict[tuple[str, str], ActiveRules] = {}
_lock = threading.Lock()


def active_rules(rules_path: Path, store_dir: Path) -> ActiveRules:
    """The process's :class:`ActiveRules` for a rules path and store folder."""
    key = (str(rules_path.resolve()), str(store_dir.resolve()))
    with _lock:
        active = _active.get(key)
        if active is None:
            active = _active[key] = ActiveRules(rules_path, store_dir)
        return active


def request_reload(store_dir: Path) -> Path:
    """Touch the reload marker that live processes watch; returns its path."""
    store_dir.mkdir(parents=True, exist_ok=True)
    marker = store_dir / RELOAD_MARKER
    marker.write_text(str(os.getpid()))
    now = os.stat(marker).st_mtime
    os.utime(marker, (now, now))
    return marker


def forget() -> None:
    """Drop the cached rule sets (tests)."""
    with _lock:
        _active.clear()
