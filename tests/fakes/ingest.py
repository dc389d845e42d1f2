"""A fake alerts server on 127.0.0.1 keeping to the runs/ingest contract (prompts' ingest-contract).

A real HTTP server (``http.server.ThreadingHTTPServer`` on a port that stays the same across restarts)
answering ``GET /api/v1/me``, ``POST /api/v1/runs``, ``/runs/{id}/batches``, ``/runs/{id}/heartbeat``
and ``/runs/{id}/finish`` with the contract's statuses: 401 for a wrong key, 409/404 on create, a batch
whose seq is not above the run's last one answered ``stored: false`` and not stored. Tests program it:

* :meth:`stop` / :meth:`start`: down (connections refused) and back on the same port;
* :meth:`fail_next`: answer the next requests to a route with a status (``after_store=True``: store
  the batch first, as a server whose answer is lost would);
* :meth:`hold`: requests to a route wait until the test releases them (a slow server; with the
  client's read timeout made short, a timeout);

and read what it stored: :attr:`runs` (rows, alerts, config, summary, state, the seqs seen) and
:attr:`requests` (method, path, status), waiting for it with :meth:`wait_for` (bounded).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

PREFIX = "/api/v1"


@dataclass
class FakeRun:
    id: str
    owner: str
    project: str
    name: str
    config: dict
    created: dict  # the create's body
    state: str = "running"
    summary: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    alerts: list = field(default_factory=list)
    last_seq: int = 0
    last_step: int = -1
    seqs: list = field(default_factory=list)  # (seq, stored) of every batch received
    creates: int = 1
    finishes: list = field(default_factory=list)
    heartbeats: int = 0
    exit_code: Optional[int] = None

    def out(self) -> dict:
        return {"id": self.id, "owner": self.owner, "project": self.project, "name": self.name,
                "group": self.created.get("group"), "job_type": self.created.get("job_type"),
                "tags": self.created.get("tags") or [], "notes": self.created.get("notes"),
                "config": self.config, "summary": self.summary, "state": self.state, "created_at": 0.0,
                "updated_at": 0.0, "heartbeat_at": 0.0, "finished_at": None, "exit_code": self.exit_code,
                "error_type": None, "error_text": None, "last_step": self.last_step, "last_seq": self.last_seq}


class FakeIngest:
    """See the module docstring. ``keys`` maps API keys to user names."""

    def __init__(self, keys: Optional[dict] = None) -> None:
        self.keys = keys if keys is not None else {"ak_test_alice": "alice"}
        self.runs: dict[str, FakeRun] = {}
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._failures: list[dict] = []
        self._holds: dict[str, threading.Event] = {}
        self.port = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- life ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeIngest":
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeIngest":
        return self.start()

    def __exit__(self, *exc) -> None:
        for event in self._holds.values():
            event.set()
        self.stop()

    # -- programming it ----------------------------------------------------------------------------

    def fail_next(self, route: str, status: int, count: int = 1, after_store: bool = False,
                  retry_after: Optional[float] = None) -> None:
        """Answer the next ``count`` requests whose path ends with ``route`` (``"batches"``,
        ``"runs"``, ``"finish"``...) with ``status``."""
        with self.lock:
            self._failures.append({"route": route, "status": status, "count": count, "after_store": after_store,
                                   "retry_after": retry_after})

    def hold(self, route: str) -> threading.Event:
        """Requests to ``route`` wait (after storing) until the returned event is set."""
        event = threading.Event()
        self._holds[route] = event
        return event

    # -- reading it --------------------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
        """Wait (bounded) until ``predicate()`` is true under the lock; its value."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"the fake server did not see {what or predicate} within {timeout}s; "
                                         f"requests: {self.requests[-10:]}")
                self.changed.wait(min(left, 0.1))

    def steps(self, run_id: str) -> list[int]:
        with self.lock:
            return [row["step"] for row in self.runs[run_id].rows]

    # -- the server ----------------------------------------------------------------------------------

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake._serve(self, "GET")

            def do_POST(self):
                fake._serve(self, "POST")

        return Handler

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length) if length else b""
        status, body, headers = self._answer(method, path, raw, request.headers.get("Authorization", ""))
        hold = next((e for route, e in self._holds.items() if path.endswith(route)), None)
        if hold is not None:
            hold.wait(60)
        with self.changed:
            self.requests.append((method, path, status))
            self.changed.notify_all()
        data = b"" if body is None else json.dumps(body).encode()
        try:
            request.send_response(status)
            for name, value in headers.items():
                request.send_header(name, value)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
        except OSError:  # the client gave up (its timeout)
            pass

    def _failure_for(self, path: str) -> Optional[dict]:
        for failure in self._failures:
            if path.endswith(failure["route"]) and failure["count"] > 0:
                failure["count"] -= 1
                return failure
        return None

    def _answer(self, method: str, path: str, raw: bytes, authorization: str):
        with self.changed:
            failure = self._failure_for(path)
            if failure is not None and not failure["after_store"]:
                headers = {"Retry-After": str(failure["retry_after"])} if failure["retry_after"] is not None else {}
                return failure["status"], {"detail": "failing on purpose"}, headers
            user = self.keys.get(authorization.removeprefix("Bearer ").strip())
            if user is None:
                return 401, {"detail": "missing or invalid API key"}, {}
            try:
                payload = json.loads(raw) if raw else {}
            except ValueError:
                return 400, {"detail": "body is not JSON"}, {}
            status, body = self._route(method, path[len(PREFIX):], payload, user)
            self.changed.notify_all()
            if failure is not None:  # stored, but the answer is lost
                return failure["status"], {"detail": "failing on purpose after storing"}, {}
            return status, body, {}

    def _route(self, method: str, path: str, payload: Any, user: str):
        parts = path.strip("/").split("/")
        if method == "GET" and parts == ["me"]:
            return 200, {"name": user, "is_admin": False}
        if method == "POST" and parts == ["runs"]:
            return self._create(payload, user)
        if method == "POST" and len(parts) == 3 and parts[0] == "runs":
            run = self.runs.get(parts[1])
            if run is None or run.owner != user:
                return 404, {"detail": "no such run"}
            if parts[2] == "batches":
                return self._batch(run, payload)
            if parts[2] == "heartbeat":
                run.heartbeats += 1
                return 204, None
            if parts[2] == "finish":
                run.finishes.append(payload)
                if run.state == "running":
                    run.state = payload["state"]
                    run.exit_code = payload.get("exit_code")
                    run.summary.update(payload.get("summary") or {})
                return 200, run.out()
        return 404, {"detail": f"no route {method} {path}"}

    def _create(self, body: dict, user: str):
        run_id = body.get("id")
        if not isinstance(body.get("project"), str):
            return 422, {"detail": [{"loc": ["body", "project"], "msg": "required"}]}
        existing = self.runs.get(run_id)
        if existing is not None:
            if existing.owner != user:
                return 409, {"detail": "run id taken"}
            if body.get("resume") in (None, False, "never"):
                return 409, {"detail": f"run {run_id} exists; pass resume"}
            existing.state = "running"
            existing.creates += 1
            existing.config.update(body.get("config") or {})
            return 200, existing.out()
        if body.get("resume") == "must":
            return 404, {"detail": f"no run {run_id} to resume"}
        run = FakeRun(id=run_id, owner=user, project=body["project"], name=body.get("name") or f"fake-run-{len(self.runs) + 1}",
                      config=dict(body.get("config") or {}), created=body)
        self.runs[run_id] = run
        return 201, run.out()

    def _batch(self, run: FakeRun, body: dict):
        seq = body.get("seq")
        if not isinstance(seq, int) or seq < 1:
            return 422, {"detail": [{"loc": ["body", "seq"], "msg": "must be an integer >= 1"}]}
        problem = _batch_problem(body)
        if problem:
            return 422, {"detail": [{"loc": ["body"], "msg": problem}]}
        rows = body.get("rows") or []
        if seq <= run.last_seq:
            run.seqs.append((seq, False))
            return 200, {"seq": seq, "stored": False, "last_seq": run.last_seq}
        run.seqs.append((seq, True))
        kept = [row for row in rows if row["step"] > run.last_step]  # as the server: a lower step is dropped
        dropped, rows = len(rows) - len(kept), kept
        run.rows.extend(rows)
        run.alerts.extend(body.get("alerts") or [])
        if body.get("config") is not None:
            run.config = body["config"]
        for row in rows:
            run.summary.update(row["values"])
            run.last_step = max(run.last_step, row["step"])
        run.summary.update(body.get("summary") or {})
        changed = body.get("run") or {}
        if changed.get("name") is not None:
            run.name = changed["name"]
        for key in ("tags", "notes"):  # kept in the create's body, which out() reads
            if key in changed and (key == "notes" or changed[key] is not None):
                run.created[key] = changed[key]
        run.last_seq = seq
        return 200, {"seq": seq, "stored": True, "last_seq": seq, "dropped_rows": dropped}


