"""Data-drift statistics per column and per dataset, after Evidently's defaults.

Pure numpy/scipy/pandas; no I/O and no state. Three layers:

* ``statistic(method, reference, current, kind)``: the raw number (a p-value or a distance),
  computed the way Evidently's legacy stattests compute it.
* ``column_drift`` and ``dataset_drift``: pick a method (Evidently's ``get_default_stattest``
  rule unless told otherwise), compare with a threshold, and report what a dashboard needs.
* ``numeric_edges``, ``bin_counts`` and ``binned_statistic``: the same statistics from
  histograms, for windows too large to keep raw values.

What is mirrored from Evidently: missing values and, for numeric columns, +-inf are dropped
before testing; KS is ``scipy.stats.ks_2samp``; chi-square takes the expected frequencies as the
reference counts scaled by ``len(current) / len(reference)`` over the union of seen values; the
z-test compares the share of values other than the smallest one
(``proportions_diff_z_stat_ind``); Wasserstein is divided by ``max(std(reference), 0.001)``
(population std); Jensen-Shannon and PSI bin a numeric column with more than 20 distinct
reference values into Sturges bins over the concatenation of both samples, and otherwise take
one bin per value; PSI replaces empty bins by ``min(non-zero share) / 1e6`` when that minimum is
at most 1e-4, else by 1e-4; Hellinger bins a numeric column into Sturges bins over its distinct
values. Default thresholds: 0.05 for p-values, 0.1 for distances.

Where this module differs from Evidently, and why:

* A p-value drifts when ``p < threshold`` for every method; Evidently's KS alone uses ``<=``.
  The verdicts differ only when the p-value equals the threshold exactly.
* ``chisquare`` and ``z`` accept numeric columns by name. Evidently registers them for
  categorical columns only, yet its default rule applies them to numeric columns with at most
  five distinct values; naming what the default already does should not be an error.
* Chi-square with a current value never seen in the reference returns 0.0 at once (scipy would
  divide by a zero expected count, warn, and return the same 0.0); with a single value on both
  sides it returns 1.0 (scipy has zero degrees of freedom and returns NaN).
* The z-test p-value is ``2 * norm.sf(|z|)`` rather than ``2 * (1 - norm.cdf(|z|))``: the same
  number, without losing precision in the far tail.
* An empty sample (after dropping missing values) gives a NaN statistic that never drifts, with
  ``details["reason"]``; Evidently raises. A dataset's drifted share counts only the columns
  that could be tested.
* Categorical columns with more than ``top_k`` distinct reference values keep the ``top_k``
  most frequent ones and fold the rest into ``"__other__"`` (a value that is literally
  ``"__other__"`` joins that bucket). Evidently keeps every value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats
from scipy.spatial import distance

__all__ = [
    "METHODS",
    "OTHER",
    "ColumnDrift",
    "DatasetDrift",
    "Kind",
    "Method",
    "bin_counts",
    "binned_column_drift",
    "binned_ks",
    "binned_statistic",
    "column_drift",
    "column_kind",
    "dataset_drift",
    "default_method",
    "numeric_edges",
    "statistic",
]

Kind = Literal["numeric", "categorical"]
MethodKind = Literal["pvalue", "distance"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Values: TypeAlias = npt.NDArray[Any] | pd.Series | Sequence[Any]

OTHER = "__other__"
KINDS: tuple[Kind, ...] = ("numeric", "categorical")
SMALL_REFERENCE_ROWS = 1000  # Evidently: tests up to this many reference rows, distances above
FEW_VALUES = 5  # numeric columns with at most this many distinct values are treated as categories
DISPLAY_BINS = 20
TAIL_EDGES = 16  # extra quantile edges in each outer bin of numeric_edges
TAIL_VALUES = 10  # ... down to the quantile holding this many reference values
KS_EXACT_MAX_N = 10_000  # scipy's ks_2samp 'auto' mode is exact up to this sample size
_BOTH: frozenset[Kind] = frozenset(KINDS)
_NUMERIC: frozenset[Kind] = frozenset({"numeric"})


@dataclass(frozen=True)
class Method:
    """A drift method: what its number means, its default threshold, which columns it accepts."""

    name: str
    kind: MethodKind
    default_threshold: float
    supports: frozenset[Kind]

    def drifted(self, statistic: float, threshold: float) -> bool:
        """A p-value drifts below the threshold, a distance at or above it; NaN never drifts."""
        if self.kind == "pvalue":
            return bool(statistic < threshold)
        return bool(statistic >= threshold)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ks", "pvalue", 0.05, _NUMERIC),
        Method("chisquare", "pvalue", 0.05, _BOTH),
        Method("z", "pvalue", 0.05, _BOTH),
        Method("wasserstein", "distance", 0.1, _NUMERIC),
        Method("jensenshannon", "distance", 0.1, _BOTH),
        Method("psi", "distance", 0.1, _BOTH),
        Method("hellinger", "distance", 0.1, _BOTH),
    )
}


def _method(name: str, kind: Kind) -> Method:
    _check_kind(kind)
    method = METHODS.get(name)
    if method is None:
        raise ValueError(f"unknown drift method {name!r}; valid methods: {', '.join(METHODS)}")
    if kind not in method.supports:
        valid = [m.name for m in METHODS.values() if kind in m.supports]
        raise ValueError(
            f"drift method {name!r} does not support {kind} columns; "
            f"methods for {kind} columns: {', '.join(valid)}"
        )
    return method


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown column kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    return kind


# --- preparing samples -------------------------------------------------------------------------


def _as_series(values: Values) -> pd.Series:
    if isinstance(values, pd.Series):
        return values.reset_index(drop=True)
    return pd.Series(values)


def column_kind(values: Values) -> Kind:
    """``"numeric"`` for a numeric dtype other than bool, else ``"categorical"``.

    Only the dtype decides: object columns are categorical even when they hold numbers.
    """
    series = _as_series(values)
    dtype = series.dtype
    numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    return "numeric" if numeric else "categorical"


def _clean(values: Values, kind: Kind) -> tuple[pd.Series, int]:
    """The non-missing values and how many were dropped (+-inf counts as missing if numeric)."""
    series = _as_series(values)
    if kind == "categorical":
        series = series.astype(object)
        kept = series[series.notna()].reset_index(drop=True)
        return kept, len(series) - len(kept)
    try:
        if not pd.api.types.is_numeric_dtype(series.dtype):
            series = pd.to_numeric(series)
        array = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"a numeric column needs numeric values (dtype {series.dtype} given): {exc}"
        ) from exc
    finite = array[np.isfinite(array)]
    return pd.Series(finite, dtype=np.float64), len(array) - len(finite)


def _sort_token(value: Any) -> tuple[str, str]:
    return type(value).__name__, str(value)


def _sorted_keys(keys: set[Any]) -> list[Any]:
    try:
        return sorted(keys)
    except TypeError:  # mixed types: order by type name, then text
        return sorted(keys, key=_sort_token)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- default method ----------------------------------------------------------------------------


def default_method(reference: Values, current: Values, kind: Kind) -> str:
    """The method Evidently's ``get_default_stattest`` picks.

    ``n_unique`` counts distinct non-missing values of reference and current together
    (``pd.concat([reference, current]).nunique()``, as Evidently does), and the row count is the
    reference's non-missing rows (Evidently drops missing values before choosing):

    * at most 1000 reference rows: ``ks`` for numeric columns with more than 5 distinct values,
      else ``chisquare`` with more than 2 distinct values, else ``z`` (threshold: p < 0.05);
    * more than 1000 rows: ``wasserstein`` for numeric columns with more than 5 distinct values,
      else ``jensenshannon`` (threshold: distance >= 0.1).
    """
    _check_kind(kind)
    return _default_for(_clean(reference, kind)[0], _clean(current, kind)[0], kind)


def _default_for(reference: pd.Series, current: pd.Series, kind: Kind) -> str:
    n_values = pd.concat([reference, current], ignore_index=True).nunique()
    many_values = kind == "numeric" and n_values > FEW_VALUES
    if len(reference) <= SMALL_REFERENCE_ROWS:
        if many_values:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    return "wasserstein" if many_values else "jensenshannon"


# --- statistics on counts (shared by the raw and the binned forms) -----------------------------


def _fill_zeroes(shares: FloatArray) -> FloatArray:
    """Evidently's PSI fill for empty bins: min(non-zero)/1e6 if that is <= 1e-4, else 1e-4."""
    smallest = float(shares[shares != 0].min())
    fill = smallest / 10**6 if smallest <= 0.0001 else 0.0001
    return np.where(shares == 0, fill, shares)


