"""Encodings the store writes: JSON in Python's dialect (NaN and +-Infinity allowed) for small documents
(config, summary), MessagePack for history chunks; neither fails on an odd type."""

from __future__ import annotations

import json
from typing import Any

import msgpack


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


def dumps(value: Any) -> str:
    """Encode ``value``; NaN and infinities are kept, unknown types fall back to a plain form."""
    return json.dumps(value, default=fallback, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Decode what :func:`dumps` wrote (``None`` reads as ``None``)."""
    if text is None:
        return None
    return json.loads(text)


def pack_rows(rows: list) -> bytes:
    """History rows (dicts of plain values) as one MessagePack document."""
    return msgpack.packb(rows, default=fallback)


def unpack_rows(data: bytes) -> list:
    """What :func:`pack_rows` wrote."""
    return msgpack.unpackb(data, strict_map_key=False)
