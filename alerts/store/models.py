"""The tables of the store.

Metrics are kept the way wandb keeps them: a history row per ``log()`` commit (a step) holding every
value logged at that step. The rows a run logs between two commits of the background writer are stored
together as one *chunk* (MessagePack: NaN and +-Infinity survive, no float is formatted as text). A
row per point, or JSON per step, costs the writer more CPU per step than ``log()`` itself costs, and
the writer shares the GIL with the training loop: with chunks it keeps up with a loop that does
nothing but log, so memory stays flat. Other columns hold JSON (Python's dialect, NaN allowed). Steps and exit codes are 64-bit on both
backends (PostgreSQL's INTEGER is 32-bit: a step past 2**31 would be stored by SQLite and refused
by PostgreSQL).
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import BigInteger, Column, Index, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class RunRecord(SQLModel, table=True):
    """One training run: who, what, its configuration, its summary and where it is in its life."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(index=True)
    project: str = Field(index=True)
    name: str
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    notes: Optional[str] = Field(default=None, sa_column=Column(Text))
    config: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    summary: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    # running | finished | failed | killed | preempted | crashed
    state: str = Field(default="running", index=True)
    created_at: float
    updated_at: float
    heartbeat_at: float
    finished_at: Optional[float] = None
    exit_code: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    error_type: Optional[str] = None
    error_text: Optional[str] = Field(default=None, sa_column=Column(Text))
    last_step: int = Field(default=-1, sa_column=Column(BigInteger, nullable=False, default=-1))
    host: Optional[str] = None
    pid: Optional[int] = None
    # The last batch sequence number the server stored for this run (remote runs; 0: none). A batch
    # with a seq at or below it is a replay and is not stored again (alerts/server/ingest.py).
    last_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0, server_default="0"))


