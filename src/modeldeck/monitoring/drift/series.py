"""Drift of each column over time: the drift test of every column, window after window.

One window's report (``AnalysisService.drift``) says whether a column drifted; this says when it
started to, as Evidently's and NannyML's drift-over-time charts do. Each window of
``[start, end)`` is tested on its own, against the same reference data, with the same methods
and thresholds as a single report, read from the five-minute and hourly summaries the platform
keeps (``binned``: a window's rows are never all read), so a window here and the one-window
report of the same range agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modeldeck.errors import ValidationFailed

if TYPE_CHECKING:
    from modeldeck.monitoring.analysis import AnalysisService

MAX_WINDOWS = 120
"""Drift tests are a few tens of milliseconds per window: two hours of five-minute windows, a
week of hourly ones with room to spare."""

FIELDS = ("method", "statistic", "p_value", "distance", "threshold", "drifted", "current_rows")
"""What each column's test keeps per window (the distributions stay in the one-window report)."""


def drift_series(
    analysis: AnalysisService,
    name: str,
    *,
    start_ms: int,
    end_ms: int,
    step_ms: int,
    model_version: str | None = None,
    columns: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Each monitored column's drift test in every ``step_ms`` window of ``[start_ms, end_ms)``.

    Raises ``NotFound`` without a deployment or reference data, ``ValidationFailed`` for an
    empty range, a step that is not positive, more than :data:`MAX_WINDOWS` windows, or a
    column the reference data does not have.
    """
    if end_ms <= start_ms:
        raise ValidationFailed("end must be after start", details={"field": "end"})
    if step_ms <= 0:
        raise ValidationFailed("step must be positive", details={"field": "step"})
    count = math.ceil((end_ms - start_ms) / step_ms)
    if count > MAX_WINDOWS:
        raise ValidationFailed(
            f"{count} windows is too many for a drift series (at most {MAX_WINDOWS}); "
            "use a larger step",
            details={"field": "step"},
        )
    windows = []
    reference: dict[str, Any] | None = None
    tested: list[str] = []
    for lo in range(start_ms, end_ms, step_ms):
        hi = min(lo + step_ms, end_ms)
        report = analysis.drift(
            name,
            start_ms=lo,
            end_ms=hi,
            model_version=model_version,
            columns=columns,
            binned=True,
        )
        reference = reference or report["reference"]
        tested = tested or [c["column"] for c in report["columns"]]
        prediction = report.get("prediction")
        windows.append(
            {
                "start": lo,
                "end": hi,
                "predictions": report["predictions"],
                "mode": report["mode"],
                "verdict": report["verdict"]["level"],
                "dataset": {
                    key: report["dataset"][key] for key in ("drifted", "drifted_share", "columns")
                },
                "columns": {
                    c["column"]: {key: c.get(key) for key in FIELDS} for c in report["columns"]
                },
                "prediction": None
                if not prediction
                else {key: prediction.get(key) for key in ("column", *FIELDS)},
            }
        )
    return {
        "deployment": name,
        "model_version": model_version,
        "start": start_ms,
        "end": end_ms,
        "step": step_ms,
        "reference": reference,
        "columns": tested,
        "windows": windows,
    }
