"""Reading the outbox for the API: the caller's deliveries (an admin: everyone's), filtered and paged,
and the retry of a dead one. A delivery belongs to the user whose channel it goes to."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import select

from alerts.server.accounts import Principal
from alerts.server.alertquery import delivery_view
from alerts.store.db import Store
from alerts.store.models import DeliveryRecord


def list_deliveries(store: Store, caller: Principal, *, state: Optional[str], user: Optional[str],
                    alert_uid: Optional[str], destination: Optional[str], limit: int,
                    after: Optional[int]) -> list[dict]:
    """Up to ``limit + 1`` deliveries, newest first, ids below ``after``."""
    query = select(DeliveryRecord)
    if not caller.is_admin:
        if user is not None and user != caller.name:
            return []  # another user's: as if they had none
        query = query.where(DeliveryRecord.user == caller.name)
    elif user is not None:
        query = query.where(DeliveryRecord.user == user)
    if state is not None:
        query = query.where(DeliveryRecord.state == state)
    if alert_uid is not None:
        query = query.where(DeliveryRecord.alert_uid == alert_uid)
    if destination is not None:
        query = query.where(DeliveryRecord.destination == destination)
    if after is not None:
        query = query.where(DeliveryRecord.id < after)
    query = query.order_by(DeliveryRecord.id.desc()).limit(limit + 1)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [delivery_view(DeliveryRecord.model_validate(row._mapping)) for row in rows]


def get_delivery(store: Store, delivery_id: int) -> Optional[DeliveryRecord]:
    with store.engine.connect() as conn:
        row = conn.execute(select(DeliveryRecord).where(DeliveryRecord.id == delivery_id)).first()
    return None if row is None else DeliveryRecord.model_validate(row._mapping)
