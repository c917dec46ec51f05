"""How a deployment's monitored columns are summarised, and tracked records as summaries.

A :class:`DriftPlan` is made from the reference data (bin edges of each numeric column, the
kind of each column, the output's) and the settings; :func:`drift_part` turns a group of
tracked records into the :class:`~modeldeck.monitoring.summaries.parts.DriftPart` that drift
and data quality read, whether the group is a window's records or a stored five-minute bucket.
Pure: no store, no registry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modeldeck.monitoring.config import ColumnOverride, MonitoringConfig
from modeldeck.monitoring.drift import stats
from modeldeck.monitoring.summaries import parts

if TYPE_CHECKING:
    import pandas as pd

    from modeldeck.monitoring.reference import Reference


@dataclass(frozen=True)
class DriftPlan:
    """How a deployment's monitored columns are summarised; ``signature`` names the plan."""

    columns: dict[str, parts.ColumnPlan]
    output: tuple[str, parts.ColumnPlan] | None
    signature: str

    @property
    def features(self) -> list[str]:
        return list(self.columns)


def drift_plan(reference: Reference, config: MonitoringConfig) -> DriftPlan:
    """How each monitored column (and the output) is summarised, from the reference."""
    columns: dict[str, parts.ColumnPlan] = {}
    for column in config.columns or reference.features:
        if column not in reference.frame.columns:
            continue
        override = config.overrides.get(column, ColumnOverride())
        columns[column] = plan_column(
            reference.frame[column], override.kind or stats.column_kind(reference.frame[column])
        )
    output = output_plan(reference)
    # From the reference and drift_inputs(config) alone (set_config relies on it).
    signature = parts.signature(
        reference.row.id,
        str(reference.row.created_at),
        config.input_key,
        config.output_key,
        {c: p.kind for c, p in columns.items()},
        None if output is None else output[1].kind,
    )
    return DriftPlan(columns, output, signature)


def output_plan(reference: Reference) -> tuple[str, parts.ColumnPlan] | None:
    column = reference.row.prediction_column or reference.row.target_column
    if column is None:
        return None
    baseline = reference.frame[column]
    kind = stats.column_kind(baseline)
    if kind == "categorical" or few_integers(baseline):
        return column, parts.ColumnPlan("categorical")
    return column, plan_column(baseline, "numeric")


def plan_column(reference: pd.Series, kind: str) -> parts.ColumnPlan:
    if kind == "numeric":
        values, _ = conform(reference, "numeric")
        finite = values[values.notna()]
        finite = finite[finite.abs() != math.inf]
        if len(finite):
            return parts.ColumnPlan("numeric", tuple(float(x) for x in stats.numeric_edges(finite)))
        return parts.ColumnPlan("numeric", (-math.inf, math.inf))
    return parts.ColumnPlan("categorical")


def tracked_rows(
    metrics: Sequence[Mapping[str, Any]],
    input_key: str,
    output_key: str,
    output_column: str | None = None,
) -> tuple[list[dict[str, Any]], list[Any], int]:
    """Feature records and outputs from tracked metrics; records of another shape are skipped.
    With ``output_column``, an output that is a record (or a list of them) gives that column."""
    inputs: list[dict[str, Any]] = []
    outputs: list[Any] = []
    skipped = 0
    for m in metrics:
        given = m.get(input_key)
        out = m.get(output_key)
        if output_column is not None:
            out = _column_of(out, output_column)
        if isinstance(given, dict):
            inputs.append(given)
            if out is not None:
                outputs.append(out[0] if isinstance(out, list) and len(out) == 1 else out)
        elif isinstance(given, list) and given and all(isinstance(g, dict) for g in given):
            inputs.extend(given)
            if isinstance(out, list) and len(out) == len(given):
                outputs.extend(out)
        else:
            skipped += 1
    return inputs, outputs, skipped


def _column_of(output: Any, column: str) -> Any:
    if isinstance(output, dict):
        return output.get(column)
    if isinstance(output, list):
        return [o.get(column) if isinstance(o, dict) else None for o in output]
    return None


def frame_of(inputs: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(inputs) if inputs else pd.DataFrame()


def conform(values: pd.Series, kind: str) -> tuple[pd.Series, int]:
    """Values fit for a column of ``kind``, and how many did not fit (now missing).

    Numeric columns take numbers (and numeric text); categorical columns take scalars, compared
    as text (``1`` and ``"1"`` are one category). Lists, objects and the like count as invalid
    rather than failing the report.
    """
    import pandas as pd

    present = values.notna()
    if kind == "numeric":
        if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        ):
            return values.astype(float), 0  # already numbers (a reference column, say)

        def number(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                return None
            return v

        converted = pd.to_numeric(values.map(number), errors="coerce")
        return converted, int((converted.isna() & present).sum())
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return values, 0  # text already (fast path for reference columns)
    scalar = values.map(lambda v: str(v) if is_scalar(v) else None)
    return scalar, int((scalar.isna() & present).sum())


def is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and not (
        isinstance(value, float) and not math.isfinite(value)
    )


def few_integers(values: pd.Series) -> bool:
    import numpy as np

    clean = values.dropna()
    if clean.empty or not np.issubdtype(clean.dtype, np.number):
        return False
    return bool((clean == np.round(clean)).all() and clean.nunique() <= 20)


def summarise(values: pd.Series, plan: parts.ColumnPlan) -> dict[str, Any]:
    import numpy as np

    present = int(values.notna().sum())
    conformed, invalid = conform(values, plan.kind)
    missing = len(values) - present
    if plan.kind == "numeric":
        return parts.summarise_numeric(
            conformed.dropna().to_numpy(dtype=np.float64), plan, missing, invalid
        )
    return parts.summarise_categorical(conformed.dropna().tolist(), missing, invalid)


def drift_part(
    records: Sequence[Mapping[str, Any]], config: MonitoringConfig, plan: DriftPlan
) -> parts.DriftPart:
    """One group of tracked records as a drift summary."""
    import pandas as pd

    inputs, outputs, skipped = tracked_rows(
        records, config.input_key, config.output_key, config.output_column
    )
    current = frame_of(inputs)
    part = parts.DriftPart(records=len(current), skipped=skipped)
    part.keys = {str(c): int(current[c].notna().sum()) for c in current.columns}
    for column, column_plan in plan.columns.items():
        values = current[column] if column in current.columns else pd.Series([], dtype=float)
        part.columns[column] = summarise(values, column_plan)
    if plan.output is not None:
        kept = pd.Series([o for o in outputs if is_scalar(o)], dtype=object)
        kept_plan = plan.output[1]
        if kept_plan.kind == "categorical":
            kept = kept.astype(str)
        part.output = summarise(kept, kept_plan)
    return part
