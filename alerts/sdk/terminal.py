"""``termlog``, ``termwarn``, ``termerror``: wandb's messages to the terminal, on stderr.

Each line starts with ``alerts:`` (wandb's start with ``wandb:``); ``repeat=False`` prints a message
only the first time.
"""

from __future__ import annotations

import sys
import threading

_printed: set = set()
_lock = threading.Lock()


def _write(string: str, label: str, newline: bool, repeat: bool, prefix: bool) -> None:
    if not repeat:
        with _lock:
            if string in _printed:
                return
            _printed.add(string)
    head = ("alerts: " if prefix else "") + label
    text = "\n".join(head + line for line in str(string).split("\n"))
    try:
        sys.stderr.write(text + ("\n" if newline else ""))
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed stderr must not reach the training loop
        pass


def termlog(string: str = "", newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a message on stderr, as ``wandb.termlog``."""
    _write(string, "", newline, repeat, prefix)


def termwarn(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print a warning on stderr, as ``wandb.termwarn``."""
    _write(string, "WARNING ", newline, repeat, prefix)


def termerror(string: str, newline: bool = True, repeat: bool = True, prefix: bool = True) -> None:
    """Print an error on stderr, as ``wandb.termerror``."""
    _write(string, "ERROR ", newline, repeat, prefix)


def termsetup(settings=None, logger=None) -> None:
    """A no-op: terminal output needs no set-up here."""
    return None
