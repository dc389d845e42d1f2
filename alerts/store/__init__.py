"""Persistence: SQLModel tables and the queries over them, on SQLite (embedded) or PostgreSQL (server)."""

from alerts.store.db import Store, open_store
from alerts.store.models import AlertRecord, DeliveryRecord, HistoryChunk, MediaRecord, RunRecord

__all__ = ["Store", "open_store", "RunRecord", "HistoryChunk", "MediaRecord", "AlertRecord", "DeliveryRecord"]
