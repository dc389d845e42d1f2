"""YAML configuration files with errors that name the file and the line.

Shared by the rule files and the channel files: read a file keeping its node tree (for line numbers),
refuse duplicate keys (PyYAML silently keeps the last one), and turn a pydantic ``ValidationError``
into ``file:line: field: problem`` messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml
from pydantic import ValidationError

# Given a pydantic error location and the file's data: the location to look up in the file (pydantic
# may add parts that are not keys, such as a union's tag) and a prefix for the message.
Describe = Callable[[tuple, Any], tuple[tuple, str]]


def read_yaml(path: Path, errors: list[str]) -> Optional[tuple[yaml.Node, Any]]:
    """``(node tree, data)`` of a YAML file, or None with the problem appended to ``errors``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(f"{path}: cannot read: {exc}")
        return None
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        errors.append(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}")
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
