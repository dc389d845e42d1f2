"""``/api/v1/rules``: the active rules, the check of a rule file before it is deployed, and reload.

``POST /rules/validate`` takes the file's YAML as the body (``application/yaml`` or ``text/plain``;
or JSON ``{"text": "..."}``) and answers 200 with ``valid`` and the errors, each with its line, rule,
key and problem, as ``alerts rules check`` prints them. Reloading (admins) re-reads ``ALERTS_RULES``:
if the files do not load, the rules in use stay and the answer (422) lists why; if they do, the other
replicas on the database reload their own rule files within 5 s (:mod:`alerts.server.rulesync`).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from alerts.server import rulecheck
from alerts.server.accounts import Principal
from alerts.server.auth import admin_user, current_user

router = APIRouter(tags=["rules"])

MAX_RULE_FILE = 1024 * 1024  # bytes of a posted rule file (the shipped default set is 2 KB)


class RuleOut(BaseModel):
    name: str
    kind: str
    level: str
    metric: Optional[str] = None
    source: str
    definition: dict[str, Any]


class RuleList(BaseModel):
    items: list[RuleOut]
    generation: int
    files: list[str]
    last_error: Optional[str] = None


class RuleError(BaseModel):
    line: Optional[int] = None
    rule: Optional[str] = None
    key: Optional[str] = None
    message: str
    text: str


class Validation(BaseModel):
    valid: bool
    errors: list[RuleError]
    rules: list[RuleOut]
    warnings: list[str]


class Reloaded(BaseModel):
    reloaded: bool
    generation: int
    rules: int


@router.get("/rules", response_model=RuleList, summary="The rules in force")
def list_rules(request: Request, caller: Principal = Depends(current_user)) -> RuleList:
    return RuleList(**rulecheck.active_view(request.app.state.rules))


_BODY = {"requestBody": {"required": True, "description": "a rule file, as YAML text", "content": {
    "application/yaml": {"schema": {"type": "string"}},
    "text/plain": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "object", "properties": {"text": {"type": "string"}},
                                    "required": ["text"]}},
}}}


def _posted_text(raw: bytes, content_type: str) -> str:
    if len(raw) > MAX_RULE_FILE:
        raise HTTPException(413, f"a rule file is at most {MAX_RULE_FILE} bytes")
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            data = json.loads(raw)
        except ValueError:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "body: not JSON (or send the YAML as application/yaml)") from None
        if not isinstance(data, dict) or not isinstance(data.get("text"), str):
            raise HTTPException(422, [{"loc": ["body", "text"], "msg": "the rule file's YAML as a string", "type": "string_type"}])
        return data["text"]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise HTTPException(422, [{"loc": ["body"], "msg": f"line {line}: not UTF-8 text; save the file as UTF-8",
                                   "type": "unicode_error"}]) from None


@router.post("/rules/validate", response_model=Validation, openapi_extra=_BODY,
             summary="Check a rule file: every error with its line, rule and key (nothing is applied)")
async def validate_rules(request: Request, caller: Principal = Depends(current_user)) -> Validation:
    text = _posted_text(await request.body(), request.headers.get("content-type", ""))
    # The check is CPU work: off the event loop.
    return Validation(**await run_in_threadpool(rulecheck.check_text, text, request.app.state.rules))


@router.post("/rules/reload", response_model=Reloaded, summary="Re-read the rule files (admins)",
             responses={422: {"description": "the files do not load; the rules in force stay"}})
def reload_rules(request: Request, caller: Principal = Depends(admin_user)) -> Reloaded:
    active = request.app.state.rules
    if not active.load():
        errors = [rulecheck.split_error(line) for line in (active.last_error or "").splitlines() if line]
        raise HTTPException(422,
                            {"message": "the rule files did not load; the rules in force stay", "errors": errors})
    request.app.state.rule_sync.published(request.app.state.clock())  # the other replicas follow
    return Reloaded(reloaded=True, generation=active.generation, rules=len(active.ruleset))