_BATCH_FIELDS = {"seq", "rows", "config", "summary", "alerts", "run"}
_ALERT_FIELDS = {"title", "text", "level", "wait_duration", "created_at", "step", "suppressed"}


def _batch_problem(body: dict) -> Optional[str]:
    """What the contract (and the real server's models: unknown fields forbidden) refuses in a batch."""
    if set(body) - _BATCH_FIELDS:
        return f"unknown fields {sorted(set(body) - _BATCH_FIELDS)}"
    rows = body.get("rows") or []
    if len(rows) > 10_000:
        return "more than 10000 rows"
    for i, row in enumerate(rows):
        if set(row) != {"step", "time", "values"}:
            return f"row {i}: fields {sorted(row)}"
        if not isinstance(row["step"], int) or row["step"] < 0 or (i and row["step"] <= rows[i - 1]["step"]):
            return f"row {i}: step {row['step']!r}"
        if not isinstance(row["time"], (int, float)) or row["time"] != row["time"] or abs(row["time"]) == float("inf"):
            return f"row {i}: time {row['time']!r}"
        if len(row["values"]) > 1000:
            return f"row {i}: more than 1000 keys"
    if set(body.get("run") or {}) - {"name", "tags", "notes"}:
        return f"run fields {sorted(body['run'])}"
    for alert in body.get("alerts") or []:
        if set(alert) - _ALERT_FIELDS or alert.get("level") not in ("INFO", "WARN", "ERROR"):
            return f"alert {alert!r}"
        if not 0 <= alert.get("wait_duration", 60) < float("inf"):
            return "alert wait_duration"
    return None