def _chisquare_counts(ref: FloatArray, cur: FloatArray) -> float:
    """Goodness of fit of the current counts to the reference's shares (Evidently's test).

    The reference shares are taken as exact, so the p-value overstates significance unless the
    current sample is much smaller than the reference (the statistic's expectation grows by
    ``1 + len(current) / len(reference)``, twice the degrees of freedom for equal sizes); that
    is the established default, kept as is.
    """
    if np.count_nonzero(ref + cur) <= 1:
        return 1.0
    expected = ref * (cur.sum() / ref.sum())
    if np.any((expected == 0) & (cur > 0)):
        return 0.0  # a value never seen in the reference: infinite chi-square statistic
    return float(stats.chisquare(cur, expected).pvalue)


def _z_counts(ref: FloatArray, cur: FloatArray) -> float:
    present = np.flatnonzero(ref + cur)
    if present.size <= 1:
        return 1.0  # one and the same value on both sides
    first = present[0]
    n1, n2 = float(ref.sum()), float(cur.sum())
    p1 = (n1 - ref[first]) / n1
    p2 = (n2 - cur[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * stats.norm.sf(abs(z)))


def _psi_counts(ref: FloatArray, cur: FloatArray) -> float:
    r = _fill_zeroes(ref / ref.sum())
    c = _fill_zeroes(cur / cur.sum())
    return float(np.sum((r - c) * np.log(r / c)))


def _jensenshannon_counts(ref: FloatArray, cur: FloatArray) -> float:
    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


def _hellinger_counts(ref: FloatArray, cur: FloatArray) -> float:
    coefficient = float(np.sum(np.sqrt((ref / ref.sum()) * (cur / cur.sum()))))
    return math.sqrt(1 - min(max(coefficient, 0.0), 1.0))


def _chisquare_counts_statistic(ref: FloatArray, cur: FloatArray) -> float:
    """The chi-square statistic of :func:`_chisquare_counts` (inf for a value the reference
    never had)."""
    if np.count_nonzero(ref + cur) <= 1:
        return 0.0
    expected = ref * (cur.sum() / ref.sum())
    if np.any((expected == 0) & (cur > 0)):
        return math.inf
    return float(stats.chisquare(cur, expected).statistic)


def _z_counts_statistic(ref: FloatArray, cur: FloatArray) -> float:
    """The z of :func:`_z_counts` (reference share minus current share, over its error)."""
    present = np.flatnonzero(ref + cur)
    if present.size <= 1:
        return 0.0
    first = present[0]
    n1, n2 = float(ref.sum()), float(cur.sum())
    p1 = (n1 - ref[first]) / n1
    p2 = (n2 - cur[first]) / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    return float((p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)))


