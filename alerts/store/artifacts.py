"""Artifact versions and their uses in the store (the files themselves live in ``ALERTS_DIR/artifacts``).

A version is numbered in one locked transaction (SQLite's write lock, a PostgreSQL transaction whose
unique index on (project, name, version) refuses a twin), so two processes logging the same name at
once get two versions, and the same files logged again are the same version.
"""

from __future__ import annotations

from typing import Optional

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError

from alerts.store import jsoncodec
from alerts.store.db import Store
from alerts.store.models import ArtifactRecord, ArtifactUseRecord

# Tries at numbering a version when another process took the number first (PostgreSQL).
VERSION_TRIES = 5


def _record(row) -> ArtifactRecord:
    return ArtifactRecord.model_validate(dict(row._mapping))


def record_version(store: Store, row: dict, aliases: list[str]) -> ArtifactRecord:
    """Store ``row`` (an ArtifactRecord's columns without ``version``) as the next version of its
    name, or find the version with the same digest; give it ``aliases`` (taken from the name's other
    versions). Returns the stored version."""
    for attempt in range(VERSION_TRIES):
        try:
            return _record_version_once(store, row, aliases)
        except IntegrityError:  # another process numbered the same version first: number again
            if attempt == VERSION_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def _record_version_once(store: Store, row: dict, aliases: list[str]) -> ArtifactRecord:
    table = ArtifactRecord.__table__
    same_name = (table.c.project == row["project"]) & (table.c.name == row["name"])
    with store.write_transaction() as conn:
        found = conn.execute(select(table).where(same_name, table.c.digest == row["digest"])
                             .order_by(table.c.version.desc()).limit(1)).first()
        if found is None:
            top = conn.execute(select(func.max(table.c.version)).where(same_name)).scalar()
            version = 0 if top is None else top + 1
            artifact_id = conn.execute(insert(table).values(**row, version=version)).inserted_primary_key[0]
        else:
            artifact_id = found.id
        if aliases:
            for other in conn.execute(select(table.c.id, table.c.aliases).where(same_name, table.c.id != artifact_id)).all():
                kept = [a for a in jsoncodec.loads(other.aliases) if a not in aliases]
                conn.execute(update(table).where(table.c.id == other.id).values(aliases=jsoncodec.dumps(kept)))
            current = conn.execute(select(table.c.aliases).where(table.c.id == artifact_id)).scalar()
            merged = list(dict.fromkeys([*jsoncodec.loads(current), *aliases]))
            conn.execute(update(table).where(table.c.id == artifact_id).values(aliases=jsoncodec.dumps(merged)))
        return _record(conn.execute(select(table).where(table.c.id == artifact_id)).one())


def find_version(store: Store, project: Optional[str], name: str, ref: Optional[str]) -> Optional[ArtifactRecord]:
    """The version ``ref`` of ``name`` (``None``/``"latest"``: the highest; ``"v3"``: version 3;
    else an alias), in ``project`` (any project when None: the newest match)."""
    table = ArtifactRecord.__table__
    query = select(table).where(table.c.name == name)
    if project is not None:
        query = query.where(table.c.project == project)
    with store.engine.connect() as conn:
        rows = [_record(r) for r in conn.execute(query.order_by(table.c.created_at.desc(), table.c.version.desc())).all()]
    if not rows:
        return None
    if ref in (None, "", "latest"):
        best = max(rows, key=lambda r: r.version) if project is not None else rows[0]
        return best
    if ref[0] == "v" and ref[1:].isdigit():
        return next((r for r in rows if r.version == int(ref[1:])), None)
    return next((r for r in rows if ref in jsoncodec.loads(r.aliases)), None)


def latest_version(store: Store, project: str, name: str) -> Optional[int]:
    """The highest version of ``name`` in ``project``."""
    table = ArtifactRecord.__table__
    with store.engine.connect() as conn:
        return conn.execute(select(func.max(table.c.version)).where(table.c.project == project,
                                                                      table.c.name == name)).scalar()


def record_use(store: Store, run_id: str, artifact_id: int, now: float) -> None:
    """Record that ``run_id`` used the artifact version ``artifact_id``."""
    with store.engine.begin() as conn:
        conn.execute(insert(ArtifactUseRecord.__table__).values(run_id=run_id, artifact_id=artifact_id, created_at=now))


def logged_by(store: Store, run_id: str) -> list[ArtifactRecord]:
    """The versions a run logged, oldest first."""
    table = ArtifactRecord.__table__
    with store.engine.connect() as conn:
        return [_record(r) for r in conn.execute(select(table).where(table.c.run_id == run_id).order_by(table.c.id)).all()]


def used_by(store: Store, run_id: str) -> list[ArtifactRecord]:
    """The versions a run used, in the order it first used them."""
    table, uses = ArtifactRecord.__table__, ArtifactUseRecord.__table__
    query = (select(table).join(uses, uses.c.artifact_id == table.c.id).where(uses.c.run_id == run_id)
             .order_by(uses.c.id))
    with store.engine.connect() as conn:
        records = [_record(r) for r in conn.execute(query).all()]
    return list({r.id: r for r in records}.values())
