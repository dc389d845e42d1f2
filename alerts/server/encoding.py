"""JSON in and out of the API with NaN and infinities, in the encoding ``alerts ... --json`` writes.

Metrics are floats and NaN is the very value an alert is about, but JSON has no NaN. Responses write
NaN, Infinity and -Infinity as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (what the CLI
prints); requests may use those strings or the bare tokens Python's and JavaScript's serialisers emit
(``NaN``, ``Infinity``), and :func:`metric_value` reads either back as a float.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from fastapi.responses import JSONResponse
from pydantic import WithJsonSchema

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf, "inf": math.inf, "-inf": -math.inf,
              "nan": math.nan}


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by its string form (recursively)."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def metric_value(value: Any) -> Any:
    """A logged value as stored: the strings "NaN"/"Infinity"/"-Infinity" become floats."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    return value


class SafeJSONResponse(JSONResponse):
    """The API's response class: NaN-safe, UTF-8, compact."""

    def render(self, content: Any) -> bytes:
        return json.dumps(json_safe(content), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


# A float field of a response that may be NaN or infinite: the schema says what SafeJSONResponse writes.
NonFiniteFloat = Annotated[float, WithJsonSchema({"anyOf": [
    {"type": "number"}, {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}]})]