# The test statistic behind each p-value method's p-value (KS's D is computed apart).
_COUNT_TEST_STATISTICS: dict[str, Callable[[FloatArray, FloatArray], float]] = {
    "chisquare": _chisquare_counts_statistic,
    "z": _z_counts_statistic,
}


_COUNT_STATISTICS: dict[str, Callable[[FloatArray, FloatArray], float]] = {
    "chisquare": _chisquare_counts,
    "z": _z_counts,
    "psi": _psi_counts,
    "jensenshannon": _jensenshannon_counts,
    "hellinger": _hellinger_counts,
}


# --- raw statistics ----------------------------------------------------------------------------


def _value_counts(reference: pd.Series, current: pd.Series) -> tuple[FloatArray, FloatArray]:
    """Counts per distinct value, over the sorted union of values seen on either side."""
    ref = reference.value_counts(sort=False)
    cur = current.value_counts(sort=False)
    keys = _sorted_keys(set(ref.index) | set(cur.index))
    return (
        ref.reindex(keys, fill_value=0).to_numpy(dtype=np.float64),
        cur.reindex(keys, fill_value=0).to_numpy(dtype=np.float64),
    )


def _histograms(
    reference: pd.Series, current: pd.Series, edges: FloatArray
) -> tuple[FloatArray, FloatArray]:
    return (
        np.histogram(reference.to_numpy(), edges)[0].astype(np.float64),
        np.histogram(current.to_numpy(), edges)[0].astype(np.float64),
    )


def _evidently_bins(
    reference: pd.Series, current: pd.Series, kind: Kind
) -> tuple[FloatArray, FloatArray]:
    """Evidently's ``get_binned_data``: Sturges bins over both samples, or one bin per value."""
    if kind == "numeric" and reference.nunique() > 20:
        both = np.concatenate([reference.to_numpy(), current.to_numpy()])
        return _histograms(reference, current, np.histogram_bin_edges(both, bins="sturges"))
    return _value_counts(reference, current)


