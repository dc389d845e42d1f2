"""Encodings the store writes: JSON in Python's dialect (NaN and +-Infinity allowed) for small documents
(config, summary), MessagePack for history chunks; neither fails on an odd type.

Python strings may hold what no database stores: a lone surrogate (``"k\\ud800"``, or what
``os.listdir`` returns for a name that is not UTF-8) and, in PostgreSQL's text columns, NUL. Such
characters are replaced with U+FFFD (a surrogate *pair* becomes the character it encodes), and the
callers that pass a ``repaired`` list learn which keys were changed or skipped, so that they can say so.
The fast path of each encoder is unchanged: a value is only inspected after the plain encoding failed.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional

import msgpack

logger = logging.getLogger("alerts")

REPLACEMENT = "\ufffd"

# Levels of nested dicts and lists a stored value may have (log() and config skip deeper values with a
# warning; here, a deeper branch or a cycle made after the value was set is stored as a placeholder).
MAX_DEPTH = 100

# What a ``repaired`` list collects: (key, what happened): "key" (its name was repaired), "value" (its
# value was), "skipped" (its value could not be stored at all and was left out).
Repairs = Optional[list]


def fallback(value: Any) -> Any:
    # numpy scalars, 1-element tensors and the like carry .item(); anything else is kept as its repr
    # rather than failing a whole batch over one config value.
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except Exception:
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return tolist()
        except Exception:
            pass
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    try:
        return str(value)
    except Exception:  # a broken __str__ must not cost the batch either
        return f"<{type(value).__qualname__}>"


def clean_text(text: str) -> str:
    """``text`` as every backend stores it: NUL and lone surrogates replaced with U+FFFD."""
    if "\x00" in text:
        text = text.replace("\x00", REPLACEMENT)
    if _has_surrogates(text):
        # UTF-16 joins a valid surrogate pair into its character and replaces each lone one.
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def clean_columns(row: dict) -> list[str]:
    """Repair the text columns of one row in place (see :func:`clean_text`); the names of those
    changed. Cheap: one scan per string, for the few rows a cycle writes besides history."""
    changed = []
    for column, value in row.items():
        if type(value) is str:
            clean = clean_text(value)
            if clean is not value:
                row[column] = clean
                changed.append(column)
    return changed


def sanitize(value: Any, repaired: Repairs = None, key: str = "") -> Any:
    """A copy that any encoder takes: keys as strings, strings valid UTF-8 (lone surrogates
    replaced), odd types in their plain form. Each key whose name or value was repaired is added to
    ``repaired`` as ``(key, "key")`` or ``(key, "value")``, nested keys joined with ``/``. May raise RecursionError on
    a self-referencing or very deep value (see :func:`sanitize_items`)."""
    if isinstance(value, str):
        if _has_surrogates(value):
            _note(repaired, key, "value")
            return clean_text(value)
        return value
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            name = k if isinstance(k, str) else str(k)
            path = f"{key}/{name}" if key else name
            if _has_surrogates(name):
                _note(repaired, path, "key")
                name = clean_text(name)
            out[name] = sanitize(v, repaired, path)
        return out
    if isinstance(value, (list, tuple)):
        return [sanitize(v, repaired, key) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)  # beyond what MessagePack (and SQL) hold
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return sanitize(fallback(value), repaired, key)


def sanitize_items(mapping: dict, repaired: Repairs = None, key: str = "") -> dict:
    """:func:`sanitize` one key at a time: a value that cannot be made storable (self-referencing,
    nested too deep to encode) is left out and noted as ``(key, "skipped")``; the others are kept."""
    out = {}
    for k, v in mapping.items():
        name = k if isinstance(k, str) else str(k)
        path = f"{key}/{name}" if key else name
        try:
            clean = sanitize(v, repaired, path)
            msgpack.packb(clean)  # the deepest nesting either encoder takes
        except Exception:  # RecursionError, ValueError: too deep
            _note(repaired, path, "skipped")
            continue
        if _has_surrogates(name):
            _note(repaired, path, "key")
            name = clean_text(name)
        out[name] = clean
    return out


def _note(repaired: Repairs, key: str, what: str) -> None:
    if repaired is not None:
        repaired.append((key, what))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _dumps(value: Any) -> str:
    return json.dumps(value, default=fallback, separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any, repaired: Repairs = None) -> str:
    """Encode ``value``; NaN and infinities are kept, unknown types fall back to a plain form, and a
    value that still cannot be encoded (tuple keys, broken strings) is sanitized rather than lost.
    Never raises: of a dict, a value that cannot be encoded at all is left out (noted in ``repaired``)."""
    try:
        text = _dumps(value)
        text.encode("utf-8")  # a lone surrogate passes json.dumps, then fails in the database driver
        return text
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        # ValueError also covers a reference cycle, RecursionError a value nested thousands deep: both
        # are cut at MAX_DEPTH (a placeholder) before sanitize() recurses into them.
        value = bounded(value)
    if isinstance(value, dict):
        return _dumps(sanitize_items(value, repaired))
    try:
        return _dumps(sanitize(value, repaired))
    except Exception:
        _note(repaired, "", "skipped")
        return "null"


def bounded(value: Any, path: str = "", depth: int = 0, parents: frozenset = frozenset()) -> Any:
    """A copy of ``value``'s dicts and lists in which a branch that refers back to a dict or list
    containing it, or lies deeper than :data:`MAX_DEPTH`, is replaced by a placeholder string."""
    if not isinstance(value, (dict, list, tuple)):
        return value
    problem = ("refers to itself" if id(value) in parents
               else f"nested deeper than {MAX_DEPTH} levels" if depth >= MAX_DEPTH else None)
    if problem is not None:
        shown = path if len(path) <= 80 else path[:77] + "..."
        logger.warning("alerts: the value at %r was not stored: %s", shown, problem)
        return f"<not stored: {problem}>"
    parents = parents | {id(value)}
    if isinstance(value, dict):
        return {k: bounded(v, f"{path}/{k}" if path else str(k), depth + 1, parents) for k, v in value.items()}
    return [bounded(v, f"{path}[{i}]", depth + 1, parents) for i, v in enumerate(value)]


def loads(text: str | None) -> Any:
    """Decode what :func:`dumps` wrote (``None`` reads as ``None``)."""
    if text is None:
        return None
    return json.loads(text)


def pack_rows(rows: list, repaired: Repairs = None) -> bytes:
    """History rows (dicts of plain values) as one MessagePack document. Never raises: a row that
    fails is sanitized key by key, so one bad key costs neither its row nor the other rows."""
    try:
        return msgpack.packb(rows, default=fallback)
    except Exception:  # a lone surrogate, an odd type or key, a huge int, a value nested too deep
        pass
    return msgpack.packb([_clean_row(row, repaired) for row in rows], default=fallback)


def _clean_row(row: Any, repaired: Repairs) -> Any:
    try:
        msgpack.packb(row, default=fallback)
        return row
    except Exception:
        pass
    if isinstance(row, dict):
        return sanitize_items(row, repaired)
    try:
        return sanitize(row, repaired)
    except Exception:
        return None


def unpack_rows(data: bytes) -> list:
    """What :func:`pack_rows` wrote."""
    return msgpack.unpackb(data, strict_map_key=False)
