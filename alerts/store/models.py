"""The tables of the store.

Metrics are kept the way wandb keeps them: one history row per ``log()`` commit (a step), its values
as JSON. A row per commit rather than per point keeps the background writer's work proportional to the
number of steps, whatever the number of metrics, which is what lets ``log()`` stay cheap; JSON here is
Python's own dialect so that NaN and +-Infinity survive the round trip (rules need them).
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import Column, Index, Text
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
    exit_code: Optional[int] = None
    error_type: Optional[str] = None
    error_text: Optional[str] = Field(default=None, sa_column=Column(Text))
    last_step: int = -1
    host: Optional[str] = None
    pid: Optional[int] = None


class HistoryRecord(SQLModel, table=True):
    """One committed ``log()`` row: the values logged at one step."""

    __tablename__ = "history"
    __table_args__ = (Index("ix_history_run_step", "run_id", "step"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id")
    step: int
    time: float
    data: str = Field(sa_column=Column(Text, nullable=False))


class MediaRecord(SQLModel, table=True):
    """A file logged with a run (a ``Table`` or an ``Image``), stored beside the database."""

    __tablename__ = "media"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    step: int
    key: str
    kind: str  # table | image
    path: str  # relative to the media folder
    meta: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))


class AlertRecord(SQLModel, table=True):
    """Every alert raised, with what became of it (``notified`` or ``suppressed`` and why)."""

    __tablename__ = "alerts"

    id: Optional[int] = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", index=True)
    created_at: float
    source: str = "alert"  # alert (an explicit alert() call) | rule
    rule: Optional[str] = None
    title: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    level: str
    outcome: str  # notified | suppressed | failed (the channel raised; reason says why)
    reason: Optional[str] = None
    wait_duration: float = 60.0
    step: Optional[int] = None