def _ks(reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    return float(stats.ks_2samp(reference.to_numpy(), current.to_numpy()).pvalue)


def _wasserstein(reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    norm = max(float(np.std(reference.to_numpy())), 0.001)
    return float(stats.wasserstein_distance(reference.to_numpy(), current.to_numpy())) / norm


def _hellinger(reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    if kind == "numeric":
        distinct = pd.concat([reference, current], ignore_index=True).unique()
        edges = np.histogram_bin_edges(distinct, bins="sturges")
        return _hellinger_counts(*_histograms(reference, current, edges))
    return _hellinger_counts(*_value_counts(reference, current))


_RAW_STATISTICS: dict[str, Callable[[pd.Series, pd.Series, Kind], float]] = {
    "ks": _ks,
    "chisquare": lambda r, c, k: _chisquare_counts(*_value_counts(r, c)),
    "z": lambda r, c, k: _z_counts(*_value_counts(r, c)),
    "wasserstein": _wasserstein,
    "jensenshannon": lambda r, c, k: _jensenshannon_counts(*_evidently_bins(r, c, k)),
    "psi": lambda r, c, k: _psi_counts(*_evidently_bins(r, c, k)),
    "hellinger": _hellinger,
}


def _ks_d(reference: pd.Series, current: pd.Series) -> float:
    """Kolmogorov-Smirnov's D: the largest gap between the two empirical CDFs."""
    a, b = np.sort(reference.to_numpy()), np.sort(current.to_numpy())
    both = np.concatenate([a, b])
    gaps = np.searchsorted(a, both, side="right") / len(a) - np.searchsorted(
        b, both, side="right"
    ) / len(b)
    return float(np.max(np.abs(gaps)))


def _raw_test_statistic(method: str, reference: pd.Series, current: pd.Series) -> float:
    """The test statistic (KS's D, chi-square, z) of a p-value method; NaN for a distance
    or an empty side."""
    if reference.empty or current.empty or METHODS[method].kind != "pvalue":
        return math.nan
    if method == "ks":
        return _ks_d(reference, current)
    return _COUNT_TEST_STATISTICS[method](*_value_counts(reference, current))


def statistic(method: str, reference: Values, current: Values, kind: Kind) -> float:
    """The raw number of ``method`` (a p-value or a distance); NaN if either side is empty.

    Missing values (and +-inf in numeric columns) are dropped first. No top-k folding here:
    ``column_drift`` does that.
    """
    checked = _method(method, kind)
    return _raw(checked.name, _clean(reference, kind)[0], _clean(current, kind)[0], kind)


def _raw(method: str, reference: pd.Series, current: pd.Series, kind: Kind) -> float:
    if reference.empty or current.empty:
        return math.nan
    return _RAW_STATISTICS[method](reference, current, kind)


# --- one column --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict. Row counts are after dropping missing values."""

    column: str
    kind: Kind
    method: str
    statistic: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    details: dict[str, Any] = field(default_factory=dict)
    test_statistic: float = math.nan
    """For the tests (``ks``, ``chisquare``, ``z``): the statistic behind the p-value in
    ``statistic`` (KS's D, the chi-square statistic, z); NaN for the distances."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: a NaN statistic becomes None.

        The number compared with the threshold is under its own name too: ``p_value`` for the
        tests (``ks``, ``chisquare``, ``z``; ``distance`` is None), ``distance`` for the
        distances (``p_value`` is None). ``statistic`` is that same number, kept for
        compatibility; ``test_statistic`` is the test's own statistic (None for distances, and
        where it is not finite: a category the reference never had)."""
        value = None if math.isnan(self.statistic) else float(self.statistic)
        test = METHODS[self.method].kind == "pvalue"
        return {
            "column": self.column,
            "kind": self.kind,
            "method": self.method,
            "statistic": value,
            "p_value": value if test else None,
            "distance": None if test else value,
            "test_statistic": (
                float(self.test_statistic) if math.isfinite(self.test_statistic) else None
            ),
            "threshold": float(self.threshold),
            "drifted": bool(self.drifted),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "details": self.details,
        }


def _top_categories(reference: pd.Series, top_k: int) -> list[Any]:
    counts = reference.value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], _sort_token(item[0])))
    return [value for value, _ in ordered[:top_k]]


def _fractions(counts: FloatArray, total: int) -> list[float]:
    return [float(x) for x in (counts / total if total else np.zeros_like(counts))]


def _numeric_details(reference: pd.Series, current: pd.Series) -> dict[str, Any]:
    both = np.concatenate([reference.to_numpy(), current.to_numpy()])
    if both.size == 0:
        distribution: dict[str, Any] = {"bins": [], "reference": [], "current": []}
    else:
        edges = np.histogram_bin_edges(both, bins="sturges")
        if len(edges) - 1 > DISPLAY_BINS:
            edges = np.histogram_bin_edges(both, bins=DISPLAY_BINS)
        ref_counts, cur_counts = _histograms(reference, current, edges)
        distribution = {
            "bins": [float(x) for x in edges],
            "reference": _fractions(ref_counts, len(reference)),
            "current": _fractions(cur_counts, len(current)),
        }
    outside = 0.0
    if len(reference) and len(current):
        out = (current < reference.min()) | (current > reference.max())
        outside = float(out.mean())
    return {"out_of_range_share": outside, "distribution": distribution}


def _categorical_details(
    reference: pd.Series, current: pd.Series, top: list[Any]
) -> dict[str, Any]:
    seen = set(reference.unique())
    unseen = float((~current.isin(seen)).mean()) if len(current) else 0.0
    kept = set(top)
    ref_in = reference.value_counts().reindex(top, fill_value=0).to_numpy(dtype=np.float64)
    cur_in = current.value_counts().reindex(top, fill_value=0).to_numpy(dtype=np.float64)
    ref_other = float((~reference.isin(kept)).sum())
    cur_other = float((~current.isin(kept)).sum())
    categories = [_plain(v) for v in top]
    if ref_other or cur_other:
        categories.append(OTHER)
        ref_in = np.append(ref_in, ref_other)
        cur_in = np.append(cur_in, cur_other)
    return {
        "unseen_share": unseen,
        "reference_categories": len(seen),
        "categories_in_other": max(len(seen) - len(top), 0),
        "distribution": {
            "categories": categories,
            "reference": _fractions(ref_in, len(reference)),
            "current": _fractions(cur_in, len(current)),
        },
    }


def _fold_other(values: pd.Series, kept: set[Any]) -> pd.Series:
    return values.where(values.isin(kept), OTHER)


