"""Reading the outbox for the API: the caller's deliveries (an admin: everyone's), filtered and paged,
and the retry of a dead one. A delivery belongs to the user whose channel it goes to."""

from __future__ import annotations

from typing import Optional

from sqlalchemy import or_, select

from alerts.delivery.state import group_key
from alerts.server.accounts import Principal
from alerts.server.alertquery import delivery_view
from alerts.store.db import Store
from alerts.store.models import AlertRecord, DeliveryRecord, DeliveryStateRecord


def list_deliveries(store: Store, caller: Principal, *, state: Optional[str], user: Optional[str],
                    alert_uid: Optional[str], destination: Optional[str], limit: int,
                    after: Optional[int], channel: Optional[str] = None,
                    run_id: Optional[str] = None) -> list[dict]:
    """Up to ``limit + 1`` deliveries, newest first, ids below ``after``.

    ``channel``: a channel's key (``user/name``), all its destinations (an email channel with several
    addresses files each under ``user/name <address>``); ``run_id``: the deliveries of that run's alerts.
    """
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
    if channel is not None:
        query = query.where(or_(DeliveryRecord.destination == channel,
                                DeliveryRecord.destination.startswith(channel + " <", autoescape=True)))
    if run_id is not None:
        # Through the alert (both uids indexed): the run is in the payload only.
        query = query.where(DeliveryRecord.alert_uid.in_(select(AlertRecord.uid).where(AlertRecord.run_id == run_id)))
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


def groups_last_sent(store: Store, pairs: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """When the last message of each (destination, group) went, for those that have one: what a
    pending delivery without an error is waiting on (one message per group interval)."""
    if not pairs:
        return {}
    by_key = {group_key(destination, group): (destination, group) for destination, group in pairs}
    query = select(DeliveryStateRecord.key, DeliveryStateRecord.last_sent_at).where(
        DeliveryStateRecord.key.in_(sorted(by_key)), DeliveryStateRecord.last_sent_at.is_not(None))
    with store.engine.connect() as conn:
        return {by_key[key]: last_sent for key, last_sent in conn.execute(query).all()}
