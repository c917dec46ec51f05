"""The window and step a view shows when its caller names neither: fitted to the data present.

A deployment that served its first prediction five minutes ago is shown over the last five
minutes in five-second windows, one that has served for a week over seven days in three-hour
windows. The dashboard, the CLI and the HTML report all ask the same function (through
``GET /api/v1/deployments/{name}/window``), so they agree; an explicit range or step wins.

Windows start on a whole multiple of their step (counted from the epoch, so a one-hour step
starts on the hour in UTC), not at "now minus the range": the same data falls into the same
windows whenever it is looked at, and steps of five minutes or more line up with the stored
five-minute summaries.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from modeldeck.errors import ValidationFailed
from modeldeck.monitoring.summaries.parts import BUCKET_MS

PRESETS: tuple[tuple[str, int], ...] = (
    ("5m", 300),
    ("15m", 900),
    ("1h", 3600),
    ("2h", 7200),
    ("6h", 21600),
    ("12h", 43200),
    ("24h", 86400),
    ("7d", 604800),
    ("14d", 1_209_600),
)
"""The ranges a view offers (name, seconds): the dashboard's buttons, and what a fitted range
is rounded up to."""
DEFAULT_PRESET = "24h"
"""The range of a deployment with no predictions yet."""
STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
"""Readable window sizes in seconds; longer ones are whole days."""
MAX_POINTS = 60
"""A fitted step gives at most this many windows over the range (at least 12 for a preset)."""
DAY_S = 86_400
MAX_WINDOWS = 500
"""Windows a drift, performance or quality report is split into, at the most."""
DAY_MS = DAY_S * 1000


@dataclass(frozen=True)
class Window:
    """A range ``[start, end)`` in ms split into windows of ``step`` ms, and how it was chosen."""

    start: int
    end: int
    step: int
    span: int
    """The range asked for or fitted, in ms (``end - start`` is up to one step longer: the
    start is moved back to a whole step)."""
    preset: str | None
    """The preset the range equals, if any."""
    first_prediction: int | None
    """When the deployment's first prediction in the longest preset was recorded (ms)."""
    fitted: bool
    """Whether the range was fitted to the data (no range was given)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def step_for(span_ms: int) -> int:
    """The smallest readable step (ms) that splits ``span_ms`` into at most 60 windows."""
    wanted = span_ms / MAX_POINTS
    for step in STEPS_S:
        if step * 1000 >= wanted:
            return step * 1000
    return math.ceil(wanted / (DAY_S * 1000)) * DAY_S * 1000


def preset_for(age_ms: int) -> tuple[str, int]:
    """The shortest preset (name, ms) covering ``age_ms``; the longest when none does."""
    for name, seconds in PRESETS:
        if seconds * 1000 >= age_ms:
            return name, seconds * 1000
    name, seconds = PRESETS[-1]
    return name, seconds * 1000


def preset_named(name: str) -> int:
    """A preset's range in ms."""
    for key, seconds in PRESETS:
        if key == name:
            return seconds * 1000
    raise ValidationFailed(
        f"unknown range {name!r}: one of {', '.join(k for k, _ in PRESETS)}",
        details={"field": "preset"},
    )


def fit_window(
    now_ms: int,
    first_prediction_ms: int | None,
    *,
    span_ms: int | None = None,
    step_ms: int | None = None,
) -> Window:
    """The window to show at ``now_ms``: over ``span_ms`` when given, else from the first
    prediction to now rounded up to a preset (24 h without predictions); in windows of
    ``step_ms`` when given, else of :func:`step_for` the range; starting on a whole step."""
    if span_ms is not None and span_ms <= 0:
        raise ValidationFailed("the range must be positive", details={"field": "span"})
    if step_ms is not None and step_ms <= 0:
        raise ValidationFailed("the step must be positive", details={"field": "step"})
    fitted = span_ms is None
    if span_ms is None:
        if first_prediction_ms is None:
            span_ms = preset_named(DEFAULT_PRESET)
        else:
            span_ms = preset_for(max(now_ms - first_prediction_ms, 1))[1]
    preset = next((k for k, s in PRESETS if s * 1000 == span_ms), None)
    step = step_ms or step_for(span_ms)
    end = now_ms + 1  # a prediction recorded this millisecond is inside
    start = (end - span_ms) // step * step
    return Window(
        start=start,
        end=end,
        step=step,
        span=span_ms,
        preset=preset,
        first_prediction=first_prediction_ms,
        fitted=fitted,
    )


def report_range(start_ms: int | None, end_ms: int | None, *, now_ms: int) -> tuple[int, int]:
    """The range a report was asked for; by default the last day, from a five-minute boundary."""
    end_ms = now_ms + 1 if end_ms is None else end_ms
    if start_ms is None:
        start_ms = (end_ms - DAY_MS) // BUCKET_MS * BUCKET_MS
    if end_ms <= start_ms:
        raise ValidationFailed("end must be after start", details={"field": "end"})
    return start_ms, end_ms


def report_step(start_ms: int, end_ms: int, step_ms: int | None) -> int:
    """The width of a range's windows: ``step_ms``, or the whole range; at most
    ``MAX_WINDOWS`` of them."""
    span = end_ms - start_ms
    step_ms = step_ms or span
    if step_ms <= 0:
        raise ValidationFailed("step must be positive", details={"field": "step"})
    if math.ceil(span / step_ms) > MAX_WINDOWS:
        raise ValidationFailed(
            f"{math.ceil(span / step_ms)} windows is too many (at most {MAX_WINDOWS}); "
            "use a larger step",
            details={"field": "step"},
        )
    return step_ms
