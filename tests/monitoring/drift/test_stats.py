"""Drift statistics against scipy and the defining formulas, on fixed seeded data."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial import distance

from modeldeck.monitoring.drift.stats import (
    METHODS,
    OTHER,
    ColumnDrift,
    Kind,
    bin_counts,
    binned_column_drift,
    binned_ks,
    binned_statistic,
    column_drift,
    column_kind,
    dataset_drift,
    default_method,
    numeric_edges,
    statistic,
)

TOL = 1e-9


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def shares(values: list[Any], keys: list[Any]) -> np.ndarray:
    counts = Counter(values)
    return np.array([counts[k] for k in keys], dtype=float) / len(values)


def evidently_fill(p: np.ndarray) -> np.ndarray:
    smallest = p[p > 0].min()
    return np.where(p == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, p)


def psi(r: np.ndarray, c: np.ndarray) -> float:
    r, c = evidently_fill(r), evidently_fill(c)
    return float(np.sum((r - c) * np.log(r / c)))


def hellinger(r: np.ndarray, c: np.ndarray) -> float:
    return math.sqrt(1 - float(np.sum(np.sqrt(r * c))))


# --- raw statistics ----------------------------------------------------------------------------


def test_methods_registry() -> None:
    assert list(METHODS) == [
        "ks",
        "chisquare",
        "z",
        "wasserstein",
        "jensenshannon",
        "psi",
        "hellinger",
    ]
    assert {n for n, m in METHODS.items() if m.kind == "pvalue"} == {"ks", "chisquare", "z"}
    assert {m.default_threshold for m in METHODS.values() if m.kind == "pvalue"} == {0.05}
    assert {m.default_threshold for m in METHODS.values() if m.kind == "distance"} == {0.1}
    assert {n for n, m in METHODS.items() if "categorical" not in m.supports} == {
        "ks",
        "wasserstein",
    }


def test_method_verdicts_at_the_threshold() -> None:
    ks, wasserstein = METHODS["ks"], METHODS["wasserstein"]
    assert ks.drifted(0.0499, 0.05) and not ks.drifted(0.05, 0.05)
    assert wasserstein.drifted(0.1, 0.1) and not wasserstein.drifted(0.0999, 0.1)
    assert not ks.drifted(math.nan, 0.05) and not wasserstein.drifted(math.nan, 0.1)


def test_ks_is_scipy_two_sample_pvalue_after_dropping_missing() -> None:
    r = rng(1)
    ref, cur = r.normal(0, 1, 300), r.normal(0.3, 1, 250)
    expected = sps.ks_2samp(ref, cur).pvalue
    dirty = np.concatenate([ref, [np.nan, np.inf, -np.inf]])
    assert statistic("ks", dirty, cur, "numeric") == pytest.approx(expected, abs=TOL)
    assert 0 < expected < 0.05


def test_chisquare_expects_reference_counts_scaled_to_current() -> None:
    r = rng(2)
    ref = list(r.choice(list("abcd"), 400, p=[0.4, 0.3, 0.2, 0.1]))
    cur = list(r.choice(list("abcd"), 150, p=[0.3, 0.3, 0.2, 0.2]))
    keys = sorted(set(ref) | set(cur))
    ref_counts, cur_counts = Counter(ref), Counter(cur)
    f_exp = [ref_counts[k] * len(cur) / len(ref) for k in keys]
    f_obs = [cur_counts[k] for k in keys]
    expected = sps.chisquare(f_obs, f_exp).pvalue
    assert statistic("chisquare", ref, cur, "categorical") == pytest.approx(expected, abs=TOL)


def test_chisquare_unseen_value_and_single_value() -> None:
    assert statistic("chisquare", ["a", "b"] * 10, ["a", "c"], "categorical") == 0.0
    assert statistic("chisquare", ["a"] * 5, ["a"] * 3, "categorical") == 1.0


def test_z_matches_hand_formula() -> None:
    r = rng(3)
    ref = list(r.choice(["no", "yes"], 500, p=[0.7, 0.3]))
    cur = list(r.choice(["no", "yes"], 300, p=[0.6, 0.4]))
    # Evidently encodes the smallest value as 0, any other as 1, and compares the shares of 1.
    n1, n2 = len(ref), len(cur)
    p1, p2 = ref.count("yes") / n1, cur.count("yes") / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    expected = 2 * (1 - 0.5 * (1 + math.erf(abs(z) / math.sqrt(2))))
    assert statistic("z", ref, cur, "categorical") == pytest.approx(expected, abs=TOL)
    as_numbers = (
        [1.0 if v == "yes" else 0.0 for v in ref],
        [1.0 if v == "yes" else 0.0 for v in cur],
    )
    assert statistic("z", *as_numbers, "numeric") == pytest.approx(expected, abs=TOL)
    assert statistic("z", ["x"] * 4, ["x"] * 9, "categorical") == 1.0


def test_wasserstein_is_scipy_over_reference_std() -> None:
    r = rng(4)
    ref, cur = r.normal(5, 2, 800), r.normal(5.5, 2, 600)
    expected = sps.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert statistic("wasserstein", ref, cur, "numeric") == pytest.approx(expected, abs=TOL)
    constant = np.full(50, 3.0)
    shifted = np.concatenate([np.full(40, 3.0), np.full(10, 4.0)])
    assert statistic("wasserstein", constant, shifted, "numeric") == pytest.approx(
        0.2 / 0.001, abs=TOL
    )


def test_jensenshannon_numeric_uses_sturges_bins_over_both_samples() -> None:
    r = rng(5)
    ref, cur = r.normal(0, 1, 600), r.normal(0.4, 1.2, 500)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)
    expected = distance.jensenshannon(p, q)
    assert statistic("jensenshannon", ref, cur, "numeric") == pytest.approx(expected, abs=TOL)


def test_jensenshannon_one_bin_per_value_for_categories_and_few_numbers() -> None:
    r = rng(6)
    ref, cur = list(r.integers(0, 10, 500)), list(r.integers(0, 12, 400))
    keys = sorted(set(ref) | set(cur))
    expected = distance.jensenshannon(shares(ref, keys), shares(cur, keys))
    assert statistic("jensenshannon", ref, cur, "numeric") == pytest.approx(expected, abs=TOL)
    as_text = [str(v) for v in ref], [str(v) for v in cur]
    assert statistic("jensenshannon", *as_text, "categorical") == pytest.approx(expected, abs=TOL)


def test_psi_hand_formula_with_evidently_zero_fill() -> None:
    ref = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    cur = ["a"] * 60 + ["b"] * 40
    r, c = np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4, 1e-4])  # empty share -> 1e-4
    expected = float(np.sum((r - c) * np.log(r / c)))
    assert statistic("psi", ref, cur, "categorical") == pytest.approx(expected, abs=TOL)

    # smallest non-empty share <= 1e-4: empty shares become that share / 1e6
    ref = ["a"] * 19_999 + ["b"]
    cur = ["a"] * 19_999 + ["c"]
    r = np.array([19_999 / 20_000, 1 / 20_000, 5e-5 / 1e6])
    c = np.array([19_999 / 20_000, 5e-5 / 1e6, 1 / 20_000])
    expected = float(np.sum((r - c) * np.log(r / c)))
    assert statistic("psi", ref, cur, "categorical") == pytest.approx(expected, abs=TOL)


def test_psi_numeric_uses_sturges_bins_over_both_samples() -> None:
    g = rng(7)
    ref, cur = g.normal(0, 1, 700), g.normal(1, 1, 300)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    expected = psi(np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur))
    assert statistic("psi", ref, cur, "numeric") == pytest.approx(expected, abs=TOL)


def test_hellinger_hand_formula() -> None:
    g = rng(8)
    ref = list(g.choice(list("xyz"), 300, p=[0.5, 0.3, 0.2]))
    cur = list(g.choice(list("xyzw"), 200, p=[0.4, 0.3, 0.2, 0.1]))
    keys = sorted(set(ref) | set(cur))
    expected = hellinger(shares(ref, keys), shares(cur, keys))
    assert statistic("hellinger", ref, cur, "categorical") == pytest.approx(expected, abs=TOL)

    a, b = g.normal(0, 1, 400), g.normal(0.5, 1, 300)
    # Evidently bins numeric Hellinger with Sturges over the distinct values of both samples
    edges = np.histogram_bin_edges(np.unique(np.concatenate([a, b])), bins="sturges")
    expected = hellinger(np.histogram(a, edges)[0] / len(a), np.histogram(b, edges)[0] / len(b))
    assert statistic("hellinger", a, b, "numeric") == pytest.approx(expected, abs=TOL)


def test_empty_side_gives_nan() -> None:
    assert math.isnan(statistic("ks", [1.0, 2.0], [np.nan], "numeric"))
    assert math.isnan(statistic("psi", [], ["a"], "categorical"))


# --- column kind and default method ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1, 2, 3]), "numeric"),
        (pd.Series([1.5, np.nan]), "numeric"),
        (pd.Series([1, None], dtype="Int64"), "numeric"),
        (np.array([True, False]), "categorical"),
        (pd.Series(["a", "b"]), "categorical"),
        (pd.Series([1, "a"], dtype=object), "categorical"),
        (pd.Series(pd.Categorical(["a", "b"])), "categorical"),
    ],
)
def test_column_kind(values: Any, kind: Kind) -> None:
    assert column_kind(values) == kind


def numbers(rows: int, distinct: int) -> np.ndarray:
    return (np.arange(rows) % distinct).astype(float)


@pytest.mark.parametrize(
    ("rows", "distinct", "expected"),
    [
        (1000, 50, "ks"),
        (1001, 50, "wasserstein"),
        (1000, 6, "ks"),
        (1000, 5, "chisquare"),
        (1001, 6, "wasserstein"),
        (1001, 5, "jensenshannon"),
        (1000, 3, "chisquare"),
        (1000, 2, "z"),
        (1001, 2, "jensenshannon"),
    ],
)
def test_default_method_numeric_boundaries(rows: int, distinct: int, expected: str) -> None:
    assert default_method(numbers(rows, distinct), numbers(100, distinct), "numeric") == expected


@pytest.mark.parametrize(
    ("rows", "distinct", "expected"),
    [(1000, 2, "z"), (1000, 3, "chisquare"), (1000, 30, "chisquare"), (1001, 2, "jensenshannon")],
)
def test_default_method_categorical_boundaries(rows: int, distinct: int, expected: str) -> None:
    ref = [f"c{int(v)}" for v in numbers(rows, distinct)]
    assert default_method(ref, ref[:100], "categorical") == expected


def test_default_method_counts_distinct_values_of_both_samples_and_non_missing_rows() -> None:
    # like Evidently's pd.concat([reference, current]).nunique(): 5 + 1 new value -> 6
    assert default_method(numbers(1000, 5), [5.0], "numeric") == "ks"
    assert default_method(["a"] * 10, ["b", "c"], "categorical") == "chisquare"
    with_missing = np.concatenate([numbers(1000, 50), np.full(10, np.nan)])
    assert default_method(with_missing, numbers(10, 50), "numeric") == "ks"


# --- one column --------------------------------------------------------------------------------


def test_column_drift_defaults_and_missing_counts() -> None:
    g = rng(9)
    ref = np.concatenate([g.normal(0, 1, 497), [np.nan] * 3])
    cur = pd.Series([*g.normal(2, 1, 199), None], dtype=object)
    result = column_drift("x", ref, cur)
    assert (result.kind, result.method, result.threshold) == ("numeric", "ks", 0.05)
    assert (result.reference_rows, result.current_rows) == (497, 199)
    assert result.details["reference_missing"] == 3
    assert result.details["current_missing"] == 1
    assert result.statistic == statistic("ks", ref, cur.astype(float), "numeric")
    assert result.drifted
    distribution = result.details["distribution"]
    assert len(distribution["bins"]) == len(distribution["reference"]) + 1
    assert sum(distribution["reference"]) == pytest.approx(1.0)
    assert sum(distribution["current"]) == pytest.approx(1.0)
    assert distribution["bins"][0] == pytest.approx(np.nanmin(ref))
    assert distribution["bins"][-1] == pytest.approx(float(cur.dropna().max()))
    assert 0 < result.details["out_of_range_share"] < 1


def test_numeric_display_has_at_most_twenty_bins() -> None:
    g = rng(10)
    result = column_drift("x", g.normal(size=600_000), g.normal(size=1_000))
    assert result.method == "wasserstein"
    assert len(result.details["distribution"]["bins"]) - 1 == 20


def test_explicit_method_threshold_and_kind() -> None:
    ref, cur = [1, 2, 3, 4] * 25, [1, 2, 3, 3] * 25
    result = column_drift("n", ref, cur, kind="categorical", method="psi", threshold=5.0)
    assert (result.kind, result.method, result.threshold) == ("categorical", "psi", 5.0)
    assert result.statistic == pytest.approx(statistic("psi", ref, cur, "categorical"), abs=TOL)
    assert not result.drifted
    assert column_drift("n", ref, cur, kind="categorical", method="psi").drifted


def test_top_k_folds_rare_reference_values_into_other() -> None:
    ref = [f"c{i:02d}" for i in range(30) for _ in range(30 - i)]
    cur = [f"c{i:02d}" for i in range(0, 30, 3) for _ in range(5)] + ["new"] * 10
    result = column_drift("cat", ref, cur, top_k=5)
    top = ["c00", "c01", "c02", "c03", "c04"]

    def fold(values: list[str]) -> list[str]:
        return [v if v in top else OTHER for v in values]

    assert result.method == "chisquare"
    expected = statistic("chisquare", fold(ref), fold(cur), "categorical")
    assert result.statistic == pytest.approx(expected, abs=TOL)
    details = result.details
    assert details["unseen_share"] == pytest.approx(10 / 60)
    assert (details["reference_categories"], details["categories_in_other"]) == (30, 25)
    distribution = details["distribution"]
    assert distribution["categories"] == [*top, OTHER]
    assert distribution["reference"] == pytest.approx(
        [30 / 465, 29 / 465, 28 / 465, 27 / 465, 26 / 465, 325 / 465]
    )
    assert distribution["current"] == pytest.approx([5 / 60, 0, 0, 5 / 60, 0, 50 / 60])


def test_top_k_ties_are_broken_by_value() -> None:
    result = column_drift("cat", ["b", "a", "c", "d"], ["a"], top_k=2)
    assert result.details["distribution"]["categories"] == ["a", "b", OTHER]


def test_unseen_share_without_folding() -> None:
    result = column_drift("cat", ["a", "b"] * 50, ["a"] * 6 + ["zz"] * 4)
    assert result.details["unseen_share"] == pytest.approx(0.4)
    assert result.details["categories_in_other"] == 0
    assert result.details["distribution"]["categories"] == ["a", "b", OTHER]
    assert result.details["distribution"]["current"] == pytest.approx([0.6, 0.0, 0.4])
    assert result.method == "chisquare"  # a, b and zz: three values
    assert result.statistic == 0.0 and result.drifted


def test_empty_current_is_not_tested() -> None:
    result = column_drift("x", [1.0, 2.0, 3.0], [np.nan, None])
    assert math.isnan(result.statistic) and not result.drifted
    assert result.current_rows == 0 and result.details["current_missing"] == 2
    assert "no current values" in result.details["reason"]
    assert result.to_dict()["statistic"] is None
    empty_reference = column_drift("c", [None], ["a"], kind="categorical")
    assert "no reference values" in empty_reference.details["reason"]
    assert not empty_reference.drifted


def test_to_dict_round_trips_fields() -> None:
    result = column_drift("c", ["a", "b"] * 5, ["a"] * 10)
    data = result.to_dict()
    assert set(data) == set(ColumnDrift.__dataclass_fields__) | {"p_value", "distance"}
    assert data["statistic"] == result.statistic and data["details"] is result.details
    # The z-test (two values) is a test: its number is a p-value, under that name.
    assert result.method == "z"
    assert (data["p_value"], data["distance"]) == (result.statistic, None)
    psi = column_drift("c", ["a", "b"] * 5, ["a"] * 10, method="psi").to_dict()
    assert (psi["p_value"], psi["distance"]) == (None, psi["statistic"])


def test_errors() -> None:
    with pytest.raises(ValueError, match="valid methods: ks, chisquare, z, wasserstein"):
        column_drift("x", [1.0], [1.0], method="kolmogorov")
    with pytest.raises(ValueError, match=r"does not support categorical.*chisquare, z,"):
        column_drift("x", ["a"], ["b"], method="ks")
    with pytest.raises(ValueError, match="numeric values"):
        column_drift("x", ["a", "b"], ["b"], kind="numeric")
    with pytest.raises(ValueError, match="unknown column kind"):
        column_drift("x", [1.0], [1.0], kind="ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top_k"):
        column_drift("x", ["a"], ["a"], top_k=0)
    with pytest.raises(ValueError, match="threshold"):
        column_drift("x", [1.0], [1.0], threshold=-1)
    with pytest.raises(ValueError, match="valid methods"):
        statistic("nope", [1.0], [1.0], "numeric")


# --- a dataset ---------------------------------------------------------------------------------


def frames(drifted: int, total: int = 4) -> tuple[pd.DataFrame, pd.DataFrame]:
    g = rng(11)
    ref = {f"f{i}": g.normal(0, 1, 300) for i in range(total)}
    cur = {f"f{i}": ref[f"f{i}"] + (3.0 if i < drifted else 0.0) for i in range(total)}
    return pd.DataFrame(ref), pd.DataFrame(cur)


def test_dataset_drift_share_boundary() -> None:
    half = dataset_drift(*frames(drifted=2))
    assert half.drifted_share == 0.5 and half.drifted and half.threshold == 0.5
    assert [c.drifted for c in half.columns] == [True, True, False, False]
    assert not dataset_drift(*frames(drifted=2), share=0.6).drifted
    assert not dataset_drift(*frames(drifted=1)).drifted


def test_dataset_drift_columns_and_overrides() -> None:
    ref, cur = frames(drifted=2)
    ref["code"] = [1, 2, 3] * 100
    cur["code"] = [1, 1, 2] * 100
    result = dataset_drift(
        ref,
        cur,
        columns=["f0", "f2", "code"],
        overrides={
            "f0": {"threshold": 1e-300},
            "f2": {"method": "psi"},
            "code": {"kind": "categorical"},
        },
    )
    by_name = {c.column: c for c in result.columns}
    assert list(by_name) == ["f0", "f2", "code"]
    assert by_name["f0"].threshold == 1e-300 and not by_name["f0"].drifted
    assert by_name["f2"].method == "psi" and by_name["f2"].statistic == 0.0
    assert (by_name["code"].kind, by_name["code"].method) == ("categorical", "chisquare")
    assert by_name["code"].drifted
    assert result.drifted_share == pytest.approx(1 / 3) and not result.drifted


def test_dataset_drift_counts_only_tested_columns() -> None:
    ref, cur = frames(drifted=1, total=2)
    cur["f1"] = np.nan
    result = dataset_drift(ref, cur)
    assert result.drifted_share == 1.0 and result.drifted
    data = result.to_dict()
    assert (data["number_of_columns"], data["number_of_drifted_columns"]) == (2, 1)
    assert data["columns"][1]["statistic"] is None


def test_dataset_drift_errors() -> None:
    ref, cur = frames(drifted=0)
    with pytest.raises(ValueError, match="missing from the current data: f1, f3"):
        dataset_drift(ref, cur.drop(columns=["f1", "f3"]))
    with pytest.raises(ValueError, match=r"unknown override keys.*bins"):
        dataset_drift(ref, cur, overrides={"f0": {"bins": 3}})
    with pytest.raises(ValueError, match="not tested: nope"):
        dataset_drift(ref, cur, overrides={"nope": {"method": "psi"}})
    with pytest.raises(ValueError, match="does not support categorical"):
        dataset_drift(ref, cur, overrides={"f0": {"kind": "categorical", "method": "ks"}})
    with pytest.raises(ValueError, match="share"):
        dataset_drift(ref, cur, share=0)


# --- binned forms ------------------------------------------------------------------------------


def test_numeric_edges_cover_everything() -> None:
    ref = rng(12).normal(size=5_000)
    edges = numeric_edges(ref, bins=10)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    assert np.all(np.diff(edges) > 0)
    assert (edges[1], edges[-2]) == (ref.min(), ref.max())
    assert np.any(edges[1:-1] < np.quantile(ref, 0.1)), "the outer bins are split further"
    assert list(numeric_edges([1, 1, 2, 2, 3])) == [-np.inf, 1.0, 2.0, 3.0, np.inf]


def test_bin_counts() -> None:
    edges = np.array([-np.inf, 0.0, 1.0, np.inf])
    counts = bin_counts(np.array([-5.0, 0.0, 0.5, 1.0, 7.0, np.nan, np.inf]), edges)
    assert counts.dtype == np.int64 and list(counts) == [1, 2, 2]
    assert list(bin_counts([-1.0, 0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0])) == [2, 3]


def test_binned_counts_equal_raw_categorical_statistics() -> None:
    g = rng(13)
    ref = list(g.choice(list("abcde"), 700, p=[0.3, 0.3, 0.2, 0.15, 0.05]))
    cur = list(g.choice(list("abcde"), 400, p=[0.25, 0.3, 0.2, 0.15, 0.1]))
    keys = sorted(set(ref) | set(cur))
    ref_counts, cur_counts = Counter(ref), Counter(cur)
    rc, cc = [ref_counts[k] for k in keys], [cur_counts[k] for k in keys]
    for method in ("chisquare", "z", "psi", "jensenshannon", "hellinger"):
        raw = statistic(method, ref, cur, "categorical")
        assert binned_statistic(method, None, rc, cc) == pytest.approx(raw, abs=TOL), method


def test_binned_ks_small_counts_are_scipy_exact_on_bin_indices() -> None:
    rc, cc = np.array([5, 10, 20, 10, 5]), np.array([2, 6, 10, 12, 10])
    indices = np.arange(5)
    expected = sps.ks_2samp(np.repeat(indices, rc), np.repeat(indices, cc))
    assert binned_ks(rc, cc) == pytest.approx((expected.statistic, expected.pvalue), abs=TOL)
    assert binned_statistic("ks", [0, 1, 2, 3, 4, 5], rc, cc) == pytest.approx(expected.pvalue)


def test_binned_wasserstein_hand_examples() -> None:
    # reference uniform on [0, 2]; current half uniform on [1, 2], half beyond 2 (counted at 2)
    edges = [-np.inf, 0.0, 1.0, 2.0, np.inf]
    value = binned_statistic("wasserstein", edges, [0, 1, 1, 0], [0, 0, 1, 1], reference_std=1.0)
    assert value == pytest.approx(0.75, abs=TOL)
    # reference uniform on [0, 1]; current half at 0, half at 1: the CDF gap changes sign
    edges = [-np.inf, 0.0, 1.0, np.inf]
    value = binned_statistic("wasserstein", edges, [0, 2, 0], [1, 0, 1], reference_std=0.5)
    assert value == pytest.approx(0.25 / 0.5, abs=TOL)


def test_binned_errors_and_empty_counts() -> None:
    edges = [-np.inf, 0.0, np.inf]
    with pytest.raises(ValueError, match="reference_std"):
        binned_statistic("wasserstein", edges, [1, 1], [1, 1])
    with pytest.raises(ValueError, match="does not support categorical"):
        binned_statistic("ks", None, [1, 1], [1, 1])
    with pytest.raises(ValueError, match="need 3 edges"):
        binned_statistic("psi", [0.0, 1.0], [1, 1], [1, 1])
    with pytest.raises(ValueError, match="same length"):
        binned_statistic("psi", None, [1, 1], [1, 1, 1])
    with pytest.raises(ValueError, match="non-negative whole numbers"):
        binned_statistic("psi", None, [1, -1], [1, 1])
    with pytest.raises(ValueError, match="strictly increasing"):
        bin_counts([1.0], [0.0, 0.0, 1.0])
    assert math.isnan(binned_statistic("psi", edges, [0, 0], [1, 1]))


@pytest.fixture(scope="module")
def normal_200k() -> dict[str, np.ndarray]:
    g = rng(7)
    ref = g.normal(0, 1, 200_000)
    return {"ref": ref, "same": g.normal(0, 1, 200_000), "shifted": g.normal(0.5, 1, 200_000)}


@pytest.mark.parametrize("case", ["same", "shifted"])
def test_binned_forms_agree_with_raw_on_200k_rows(
    normal_200k: dict[str, np.ndarray], case: str
) -> None:
    """Stated tolerances: Wasserstein and KS D within 0.01, and the same verdicts."""
    ref, cur = normal_200k["ref"], normal_200k[case]
    edges = numeric_edges(ref)
    rc, cc = bin_counts(ref, edges), bin_counts(cur, edges)
    std = float(np.std(ref))

    raw_w = statistic("wasserstein", ref, cur, "numeric")
    binned_w = binned_statistic("wasserstein", edges, rc, cc, reference_std=std)
    assert binned_w == pytest.approx(raw_w, abs=0.01)

    raw = sps.ks_2samp(ref, cur)
    d, p = binned_ks(rc, cc)
    assert d == pytest.approx(raw.statistic, abs=0.01) and d <= raw.statistic + TOL
    assert p == pytest.approx(sps.kstwo.sf(d, round(200_000 * 200_000 / 400_000)), abs=TOL)

    for name in ("ks", "wasserstein", "psi", "jensenshannon", "hellinger"):
        method = METHODS[name]
        raw_value = statistic(name, ref, cur, "numeric")
        binned_value = binned_statistic(name, edges, rc, cc, reference_std=std)
        verdicts = (
            method.drifted(raw_value, method.default_threshold),
            method.drifted(binned_value, method.default_threshold),
        )
        assert verdicts == ((True, True) if case == "shifted" else (False, False)), name


def test_binned_wasserstein_is_exact_beyond_the_reference_range_with_tails() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(0, 1, 20_000)
    current = np.concatenate([rng.normal(0.5, 1.0, 15_000), rng.normal(6.0, 1.0, 5_000)])
    edges = numeric_edges(reference)
    rc, cc = bin_counts(reference, edges), bin_counts(current, edges)
    low, high = edges[1], edges[-2]
    tails = (
        float(np.sum(low - current[current < low])),
        float(np.sum(current[current > high] - high)),
    )
    std = float(np.std(reference))
    exact = sps.wasserstein_distance(reference, current) / std
    with_tails = binned_statistic("wasserstein", edges, rc, cc, reference_std=std, tails=tails)
    without = binned_statistic("wasserstein", edges, rc, cc, reference_std=std)
    assert with_tails == pytest.approx(exact, rel=0.01)
    assert without < 0.8 * exact  # values past the max counted as if on it


def test_binned_column_drift_matches_column_drift_on_categories() -> None:
    from modeldeck.monitoring.drift.stats import binned_column_drift
    from modeldeck.monitoring.summaries.parts import summarise_categorical

    rng = np.random.default_rng(6)
    values = [f"c{i}" for i in range(30)]
    reference = pd.Series(rng.choice(values, 5000))
    current = pd.Series(rng.choice([*values, "new"], 3000))
    for top_k in (5, 50):
        raw = column_drift("c", reference, current, kind="categorical", top_k=top_k)
        part = summarise_categorical(current.tolist(), 0, 0)
        binned = binned_column_drift("c", reference, part, kind="categorical", top_k=top_k)
        assert binned.method == raw.method
        assert binned.statistic == pytest.approx(raw.statistic, abs=1e-12)
        assert binned.details["unseen_share"] == pytest.approx(raw.details["unseen_share"])
        assert binned.details["distribution"] == raw.details["distribution"]


def test_each_test_reports_its_statistic_beside_its_p_value() -> None:
    """KS's D, the chi-square statistic and z, under their own name (``test_statistic``),
    equal to scipy's; the p-value stays in ``p_value``; distances have none."""
    rng = np.random.default_rng(21)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0.4, 1, 200)
    ks = column_drift("x", ref, cur, method="ks")
    expected = sps.ks_2samp(ref, cur)
    assert ks.test_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert ks.to_dict()["p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    assert ks.to_dict()["test_statistic"] == ks.test_statistic

    colours = ["red", "green", "blue"]
    ref_c = rng.choice(colours, 400, p=[0.5, 0.3, 0.2])
    cur_c = rng.choice(colours, 300, p=[0.3, 0.3, 0.4])
    chi = column_drift("c", ref_c, cur_c, method="chisquare")
    ref_n = np.array([np.sum(ref_c == c) for c in sorted(colours)], dtype=float)
    cur_n = np.array([np.sum(cur_c == c) for c in sorted(colours)], dtype=float)
    scipy_chi = sps.chisquare(cur_n, ref_n * cur_n.sum() / ref_n.sum())
    assert chi.test_statistic == pytest.approx(scipy_chi.statistic, rel=1e-9)
    assert chi.statistic == pytest.approx(scipy_chi.pvalue, rel=1e-9)

    z = column_drift("b", [0] * 50 + [1] * 50, [0] * 20 + [1] * 80, method="z")
    assert abs(z.test_statistic) > 3 and z.drifted  # 50 % vs 80 %: far apart
    assert 2 * sps.norm.sf(abs(z.test_statistic)) == pytest.approx(z.statistic, rel=1e-9)

    psi = column_drift("x", ref, cur, method="psi").to_dict()
    assert psi["test_statistic"] is None and psi["p_value"] is None

    unseen = column_drift("c", ["a", "b"] * 20, ["a", "b", "zzz"] * 10, method="chisquare")
    assert unseen.to_dict()["test_statistic"] is None  # infinite: not JSON


def test_the_binned_ks_reports_its_d() -> None:
    rng = np.random.default_rng(22)
    reference = pd.Series(rng.normal(0, 1, 2000))
    edges = numeric_edges(reference)
    current = rng.normal(0.3, 1, 1500)
    counts = bin_counts(pd.Series(current), edges)
    part = {"counts": counts.tolist(), "below": [0, 0.0], "above": [0, 0.0], "missing": 0}
    binned = binned_column_drift("x", reference, part, kind="numeric", edges=edges, method="ks")
    d, p = binned_ks(bin_counts(reference, edges), counts)
    assert (binned.test_statistic, binned.statistic) == (pytest.approx(d), pytest.approx(p))


def _plain_json(value: Any) -> None:
    """Serialisable by pydantic's strict JSON encoder, which refuses NumPy scalars (the API's
    response path), and built of plain Python types only."""
    from pydantic import TypeAdapter

    TypeAdapter(Any).dump_json(value)
    if isinstance(value, dict):
        for item in value.values():
            _plain_json(item)
    elif isinstance(value, list):
        for item in value:
            _plain_json(item)
    else:
        assert value is None or type(value) in (bool, int, float, str), (value, type(value))


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_answers_plain_python_numbers_raw_and_binned(name: str) -> None:
    from modeldeck.monitoring.drift.stats import binned_column_drift
    from modeldeck.monitoring.summaries.parts import ColumnPlan, summarise_numeric

    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 3000)  # over 1,000 rows: wasserstein is the default
    current = rng.normal(0.5, 1.2, 2000)
    method = METHODS[name]
    for kind in method.supports:
        ref: Any = reference
        cur: Any = current
        if kind == "categorical":
            ref = pd.Series(np.round(reference).astype(int).astype(str))
            cur = pd.Series(np.round(current).astype(int).astype(str))
        raw = column_drift("c", ref, cur, kind=kind, method=name)
        assert type(raw.statistic) is float and type(raw.drifted) is bool, name
        _plain_json(raw.to_dict())
    if "numeric" not in method.supports:
        return
    edges = numeric_edges(reference)
    part = summarise_numeric(current, ColumnPlan("numeric", tuple(edges)), 0, 0)
    binned = binned_column_drift(
        "c", reference, part, kind="numeric", edges=edges, method=None if name == "ks" else name
    )
    assert type(binned.statistic) is float and type(binned.drifted) is bool, name
    assert binned.method == ("wasserstein" if name == "ks" else name)
    _plain_json(binned.to_dict())
    value = binned_statistic(
        name,
        edges,
        bin_counts(reference, edges),
        bin_counts(current, edges),
        reference_std=float(np.std(reference)),
        tails=(1.5, 2.5),
    )
    assert type(value) is float and type(method.drifted(value, 0.1)) is bool
