"""Turning what training code passes to ``log()`` into storable values.

The common case (a flat dict of str keys to floats and ints) takes a fast path of one ``type()`` check
per value; everything else (nested dicts, numpy scalars, one-element tensors, media, lists) goes
through :func:`convert_value`. A value that cannot be stored is skipped with an :class:`AlertsWarning`
naming the key, and the rest of the row is kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable

from alerts.errors import AlertsWarning

# Called with (key, media object); returns the placeholder to store in the history row.
MediaHook = Callable[[str, Any], Any]

_PLAIN_TYPES = (float, int, bool, str, type(None))


def convert_row(data: Mapping, media_hook: MediaHook) -> dict:
    """A storable copy of one ``log()`` payload, nested dicts flattened with ``/``."""
    out: dict = {}
    for key, value in data.items():
        vtype = type(value)
        if (vtype is float or vtype is int or vtype is str or vtype is bool) and type(key) is str:
            out[key] = value
        else:
            _convert_into(out, key if type(key) is str else str(key), value, media_hook)
    return out


def _convert_into(out: dict, key: str, value: Any, media_hook: MediaHook) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _convert_into(out, f"{key}/{sub_key}", sub_value, media_hook)
        return
    try:
        out[key] = convert_value(value, media_hook, key)
    except UnstorableValue as exc:
        warnings.warn(
            f"alerts: log() skipped key {key!r}: {exc}; the rest of the row was kept",
            AlertsWarning,
            stacklevel=5,
        )


class UnstorableValue(ValueError):
    """A value ``log()`` does not know how to keep."""


def convert_value(value: Any, media_hook: MediaHook | None = None, key: str = "") -> Any:
    """One value as a plain JSON-able Python value (floats keep NaN and infinities)."""
    if isinstance(value, _PLAIN_TYPES):
        return value
    if getattr(value, "_is_media", False):
        if media_hook is None:
            raise UnstorableValue(f"{type(value).__name__} cannot be nested here")
        return media_hook(key, value)
    item = getattr(value, "item", None)
    if callable(item):
        # numpy scalars, 0-d arrays, one-element tensors. A tensor on a GPU is copied to the host here.
        try:
            return convert_value(item())
        except (ValueError, RuntimeError) as exc:
            size = getattr(value, "shape", None)
            raise UnstorableValue(
                f"a {type(value).__name__} of shape {tuple(size) if size is not None else '?'} is not "
                "a single number (log one element, or a reduction such as .mean())"
            ) from exc
    if isinstance(value, (list, tuple)):
        if len(value) <= 10_000:
            return [convert_value(v) for v in value]
        raise UnstorableValue(f"a {type(value).__name__} of {len(value)} items is too long (max 10000)")
    raise UnstorableValue(f"a value of type {type(value).__module__}.{type(value).__qualname__}")


def plain_cell(value: Any) -> Any:
    """A table cell as a plain value; media objects are kept as they are."""
    if getattr(value, "_is_media", False) or isinstance(value, _PLAIN_TYPES):
        return value
    try:
        return convert_value(value)
    except UnstorableValue:
        return str(value)