def column_drift(
    column: str,
    reference: Values,
    current: Values,
    *,
    kind: Kind | None = None,
    method: str | None = None,
    threshold: float | None = None,
    top_k: int = 20,
) -> ColumnDrift:
    """Test one column for drift.

    ``kind`` defaults to ``column_kind(reference)``, ``method`` to ``default_method`` on the
    values actually tested (after dropping missing values and top-k folding), ``threshold`` to
    the method's default. Categorical columns with more than ``top_k`` distinct reference values
    keep the ``top_k`` most frequent (ties by value) and fold the rest of both sides into
    ``"__other__"``. ``details`` holds the missing counts, ``unseen_share`` (categorical: share
    of current values never seen in the reference) or ``out_of_range_share`` (numeric: share of
    current values outside the reference's range), and a small ``distribution`` for display.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    kind = column_kind(reference) if kind is None else _check_kind(kind)
    ref, ref_missing = _clean(reference, kind)
    cur, cur_missing = _clean(current, kind)
    details: dict[str, Any] = {"reference_missing": ref_missing, "current_missing": cur_missing}
    if kind == "categorical":
        top = _top_categories(ref, top_k)
        details.update(_categorical_details(ref, cur, top))
        if ref.nunique() > top_k:
            ref, cur = _fold_other(ref, set(top)), _fold_other(cur, set(top))
    else:
        details.update(_numeric_details(ref, cur))

    chosen = _method(_default_for(ref, cur, kind) if method is None else method, kind)
    limit = chosen.default_threshold if threshold is None else float(threshold)
    if not (math.isfinite(limit) and limit >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if ref.empty or cur.empty:
        side = "reference" if ref.empty else "current"
        details["reason"] = f"no {side} values left after dropping missing values"
    value = _raw(chosen.name, ref, cur, kind)
    return ColumnDrift(
        column=column,
        kind=kind,
        method=chosen.name,
        statistic=value,
        threshold=limit,
        drifted=chosen.drifted(value, limit),
        reference_rows=len(ref),
        current_rows=len(cur),
        details=details,
        test_statistic=_raw_test_statistic(chosen.name, ref, cur),
    )


# --- a dataset ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetDrift:
    """Per-column verdicts; the dataset drifts when the drifted share reaches ``threshold``.

    The share is over the columns that could be tested (a finite statistic); with none, it is 0
    and the dataset does not drift.
    """

    columns: list[ColumnDrift]
    drifted_share: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "drifted": self.drifted,
            "drifted_share": self.drifted_share,
            "threshold": self.threshold,
            "number_of_columns": len(self.columns),
            "number_of_drifted_columns": sum(c.drifted for c in self.columns),
            "columns": [c.to_dict() for c in self.columns],
        }


_OVERRIDE_KEYS = frozenset({"method", "threshold", "kind"})


def dataset_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: list[str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    share: float = 0.5,
    top_k: int = 20,
) -> DatasetDrift:
    """Test every column (default: all reference columns) and the share that drifted.

    ``overrides`` maps a column to any of ``{"method", "threshold", "kind"}``.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    names: list[Any] = list(reference.columns) if columns is None else list(columns)
    if not names:
        raise ValueError("no columns to test for drift")
    for frame, side in ((reference, "reference"), (current, "current")):
        absent = [str(c) for c in names if c not in frame.columns]
        if absent:
            raise ValueError(f"columns missing from the {side} data: {', '.join(absent)}")
    overrides = overrides or {}
    unknown = [str(c) for c in overrides if c not in names]
    if unknown:
        raise ValueError(f"overrides name columns that are not tested: {', '.join(unknown)}")
    for name, override in overrides.items():
        bad = set(override) - _OVERRIDE_KEYS
        if bad:
            raise ValueError(
                f"unknown override keys for column {name!r}: {', '.join(sorted(bad))}; "
                f"valid keys: {', '.join(sorted(_OVERRIDE_KEYS))}"
            )

    results = []
    for name in names:
        override = overrides.get(name, {})
        results.append(
            column_drift(
                str(name),
                reference[name],
                current[name],
                kind=override.get("kind"),
                method=override.get("method"),
                threshold=override.get("threshold"),
                top_k=top_k,
            )
        )
    tested = [r for r in results if not math.isnan(r.statistic)]
    drifted_share = sum(r.drifted for r in tested) / len(tested) if tested else 0.0
    return DatasetDrift(
        columns=results,
        drifted_share=drifted_share,
        threshold=share,
        drifted=bool(tested) and drifted_share >= share,
    )


# --- binned forms ------------------------------------------------------------------------------


