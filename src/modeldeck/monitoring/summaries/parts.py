"""Additive pieces of drift and performance reports, and their five-minute and hourly summaries.

A report over a window is assembled from *parts*: one per whole hour or five-minute bucket
(stored in ``analysis_summaries`` once built, an hour's as the sum of its twelve buckets', see
:class:`~modeldeck.monitoring.analysis.AnalysisService`) plus live parts for the ragged edges of
the window. Everything in a part adds up, so the parts of a day give the same numbers as the
day computed in one go:

* :class:`PerformancePart`: prediction count, confusion counts, regression sums, log-loss sums,
  per-score positive/negative counts (ROC AUC) and probability vectors grouped for confidence
  estimation. The metrics built from merged parts equal those of the whole window exactly.
* :class:`DriftPart`: per column a histogram on the reference's bin edges (numeric) or counts
  per value (categorical), with missing and invalid counts and (numeric) the smallest and
  largest value. Drift from merged parts is the binned form of each statistic
  (:func:`modeldeck.monitoring.drift.stats.binned_column_drift`); data quality reads the same
  counts (:mod:`modeldeck.monitoring.quality`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np

BUCKET_MS = 300_000
"""The span of one stored summary: five minutes."""

HOUR_MS = 12 * BUCKET_MS
"""The span of an hourly summary: the sum of its hour's twelve five-minute ones."""

MAX_CATEGORIES = 1000
"""Distinct values counted per categorical column and part; the rest are counted together."""

OVERFLOW = "__overflow__"


FORMAT = 4
"""The layout of stored parts; part of every signature, so a new layout rebuilds old ones."""


