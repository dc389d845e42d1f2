"""``Config`` and ``Summary``: dicts with attribute access, as ``wandb.config`` and ``wandb.summary``."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Callable, Iterator, Optional

from alerts.errors import AlertsWarning, ConfigError, UsageError
from alerts.sdk.convert import nesting_problem


def config_dict(value: Any) -> dict:
    """What ``init(config=...)`` and ``config.update(...)`` accept: a mapping or an argparse Namespace.

    A value that contains itself or nests too deep (:func:`~alerts.sdk.convert.nesting_problem`) is
    left out with an :class:`AlertsWarning` naming its key."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return storable(dict(value), "config", 5)
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return storable({k: v for k, v in vars(value).items() if not k.startswith("_")}, "config", 5)
    raise TypeError(f"config must be a dict or an argparse.Namespace, not {type(value).__name__}")


def storable(values: dict, what: str, stacklevel: int = 4) -> dict:
    """``values`` without the keys whose value cannot be stored (each skipped with a warning whose
    ``stacklevel`` counts from here: it points at the user's call)."""
    bad = [key for key, value in values.items() if not _keep(what, key, value, stacklevel)]
    for key in bad:
        del values[key]
    return values


def _keep(what: str, key: Any, value: Any, stacklevel: int) -> bool:
    """Whether ``value`` can be stored as ``what[key]``; warns naming the key when it cannot."""
    if not isinstance(value, (Mapping, list, tuple)):
        return True
    problem = nesting_problem(value)
    if problem is None:
        return True
    warnings.warn(f"alerts: {what} skipped key {key!r}: {problem}; the rest was kept", AlertsWarning,
                  stacklevel=stacklevel)
    return False


class AttrDict:
    """A dict reached by item or attribute; every change is reported to ``on_change``."""

    _data: dict
    _what = "value"  # how warnings name this dict

    def __init__(self, data: Optional[dict] = None, on_change: Optional[Callable[[dict], None]] = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_on_change", on_change)
        # Keys set through this object since a reader last took the set (the remote writer sends the
        # summary keys a user set; it swaps in a new set when it reads).
        object.__setattr__(self, "_touched", set())

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if _keep(self._what, key, value, 3):
            self._data[key] = value
            self._touched.add(key)
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
        self._touched.update(defaults)
        self._changed()


class Config(AttrDict):
    """The run's hyper-parameters: ``config.lr``, ``config["lr"]``, ``config.update({...})``.

    wandb's rule for changed values: setting a key that is already set to a different value raises
    :class:`~alerts.errors.ConfigError` (and changes nothing) unless ``allow_val_change=True`` is
    passed to ``update()``, or the run allows it (``init(allow_val_change=True)``, or a notebook).
    Setting a key to the value it has is fine.
    """

    _what = "config"
    _allow_val_change = False

    def __setitem__(self, key: str, value: Any) -> None:
        self._check_changes({key: value}, None)
        super().__setitem__(key, value)

    def update(self, data: Any = None, allow_val_change: Optional[bool] = None, **kwargs: Any) -> None:
        """Merge a dict or Namespace (and keyword arguments) into the config."""
        values = config_dict(data)
        values.update(storable(kwargs, self._what))
        self._check_changes(values, allow_val_change)
        self._data.update(values)
        self._changed()

    def _check_changes(self, values: Mapping, allow_val_change: Optional[bool]) -> None:
        if allow_val_change or (allow_val_change is None and self._allow_val_change):
            return
        for key, value in values.items():
            if key in self._data and not _same(self._data[key], value):
                raise ConfigError(
                    f'Attempted to change value of key "{key}" from {self._data[key]!r} to {value!r}\n'
                    "If you really want to do this, pass allow_val_change=True to config.update()")


def _same(old: Any, new: Any) -> bool:
    """Whether a config value is unchanged: by equality, or, for values that do not compare plainly
    (numpy arrays, tensors), by their plain form."""
    try:
        return bool(old == new)
    except Exception:  # an array compared with ==: ambiguous truth value
        pass
    try:
        return _plain(old) == _plain(new)
    except Exception:
        return False


def _plain(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, tuple):
        return list(value)
    return value


class Summary(AttrDict):
    """The run's final values: each ``log()`` commit sets the keys it logged; you may set others."""

    _what = "summary"

    def update(self, data: Optional[Mapping] = None, **kwargs: Any) -> None:
        """Merge values into the summary."""
        values = storable(dict(data or {}), self._what)
        values.update(storable(kwargs, self._what))
        self._data.update(values)
        self._touched.update(values)
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
