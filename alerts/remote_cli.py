"""The remote mode's commands: ``alerts login`` and ``alerts sync``.

Added to ``alerts``'s parser by :func:`add_commands`; httpx is imported only when one of them runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def cmd_login(args: argparse.Namespace) -> int:
    from alerts.errors import Error
    from alerts.sdk import login

    key = args.key
    if key is None:
        # Not on the command line by default: it would stay in the shell's history and in `ps`.
        key = getpass.getpass("API key: ") if sys.stdin.isatty() else sys.stdin.readline()
    try:
        url, user, path = login.login(key, args.host)
    except Error as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 1
    print(f"logged in to {url} as {user}; the key is stored in {path} (readable by you only). Scripts now log "
          "there (mode='offline' or ALERTS_MODE=offline keeps them local).")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from alerts.errors import Error
    from alerts.sdk import credentials
    from alerts.sdk.sync import sync
    from alerts.settings import load_settings

    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    try:
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        server = credentials.resolve(settings.url, key)
    except Error as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 1
    if server is None:
        print("alerts: no server: set ALERTS_URL and ALERTS_API_KEY, or run `alerts login`", file=sys.stderr)
        return 1
    spool = settings.dir / "spool"
    outcomes = sync(spool, server)
    if not outcomes:
        print(f"nothing to send: {spool} is empty")
        return 0
    for o in outcomes:
        line = f"run {o.run_id}: sent {o.sent} item(s) ({o.rows} history rows)"
        if o.refused:
            line += f", {o.refused} refused for good"
        if o.left:
            line += f"; {o.left} left"
        if o.note:
            line += f" ({o.note})"
        print(line)
    return 1 if any(o.left for o in outcomes) else 0


def add_commands(sub) -> None:
    """Add ``login`` and ``sync`` to ``alerts``'s subparsers."""
    login = sub.add_parser("login", help="check an API key with a server and store it for your scripts",
                           description="Check the key with the server (GET /api/v1/me) and store the server "
                           "and key in ~/.config/alerts/credentials (or $XDG_CONFIG_HOME), mode 0600. Scripts "
                           "then log to that server. The key is read from the terminal (or stdin) unless "
                           "given.")
    login.add_argument("--host", help="the server's URL (default: $ALERTS_URL, else the one stored last)")
    login.add_argument("key", nargs="?", metavar="KEY", help="the API key (better typed at the prompt)")
    login.set_defaults(func=cmd_login)

    sync = sub.add_parser("sync", help="send what runs left in the spool while the server was unreachable",
                          description="Send, in order, what remote runs kept in ALERTS_DIR/spool because the "
                          "server could not be reached when they ended. Exit 1 if anything is left.")
    sync.set_defaults(func=cmd_sync)
