"""The server's commands: ``alerts serve``, ``alerts users add|list``, ``alerts keys create|revoke``,
``alerts db upgrade``.

Added to ``alerts``'s parser by :func:`add_commands`; the server's modules (FastAPI, uvicorn) are imported
only when one of these commands runs, so the rest of the CLI starts as fast as before.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Optional


def _settings(args: argparse.Namespace):
    from alerts.settings import load_settings

    return load_settings(dir=Path(args.dir) if getattr(args, "dir", None) else None)


def _store(args: argparse.Namespace):
    from alerts.store.db import open_store

    return open_store(_settings(args).resolved_database_url())


def _when(ts: Optional[float]) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from alerts.server.app import create_app

    settings = _settings(args)
    app = create_app(settings)
    print(f"alerts: serving {settings.resolved_database_url().split('://', 1)[0]} store on "
          f"http://{args.host}:{args.port} (API under /api/v1, docs at /docs)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    from alerts import clock
    from alerts.server import accounts

    store = _store(args)
    if args.users_command == "add":
        try:
            key = accounts.add_user(store, args.name, admin=args.admin, now=clock.now())
        except accounts.AccountError as exc:
            print(f"alerts: {exc}", file=sys.stderr)
            return 1
        print(f"added user {args.name}{' (admin)' if args.admin else ''}. Their API key, shown this once:",
              file=sys.stderr)
        print(key)
        return 0
    rows = accounts.list_users(store)
    if not rows:
        print("no users yet (alerts users add NAME [--admin])")
        return 0
    print(f"{'USER':<24} {'ADMIN':<6} {'KEY':<12} {'CREATED':<20} STATE")
    for user, keys in rows:
        if not keys:
            print(f"{user.name:<24} {'yes' if user.is_admin else 'no':<6} {'-':<12} {_when(user.created_at):<20}")
        for key in keys:
            state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
            print(f"{user.name:<24} {'yes' if user.is_admin else 'no':<6} {key.prefix:<12} "
                  f"{_when(key.created_at):<20} {state}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from alerts import clock
    from alerts.server import accounts

    store = _store(args)
    try:
        if args.keys_command == "create":
            key = accounts.create_key(store, args.user, now=clock.now())
            print(f"a new API key for {args.user}, shown this once:", file=sys.stderr)
            print(key)
            return 0
        count = accounts.revoke_key(store, args.prefix, now=clock.now())
    except accounts.AccountError as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 1
    if not count:
        print(f"alerts: no active key starts with {args.prefix!r} (alerts users list shows them)", file=sys.stderr)
        return 1
    print(f"revoked {count} key(s)")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from alerts.store import migrate
    from alerts.store.db import Store

    store = Store(_settings(args).resolved_database_url(), migrate_schema=False)
    try:
        before, after = migrate.upgrade(store.engine)
    finally:
        store.dispose()
    if before == after:
        print(f"{store.safe_url}: already at revision {after}")
    else:
        print(f"{store.safe_url}: upgraded {before or 'made before migrations'} -> {after}")
    return 0


def add_commands(sub) -> None:
    """Add the server's commands to ``alerts``'s subparsers."""
    serve = sub.add_parser("serve", help="run the HTTP API server over the store",
                           description="Serve the REST API (/api/v1, docs at /docs), /healthz, /readyz and "
                           "/metrics over the store: SQLite in ALERTS_DIR (the folder scripts log to) by "
                           "default, PostgreSQL when ALERTS_DATABASE_URL says so.")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level (default info)")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="add and list the server's users",
                           description="Users of the server own runs, channels and silences; each has API keys.")
    users_sub = users.add_subparsers(dest="users_command", metavar="SUBCOMMAND", required=True)
    add = users_sub.add_parser("add", help="add a user and print their first API key (shown once)")
    add.add_argument("name", metavar="NAME", help="the user's name (what runs' owner holds)")
    add.add_argument("--admin", action="store_true", help="an admin sees and manages every user's objects")
    users_sub.add_parser("list", help="users and their keys (prefixes only: keys are never shown again)")
    users.set_defaults(func=cmd_users)

    keys = sub.add_parser("keys", help="create or revoke API keys",
                          description="API keys authenticate scripts and people to the server.")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)
    create = keys_sub.add_parser("create", help="another key for a user (shown once)")
    create.add_argument("user", metavar="USER")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by the prefix `alerts users list` shows")
    revoke.add_argument("prefix", metavar="PREFIX", help="the key's first 11 characters (ak_XXXXXXXX)")
    keys.set_defaults(func=cmd_keys)

    db = sub.add_parser("db", help="schema migrations of the store",
                        description="The store's schema is migrated (Alembic) when a script or the server "
                        "opens it; `alerts db upgrade` does it on its own, e.g. before starting replicas.")
    db_sub = db.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    db_sub.add_parser("upgrade", help="migrate the store's schema to this version's head revision")
    db.set_defaults(func=cmd_db)
