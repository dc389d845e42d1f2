"""The ``alerts`` command: look at runs and their alerts, and run a demonstration.

Every command reads the embedded store in ``--dir`` (default ``ALERTS_DIR``, else ``./.alerts``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from typing import Any, Optional, Sequence

from alerts import clock
from alerts.store import jsoncodec


def _store(args: argparse.Namespace):
    from pathlib import Path

    from alerts.settings import load_settings
    from alerts.store.db import open_store

    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    if not settings.database_url and not (settings.dir / "alerts.db").exists():
        raise SystemExit(f"alerts: no runs yet in {settings.dir.resolve()} (log one with alerts.init(), "
                         "or point --dir / ALERTS_DIR at the folder a script logged to)")
    return open_store(settings.resolved_database_url())


def _when(ts: Optional[float]) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, dict) and "_type" in value:
        return f"<{value['_type']} {value.get('path', '')}>"
    return str(value)


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def _json_out(value: Any) -> None:
    # NaN and infinities are not JSON: they are written as the strings "NaN", "Infinity", "-Infinity".
    print(json.dumps(_json_safe(value), indent=2, ensure_ascii=False))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _run_dict(record) -> dict:
    data = record.model_dump()
    for column in ("tags", "config", "summary"):
        data[column] = jsoncodec.loads(data[column])
    return data


def cmd_runs(args: argparse.Namespace) -> int:
    store = _store(args)
    records = store.find_runs(project=args.project)
    if args.json:
        _json_out([_run_dict(r) for r in records])
        return 0
    if not records:
        print("no runs" + (f" in project {args.project!r}" if args.project else ""))
        return 0
    rows = [[r.id, r.project, r.name, r.state, str(r.last_step), _when(r.created_at), r.owner] for r in records]
    print(_table(rows, ["ID", "PROJECT", "NAME", "STATE", "STEP", "CREATED", "OWNER"]))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    record = store.resolve_run(args.run)
    if record is None:
        print(f"alerts: no run {args.run!r} (give an id, project/id or a name; see `alerts runs`)", file=sys.stderr)
        return 1
    last_values: dict = {}
    for row in store.last_history(record.id):
        last_values.update({k: v for k, v in row.items() if not k.startswith("_")})
    alerts = [a.model_dump(exclude={"run_id"}) for a in store.alerts_of(record.id)]
    if args.json:
        _json_out({"run": _run_dict(record), "last_values": last_values, "alerts": alerts})
        return 0
    run = _run_dict(record)
    print(f"{record.name} ({record.id})  project {record.project}  owner {record.owner}  state {record.state}")
    print(f"created {_when(record.created_at)}  finished {_when(record.finished_at)}  last step {record.last_step}"
          + (f"  exit code {record.exit_code}" if record.exit_code is not None else ""))
    if record.group or record.job_type or run["tags"]:
        print(f"group {record.group or '-'}  job type {record.job_type or '-'}  tags {', '.join(run['tags']) or '-'}")
    if record.error_type:
        print(f"\nerror: {record.error_type}\n" + "\n".join("  " + line for line in (record.error_text or "").splitlines()))
    for title, values in (("config", run["config"]), ("summary", run["summary"]), ("last values", last_values)):
        print(f"\n{title}:")
        shown = {k: v for k, v in values.items() if not k.startswith("_")}
        for key in sorted(shown):
            print(f"  {key} = {_fmt(shown[key])}")
        if not shown:
            print("  (none)")
    print(f"\nalerts ({len(alerts)}):")
    for a, repeats in _collapse_suppressed(alerts):
        line = f"  {_when(a['created_at'])}  {a['level']:<5}  {a['outcome']:<10}  {a['title']}"
        if repeats > 1:
            line += f"  (x{repeats}: repeats of a title within its wait_duration)"
        print(line)
    return 0


def _collapse_suppressed(alerts: list[dict]) -> list[tuple[dict, int]]:
    """Runs of suppressed repeats of one title, shown as one line with a count."""
    out: list[tuple[dict, int]] = []
    for a in alerts:
        if out and a["outcome"] == "suppressed" and out[-1][0]["outcome"] == "suppressed" \
                and out[-1][0]["title"] == a["title"]:
            out[-1] = (out[-1][0], out[-1][1] + 1)
        else:
            out.append((a, 1))
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    from alerts import demo

    alerting = demo.main(dir=args.dir, runs=args.runs, steps=args.steps)
    print()
    main(["runs", "--project", "demo"])
    for run_id in alerting:
        print()
        main(["show", run_id])
    return 0


def _rules_paths(args: argparse.Namespace) -> list:
    from pathlib import Path

    from alerts.settings import load_settings

    return [Path(p) for p in args.paths] if args.paths else [load_settings().rules]


def cmd_rules_check(args: argparse.Namespace) -> int:
    from alerts.rules.loader import RuleLoadError, load_rules, rule_files

    paths = _rules_paths(args)
    try:
        ruleset = load_rules(paths)
    except RuleLoadError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{len(exc.errors)} error(s); nothing was applied", file=sys.stderr)
        return 1
    for path in rule_files(paths):
        names = [r.rule.name for r in ruleset.rules if r.source.startswith(f"{path}:")]
        print(f"{path}: {len(names)} rule(s) OK" + (f": {', '.join(names)}" if names else ""))
    return 0


def cmd_rules_test(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alerts.rules.testing import run_test_file

    failed = total = 0
    for file in args.files:
        print(f"{file}:")
        for outcome in run_test_file(Path(file)):
            total += 1
            if outcome.passed:
                print(f"  PASS  {outcome.name}")
                continue
            failed += 1
            print(f"  FAIL  {outcome.name}")
            if outcome.problem:
                print("        " + outcome.problem.replace("\n", "\n        "))
                continue
            print("        expected:" + ("" if outcome.expected else " no alerts"))
            for line in outcome.expected:
                print(f"          {line}")
            print("        got:" + ("" if outcome.got else " no alerts"))
            for line in outcome.got:
                print(f"          {line}")
    print(f"{total - failed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_rules_reload(args: argparse.Namespace) -> int:
    from pathlib import Path

    from alerts.rules.active import request_reload
    from alerts.settings import load_settings

    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    args.paths = []
    if cmd_rules_check(args) != 0:
        print("the live runs keep the rules they have", file=sys.stderr)
        return 1
    marker = request_reload(settings.dir)
    print(f"asked the runs logging to {settings.dir} to reload {settings.rules} (marker {marker}); "
          "they do so within a second")
    return 0


def _delivery_context(args: argparse.Namespace):
    from pathlib import Path

    from alerts.channels.config import ChannelLoadError, load_channels
    from alerts.settings import load_settings

    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    try:
        channels = load_channels([settings.channels], webhook_hosts=settings.slack_webhook_hosts.split(","))
    except ChannelLoadError as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        raise SystemExit(1)
    return settings, channels


def cmd_deliveries(args: argparse.Namespace) -> int:
    from alerts.delivery import outbox

    store = _store(args)
    if args.action == "retry":
        if args.id is None:
            print("alerts: deliveries retry needs the ID of a dead delivery", file=sys.stderr)
            return 2
        if outbox.requeue(store, args.id, clock.now()):
            print(f"delivery {args.id} is queued again; it is sent by the next run or by `alerts relay`")
            return 0
        print(f"alerts: no dead delivery {args.id} (see `alerts deliveries --state dead`)", file=sys.stderr)
        return 1
    rows = outbox.listing(store, args.state, limit=args.limit)
    if args.json:
        _json_out([r.model_dump(exclude={"payload"}) | {"title": json.loads(r.payload)["title"]} for r in rows])
        return 0
    if not rows:
        print("no deliveries" + (f" in state {args.state}" if args.state else ""))
    else:
        table = [[str(r.id), r.state, r.destination, r.level, str(r.attempts),
                  _when(r.sent_at or r.next_attempt_at), json.loads(r.payload)["title"][:50],
                  (r.last_error or "")[:60]] for r in rows]
        print(_table(table, ["ID", "STATE", "DESTINATION", "LEVEL", "TRIES", "SENT/DUE", "TITLE", "LAST ERROR"]))
    print(_relay_status(store, args))
    return 0


def _relay_status(store, args: argparse.Namespace) -> str:
    """One line: what is pending, and whether a detached relay is sending it."""
    from pathlib import Path

    from alerts.delivery import detached
    from alerts.settings import load_settings

    now = clock.now()
    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    left = detached.pending(store, now)
    line = f"pending: {left.count}" + (f" ({_due_text(left, now)})" if left.count else "")
    lease = detached.running(store, now, settings)
    if lease is None:
        return line + "; relay: no detached relay running (for these channel files)"
    if detached.held_by_server(lease):
        return line + f"; relay: the alert server relays this store (pid {lease.pid} on {lease.host}, since " \
                      f"{_when(lease.acquired_at)})"
    pid = f"pid {lease.pid}" if lease.pid else "starting"
    return (line + f"; relay: detached relay running ({pid} on {lease.host}, since {_when(lease.acquired_at)}, "
            f"log: {detached.log_path(settings)})")


def cmd_relay(args: argparse.Namespace) -> int:
    if args.detached:
        return _relay_detached(args)
    from alerts.delivery import detached, outbox
    from alerts.delivery.embedded import drain_bounded
    from alerts.delivery.relay import Relay

    store = _store(args)
    settings, channels = _delivery_context(args)
    relay = Relay(store, channels, settings)
    before = outbox.pending_count(store)
    print(f"relaying {before} pending deliveries from {settings.dir} ...", flush=True)
    # Keeps going while rows fall due within the timeout; a hung server cannot hold it past it.
    drain_bounded(relay, args.timeout)
    counters = relay.counters
    now = clock.now()
    left = detached.pending(store, now)
    print(f"sent {sum(counters.notifications_total.values())} message(s) carrying {counters.alerts_delivered_total} "
          f"alert(s); {left.count} still pending" + (f" ({_due_text(left, now)})" if left.count else ""))
    if left.count and settings.relay:
        handed = detached.hand_over(store, settings)
        if handed is not None:
            print(f"hand-over: {handed.describe()}")
    return 0 if not left.count else 3


def _due_text(left, now: float) -> str:
    """When the next pending row falls due, for people: "next due 12:00:22, in 22 s"."""
    if left.next_due is None:
        return f"{left.leased} being sent"
    wait = left.next_due - now
    return f"next due {_when(left.next_due)}, " + (f"in {wait:.0f} s" if wait > 0 else "now")


def _relay_detached(args: argparse.Namespace) -> int:
    """The store's detached relay (started by a script at exit): logs to stderr, which is relay.log."""
    import logging

    from alerts.delivery import detached
    from alerts.delivery.relay import Relay

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("alerts")
    store = _store(args)
    settings, channels = _delivery_context(args)
    relay = Relay(store, channels, settings)
    log.info("alerts: detached relay started (pid %d) for %s: %d pending", os.getpid(), store.safe_url,
             detached.pending(store, clock.now()).count)
    if not detached.serve(store, relay, token=args.lease):
        log.info("alerts: another relay holds the store's relay lease; pid %d exits", os.getpid())
        return 0
    counters = relay.counters
    log.info("alerts: nothing pending; detached relay (pid %d) exits after sending %d message(s) carrying "
             "%d alert(s)", os.getpid(), sum(counters.notifications_total.values()), counters.alerts_delivered_total)
    return 0