def numeric_edges(reference: Values, bins: int = 100) -> FloatArray:
    """Bin edges at the reference's quantiles, with -inf and +inf outside.

    The core is ``bins`` bins of equal reference mass: ``q(0) = min, q(1/bins), ..., q(1) =
    max``. The two outermost of those (each holding ``1/bins`` of the reference, and in a long
    tail spanning most of its range) are split further at ``TAIL_EDGES`` geometrically spaced
    quantiles, down to ``10 / len(reference)``: a tail bin still holds about ten reference
    values, and the linear-CDF assumption of the binned Wasserstein distance no longer
    overstates the tail area (on shifted normal and log-normal data it falls from a few
    hundredths to a few thousandths). Each quantile is a reference value (numpy's ``"lower"``
    method) and duplicates are removed, so every finite bin holds at least one reference value
    and a discrete reference gets one edge per value. ``-inf`` and ``+inf`` outside make every
    finite value land in a bin, while the finite bins span exactly the reference's range.
    Bins are ``[left, right)``.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    values = _clean(reference, "numeric")[0].to_numpy()
    if values.size == 0:
        raise ValueError("numeric_edges needs at least one finite reference value")
    probabilities = np.linspace(0.0, 1.0, bins + 1)
    smallest_tail = TAIL_VALUES / values.size
    if smallest_tail < 1.0 / bins:
        tail = np.geomspace(smallest_tail, 1.0 / bins, TAIL_EDGES + 1)[:-1]
        probabilities = np.concatenate([probabilities, tail, 1.0 - tail])
    quantiles = np.unique(np.quantile(values, np.unique(probabilities), method="lower"))
    return np.concatenate([[-np.inf], quantiles, [np.inf]]).astype(np.float64)


def _check_edges(edges: Values) -> FloatArray:
    array = np.asarray(edges, dtype=np.float64)
    if array.ndim != 1 or array.size < 2 or np.any(np.isnan(array)):
        raise ValueError("edges must be a 1-D array of at least two numbers")
    if np.any(np.diff(array) <= 0):
        raise ValueError("edges must be strictly increasing")
    return array


def bin_counts(values: Values, edges: Values) -> IntArray:
    """How many finite values fall in each ``[left, right)`` bin.

    Missing values and +-inf are dropped, as in the raw forms. With finite outer edges, values
    outside them are counted in the first or last bin (the last bin is closed, as in
    ``np.histogram``).
    """
    bounds = _check_edges(edges)
    finite = _clean(values, "numeric")[0].to_numpy()
    index = np.searchsorted(bounds, finite, side="right") - 1
    index = np.clip(index, 0, len(bounds) - 2)
    return np.bincount(index, minlength=len(bounds) - 1).astype(np.int64)


def _check_counts(counts: Values, name: str) -> FloatArray:
    array = np.asarray(counts, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of counts")
    if np.any(~np.isfinite(array)) or np.any(array < 0) or np.any(array != np.round(array)):
        raise ValueError(f"{name} must hold non-negative whole numbers")
    return array


def binned_ks(reference_counts: Values, current_counts: Values) -> tuple[float, float]:
    """Two-sample KS on bin counts: ``(D, p-value)``.

    D is the largest gap between the two cumulative shares at the bin edges, i.e. what
    ``ks_2samp`` returns when each value is replaced by its bin (a lower bound of the raw D).
    The p-value follows ``ks_2samp``'s ``'auto'`` mode with the count totals as sample sizes:
    up to 10,000 values per side it is scipy's exact distribution (``ks_2samp`` run on the bin
    indices); above, its ``'asymp'`` branch, ``kstwo.sf(D, round(n * m / (n + m)))``, which
    needs no raw values.
    """
    ref = _check_counts(reference_counts, "reference_counts")
    cur = _check_counts(current_counts, "current_counts")
    if ref.shape != cur.shape:
        raise ValueError("reference_counts and current_counts must have the same length")
    n, m = float(ref.sum()), float(cur.sum())
    if n == 0 or m == 0:
        return math.nan, math.nan
    gap = float(np.max(np.abs(np.cumsum(ref) / n - np.cumsum(cur) / m)))
    if max(n, m) <= KS_EXACT_MAX_N:
        bins = np.arange(len(ref))
        result = stats.ks_2samp(
            np.repeat(bins, ref.astype(np.int64)), np.repeat(bins, cur.astype(np.int64))
        )
        return float(result.statistic), float(result.pvalue)
    effective_n = float(np.round(n * m / (n + m)))
    return gap, float(np.clip(stats.kstwo.sf(gap, effective_n), 0.0, 1.0))


def _binned_wasserstein(
    edges: FloatArray,
    ref: FloatArray,
    cur: FloatArray,
    reference_std: float | None,
    tails: tuple[float, float] | None = None,
) -> float:
    """The area between the two CDFs, each linear inside a finite bin, over the reference std.

    The CDFs are known exactly at the edges; inside a finite bin the values are taken as spread
    uniformly, so the gap is linear and its absolute area is exact (with a sign change, the two
    triangles). Infinite outer bins have no width: values beyond the reference's min or max
    count as if they sat on it, so the distance is a lower bound when the current data leaves
    the reference's range, unless ``tails`` gives the current values' total distance below the
    first finite edge and above the last one (``sum(min - x)``, ``sum(x - max)``): the areas
    beyond the range are exactly those sums over the current count.
    """
    if reference_std is None:
        raise ValueError("binned wasserstein needs reference_std (the reference's population std)")
    gap = np.concatenate([[0.0], np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum()])
    widths = np.diff(edges)
    finite = np.isfinite(widths)
    left, right, width = np.abs(gap[:-1][finite]), np.abs(gap[1:][finite]), widths[finite]
    same_sign = gap[:-1][finite] * gap[1:][finite] >= 0
    total = left + right
    crossing = np.divide(left**2 + right**2, 2 * total, out=np.zeros_like(total), where=total > 0)
    area = float((np.where(same_sign, total / 2, crossing) * width).sum())
    if tails is not None:
        area += float(tails[0] + tails[1]) / float(cur.sum())
    return float(area / max(reference_std, 0.001))


def _fold_open_bins(edges: FloatArray, counts: FloatArray) -> FloatArray:
    """Add an infinite outer bin to its finite neighbour (values beyond the range sit on it)."""
    widths = np.diff(edges)
    counts = counts.copy()
    keep = np.ones(len(counts), dtype=bool)
    if len(counts) > 1 and np.isinf(widths[0]) and np.isfinite(widths[1]):
        counts[1] += counts[0]
        keep[0] = False
    if len(counts) > 1 and np.isinf(widths[-1]) and np.isfinite(widths[-2]):
        counts[-2] += counts[-1]
        keep[-1] = False
    return counts[keep]


def binned_statistic(
    method: str,
    edges: Values | None,
    reference_counts: Values,
    current_counts: Values,
    *,
    reference_std: float | None = None,
    tails: tuple[float, float] | None = None,
    test_statistic: bool = False,
) -> float:
    """A method's number from histograms; NaN if either side has no values. With
    ``test_statistic``, a test's own statistic instead of its p-value (NaN for distances).

    With ``edges`` (``len(counts) + 1`` of them, e.g. from ``numeric_edges``) the counts are a
    numeric histogram; with ``edges=None`` they are per-category counts aligned on the same
    categories (so ``ks`` and ``wasserstein`` are refused). ``ks`` is ``binned_ks``'s p-value;
    ``wasserstein`` needs ``reference_std``; chi-square, z, PSI, Jensen-Shannon and Hellinger
    use the counts as their bins, after dropping bins empty on both sides (the z-test compares
    the share of the first non-empty bin). For those, an infinite outer bin is first added to
    its finite neighbour, the same rule as Wasserstein's (values beyond the reference's range
    count as if on its min or max): the reference has nothing there by construction, so
    otherwise a single current value past the reference's range would be an "unseen" bin,
    a chi-square p-value of 0 and an inflated PSI.
    """
    kind: Kind = "categorical" if edges is None else "numeric"
    chosen = _method(method, kind)
    ref = _check_counts(reference_counts, "reference_counts")
    cur = _check_counts(current_counts, "current_counts")
    if ref.shape != cur.shape:
        raise ValueError("reference_counts and current_counts must have the same length")
    bounds = None if edges is None else _check_edges(edges)
    if bounds is not None and len(bounds) != len(ref) + 1:
        raise ValueError(f"{len(ref)} bins need {len(ref) + 1} edges, got {len(bounds)}")
    if ref.sum() == 0 or cur.sum() == 0:
        return math.nan
    if test_statistic and chosen.kind != "pvalue":
        return math.nan
    if chosen.name == "ks":
        return binned_ks(ref, cur)[0 if test_statistic else 1]
    if chosen.name == "wasserstein":
        assert bounds is not None  # numeric-only method, checked by _method
        return _binned_wasserstein(bounds, ref, cur, reference_std, tails)
    if bounds is not None:
        ref, cur = _fold_open_bins(bounds, ref), _fold_open_bins(bounds, cur)
    occupied = (ref + cur) > 0
    counted = _COUNT_TEST_STATISTICS if test_statistic else _COUNT_STATISTICS
    return counted[chosen.name](ref[occupied], cur[occupied])


def binned_column_drift(
    column: str,
    reference: Values,
    part: Mapping[str, Any],
    *,
    kind: Kind,
    edges: Values | None = None,
    method: str | None = None,
    threshold: float | None = None,
    top_k: int = 20,
) -> ColumnDrift:
    """``column_drift`` from a summary of the current values instead of the values themselves.

    ``part`` is what :mod:`modeldeck.monitoring.summaries.parts` keeps: for a numeric column
    ``counts`` on
    ``edges`` (from :func:`numeric_edges` on this reference) with ``below``/``above`` as
    ``[count, total distance]`` beyond the reference's range; for a categorical one ``counts``
    per value (text). Both carry ``missing``. Categorical statistics, ``unseen_share`` and the
    top-k folding are the same as ``column_drift``'s; numeric ones are the binned forms
    (``binned_statistic``: Wasserstein with exact tails, KS on the bins). The default method
    counts distinct current values as the occupied bins (numeric) or keys (categorical).
    ``details["binned"]`` is True.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    kind = _check_kind(kind)
    ref, ref_missing = _clean(reference, kind)
    details: dict[str, Any] = {
        "reference_missing": ref_missing,
        "current_missing": int(part["missing"]),
        "binned": True,
    }
    if kind == "numeric":
        if edges is None:
            raise ValueError("a numeric column's summary needs its bin edges")
        bounds = _check_edges(edges)
        cur = np.asarray(part["counts"], dtype=np.float64)
        ref_counts = bin_counts(ref, bounds).astype(np.float64)
        current_rows = int(cur.sum())
        below, above = part["below"], part["above"]
        details["out_of_range_share"] = (
            (below[0] + above[0]) / current_rows if current_rows else 0.0
        )
        details["distribution"] = _binned_display(ref, bounds, cur)
        n_values = max(int(ref.nunique()), int(np.count_nonzero(cur)))
        chosen = _method(
            _default_for_size(len(ref), n_values, kind) if method is None else method, kind
        )
        value, test_value = (
            (
                binned_statistic(
                    chosen.name,
                    bounds,
                    ref_counts,
                    cur,
                    reference_std=float(np.std(ref.to_numpy())) if len(ref) else None,
                    tails=(float(below[1]), float(above[1])),
                ),
                binned_statistic(chosen.name, bounds, ref_counts, cur, test_statistic=True)
                if chosen.kind == "pvalue"
                else math.nan,
            )
            if len(ref) and current_rows
            else (math.nan, math.nan)
        )
    else:
        ref = ref.astype(str)
        counts = {str(k): int(v) for k, v in part["counts"].items()}
        current_rows = sum(counts.values())
        seen = set(ref.unique())
        top = _top_categories(ref, top_k)
        kept = set(top)
        ref_counts_all = ref.value_counts()
        unseen = sum(n for v, n in counts.items() if v not in seen)
        ref_other = int(ref_counts_all[~ref_counts_all.index.isin(kept)].sum())
        cur_other = sum(n for v, n in counts.items() if v not in kept)
        categories = [_plain(v) for v in top]
        ref_shown = [float(ref_counts_all.get(v, 0)) for v in top]
        cur_shown = [float(counts.get(v, 0)) for v in top]
        if ref_other or cur_other:
            categories.append(OTHER)
            ref_shown.append(float(ref_other))
            cur_shown.append(float(cur_other))
        details.update(
            {
                "unseen_share": unseen / current_rows if current_rows else 0.0,
                "reference_categories": len(seen),
                "categories_in_other": max(len(seen) - len(top), 0),
                "distribution": {
                    "categories": categories,
                    "reference": _fractions(np.array(ref_shown), len(ref)),
                    "current": _fractions(np.array(cur_shown), current_rows),
                },
            }
        )
        ref_map = {str(k): float(v) for k, v in ref_counts_all.items()}
        if len(seen) > top_k:
            folded: dict[str, float] = {}
            for v, n in counts.items():
                key = v if v in kept else OTHER
                folded[key] = folded.get(key, 0.0) + n
            ref_map = {k: v for k, v in ref_map.items() if k in kept}
            if ref_other:
                ref_map[OTHER] = float(ref_other)
            cur_map = folded
        else:
            cur_map = {k: float(v) for k, v in counts.items()}
        keys = _sorted_keys(set(ref_map) | set(cur_map))
        ref_arr = np.array([ref_map.get(k, 0.0) for k in keys], dtype=np.float64)
        cur_arr = np.array([cur_map.get(k, 0.0) for k in keys], dtype=np.float64)
        chosen = _method(
            _default_for_size(len(ref), len(keys), kind) if method is None else method, kind
        )
        counted = len(ref) and current_rows and chosen.name in _COUNT_STATISTICS
        value = _COUNT_STATISTICS[chosen.name](ref_arr, cur_arr) if counted else math.nan
        test_value = (
            _COUNT_TEST_STATISTICS[chosen.name](ref_arr, cur_arr)
            if counted and chosen.name in _COUNT_TEST_STATISTICS
            else math.nan
        )
    limit = chosen.default_threshold if threshold is None else float(threshold)
    if not (math.isfinite(limit) and limit >= 0):
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if ref.empty or not current_rows:
        side = "reference" if ref.empty else "current"
        details["reason"] = f"no {side} values left after dropping missing values"
    return ColumnDrift(
        column=column,
        kind=kind,
        method=chosen.name,
        statistic=value,
        threshold=limit,
        drifted=chosen.drifted(value, limit),
        reference_rows=len(ref),
        current_rows=current_rows,
        details=details,
        test_statistic=test_value,
    )


