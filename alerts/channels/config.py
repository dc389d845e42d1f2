"""Per-user channel files (``channels/*.yaml``, DESIGN.md's contract), strict, with ``${VAR}``.

::

    user: alice
    channels:
      - type: slack
        webhook_url: ${ALICE_SLACK_WEBHOOK}   # read from the environment; a missing one is an error
        min_level: INFO
      - type: slack
        channel: "#ml-alerts"                 # Web API chat.postMessage with ALERTS_SLACK_BOT_TOKEN
        min_level: WARN
      - type: email
        to: alice@example.com                 # or a list
        min_level: ERROR

Webhook hosts must be in ``ALERTS_SLACK_WEBHOOK_HOSTS`` (default ``hooks.slack.com``) and use https;
plain http is allowed only for loopback hosts (tests, a local relay). Webhook URLs are secrets: they
are kept as ``SecretStr`` and never printed, not even in an error.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Iterable, Literal, Mapping, Optional, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from alerts.yamlfile import line_of, read_yaml, validation_errors

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# No control characters either: NUL cannot be stored (PostgreSQL) and none belongs in a header.
_EMAIL = re.compile(r"^[^@\s<>,;\"\x00-\x1f\x7f]+@[^@\s<>,;\"\x00-\x1f\x7f]+\.[^@\s<>,;\"\x00-\x1f\x7f]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelBase(_Strict):
    name: Optional[str] = Field(default=None, min_length=1, description="how the channel is shown; default by kind")
    min_level: Literal["INFO", "WARN", "ERROR"] = "INFO"


class SlackChannel(ChannelBase):
    """A Slack incoming webhook (``webhook_url``) or a channel or user for chat.postMessage (``channel``)."""

    type: Literal["slack"]
    webhook_url: Optional[SecretStr] = None
    channel: Optional[str] = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_target(self) -> "SlackChannel":
        if (self.webhook_url is None) == (self.channel is None):
            raise ValueError("a slack channel has either webhook_url or channel (not both, not neither)")
        return self

    @property
    def label(self) -> str:
        return self.name or (f"slack {self.channel}" if self.channel else "slack webhook")


class EmailChannel(ChannelBase):
    """One email to every address of ``to`` for each notification (one per group)."""

    type: Literal["email"]
    to: list[str] = Field(min_length=1)

    @field_validator("to", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> list[str]:
        addresses = [value] if isinstance(value, str) else value
        if not isinstance(addresses, list):
            raise ValueError("to is an address or a list of addresses")
        for address in addresses:
            if not isinstance(address, str) or not _EMAIL.match(address.strip()):
                raise ValueError(f"{address!r} is not an email address")
        unique: dict[str, str] = {}
        for address in addresses:  # an address listed twice gets one email, as before
            unique.setdefault(address.strip().lower(), address.strip())
        return list(unique.values())

    @property
    def label(self) -> str:
        return self.name or f"email {', '.join(self.to)}"


ChannelConfig = Annotated[Union[SlackChannel, EmailChannel], Field(discriminator="type")]


class UserChannels(_Strict):
    user: str = Field(min_length=1)
    channels: list[ChannelConfig] = Field(default_factory=list)


@dataclass(frozen=True)
class Destination:
    """One configured channel of one user, with the stable key its deliveries are filed under.

    An email channel with several addresses is one destination per address (``recipient``, and
    ``config.to`` holding only that address): each address has its own outbox row, so a mailbox that
    answers 450 is retried on its own, one that answers 550 is dead on its own, and the addresses that
    accepted are never sent the alert twice.
    """

    user: str
    index: int
    config: Union[SlackChannel, EmailChannel]
    recipient: Optional[str] = None

    @property
    def channel_key(self) -> str:
        """``user/name`` or ``user/type-N``: the channel's own key, stable across reloads, free of secrets."""
        return f"{self.user}/{self.config.name or f'{self.config.type}-{self.index}'}"

    @property
    def key(self) -> str:
        """The channel's key, and ``<address>`` after it for one address of a multi-address email channel."""
        return self.channel_key if self.recipient is None else f"{self.channel_key} <{self.recipient}>"

    @property
    def label(self) -> str:
        shown = self.config.label
        if self.recipient is not None and self.config.name:
            shown += f" <{self.recipient}>"
        return f"{self.user}: {shown}"


def destinations_of(user: str, channels: list) -> list[Destination]:
    """The destinations of one user's channels, in file order (an email channel with several
    addresses gives one per address)."""
    result = []
    for index, config in enumerate(channels):
        if isinstance(config, EmailChannel) and len(config.to) > 1:
            result += [Destination(user, index, config.model_copy(update={"to": [address]}), recipient=address)
                       for address in config.to]
        else:
            result.append(Destination(user, index, config))
    return result


