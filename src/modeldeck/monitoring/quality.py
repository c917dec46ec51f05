"""Data quality of a window's inputs, column by column, from drift summaries.

Every statistic is read off a column's :class:`~modeldeck.monitoring.summaries.parts.DriftPart`
summary (value counts or a histogram on the reference's bins, with missing and invalid counts
and the smallest and largest value), so a window computed from its records and one assembled
from stored five-minute summaries give the same numbers. Per column:

* **missing**: records without a usable value (null, NaN, +-inf, or the field absent);
* **type violations**: values that cannot be read as the column's kind (text that is no number
  in a numeric column; lists or objects anywhere). Numeric text reads as a number;
* **out of range** (numeric, with reference data): values below the reference's minimum or
  above its maximum;
* **new categories** (categorical, with reference data): values the reference never holds;
* **constant**: one distinct value (at least two values present) where the reference has more.

Shares are over the window's records (one per feature row). Without reference data only the
missing share and constancy are known (types too when the model's signature gives them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modeldeck.monitoring.summaries.parts import OVERFLOW, DriftPart

TOP_NEW_CATEGORIES = 5
"""New categories listed per column, the most frequent first."""

SHARES = ("missing_share", "out_of_range_share", "new_category_share", "type_violation_share")


@dataclass(frozen=True)
class ColumnProfile:
    """What the reference says of one column: its kind, and (with reference data) its range
    (numeric), its categories (categorical) and how many distinct values it holds."""

    kind: str  # numeric | categorical
    low: float | None = None
    high: float | None = None
    categories: frozenset[str] | None = None
    distinct: int | None = None
    typed: bool = True  # the kind comes from the reference or signature, not from the data


def column_quality(
    column: str, profile: ColumnProfile, summary: Mapping[str, Any] | None, records: int
) -> dict[str, Any]:
    """One column's quality over ``records`` feature rows summarised as ``summary``."""
    summary = summary or {}
    counts = summary.get("counts") or {}
    invalid = int(summary.get("invalid", 0))
    present = int(sum(counts.values())) if isinstance(counts, dict) else int(sum(counts))
    missing = max(records - present - invalid, 0)
    out: dict[str, Any] = {
        "column": column,
        "kind": profile.kind,
        "count": present,
        "missing": missing,
        "missing_share": _share(missing, records),
        "type_violations": invalid if profile.typed else None,
        "type_violation_share": _share(invalid, records) if profile.typed else None,
        "out_of_range": None,
        "out_of_range_share": None,
        "new_categories": None,
        "new_category_share": None,
        "top_new_categories": [],
        "distinct": None,
        "constant": None,
    }
    if profile.kind == "numeric":
        span = summary.get("range")
        single = span is not None and present > 0 and span[0] == span[1]
        out["distinct"] = 0 if not present else (1 if single else None)
        if profile.low is not None and profile.high is not None and not isinstance(counts, dict):
            outside = int(summary["below"][0]) + int(summary["above"][0])
            out["out_of_range"] = outside
            out["out_of_range_share"] = _share(outside, records)
    else:
        overflow = int(counts.get(OVERFLOW, 0))
        out["distinct"] = None if overflow else len(counts)
        if profile.categories is not None:
            new = {
                v: int(n)
                for v, n in counts.items()
                if v != OVERFLOW and v not in profile.categories
            }
            unseen = sum(new.values())
            out["new_categories"] = unseen
            out["new_category_share"] = _share(unseen, records)
            ordered = sorted(new.items(), key=lambda item: (-item[1], item[0]))
            out["top_new_categories"] = [
                {"value": v, "count": n} for v, n in ordered[:TOP_NEW_CATEGORIES]
            ]
            out["uncounted_values"] = overflow  # beyond the summaries' categories: unknown
    out["constant"] = (
        out["distinct"] == 1 and present >= 2 and (profile.distinct is None or profile.distinct > 1)
    )
    out["problems"] = problems(out)
    return out


def problems(column: Mapping[str, Any]) -> list[str]:
    """The names of what is wrong with a column, for highlighting."""
    found = [name.removesuffix("_share") for name in SHARES if (column.get(name) or 0) > 0]
    if column.get("constant"):
        found.append("constant")
    return found


def window_quality(
    part: DriftPart,
    profiles: Mapping[str, ColumnProfile],
    *,
    reference_columns: Sequence[str] | None,
) -> dict[str, Any]:
    """The quality of each column of ``profiles`` in one window, its schema and its worst
    shares. ``reference_columns`` are the columns of the reference data (None without)."""
    columns = [
        column_quality(name, profile, part.columns.get(name), part.records)
        for name, profile in profiles.items()
    ]
    seen = {key for key, n in part.keys.items() if n}
    known = set(reference_columns) if reference_columns is not None else set(profiles)
    schema = {
        "unexpected_columns": sorted(seen - known),
        "absent_columns": sorted(c for c in profiles if c not in seen) if part.records else [],
    }
    out: dict[str, Any] = {
        "rows": part.records,
        "skipped_records": part.skipped,
        "schema": schema,
        "columns": columns,
    }
    for name in SHARES:
        out[name] = _worst(c[name] for c in columns)
    out["constant_columns"] = [c["column"] for c in columns if c["constant"]]
    out["problems"] = sum(1 for c in columns if c["problems"]) + len(schema["unexpected_columns"])
    return out


def _worst(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _share(n: int, total: int) -> float | None:
    return n / total if total else None
