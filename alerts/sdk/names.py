"""Run ids and generated run names (``adjective-noun-N``, as wandb makes them)."""

from __future__ import annotations

import secrets
import string

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