class HistoryChunk(SQLModel, table=True):
    """Consecutive history rows of one run (steps ``first_step``..``last_step``), as MessagePack."""

    __tablename__ = "history_chunks"
    __table_args__ = (Index("ix_history_chunks_run_step", "run_id", "first_step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id")
    first_step: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_step: int = Field(sa_column=Column(BigInteger, nullable=False))
    n_rows: int
    last_time: float
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class MediaRecord(SQLModel, table=True):
    """A file logged with a run (a ``Table`` or an ``Image``), stored beside the database."""

    __tablename__ = "media"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    step: int = Field(sa_column=Column(BigInteger, nullable=False))
    key: str
    kind: str  # table | image
    path: str  # relative to the media folder
    meta: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class AlertRecord(SQLModel, table=True):
    """Every alert raised, with what became of it (``notified`` or ``suppressed`` and why)."""

    __tablename__ = "alerts"

    id: Optional[int] = Field(default=None, primary_key=True)
    uid: Optional[str] = Field(default=None, index=True)  # links the alert to its deliveries
    run_id: str = Field(foreign_key="runs.id", index=True)
    created_at: float
    source: str = "alert"  # alert (an explicit alert() call) | rule
    rule: Optional[str] = None
    status: str = "firing"  # firing | resolved (rule alerts resolve; explicit ones only fire)
    metric: Optional[str] = None
    value: Optional[float] = None
    title: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    level: str
    outcome: str  # notified | suppressed | failed (the channel raised; reason says why)
    reason: Optional[str] = None
    wait_duration: float = 60.0
    step: Optional[int] = Field(default=None, sa_column=Column(BigInteger))


def alert_row(**columns) -> dict:
    """An alerts-table row with every column present: a batch insert needs the same keys in every row."""
    row = {"uid": None, "rule": None, "status": "firing", "metric": None, "value": None, "reason": None,
           "step": None}
    row.update(columns)
    return row


class DeliveryRecord(SQLModel, table=True):
    """The outbox: one row per (notification, channel), committed with the alert it belongs to.

    A relay claims due rows with a lease (``lease_until``), sends, and records the outcome on the row:
    ``sent`` (``carried_by`` names the row whose message carried it when several were grouped),
    ``pending`` again with a later ``next_attempt_at`` (retry), or ``dead`` with ``last_error``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "state", "next_attempt_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    alert_uid: str = Field(index=True)
    destination: str = Field(index=True)  # Destination.key: user/name
    user: str
    group_key: str
    level: str
    payload: str = Field(sa_column=Column(Text, nullable=False))  # the Notification, as JSON
    state: str = "pending"  # pending | sent | dead | suppressed (a silence: last_error says which)
    attempts: int = 0
    created_at: float
    next_attempt_at: float
    lease_until: Optional[float] = None
    lease_owner: Optional[str] = None
    sent_at: Optional[float] = None
    carried_by: Optional[int] = None
    message_id: Optional[str] = None
    last_error: Optional[str] = Field(default=None, sa_column=Column(Text))


class DeliveryStateRecord(SQLModel, table=True):
    """Delivery state every relay on the store shares, one row per key (alerts/delivery/state.py):

    * ``dest:<destination>`` and ``user:<user>``: a token bucket, ``tokens`` as of ``updated_at``
      (``None``: never used, full). An ``updated_at`` in the future is a pause (a 429's Retry-After):
      no token before then.
    * ``group:<destination>|<group>``: ``last_sent_at``, when that group's last message went.

    Relays read and write these rows only inside one short locked transaction per decision.
    """

    __tablename__ = "delivery_state"

    key: str = Field(sa_column=Column(Text, primary_key=True))
    tokens: Optional[float] = None
    updated_at: float = 0.0
    last_sent_at: Optional[float] = None


class SilenceRecord(SQLModel, table=True):
    """A silence: deliveries whose labels match all ``matchers`` (JSON) are muted in its window."""

    __tablename__ = "silences"

    id: Optional[int] = Field(default=None, primary_key=True)
    matchers: str = Field(sa_column=Column(Text, nullable=False))
    starts_at: float
    ends_at: float = Field(index=True)
    created_by: str
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: float
    # Whose deliveries it mutes: None, everyone's (``alerts silence add``, an admin through the API);
    # a user name, only the deliveries to that user's channels (a user's own silence through the API).
    user: Optional[str] = Field(default=None, index=True)


class LeaseRecord(SQLModel, table=True):
    """A named job that at most one process of the store runs at a time (``relay``: the detached relay).

    The holder keeps it by renewing ``until``; a lease past ``until`` is free, and so is one whose
    holder was a process of this host that no longer runs (``host`` and ``pid``). A holder with no
    ``pid`` is a process being started for the job: only ``until`` frees its lease.
    """

    __tablename__ = "leases"

    name: str = Field(primary_key=True)
    holder: str  # host:pid:tag, unique to one holding
    host: str
    pid: Optional[int] = None
    until: float
    acquired_at: float
    renewed_at: float


class UserRecord(SQLModel, table=True):
    """A user of the server: owns runs (``runs.owner``), channels and silences. Admins see everything."""

    __tablename__ = "users"

    name: str = Field(primary_key=True, max_length=64)
    is_admin: bool = False
    created_at: float
    disabled: bool = False


class ApiKeyRecord(SQLModel, table=True):
    """An API key of a user. Only the key's SHA-256 is stored: the key itself is shown once, when made.

    Keys are 256 random bits, so a fast hash is enough (as GitHub's and Stripe's tokens are kept); a slow
    password hash would cost every request a few hundred milliseconds for nothing. ``prefix`` (the key's
    first characters) is what lists and ``alerts keys revoke`` show: enough to tell keys apart, useless to
    an attacker.
    """

    __tablename__ = "api_keys"

    id: Optional[int] = Field(default=None, primary_key=True)
    user: str = Field(foreign_key="users.name", index=True)
    prefix: str = Field(index=True)
    key_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    created_at: float
    last_used_at: Optional[float] = None
    revoked_at: Optional[float] = None
    label: str = ""


class ArtifactRecord(SQLModel, table=True):
    """One version of an artifact (``log_artifact``): its files live in ``ALERTS_DIR/artifacts/path``.

    Versions count per (project, name) from 0; logging the same files again (same ``digest``) is the
    same version, as in wandb. ``aliases`` holds the user's aliases of this version (JSON list); an
    alias names one version of a name at a time. ``latest`` is not stored: it is the highest version.
    """

    __tablename__ = "artifacts"
    __table_args__ = (Index("ix_artifacts_name_version", "project", "name", "version", unique=True),)

    id: Optional[int] = Field(default=None, primary_key=True)
    project: str
    name: str
    version: int
    type: str
    digest: str
    description: Optional[str] = Field(default=None, sa_column=Column(Text))
    meta: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))  # the metadata dict, as JSON
    aliases: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    manifest: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))  # [{path, size, md5}|{path, ref}]
    path: str  # folder relative to ALERTS_DIR/artifacts
    run_id: Optional[str] = Field(default=None, index=True)  # the run that logged it
    created_at: float


class ArtifactUseRecord(SQLModel, table=True):
    """A run used an artifact version (``use_artifact``)."""

    __tablename__ = "artifact_uses"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    artifact_id: int = Field(index=True)
    created_at: float


class ChannelRecord(SQLModel, table=True):
    """A channel a user made through the API (beside the read-only ones of ``channels/*.yaml``).

    ``config`` holds the channel's settings without its secrets (JSON); ``secrets`` holds the secret
    fields (a Slack ``webhook_url``) apart, so that nothing that lists or logs channels reads them
    by accident: the API never returns them (write-only) and the relay reads them to send.
    """

    __tablename__ = "api_channels"
    __table_args__ = (UniqueConstraint("user", "name", name="uq_api_channels_user_name"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    user: str = Field(index=True)
    name: str  # unique per user, among their API and file channels: the destination key is user/name
    type: str  # slack | email
    config: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    secrets: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    created_at: float
    updated_at: float
    # A new random value at every write: what tells another replica that the channel changed (a
    # timestamp would not: replicas' clocks differ, and SQLite may give a deleted id to a new row).
    etag: str = ""


class WebSessionRecord(SQLModel, table=True):
    """A signed-in browser of the web page (``alerts/web``): the cookie holds a random token, the store
    its SHA-256. A session lives until it expires, its user signs out, or the API key it was opened with
    is revoked (each request checks the key), so revoking a key also ends the browsers it signed in.
    ``csrf`` is the token every state-changing form or call of that browser must carry."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(primary_key=True)
    user: str = Field(foreign_key="users.name", index=True)
    key_hash: str  # the API key it was opened with (api_keys.key_hash)
    csrf: str
    created_at: float
    expires_at: float = Field(index=True)


class RulesGenerationRecord(SQLModel, table=True):
    """How many times the rules were reloaded through a server (``POST /api/v1/rules/reload``, SIGHUP,
    ``alerts rules reload``): every server replica compares it with the generation it last followed,
    at each pass of its ``rules`` job, and reloads its own rule files when it moved. One row per rule
    set (``name``; ``rules`` today)."""

    __tablename__ = "rules_generation"

    name: str = Field(primary_key=True)
    generation: int = Field(default=0, sa_column_kwargs={"nullable": False})
    requested_at: float  # server time of the last reload asked
    requested_by: str  # the replica that asked (host:pid)
