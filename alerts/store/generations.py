"""Named counters in the store that server replicas follow (``rules_generation``): one replica moves a
counter forward when it did something every replica must do too (reload its rules), the others notice
that it moved at their next look and do it.

A bump is one atomic ``UPDATE ... SET generation = generation + 1`` (the row made first if need be), so
two replicas bumping at once both count. Nothing here reads a clock: callers pass ``now``.
"""

from __future__ import annotations

from sqlalchemy import select, update

from alerts.store.db import Store
from alerts.store.models import RulesGenerationRecord

RULES = "rules"


def current(store: Store, name: str = RULES) -> int:
    """The counter's value (0 if it never moved)."""
    with store.engine.connect() as conn:
        value = conn.execute(select(RulesGenerationRecord.generation)
                             .where(RulesGenerationRecord.name == name)).scalar()
    return int(value or 0)


def bump(store: Store, now: float, by: str, name: str = RULES) -> int:
    """Move the counter one forward; its new value."""
    table = RulesGenerationRecord
    with store.write_transaction() as conn:
        moved = conn.execute(update(table).where(table.name == name)
                             .values(generation=table.generation + 1, requested_at=now, requested_by=by)).rowcount
        if not moved:  # the first bump: the row, unless another replica made it meanwhile (then count on it)
            conn.execute(store._insert_ignoring_duplicates(table)
                         .values(name=name, generation=0, requested_at=now, requested_by=by))
            conn.execute(update(table).where(table.name == name)
                         .values(generation=table.generation + 1, requested_at=now, requested_by=by))
        return int(conn.execute(select(table.generation).where(table.name == name)).scalar())
