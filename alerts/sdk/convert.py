"""Turning what training code passes to ``log()`` into storable values.

The common case (a flat dict of str keys to floats and ints) takes a fast path of one ``type()`` check
per value; everything else (nested dicts, numpy scalars, one-element tensors, media, lists) goes
through :func:`convert_value`. A value that cannot be stored is skipped with an :class:`AlertsWarning`
naming the key, and the rest of the row is kept. Nested values are checked first (:func:`nesting_problem`):
one that contains itself, nests deeper than :data:`MAX_DEPTH` or holds more than :data:`MAX_ITEMS` values
is skipped whole, so that no value can recurse without end or blow up into millions of keys.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable

from alerts.errors import AlertsWarning
from alerts.sdk.histogram import array_value
from alerts.store.jsoncodec import MAX_DEPTH

# Values one nested dict or list may hold in all, counted through shared references: a list that holds
# the same 10,000-item list 10,000 times is 10^8 values to store, though it is small in memory.
MAX_ITEMS = 100_000

# Called with (key, media object); returns the placeholder to store in the history row.
MediaHook = Callable[[str, Any], Any]

_PLAIN_TYPES = (float, int, bool, str, type(None))
_LEAF_TYPES = frozenset(_PLAIN_TYPES)  # for a set lookup, cheaper than isinstance() against Mapping


def convert_row(data: Mapping, media_hook: MediaHook) -> dict:
    """A storable copy of one ``log()`` payload, nested dicts flattened with ``/``."""
    out: dict = {}
    for key, value in data.items():
        vtype = type(value)
        if (vtype is float or vtype is int or vtype is str or vtype is bool) and type(key) is str:
            out[key] = value
        else:
            _convert_top(out, key if type(key) is str else str(key), value, media_hook)
    return out


def nesting_problem(value: Any) -> str | None:
    """Why the nested dicts and lists of ``value`` cannot be stored, or None if they can: it contains
    itself, nests deeper than :data:`MAX_DEPTH`, or holds more than :data:`MAX_ITEMS` values."""
    return _walk(value, 0, set(), [MAX_ITEMS])


def _children(value: Any) -> Any:
    """The values inside a dict or list (None for anything else); exact types first: isinstance()
    against Mapping costs several times more."""
    vtype = type(value)
    if vtype is dict:
        return value.values()
    if vtype is list or vtype is tuple:
        return value
    if vtype in _LEAF_TYPES:
        return None
    if isinstance(value, Mapping):
        return value.values()
    return value if isinstance(value, (list, tuple)) else None


def _walk(value: Any, depth: int, parents: set, budget: list) -> str | None:
    # Recursion is safe: it stops at MAX_DEPTH levels, far below Python's recursion limit.
    children = _children(value)
    if children is None:
        return None
    if id(value) in parents:
        return "it contains itself (a reference cycle)"
    if depth >= MAX_DEPTH:
        return f"it is nested more than {MAX_DEPTH} levels deep"
    budget[0] -= len(value)
    if budget[0] < 0:
        return f"it holds more than {MAX_ITEMS} values in all"
    parents.add(id(value))
    for child in children:
        if type(child) in _LEAF_TYPES:
            continue  # most values of a nested row: no call for them
        problem = _walk(child, depth + 1, parents, budget)
        if problem is not None:
            return problem
    parents.discard(id(value))
    return None


def _convert_top(out: dict, key: str, value: Any, media_hook: MediaHook) -> None:
    """One top-level key of the row, nested values checked whole before they are flattened."""
    # The common nested case, a dict of plain values, needs no walk.
    if not _flat_dict(value) and (isinstance(value, Mapping) or type(value) is list or type(value) is tuple):
        problem = nesting_problem(value)
        if problem is not None:
            warnings.warn(f"alerts: log() skipped key {key!r}: {problem}; the rest of the row was kept",
                          AlertsWarning, stacklevel=5)
            return
    _convert_into(out, key, value, media_hook)


def _flat_dict(value: Any) -> bool:
    """Whether ``value`` is a dict of at most MAX_ITEMS plain values (nothing nested in it)."""
    if type(value) is not dict or len(value) > MAX_ITEMS:
        return False
    for child in value.values():
        if type(child) not in _LEAF_TYPES:
            return False
    return True


def _convert_into(out: dict, key: str, value: Any, media_hook: MediaHook) -> None:
    if isinstance(value, Mapping):
        for sub_key, sub_value in value.items():
            _convert_into(out, f"{key}/{sub_key}", sub_value, media_hook)
        return
    try:
        out[key] = convert_value(value, media_hook, key)
    except SkipValue:  # the hook left it out, and has said so once
        pass
    except UnstorableValue as exc:
        warnings.warn(
            f"alerts: log() skipped key {key!r}: {exc}; the rest of the row was kept",
            AlertsWarning,
            stacklevel=5,
        )


class UnstorableValue(ValueError):
    """A value ``log()`` does not know how to keep."""


class SkipValue(Exception):
    """Raised by a media hook that leaves the value out of the row without a warning per key (the
    remote mode, which does not send media, warns once per run)."""


def convert_value(value: Any, media_hook: MediaHook | None = None, key: str = "") -> Any:
    """One value as a plain JSON-able Python value (floats keep NaN and infinities)."""
    if isinstance(value, _PLAIN_TYPES):
        return value
    if getattr(value, "_is_media", False):
        if media_hook is None:
            raise UnstorableValue(f"{type(value).__name__} cannot be nested here")
        return media_hook(key, value)
    if getattr(value, "_inline", False):  # a Histogram: kept in the row, as wandb keeps it
        return value.to_json()
    if getattr(value, "_unsupported", False):
        raise UnstorableValue(f"wandb.{type(value).__name__} is not stored here")
    item = getattr(value, "item", None)
    if callable(item):
        # numpy scalars, 0-d arrays, one-element tensors. A tensor on a GPU is copied to the host here.
        try:
            return convert_value(item())
        except (ValueError, RuntimeError) as exc:
            # Several elements: a list (up to 32) or a histogram, as wandb logs arrays and tensors.
            whole = array_value(value)
            if whole is not None:
                return whole
            size = getattr(value, "shape", None)
            raise UnstorableValue(
                f"a {type(value).__name__} of shape {tuple(size) if size is not None else '?'} is not "
                "an array of numbers"
            ) from exc
    if isinstance(value, (list, tuple)):
        if len(value) > 10_000:
            raise UnstorableValue(f"a {type(value).__name__} of {len(value)} items is too long (max 10000)")
        if value and media_hook is not None and all(getattr(v, "_is_media", False) for v in value):
            return media_list(value, media_hook, key)
        return [convert_value(v) for v in value]
    raise UnstorableValue(f"a value of type {type(value).__module__}.{type(value).__qualname__}")


def media_list(items: Any, media_hook: MediaHook, key: str) -> Any:
    """A list of media (``[Image, Image, ...]``, as wandb logs galleries): each kept as a file under
    ``key``; the row holds ``{"_type": "<kind>-files", "count": n, "paths": [...]}`` when all are of
    one kind, else the list of each one's placeholder."""
    placeholders = [media_hook(key, item) for item in items]
    kinds = {type(item).kind for item in items}
    if len(kinds) == 1:
        return {"_type": f"{kinds.pop()}-files", "count": len(placeholders),
                "paths": [p.get("path") for p in placeholders]}
    return placeholders


def plain_cell(value: Any) -> Any:
    """A table cell as a plain value; media objects are kept as they are."""
    if getattr(value, "_is_media", False) or isinstance(value, _PLAIN_TYPES):
        return value
    problem = nesting_problem(value)
    if problem is not None:  # a list that contains itself: its repr() would recurse too
        warnings.warn(f"alerts: a table cell was not stored: {problem}", AlertsWarning, stacklevel=3)
        return None
    try:
        return convert_value(value)
    except UnstorableValue:
        try:
            return str(value)
        except Exception:  # a __str__ that raises must not reach Table.add_data's caller
            return f"<{type(value).__qualname__}>"
