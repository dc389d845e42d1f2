"""Run ids and generated run names (``adjective-noun-N``, as wandb makes them), and the rules every
id and name given to ``init()`` must follow so that both stores (SQLite, PostgreSQL) keep it alike.

A run id names the run's folder of media files and fills a 64-character column: it is 1-64 letters,
digits, ``-`` or ``_`` (wandb's rule), so it can never climb out of the media folder. A project is at
most 128 characters without ``/ \\ # ? % :`` (wandb's rule; ``alerts show project/run`` splits on
``/``, and PostgreSQL indexes it). Names, group, job type, tags and notes are strings of any length
without NUL characters or lone surrogates, which PostgreSQL (or any UTF-8 driver) refuses.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Optional, Sequence

from alerts.errors import InvalidArgument

_ID_ALPHABET = string.ascii_lowercase + string.digits

_ADJECTIVES = (
    "amber", "bold", "brisk", "calm", "clever", "crisp", "dandy", "eager", "fancy", "fluent", "gentle",
    "glad", "hardy", "honest", "jolly", "keen", "lively", "lucky", "merry", "misty", "noble", "plucky",
    "proud", "quiet", "rapid", "royal", "rustic", "sandy", "silent", "snowy", "solar", "stellar",
    "sunny", "swift", "tidy", "vivid", "warm", "wild", "wise", "young",
)
_NOUNS = (
    "aurora", "breeze", "brook", "cloud", "comet", "dawn", "dew", "dream", "dust", "eclipse", "field",
    "firefly", "flower", "forest", "frost", "galaxy", "glade", "grass", "harbor", "haze", "lake", "leaf",
    "meadow", "moon", "mountain", "night", "ocean", "pine", "planet", "rain", "river", "sea", "shadow",
    "sky", "smoke", "snow", "star", "sun", "thunder", "wave",
)


def new_run_id() -> str:
    """Eight random characters from a-z0-9 (wandb's form)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def new_run_name(number: int) -> str:
    """A readable name such as ``swift-river-12``; ``number`` is the run's place in its project."""
    return f"{secrets.choice(_ADJECTIVES)}-{secrets.choice(_NOUNS)}-{number}"


RUN_ID_MAX = 64  # the width of runs.id
RUN_ID_RULE = f"1-{RUN_ID_MAX} characters, each a letter, a digit, '-' or '_'"
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,%d}" % RUN_ID_MAX)
PROJECT_MAX = 128
PROJECT_FORBIDDEN = "/\\#?%:"


def _shown(value: str) -> str:
    """A value for an error message: a 10 MB id must not become a 10 MB message."""
    return repr(value) if len(value) <= 80 else f"{value[:77]!r}... ({len(value)} characters)"


def check_run_id(run_id: object, source: str = "id") -> str:
    """``run_id`` if it is a valid run id, else an :class:`InvalidArgument` naming the rule (a
    ``TypeError`` if it is not a string). ``source`` says where it came from (``WANDB_RUN_ID``)."""
    if not isinstance(run_id, str):
        raise TypeError(f"{source} must be a string, not {type(run_id).__name__}")
    if not _RUN_ID.fullmatch(run_id):
        why = f" (this one has {len(run_id)})" if len(run_id) > RUN_ID_MAX else ""
        raise InvalidArgument(f"{source} {_shown(run_id)} is not a valid run id: a run id is {RUN_ID_RULE}{why}")
    return run_id


def check_text(value: Optional[str], field: str) -> Optional[str]:
    """``value`` if the store can keep it as it is (None, or a string without NUL or lone surrogates)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidArgument(f"{field} {_shown(value)} contains a NUL character, which the store cannot keep")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{field} {_shown(value)} is not valid Unicode (a lone surrogate), "
                              "which the store cannot keep") from None
    return value


def check_project(project: str) -> str:
    """``project`` if it follows wandb's rule for project names (see the module's docstring)."""
    check_text(project, "project")
    if len(project) > PROJECT_MAX or any(c in PROJECT_FORBIDDEN for c in project):
        raise InvalidArgument(f"project {_shown(project)} is not a valid project name: a project is at most "
                              f"{PROJECT_MAX} characters, none of {' '.join(PROJECT_FORBIDDEN)}")
    return project


def check_tags(tags: Optional[Sequence[str]]) -> list[str]:
    """The tags as a list; each must be a string the store can keep (a lone string is one tag's worth
    of characters to wandb too, so it is refused rather than split into letters)."""
    if tags is None:
        return []
    if isinstance(tags, str):
        raise TypeError(f"tags must be a list of strings, not a string ({_shown(tags)}); pass [{tags!r}]")
    return [check_text(tag, "a tag") for tag in tags]