def _default_for_size(reference_rows: int, n_values: int, kind: Kind) -> str:
    """``_default_for`` from the reference's size and the number of distinct values."""
    many_values = kind == "numeric" and n_values > FEW_VALUES
    if reference_rows <= SMALL_REFERENCE_ROWS:
        if many_values:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    return "wasserstein" if many_values else "jensenshannon"


def _binned_display(reference: pd.Series, edges: FloatArray, current: FloatArray) -> dict[str, Any]:
    """At most ``DISPLAY_BINS`` bins for display, made of whole summary bins."""
    finite = np.flatnonzero(np.isfinite(edges))
    if finite.size < 2 or not len(reference) or current.sum() == 0:
        return {"bins": [], "reference": [], "current": []}
    step = max(1, math.ceil((finite.size - 1) / DISPLAY_BINS))
    chosen = list(finite[::step])
    if chosen[-1] != finite[-1]:
        chosen.append(finite[-1])
    display_edges = edges[chosen]
    # Summary bin i covers [edges[i], edges[i+1]); open outer bins join the nearest display bin.
    index = np.clip(
        np.searchsorted(display_edges, edges[:-1], side="right") - 1, 0, len(chosen) - 2
    )
    cur = np.bincount(index, weights=current, minlength=len(chosen) - 1)
    ref = np.histogram(
        np.clip(reference.to_numpy(), display_edges[0], display_edges[-1]), display_edges
    )[0]
    return {
        "bins": [float(x) for x in display_edges],
        "reference": _fractions(ref.astype(np.float64), len(reference)),
        "current": _fractions(cur.astype(np.float64), int(current.sum())),
    }
