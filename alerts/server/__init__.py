"""The alert server: ``alerts serve`` (FastAPI over the store; SQLite in ALERTS_DIR or PostgreSQL).

Sits above the core: it imports the store, rules, pipeline and delivery; nothing below imports it.
``alerts.server.app.create_app`` builds the app. This package's ``__init__`` imports nothing, so that the
CLI's other commands do not pay for FastAPI.
"""