def signature(*items: Any) -> str:
    """A short, stable hash of what a summary depends on (settings, reference, layout)."""
    payload = orjson.dumps([FORMAT, *items], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()[:32]


# --- performance -------------------------------------------------------------------------------


SCORE_STEPS = 1000
"""Scores (probabilities) are counted on a grid of 1/1000, as the SQL rounds them."""


@dataclass
class PerformancePart:
    predictions: int = 0
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    many_labels: bool = False  # more distinct labels than a classifier has: not a confusion
    regression: list[float] = field(default_factory=lambda: [0.0] * 6)
    log_loss: list[float] = field(default_factory=lambda: [0.0, 0.0])  # count, sum(-ln p)
    # class: [positives, negatives] per score step (0, 0.001, ..., 1), for ROC AUC
    scores: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    # (predicted, probabilities in ``classes`` order): count, for estimated performance
    estimate: dict[tuple[str, tuple[float, ...]], int] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)  # the classes named in the probabilities
    # Score counts read from stored parts and not yet added into ``scores``, as stored (score
    # steps, then their positives, then their negatives): a report merges hundreds of stored
    # parts, and adding them up once, when the grids are read (:meth:`grids`), costs a
    # fraction of building a dense grid for each.
    pending: dict[str, list[list[int]]] = field(default_factory=dict)

    def count_score(self, cls: str, score: float, positives: int, negatives: int) -> None:
        import numpy as np

        grid = self.scores.get(cls)
        if grid is None:
            grid = self.scores[cls] = np.zeros((2, SCORE_STEPS + 1), dtype=np.int64)
        step = min(max(round(score * SCORE_STEPS), 0), SCORE_STEPS)
        grid[0, step] += positives
        grid[1, step] += negatives

    def grids(self) -> dict[str, np.ndarray[Any, Any]]:
        """Per class, ``[positives, negatives]`` per score step, pending counts added in."""
        import numpy as np

        for cls, stored in self.pending.items():
            steps, positives, negatives = np.concatenate(
                [np.asarray(sparse, dtype=np.int64).reshape(3, -1) for sparse in stored], axis=1
            )
            size = SCORE_STEPS + 1
            grid = np.stack(
                [
                    np.bincount(steps, weights=positives, minlength=size),
                    np.bincount(steps, weights=negatives, minlength=size),
                ]
            ).astype(np.int64)  # float64 sums are exact below 2**53 predictions
            mine = self.scores.get(cls)
            self.scores[cls] = grid if mine is None else mine + grid
        self.pending = {}
        return self.scores

    def score_rows(self, cls: str) -> list[tuple[float, int, int]]:
        """``(score, positives, negatives)`` for every score step with predictions."""
        import numpy as np

        grid = self.grids().get(cls)
        if grid is None:
            return []
        steps = np.flatnonzero(grid.sum(axis=0))
        return [(i / SCORE_STEPS, int(grid[0, i]), int(grid[1, i])) for i in steps]

    def merge(self, other: PerformancePart) -> PerformancePart:
        self.predictions += other.predictions
        for cell, n in other.confusion.items():
            self.confusion[cell] = self.confusion.get(cell, 0) + n
        self.many_labels = self.many_labels or other.many_labels
        self.regression = [a + b for a, b in zip(self.regression, other.regression, strict=True)]
        self.log_loss = [a + b for a, b in zip(self.log_loss, other.log_loss, strict=True)]
        for cls, grid in other.scores.items():
            mine = self.scores.get(cls)
            self.scores[cls] = grid.copy() if mine is None else mine + grid
        for cls, stored in other.pending.items():
            self.pending.setdefault(cls, []).extend(stored)  # read-only lists: shared, not copied
        theirs = other.estimate
        if other.classes != self.classes:
            union = sorted(set(self.classes) | set(other.classes))
            if union != self.classes:
                self.estimate = _remap(self.estimate, self.classes, union)
            if union != other.classes:
                theirs = _remap(theirs, other.classes, union)
            self.classes = union
        for key, n in theirs.items():
            self.estimate[key] = self.estimate.get(key, 0) + n
        return self

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "n": self.predictions,
                "c": [[p, a, n] for (p, a), n in self.confusion.items()],
                "m": self.many_labels,
                "r": self.regression,
                "l": self.log_loss,
                # sparse: only the score steps with counts
                "s": {c: _sparse(grid) for c, grid in self.grids().items()},
                "e": [[pred, list(probs), n] for (pred, probs), n in self.estimate.items()],
                "k": self.classes,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformancePart:
        raw = orjson.loads(data)
        return cls(
            predictions=int(raw["n"]),
            confusion={(str(p), str(a)): int(n) for p, a, n in raw["c"]},
            many_labels=bool(raw["m"]),
            regression=[float(x) for x in raw["r"]],
            log_loss=[float(x) for x in raw["l"]],
            pending={c: [sparse] for c, sparse in raw["s"].items()},
            estimate={(pred, tuple(probs)): n for pred, probs, n in raw["e"]},
            classes=raw["k"],
        )


def _sparse(grid: np.ndarray[Any, Any]) -> list[int]:
    """The score steps with counts, then their positives, then their negatives, in one list."""
    import numpy as np

    steps = np.flatnonzero(grid.sum(axis=0))
    return np.concatenate([steps, grid[0, steps], grid[1, steps]]).tolist()  # type: ignore[no-any-return]


def _remap(
    estimate: Mapping[tuple[str, tuple[float, ...]], int], old: Sequence[str], new: Sequence[str]
) -> dict[tuple[str, tuple[float, ...]], int]:
    """Probability vectors in another class order; a class a vector lacks reads -1."""
    out: dict[tuple[str, tuple[float, ...]], int] = {}
    for (pred, probs), n in estimate.items():
        given = dict(zip(old, probs, strict=True))
        key = (pred, tuple(given.get(c, -1.0) for c in new))
        out[key] = out.get(key, 0) + n
    return out


