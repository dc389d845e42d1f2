"""``Config`` and ``Summary``: dicts with attribute access, as ``wandb.config`` and ``wandb.summary``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional

from alerts.errors import UsageError


def config_dict(value: Any) -> dict:
    """What ``init(config=...)`` and ``config.update(...)`` accept: a mapping or an argparse Namespace."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    raise TypeError(f"config must be a dict or an argparse.Namespace, not {type(value).__name__}")


class AttrDict:
    """A dict reached by item or attribute; every change is reported to ``on_change``."""

    _data: dict

    def __init__(self, data: Optional[dict] = None, on_change: Optional[Callable[[dict], None]] = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_on_change", on_change)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[key] = value
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AttrDict):
            return self._data == other._data
        return self._data == other

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self):
        return self._data.keys()

    def values(self):
        return self._data.values()

    def items(self):
        return self._data.items()

    def as_dict(self) -> dict:
        """A plain copy."""
        return dict(self._data)

    def setdefaults(self, defaults: Mapping) -> None:
        """Set the keys of ``defaults`` that are not set yet."""
        for key, value in defaults.items():
            self._data.setdefault(key, value)
        self._changed()


class Config(AttrDict):
    """The run's hyper-parameters: ``config.lr``, ``config["lr"]``, ``config.update({...})``."""

    def update(self, data: Any = None, allow_val_change: bool = False, **kwargs: Any) -> None:
        """Merge a dict or Namespace (and keyword arguments) into the config."""
        self._data.update(config_dict(data))
        self._data.update(kwargs)
        self._changed()


class Summary(AttrDict):
    """The run's final values: each ``log()`` commit sets the keys it logged; you may set others."""

    def update(self, data: Optional[Mapping] = None, **kwargs: Any) -> None:
        """Merge values into the summary."""
        self._data.update(data or {})
        self._data.update(kwargs)
        self._changed()


class PreInit:
    """Stands for ``alerts.config``/``alerts.summary`` before ``init()``: any use names the fix."""

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _fail(self, *_args: Any, **_kwargs: Any) -> Any:
        raise UsageError(f"You must call alerts.init() before using {self._name}")

    __getitem__ = __setitem__ = __delitem__ = __iter__ = __len__ = __contains__ = _fail

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        raise UsageError(f"You must call alerts.init() before {self._name}.{key}")

    def __setattr__(self, key: str, value: Any) -> None:
        raise UsageError(f"You must call alerts.init() before {self._name}.{key}")

    def __repr__(self) -> str:
        return f"<{self._name} before init()>"
