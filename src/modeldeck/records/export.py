"""Model-metrics records as a CSV table: one row per prediction, one column per tracked key.

Pure: it takes records in the read-back shape (``predictionUuid``, ``startTimeStampMs``,
``endTimeStampMs``, ``modelVersion``, ``metrics``) and knows nothing of the store or of HTTP, so
the dashboard's download (``GET /api/v1/deployments/{name}/metrics/model/csv``) and
``modeldeck metrics model --csv`` write the same table.

A tracked object (``input: {"sepal_length": 5.1, ...}``) is spread over one column per field
(``input.sepal_length``); lists and deeper values are JSON text. A text cell that a spreadsheet
would take for a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) gets a leading ``'``, as OWASP advises: predictions' inputs come from callers.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

FIXED = ["prediction_uuid", "start_ms", "end_ms", "model_version"]
"""The columns every row has, before the tracked keys."""

MAX_EXPORT_ROWS = 100_000
"""Most predictions in one download (the oldest of the range first); narrow the range for more."""

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class CsvExport:
    text: str
    rows: int
    truncated: bool
    """The range held more predictions than ``rows``."""


def flatten(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``{"input": {"a": 1}, "output": 2}`` -> ``{"input.a": 1, "output": 2}`` (one level)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping) and value:
            for sub, inner in value.items():
                flat[f"{key}.{sub}"] = inner
        else:
            flat[key] = value
    return flat


def cell(value: Any) -> str:
    """A value as CSV text: empty for None, JSON for lists and objects, guarded formulas."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"'{text}" if text.startswith(_FORMULA) else text


def records_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """The prediction records (aggregates, with no ``predictionUuid``, are left out) as CSV:
    the fixed columns, then every tracked key in the order it first appears."""
    rows: list[tuple[Mapping[str, Any], dict[str, Any]]] = []
    keys: dict[str, None] = {}
    for record in records:
        if not record.get("predictionUuid"):
            continue
        flat = flatten(record.get("metrics") or {})
        keys.update(dict.fromkeys(flat))
        rows.append((record, flat))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*FIXED, *keys])
    for record, flat in rows:
        writer.writerow([
            record["predictionUuid"], record.get("startTimeStampMs"),
            record.get("endTimeStampMs"), record.get("modelVersion") or "",
            *(cell(flat.get(k)) for k in keys),
        ])  # fmt: skip
    return out.getvalue()


def export_csv(records: Iterable[Mapping[str, Any]], max_rows: int = MAX_EXPORT_ROWS) -> CsvExport:
    """The first ``max_rows`` prediction records of ``records`` (read lazily) as CSV."""
    predictions = (r for r in records if r.get("predictionUuid"))
    taken = list(itertools.islice(predictions, max_rows + 1))
    kept = taken[:max_rows]
    return CsvExport(records_csv(kept), len(kept), len(taken) > max_rows)