# --- drift -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnPlan:
    """How one column is summarised: a histogram on ``edges`` (numeric) or value counts."""

    kind: str  # numeric | categorical
    edges: tuple[float, ...] | None = None  # numeric: from stats.numeric_edges(reference)

    def empty(self) -> dict[str, Any]:
        if self.edges is not None:
            return {
                "counts": [0] * (len(self.edges) - 1),
                "below": [0, 0.0],  # values under the reference's min: count, sum of min - x
                "above": [0, 0.0],  # values over its max: count, sum of x - max
                "range": None,  # [smallest, largest] finite value (data quality: constancy)
                "missing": 0,
                "invalid": 0,
            }
        return {"counts": {}, "missing": 0, "invalid": 0}


@dataclass
class DriftPart:
    records: int = 0
    skipped: int = 0
    keys: dict[str, int] = field(default_factory=dict)  # feature keys seen: records with each
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    output: dict[str, Any] | None = None

    def merge(self, other: DriftPart) -> DriftPart:
        self.records += other.records
        self.skipped += other.skipped
        for key, n in other.keys.items():
            self.keys[key] = self.keys.get(key, 0) + n
        for name, theirs in other.columns.items():
            self.columns[name] = _merge_column(self.columns.get(name), theirs)
        if other.output is not None:
            self.output = _merge_column(self.output, other.output)
        return self

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "r": self.records,
                "s": self.skipped,
                "k": self.keys,
                "c": self.columns,
                "o": self.output,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> DriftPart:
        raw = orjson.loads(data)
        return cls(
            records=int(raw["r"]),
            skipped=int(raw["s"]),
            keys=raw["k"],
            columns=raw["c"],
            output=raw["o"],
        )


def _merge_column(mine: dict[str, Any] | None, theirs: dict[str, Any]) -> dict[str, Any]:
    if mine is None:
        return {
            k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
            for k, v in theirs.items()
        }
    mine["missing"] += theirs["missing"]
    mine["invalid"] += theirs["invalid"]
    if isinstance(theirs["counts"], dict):
        counts: dict[str, int] = mine["counts"]
        for value, n in theirs["counts"].items():
            counts[value] = counts.get(value, 0) + n
    else:
        mine["counts"] = [a + b for a, b in zip(mine["counts"], theirs["counts"], strict=True)]
        for side in ("below", "above"):
            mine[side] = [mine[side][0] + theirs[side][0], mine[side][1] + theirs[side][1]]
        spans = [s for s in (mine.get("range"), theirs.get("range")) if s]
        mine["range"] = [min(s[0] for s in spans), max(s[1] for s in spans)] if spans else None
    return mine


def summarise_numeric(
    values: np.ndarray[Any, Any], plan: ColumnPlan, missing: int, invalid: int
) -> dict[str, Any]:
    """A numeric column's part: finite ``values`` binned on ``plan.edges`` (``[left, right)``)."""
    import numpy as np

    assert plan.edges is not None
    edges = np.asarray(plan.edges, dtype=np.float64)
    finite = values[np.isfinite(values)]
    index = np.clip(np.searchsorted(edges, finite, side="right") - 1, 0, len(edges) - 2)
    low, high = edges[1], edges[-2]  # the reference's min and max
    below, above = finite[finite < low], finite[finite > high]
    return {
        "counts": np.bincount(index, minlength=len(edges) - 1).tolist(),
        "below": [int(below.size), float(np.sum(low - below))],
        "above": [int(above.size), float(np.sum(above - high))],
        "range": [float(finite.min()), float(finite.max())] if finite.size else None,
        "missing": missing + int(values.size - finite.size),
        "invalid": invalid,
    }


def summarise_categorical(values: Iterable[str], missing: int, invalid: int) -> dict[str, Any]:
    """A categorical column's part: counts per value, at most ``MAX_CATEGORIES`` of them."""
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    if len(counts) > MAX_CATEGORIES:
        ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        counts = dict(ordered[:MAX_CATEGORIES])
        counts[OVERFLOW] = counts.get(OVERFLOW, 0) + sum(n for _, n in ordered[MAX_CATEGORIES:])
    return {"counts": counts, "missing": missing, "invalid": invalid}