@dataclass
class ChannelSet:
    """Every user's channels.

    A long-lived process (the server) changes its set in place with :meth:`replace`, so that whoever
    holds it (the relay) sees the new channels; ``generation`` counts the changes.
    """

    users: dict[str, list[Destination]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    generation: int = 0

    def of(self, user: str) -> list[Destination]:
        return self.users.get(user, [])

    def replace(self, other: "ChannelSet") -> None:
        """Take ``other``'s channels (each attribute swapped whole: a reader in another thread sees
        the old set or the new one) and count a generation."""
        self.users = other.users
        self.files = other.files
        self.generation += 1

    def by_key(self, key: str) -> Optional[Destination]:
        """The destination filed under ``key``. A multi-address email channel's own key (rows queued
        before its addresses had a row each) is the whole channel, all its addresses."""
        user = key.split("/", 1)[0]
        found = next((d for d in self.of(user) if d.key == key), None)
        if found is None:
            part = next((d for d in self.of(user) if d.recipient is not None and d.channel_key == key), None)
            if part is not None:
                return Destination(user, part.index, _whole_channel(self.of(user), part))
        return found


def _whole_channel(destinations: list[Destination], part: Destination) -> EmailChannel:
    addresses = [d.recipient for d in destinations if d.channel_key == part.channel_key]
    return part.config.model_copy(update={"to": addresses})


class ChannelLoadError(Exception):
    """Channel files that could not be loaded; ``errors`` holds one ``file:line: ...`` message each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def _expand(value: Any, env: Mapping[str, str], loc: tuple, missing: list[tuple[tuple, str]]) -> Any:
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                missing.append((loc, name))
                return ""
            return env[name]
        return _VAR.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand(v, env, (*loc, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, (*loc, i), missing) for i, v in enumerate(value)]
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str, allowed_hosts: Iterable[str]) -> Optional[str]:
    """Why a webhook URL is not allowed (never quoting the URL: it is a secret), or None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    allowed = {h.strip().lower() for h in allowed_hosts if h.strip()}
    if not host:
        return "webhook_url is not a URL"
    if host not in allowed:
        return f"webhook host {host!r} is not in ALERTS_SLACK_WEBHOOK_HOSTS ({', '.join(sorted(allowed))})"
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(host)):
        return f"webhook_url must use https (plain http only for loopback hosts), not {parts.scheme or 'nothing'}"
    return None


def load_channel_file(path: Path, env: Mapping[str, str], webhook_hosts: Iterable[str],
                      errors: list[str]) -> Optional[UserChannels]:
    """One user's channels; problems are appended to ``errors``."""
    read = read_yaml(path, errors)
    if read is None:
        return None
    root, data = read
    if not isinstance(data, dict):
        errors.append(f"{path}:1: a channel file is a mapping with 'user:' and 'channels:'")
        return None
    missing: list[tuple[tuple, str]] = []
    expanded = _expand(data, env, (), missing)
    for loc, name in missing:
        errors.append(f"{path}:{line_of(root, loc)}: {'.'.join(map(str, loc))}: ${{{name}}} is not set in the environment")
    if missing:
        return None
    try:
        parsed = UserChannels.model_validate(expanded)
    except ValidationError as exc:
        validation_errors(path, root, expanded, exc, errors, describe=_describe)
        return None
    ok = _unique_names(path, root, parsed, errors)
    for index, channel in enumerate(parsed.channels):
        if isinstance(channel, SlackChannel) and channel.webhook_url is not None:
            problem = check_webhook_url(channel.webhook_url.get_secret_value(), webhook_hosts)
            if problem:
                errors.append(f"{path}:{line_of(root, ('channels', index, 'webhook_url'))}: "
                              f"channels.{index}.webhook_url: {problem}")
                ok = False
    return parsed if ok else None


def _unique_names(path: Path, root: Any, parsed: UserChannels, errors: list[str]) -> bool:
    """Each channel's key is its own: two channels filed under one key would both ride to the first
    (the second would get nothing, and both rows would count as sent). Appends an error per clash."""
    first: dict[str, int] = {}
    ok = True
    for destination in destinations_of(parsed.user, parsed.channels):
        index = destination.index
        earlier = first.setdefault(destination.key, index)
        if earlier == index:
            continue
        ok = False
        field = "name" if destination.config.name else "type"
        errors.append(f"{path}:{line_of(root, ('channels', index, field))}: channels.{index}.{field}: channel "
                      f"{destination.key!r} is already channels.{earlier} (line {line_of(root, ('channels', earlier))}): "
                      "give each channel of a user its own name")
    return ok


def _describe(loc: tuple, data: Any) -> tuple[tuple, str]:
    # Drop the union's tag ("slack"/"email") that pydantic puts after the list index.
    if len(loc) >= 3 and loc[0] == "channels" and loc[2] in ("slack", "email"):
        loc = (*loc[:2], *loc[3:])
    return loc, ""


def load_channels(paths: Iterable[Union[str, Path]], env: Optional[Mapping[str, str]] = None,
                  webhook_hosts: Iterable[str] = ("hooks.slack.com",)) -> ChannelSet:
    """Every user's channels from the ``*.yaml``/``*.yml`` files under ``paths`` (a missing folder is
    no channels). :class:`ChannelLoadError` lists every problem."""
    env = os.environ if env is None else env
    webhook_hosts = list(webhook_hosts)
    errors: list[str] = []
    result = ChannelSet()
    seen: dict[str, Path] = {}
    for base in map(Path, paths):
        if base.is_dir():
            files = sorted(p for p in base.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        elif base.exists():
            files = [base]
        else:
            continue
        for path in files:
            parsed = load_channel_file(path, env, webhook_hosts, errors)
            if parsed is None:
                continue
            if parsed.user in seen:
                errors.append(f"{path}:1: user {parsed.user!r} already has a channel file: {seen[parsed.user]}")
                continue
            seen[parsed.user] = path
            result.files.append(path)
            result.users[parsed.user] = destinations_of(parsed.user, parsed.channels)
    if errors:
        raise ChannelLoadError(errors)
    return result
