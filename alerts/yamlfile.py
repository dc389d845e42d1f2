"""YAML configuration files with errors that name the file and the line.

Shared by the rule files and the channel files: read a file keeping its node tree (for line numbers),
refuse duplicate keys (PyYAML silently keeps the last one), and turn a pydantic ``ValidationError``
into ``file:line: field: problem`` messages.

A file is read with bounds, so that no file can stall or crash the process reading it (a training
run's ``init()`` among them): an alias may not refer to a node that contains it, aliases may add at
most :data:`ALIAS_BUDGET` nodes to a file once expanded (a 480-byte "billion laughs" file expands to
10^9), and nesting is at most :data:`MAX_DEPTH` levels deep (PyYAML composes recursively).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml
from pydantic import ValidationError

# How many nodes aliases (``*name``) may add to one file, each alias counting every node of what it
# refers to. Anchors for shared defaults (``<<: *defaults`` in every rule) stay far below it.
ALIAS_BUDGET = 10_000
# How deeply collections may nest: rule and channel files need about five levels.
MAX_DEPTH = 50


class YamlLimitError(yaml.MarkedYAMLError):
    """A file that is valid YAML but beyond what :func:`read_yaml` accepts (see the module's bounds)."""


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses recursive aliases, alias expansion beyond
    :data:`ALIAS_BUDGET` nodes and nesting deeper than :data:`MAX_DEPTH`, naming the line."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> its node count with aliases expanded; set once composed
        self._alias_nodes = 0
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._compose_alias(event, parent, index)
        if self._depth >= MAX_DEPTH:
            raise YamlLimitError(None, None, f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = node.value if isinstance(node, yaml.SequenceNode) else ()
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        return node

    def _compose_alias(self, event: yaml.AliasEvent, parent, index):
        target = self.anchors.get(event.anchor)
        if target is not None and id(target) not in self._sizes:
            # Its anchor's node is still being composed: the alias is inside what it refers to.
            raise YamlLimitError(None, None, f"alias *{event.anchor} is inside the node it refers to "
                                 "(a recursive alias)", event.start_mark)
        node = super().compose_node(parent, index)  # PyYAML's own error for an undefined alias
        self._alias_nodes += self._sizes[id(node)]
        if self._alias_nodes > ALIAS_BUDGET:
            raise YamlLimitError(None, None, f"aliases expand to more than {ALIAS_BUDGET:,} nodes by *{event.anchor} "
                                 "here (the limit for one file, against alias bombs)", event.start_mark)
        return node


def load_bounded(text: str) -> Any:
    """The data of a YAML document, read within :class:`BoundedLoader`'s bounds (``yaml.YAMLError``)."""
    return yaml.load(text, Loader=BoundedLoader)


def describe_yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """``file:line: problem`` for a YAML error (a bound of :class:`BoundedLoader` or bad syntax)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    kind = "" if isinstance(exc, YamlLimitError) else "not valid YAML: "
    return f"{where}: {kind}{getattr(exc, 'problem', None) or exc}"


def read_utf8(path: Path) -> str:
    """A YAML file's text; ``UnicodeDecodeError`` (see :func:`describe_decode_error`) if it is not UTF-8."""
    return path.read_bytes().decode("utf-8")


def describe_decode_error(path: Path, exc: UnicodeDecodeError) -> str:
    """``file:line: ...`` for a file saved in another encoding (an editor's Latin-1 or cp1252 "é")."""
    line = exc.object[:exc.start].count(b"\n") + 1
    return (f"{path}:{line}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8")


# Given a pydantic error location and the file's data: the location to look up in the file (pydantic
# may add parts that are not keys, such as a union's tag) and a prefix for the message.
Describe = Callable[[tuple, Any], tuple[tuple, str]]


def read_yaml(path: Path, errors: list[str]) -> Optional[tuple[yaml.Node, Any]]:
    """``(node tree, data)`` of a YAML file, or None with the problem appended to ``errors``."""
    try:
        text = read_utf8(path)
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return None
    except UnicodeDecodeError as exc:
        errors.append(describe_decode_error(path, exc))
        return None
    return parse_yaml(text, path, errors)


def parse_yaml(text: str, path: Path, errors: list[str]) -> Optional[tuple[yaml.Node, Any]]:
    """``(node tree, data)`` of YAML text read from ``path`` (only named in errors), or None with the
    problem appended to ``errors``: :func:`read_yaml` for text that is not in a file (posted to the API)."""
    try:
        # Composed for the lines and constructed apart: constructing merges ``<<`` keys into the
        # node tree, which would make an overridden default look like a duplicate key.
        root = yaml.compose(text, Loader=BoundedLoader)
        data = load_bounded(text)
    except yaml.YAMLError as exc:
        errors.append(describe_yaml_error(path, exc))
        return None
    before = len(errors)
    duplicate_keys(root, str(path), errors)
    if len(errors) > before:
        return None
    return root, data


def line_of(node: Optional[yaml.Node], loc: Sequence[Any]) -> int:
    """The line of the node at ``loc`` (keys and list indexes), or of the deepest node found."""
    line = (node.start_mark.line + 1) if node is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == part:
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def duplicate_keys(node: Optional[yaml.Node], path: str, errors: list[str]) -> None:
    """Append an error for every key that appears twice in one mapping."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                errors.append(f"{path}:{key_node.start_mark.line + 1}: key {key!r} appears twice "
                              f"(first on line {seen[key]})")
            seen[key] = key_node.start_mark.line + 1
            duplicate_keys(value_node, path, errors)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            duplicate_keys(item, path, errors)


def validation_errors(path: Path, root: yaml.Node, data: Any, exc: ValidationError, errors: list[str],
                      describe: Optional[Describe] = None, field_from: int = 0) -> None:
    """Append one ``file:line: prefix field: problem`` message per pydantic error.

    ``field_from`` drops leading parts of the location from the field shown (``rules.3.`` is said
    by the prefix instead).
    """
    for error in exc.errors():
        loc, prefix = describe(tuple(error["loc"]), data) if describe else (tuple(error["loc"]), "")
        line = line_of(root, loc)
        field_path = ".".join(str(p) for p in loc[field_from:])
        if error["type"] == "extra_forbidden":
            message = f"unknown key {str(loc[-1])!r}"
        elif error["type"] == "union_tag_invalid":  # e.g. kind: thresold
            ctx = error.get("ctx", {})
            discriminator = str(ctx.get("discriminator", "kind")).strip("'")
            field_path = ".".join(str(p) for p in (*loc[field_from:], discriminator))
            line = line_of(root, (*loc, discriminator))
            message = f"{discriminator} must be one of {str(ctx.get('expected_tags', '')).replace(chr(39), '')}"
            errors.append(f"{path}:{line}: {prefix}{field_path}: {message}")
            continue
        else:
            message = error["msg"].removeprefix("Value error, ")
        errors.append(f"{path}:{line}: {prefix}{field_path + ': ' if field_path else ''}{message}")
