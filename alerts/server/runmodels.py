"""The bodies of the runs API (``/api/v1/runs``): what a client sends and what it gets back.

The limits are here so that the OpenAPI schema shows them and a request over one is a 422 naming the
field: at most :data:`MAX_ROWS` rows a batch and :data:`MAX_KEYS` keys a row. Values are any JSON
value; NaN and the infinities arrive as bare tokens (``NaN``, ``Infinity``) or as the strings
``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (what ``alerts ... --json`` and the responses write), and
are stored as floats either way.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alerts.levels import AlertLevel
from alerts.sdk.names import check_tags, check_text

# Rows in one batch, and keys in one row: over either is a 422 saying which.
MAX_ROWS = 10_000
MAX_KEYS = 1_000
# Steps are 64-bit on every backend (as in the SDK: alerts/sdk/run.py MAX_STEP).
MAX_STEP = 2**63 - 1
# Final states a client may finish a run in (``crashed`` is the server's verdict, never a client's).
FINISH_STATES = ("finished", "failed", "killed", "preempted")
RUN_STATES = ("running", "crashed", *FINISH_STATES)


class _Body(BaseModel):
    # Unknown fields are an error: a misspelt field must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


class RunIn(_Body):
    """``POST /api/v1/runs``: create a run, or resume one (the caller owns it)."""

    id: Optional[str] = Field(None, description="1-64 letters, digits, '-' or '_'; made up when absent")
    project: str = Field(..., description="at most 128 characters, none of / \\ # ? % :")
    name: Optional[str] = Field(None, description="generated (adjective-noun-N) when absent")
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    notes: Optional[str] = None
    config: dict[str, Any] = Field(default_factory=dict)
    resume: Union[Literal["allow", "must", "never"], bool, None] = Field(
        None, description="allow / true: resume if it exists; must: 404 if it does not; never / false / null: "
        "409 if it exists")
    host: Optional[str] = Field(None, max_length=255)
    pid: Optional[int] = Field(None, ge=0, le=2**31 - 1)


class RunOut(BaseModel):
    """A run as the API shows it."""

    id: str
    owner: str
    project: str
    name: str
    group: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str]
    notes: Optional[str] = None
    config: dict[str, Any]
    summary: dict[str, Any]
    state: str
    created_at: float
    updated_at: float
    heartbeat_at: float
    finished_at: Optional[float] = None
    exit_code: Optional[int] = None
    error_type: Optional[str] = None
    error_text: Optional[str] = None
    last_step: int
    last_seq: int


class RowIn(_Body):
    """One history row: what one ``log()`` commit recorded at ``step``."""

    step: int = Field(..., ge=0, le=MAX_STEP)
    time: float = Field(..., allow_inf_nan=False, description="seconds since the epoch, on the client's clock")
    values: dict[str, Any] = Field(default_factory=dict)

    @field_validator("values")
    @classmethod
    def _few_enough_keys(cls, values: dict) -> dict:
        if len(values) > MAX_KEYS:
            raise ValueError(f"a row has at most {MAX_KEYS} keys, this one has {len(values)}")
        return values


class AlertIn(_Body):
    """An explicit ``alert()`` call, as the client recorded it."""

    title: str
    text: str = ""
    level: AlertLevel = AlertLevel.INFO
    wait_duration: float = Field(60.0, ge=0, allow_inf_nan=False)
    created_at: float = Field(..., allow_inf_nan=False)
    step: Optional[int] = Field(None, ge=0, le=MAX_STEP)
    suppressed: Optional[str] = Field(None, description="the client's reason when wandb's wait_duration "
                                      "suppressed this repeat (recorded, not notified)")


class RunFieldsIn(_Body):
    """The run's own fields the script changed after ``init()`` (``run.name = ...``, ``run.tags``,
    ``run.notes``): only those present are changed (``notes: null`` clears the notes)."""

    name: Optional[str] = Field(None, description="the run's new display name (null: unchanged)")
    tags: Optional[list[str]] = Field(None, description="the run's tags, all of them (null: unchanged)")
    notes: Optional[str] = Field(None, description="the run's notes (present and null: cleared)")

    @field_validator("name", "notes")
    @classmethod
    def _storable_text(cls, value: Optional[str], info) -> Optional[str]:
        return check_text(value, info.field_name)  # NUL or a lone surrogate: a 422 naming the field

    @field_validator("tags")
    @classmethod
    def _storable_tags(cls, value: Optional[list[str]]) -> Optional[list[str]]:
        return None if value is None else check_tags(value)

    def changes(self) -> dict:
        """The columns to write: the fields the client sent (a null name or tags means unchanged)."""
        out = {}
        for field in self.model_fields_set:
            value = getattr(self, field)
            if value is None and field != "notes":
                continue
            out[field] = value
        return out


class BatchIn(_Body):
    """``POST /api/v1/runs/{id}/batches``: what a run logged since its previous batch."""

    seq: int = Field(..., ge=1, le=MAX_STEP, description="per run; a seq at or below the run's last stored "
                     "seq is a replay: answered stored=false, nothing stored")
    rows: list[RowIn] = Field(default_factory=list, max_length=MAX_ROWS,
                              description=f"in increasing step order; at most {MAX_ROWS}")
    config: Optional[dict[str, Any]] = Field(None, description="the whole config as it is now")
    summary: Optional[dict[str, Any]] = Field(None, description="summary keys set explicitly since the "
                                              "previous batch (applied after the rows)")
    alerts: list[AlertIn] = Field(default_factory=list, max_length=MAX_ROWS)
    run: Optional[RunFieldsIn] = Field(None, description="the run's name, tags or notes as changed since the "
                                       "previous batch (applied after the rows)")

    @field_validator("rows")
    @classmethod
    def _increasing_steps(cls, rows: list) -> list:
        for i in range(1, len(rows)):
            if rows[i].step <= rows[i - 1].step:
                raise ValueError(f"steps must increase: row {i} has step {rows[i].step} after step "
                                 f"{rows[i - 1].step}")
        return rows


class BatchOut(BaseModel):
    """What became of a batch: ``stored`` false for a replay (nothing was stored again)."""

    seq: int
    stored: bool
    last_seq: int
    dropped_rows: int = Field(0, description="rows at or below the run's last stored step (not stored, as "
                              "log() drops a step lower than the current one)")


class FinishIn(_Body):
    """``POST /api/v1/runs/{id}/finish``."""

    state: Literal["finished", "failed", "killed", "preempted"]
    exit_code: Optional[int] = Field(None, ge=-(2**63), le=MAX_STEP)
    error_type: Optional[str] = None
    error_text: Optional[str] = None
    summary: Optional[dict[str, Any]] = Field(None, description="summary keys set explicitly since the last batch")


def inline_schema(model: type[BaseModel]) -> dict:
    """``model``'s JSON schema with its ``$defs`` written in place: for a route that parses its body
    itself (``openapi_extra``), where ``#/$defs/...`` would not resolve inside the OpenAPI document."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve({**defs[ref.rsplit("/", 1)[1]], **{k: v for k, v in node.items() if k != "$ref"}})
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return resolve(schema)
