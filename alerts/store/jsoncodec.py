"""Encodings the store writes: JSON in Python's dialect (NaN and +-Infinity allowed) for small documents
(config, summary), MessagePack for history chunks; neither fails on an odd type."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgpack

logger = logging.getLogger("alerts")

# Levels of nested dicts and lists a stored value may have (log() and config skip deeper values with a
# warning; here, a deeper branch or a cycle made after the value was set is stored as a placeholder).
MAX_DEPTH = 100


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
    return str(value)


def sanitize(value: Any) -> Any:
    """A copy that any encoder takes: keys as strings, strings valid UTF-8 (lone surrogates, as
    ``os.listdir`` returns for undecodable names, are replaced), odd types in their plain form."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if _has_surrogates(value) else value
    if isinstance(value, dict):
        return {sanitize(k if isinstance(k, str) else str(k)): sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)  # beyond what MessagePack (and SQL) hold
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return sanitize(fallback(value))


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def dumps(value: Any) -> str:
    """Encode ``value``; NaN and infinities are kept, unknown types fall back to a plain form, and a
    value that still cannot be encoded (tuple keys, broken strings) is sanitized rather than lost."""
    try:
        text = json.dumps(value, default=fallback, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")  # a lone surrogate passes json.dumps, then fails in the database driver
        return text
    except (TypeError, ValueError, UnicodeEncodeError, RecursionError):
        # ValueError also covers a reference cycle, RecursionError a value nested thousands deep: both
        # are cut at MAX_DEPTH before sanitize() recurses into them.
        return json.dumps(sanitize(bounded(value)), default=fallback, separators=(",", ":"), ensure_ascii=False)


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


def pack_rows(rows: list) -> bytes:
    """History rows (dicts of plain values) as one MessagePack document (sanitized if need be)."""
    try:
        return msgpack.packb(rows, default=fallback)
    except (TypeError, ValueError, UnicodeEncodeError, OverflowError):
        return msgpack.packb(sanitize(rows), default=fallback)


def unpack_rows(data: bytes) -> list:
    """What :func:`pack_rows` wrote."""
    return msgpack.unpackb(data, strict_map_key=False)
