"""Rule titles and texts: ``"Accuracy {value:.2f} in {run.name}"``.

A template may name only the fields its rule kind provides, with an optional format spec and ``!r``/
``!s`` conversion. It is parsed once at load time; there is no attribute or item access, so a template
cannot reach into Python objects (``{run.__class__}`` is an unknown field, not a lookup), and values are
plain strings and numbers, whose ``__format__`` runs no user code.

Sizes are bounded twice: a format spec may not ask for a width or precision over
:data:`MAX_FORMAT_WIDTH` (``{value:>200000000}`` is a load error, not 200 MB per alert), and every
alert's title and text, rule or ``alert()``, are cut to :data:`MAX_TITLE_CHARS` and
:data:`MAX_TEXT_CHARS` (:func:`clip_title`, :func:`clip_text`), whatever the fields held.
"""

from __future__ import annotations

import logging
import re
import string
from typing import Any, Iterable, Optional

logger = logging.getLogger("alerts")

COMMON_FIELDS = frozenset({
    "rule", "level", "status", "run.id", "run.name", "run.project", "run.owner", "run.group", "run.job_type",
    "run.tags",
})
FIELDS_BY_KIND = {
    "threshold": COMMON_FIELDS | {"metric", "value", "step", "threshold", "condition", "aggregate", "window"},
    "change": COMMON_FIELDS | {"metric", "value", "step", "change", "by", "direction", "window", "prior_window",
                               "current", "prior"},
    "stalled": COMMON_FIELDS | {"after", "since", "step"},
    "run_state": COMMON_FIELDS | {"run.state", "error", "exit_code"},
}
# The widest width or precision a format spec may ask for: room for any table layout, not for a
# template that makes megabytes per alert.
MAX_FORMAT_WIDTH = 1000
# An alert's title and text are cut to these many characters (Slack's own limits are a guide: a header
# block holds 150 characters, a section 3000; the console, the store and email get the same cut).
MAX_TITLE_CHARS = 250
MAX_TEXT_CHARS = 3000
ELLIPSIS = "…"
_NUMBER = re.compile(r"\d+")

# Values used to try a template at load time, so that a bad format spec is reported then.
_SAMPLES: dict[str, Any] = {"value": 1.5, "step": 10, "threshold": 0.5, "window": 5, "prior_window": 5,
                            "change": 0.25, "by": 0.5, "current": 1.5, "prior": 1.0, "exit_code": 1}


def template_values(transition: Any) -> dict:
    """The fields a rule's templates may use, for one transition (live runs and rule tests alike)."""
    run = transition.run
    return {
        "rule": transition.rule.name, "level": transition.rule.level, "status": transition.status,
        "run.id": run.id, "run.name": run.name, "run.project": run.project, "run.owner": run.owner,
        "run.group": run.group or "", "run.job_type": run.job_type or "", "run.tags": ", ".join(run.tags),
        "metric": transition.metric, "value": transition.value, "step": transition.step, **transition.fields,
    }


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def clip_title(title: str) -> str:
    """An alert's title as it is shown, stored and sent: at most :data:`MAX_TITLE_CHARS`."""
    return clip(title, MAX_TITLE_CHARS)


def clip_text(text: str) -> str:
    """An alert's text as it is shown, stored and sent: at most :data:`MAX_TEXT_CHARS`."""
    return clip(text, MAX_TEXT_CHARS)


class TemplateError(ValueError):
    """A template names a field its rule does not have, or has a bad format spec."""


def spec_problem(spec: str) -> Optional[str]:
    """What is wrong with the size a format spec asks for, or None. In the format mini-language the
    only numbers are the width and the precision (a digit fill is one character, its own number)."""
    for number in _NUMBER.findall(spec):
        digits = number.lstrip("0")
        if len(digits) > len(str(MAX_FORMAT_WIDTH)) or int(digits or "0") > MAX_FORMAT_WIDTH:
            return (f"format spec {spec!r} asks for {digits[:12]}{'...' if len(digits) > 12 else ''} "
                    f"characters; a width or precision may be at most {MAX_FORMAT_WIDTH}")
    return None


class Template:
    """A parsed template; :meth:`render` fills it from a dict of field values."""

    def __init__(self, source: str, allowed: Iterable[str]) -> None:
        self.source = source
        allowed = frozenset(allowed)
        self._parts: list[tuple[str, Optional[str], str, Optional[str]]] = []
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as exc:
            raise TemplateError(f"{source!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if field not in allowed:
                    raise TemplateError(f"{source!r}: unknown field {{{field}}}; this rule has "
                                        + ", ".join("{" + f + "}" for f in sorted(allowed)))
                if spec and ("{" in spec or "}" in spec):
                    raise TemplateError(f"{source!r}: nested fields in a format spec are not allowed")
                if conversion not in (None, "r", "s"):
                    raise TemplateError(f"{source!r}: conversion !{conversion} is not allowed (use !r or !s)")
                problem = spec_problem(spec or "")
                if problem is not None:  # checked before the sample render below, which would make it
                    raise TemplateError(f"{source!r}: {problem}")
            self._parts.append((literal, field, spec or "", conversion))
        samples = {f: _SAMPLES.get(f, "x") for f in allowed}
        try:
            self._render(samples)
        except (ValueError, TypeError) as exc:
            raise TemplateError(f"{source!r}: {exc}") from None

    def _render(self, values: dict, plain: bool = False) -> str:
        out = []
        for literal, field, spec, conversion in self._parts:
            out.append(literal)
            if field is None:
                continue
            value = values.get(field)
            if conversion == "r":
                value = repr(value)
            elif conversion == "s":
                value = str(value)
            out.append(str(value) if plain else format(value, spec))
        return "".join(out)

    def render(self, values: dict) -> str:
        """The filled template; a value its spec cannot format (a string for ``:.2f``) is written plain."""
        try:
            return self._render(values)
        except (ValueError, TypeError, OverflowError):
            return self._render(values, plain=True)