def cmd_notify_test(args: argparse.Namespace) -> int:
    from alerts.channels.base import DeliveryError, Notification
    from alerts.delivery.relay import make_sender

    settings, channels = _delivery_context(args)
    destinations = channels.of(args.user)
    if not destinations:
        print(f"alerts: user {args.user!r} has no channels in {settings.channels}", file=sys.stderr)
        return 1
    note = Notification(title="Test notification from alerts", text=f"If you can read this, {args.user}'s channel works.",
                        level="INFO", run_id="test", run_name="test", project="alerts", owner=args.user,
                        created_at=clock.now())
    failed = 0
    for destination in destinations:
        try:
            make_sender(destination, settings).send_group([note])
        except DeliveryError as exc:
            failed += 1
            print(f"FAILED  {destination.label}: {exc}" + (" (would be retried)" if exc.recoverable else ""))
        else:
            print(f"OK      {destination.label}")
    return 1 if failed else 0


def _store_for_writing(args: argparse.Namespace):
    from pathlib import Path

    from alerts.settings import load_settings
    from alerts.store.db import open_store

    settings = load_settings(dir=Path(args.dir) if args.dir else None)
    return settings, open_store(settings.resolved_database_url())


def cmd_silence(args: argparse.Namespace) -> int:
    from alerts.pipeline import silence
    from alerts.rules.durations import parse_duration

    settings, store = _store_for_writing(args)
    now = clock.now()
    if args.silence_command == "add":
        try:
            matchers = [silence.parse_matcher(m) for m in args.matchers]
            starts = now + (parse_duration(args.starts_in) if args.starts_in else 0.0)
            silence_id = silence.add(store, matchers, starts, starts + parse_duration(args.duration),
                                     args.by or settings.user, args.comment, now)
        except ValueError as exc:
            print(f"alerts: {exc}", file=sys.stderr)
            return 2
        print(f"silence #{silence_id}: {' '.join(map(str, matchers))} until {_when(starts + parse_duration(args.duration))}")
        return 0
    if args.silence_command == "expire":
        if silence.expire(store, args.id, now):
            print(f"silence #{args.id} expired")
            return 0
        print(f"alerts: no silence #{args.id} in force (see `alerts silence list`)", file=sys.stderr)
        return 1
    silences = silence.listing(store, now, include_expired=args.all)
    if args.json:
        _json_out([{"id": s.id, "matchers": [str(m) for m in s.matchers], "starts_at": s.starts_at,
                    "ends_at": s.ends_at, "created_by": s.created_by, "comment": s.comment} for s in silences])
        return 0
    if not silences:
        print("no silences" + ("" if args.all else " in force or to come"))
        return 0
    rows = [[f"#{s.id}", " ".join(map(str, s.matchers)), _when(s.starts_at), _when(s.ends_at),
             "expired" if s.ends_at <= now else ("pending" if s.starts_at > now else "active"), s.created_by,
             s.comment] for s in silences]
    print(_table(rows, ["ID", "MATCHERS", "STARTS", "ENDS", "STATE", "BY", "COMMENT"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alerts",
        description="Self-hosted alerting for machine-learning training runs. Scripts log with "
        "`import alerts as wandb`; these commands read what they logged.",
        epilog="Environment: ALERTS_DIR (the store folder, default ./.alerts), ALERTS_USER (owner of new runs).",
    )
    parser.add_argument("--dir", help="the store folder (default: $ALERTS_DIR or ./.alerts)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    runs = sub.add_parser("runs", help="list runs, newest first",
                          description="List runs, newest first: id, project, name, state, last step.")
    runs.add_argument("--project", "-p", help="only runs of this project")
    runs.add_argument("--json", action="store_true", help="print JSON (NaN as the string \"NaN\")")
    runs.set_defaults(func=cmd_runs)

    show = sub.add_parser("show", help="one run: config, summary, last values, alerts",
                          description="Show one run: its config, summary, last logged values and alerts "
                          "(with whether each was notified or suppressed, and why).")
    show.add_argument("run", metavar="RUN", help="run id, project/id, or run name")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=cmd_show)

    rules = sub.add_parser("rules", help="check, test and reload alert rules",
                           description="Alert rules are YAML files in ALERTS_RULES (default ./rules).")
    rules_sub = rules.add_subparsers(dest="rules_command", metavar="SUBCOMMAND", required=True)
    check = rules_sub.add_parser("check", help="validate rule files (exit 1 on errors, with file:line)",
                                 description="Load rule files and report every error as file:line: rule: "
                                 "field: problem. Exit status 1 if any.")
    check.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: $ALERTS_RULES or ./rules)")
    check.set_defaults(func=cmd_rules_check)
    test = rules_sub.add_parser("test", help="run rule unit tests written in YAML",
                                description="Run rule unit tests: input series in promtool's notation "
                                "(1 2 3, _ for missing, a+bxn), expected alerts, on a simulated clock. "
                                "Failures print what was expected and what happened; exit 1 if any.")
    test.add_argument("files", nargs="+", metavar="FILE", help="test files (see rules/tests/)")
    test.set_defaults(func=cmd_rules_test)
    reload = rules_sub.add_parser("reload", help="check the rules, then make live runs load them",
                                  description="Check ALERTS_RULES; if they load, every process logging "
                                  "to the store folder reloads them within a second. If they do not, "
                                  "nothing changes and the errors are printed.")
    reload.set_defaults(func=cmd_rules_reload)

    deliveries = sub.add_parser("deliveries", help="list the outbox (sent, pending, dead), retry a dead one",
                                description="The outbox: one row per (alert, channel), with its state "
                                "(pending, sent, dead), tries, and the last error.")
    deliveries.add_argument("--state", choices=["pending", "sent", "dead", "suppressed"], help="only rows in this state")
    deliveries.add_argument("--limit", type=int, default=200, help="newest N rows (default 200)")
    deliveries.add_argument("--json", action="store_true", help="print JSON")
    deliveries.add_argument("action", nargs="?", choices=["retry"], help="retry ID: queue a dead delivery again")
    deliveries.add_argument("id", nargs="?", type=int, metavar="ID", help="the delivery to retry")
    deliveries.set_defaults(func=cmd_deliveries)

    relay = sub.add_parser("relay", help="send what is pending in the outbox, then exit",
                           description="Send the pending deliveries of the store (left by runs that "
                           "ended or were killed before sending), waiting up to --timeout seconds.")
    relay.add_argument("--timeout", type=float, default=60.0,
                       help="seconds to keep going while rows fall due (default 60); what is left is handed "
                       "to the detached relay")
    relay.add_argument("--detached", action="store_true",
                       help="be the store's detached relay (what scripts start at exit): send pending rows on "
                       "their schedule until none is pending; one per store")
    relay.add_argument("--lease", help=argparse.SUPPRESS)  # the lease a starting script took for this relay
    relay.set_defaults(func=cmd_relay)

    silence_parser = sub.add_parser("silence", help="mute alerts that match labels for a while",
                                    description="Silences mute the deliveries of alerts whose labels match "
                                    "all the matchers, between a start and an end. Labels: rule, title, level, "
                                    "owner, project, group, run, run_name, metric, status.")
    silence_sub = silence_parser.add_subparsers(dest="silence_command", metavar="SUBCOMMAND", required=True)
    silence_add = silence_sub.add_parser("add", help="add a silence",
                                         description="Add a silence: e.g. alerts silence add project=vision "
                                         "rule=~'loss-.*' --duration 2h --comment 'known bad node'")
    silence_add.add_argument("matchers", nargs="+", metavar="MATCHER",
                             help="name=value, name!=value, name=~regex or name!~regex")
    silence_add.add_argument("--duration", default="1h", help="how long (default 1h): 30m, 2h, 1d")
    silence_add.add_argument("--starts-in", help="start later, e.g. 10m (default now)")
    silence_add.add_argument("--comment", required=True, help="why: shown to everyone who looks")
    silence_add.add_argument("--by", help="who (default ALERTS_USER)")
    silence_list = silence_sub.add_parser("list", help="silences in force or to come")
    silence_list.add_argument("--all", action="store_true", help="expired ones too")
    silence_list.add_argument("--json", action="store_true", help="print JSON")
    silence_expire = silence_sub.add_parser("expire", help="end a silence now")
    silence_expire.add_argument("id", type=int, metavar="ID")
    silence_parser.set_defaults(func=cmd_silence)

    notify = sub.add_parser("notify", help="send a test message to a user's channels")
    notify_sub = notify.add_subparsers(dest="notify_command", metavar="SUBCOMMAND", required=True)
    notify_test = notify_sub.add_parser("test", help="send a test message to each channel of a user",
                                        description="Send a test message to each channel in the user's "
                                        "channel file and print the outcome per channel.")
    notify_test.add_argument("--user", required=True, help="whose channels")
    notify_test.set_defaults(func=cmd_notify_test)

    demo = sub.add_parser("demo", help="log simulated training runs that raise alerts",
                          description="Log a few simulated training runs into the store; one of them "
                          "degrades and raises alerts, which are delivered (to the console for now). "
                          "Then list the runs and show the one that alerted.")
    demo.add_argument("--runs", type=int, default=3, help="how many runs (default 3)")
    demo.add_argument("--steps", type=int, default=200, help="steps per run (default 200)")
    demo.set_defaults(func=cmd_demo)

    from alerts.server.commands import add_commands  # the server's commands; their modules load lazily

    add_commands(sub)
    from alerts.remote_cli import add_commands as add_remote_commands  # login, sync

    add_remote_commands(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # `alerts runs | head`
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
