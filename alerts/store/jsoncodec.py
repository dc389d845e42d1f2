"""JSON as the store writes it: Python's dialect (NaN and +-Infinity allowed), never failing on odd types."""

from __future__ import annotations

import json
from typing import Any


def _fallback(value: Any) -> Any:
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
    return json.dumps(value, default=_fallback, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | None) -> Any:
    """Decode what :func:`dumps` wrote (``None`` reads as ``None``)."""
    if text is None:
        return None
    return json.loads(text)
