"""Each request's feature record and label, without I/O: record ``i`` is a pure function of
the data, the options, the seed and ``i``. Every random draw comes from its own stream, keyed
by (seed, purpose, column, block of 1,024 requests), so drifting one column changes no other
column's values, and asking for records 0-99 or 0-9,999 gives the same first hundred."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from modeldeck.errors import ValidationFailed
from modeldeck.simulate.expressions import Rule
from modeldeck.simulate.labels import Labeler, LabelOption, LabelSpace
from modeldeck.simulate.options import FeatureDrift, Position, resolve_position
from modeldeck.simulate.values import missing, plain, python_list, sort_key

if TYPE_CHECKING:
    import numpy.typing as npt

BLOCK = 1024
"""Requests per random block: the unit in which records are generated (and cached)."""
LABEL_ROWS = 10_000
"""Rows of the data labelled once to learn the label values (classes, or mean and spread)."""

GeneratorSource = Literal["uniform", "sample", "cycle"]


@dataclass(frozen=True)
class Sample:
    """One request: its index, the feature record sent, and its label (None: no label)."""

    index: int
    record: dict[str, Any]
    label: Any = None


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool
    integer: bool
    low: float
    high: float
    center: float
    categories: npt.NDArray[Any]
    drift: FeatureDrift | None
    drift_categories: npt.NDArray[Any]
    drift_shares: npt.NDArray[np.float64]


@dataclass
class _Block:
    records: list[dict[str, Any]]
    labels: list[Any] | None


class Generator:
    """Feature records and labels for request 0, 1, 2, ... drawn from ``data``.

    ``source``: ``"uniform"`` draws each numeric feature uniformly between its minimum and
    maximum in ``data`` (integers stay integers) and each categorical feature uniformly among
    its values; ``"sample"`` draws whole rows of ``data`` with replacement; ``"cycle"`` takes
    the rows of ``data`` in order, starting again after the last.

    ``features``: the columns sent (default: every column but ``target``). ``drifts`` apply
    from request ``drift_start`` on; ``labels`` are ``"target"`` (the drawn row's ``target``
    column; not with ``uniform``), a :class:`Rule`, any function from a DataFrame of features
    to labels (e.g. :func:`model_labeler`), or None. Rules and functions see the features as
    sent, drift included. From request ``flip_after`` on, each label is changed by
    :meth:`LabelSpace.flip` (concept drift); then ``label_noise`` applies
    (:meth:`LabelSpace.noisy`). ``classes`` overrides the classes learnt from the data.

    ``drift_start`` and ``flip_after`` are request indexes, or shares (floats 0..1) of
    ``total``.
    """

    def __init__(
        self,
        data: pd.DataFrame,
        *,
        source: GeneratorSource = "uniform",
        seed: int = 0,
        features: Sequence[str] | None = None,
        target: str | None = None,
        drifts: Sequence[FeatureDrift] = (),
        drift_start: Position = 0,
        labels: LabelOption = None,
        label_noise: float = 0.0,
        flip_after: Position | None = None,
        total: int | None = None,
        classes: Sequence[Any] | None = None,
    ) -> None:
        if source not in ("uniform", "sample", "cycle"):
            raise ValidationFailed(f"unknown source {source!r}: uniform, sample or cycle")
        if data.empty or len(data.columns) == 0:
            raise ValidationFailed("the data to generate requests from has no rows")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
            raise ValidationFailed("the seed must be a whole number >= 0")
        if target is not None and target not in data.columns:
            raise ValidationFailed(
                f"label column {target!r} is not a column of the data "
                f"(columns: {', '.join(map(str, data.columns))})",
                details={"field": "labels"},
            )
        self.data = data.reset_index(drop=True)
        self.source = source
        self.seed = int(seed)
        self.target = target
        self.features = (
            list(features)
            if features is not None
            else [str(c) for c in data.columns if c != target]
        )
        unknown = [c for c in self.features if c not in data.columns]
        if unknown or not self.features:
            raise ValidationFailed(
                f"features not in the data: {', '.join(unknown)}" if unknown else "no features"
            )
        self.total = total
        self.label_noise = float(label_noise)
        if not 0.0 <= self.label_noise <= 1.0:
            raise ValidationFailed("label_noise must be between 0 and 1")
        by_column = {d.column: d for d in drifts}
        if len(by_column) != len(drifts):
            raise ValidationFailed("one drift per column")
        stray = [c for c in by_column if c not in self.features]
        if stray:
            raise ValidationFailed(
                f"cannot drift {', '.join(stray)}: not a feature "
                f"(features: {', '.join(self.features)})",
                details={"field": "drift"},
            )
        self._columns = [self._column(c, by_column.get(c)) for c in self.features]
        self.drift_start = resolve_position(drift_start, total, "drift_start") if drifts else None
        self.flip_after = resolve_position(flip_after, total, "flip_after")
        self._labeler = self._check_labels(labels)
        self.label_space: LabelSpace | None = None
        if self._labeler is not None and (self.label_noise > 0 or self.flip_after is not None):
            if classes is not None:
                self.label_space = LabelSpace(
                    "classification", classes=tuple(sorted(set(classes), key=sort_key))
                )
            else:
                self.label_space = LabelSpace.infer(self._base_labels())
        elif self.label_noise > 0 or self.flip_after is not None:
            raise ValidationFailed(
                "label noise and label flips need labels", details={"field": "labels"}
            )
        self._cache: tuple[int, _Block] | None = None

    @property
    def kinds(self) -> dict[str, str]:
        return {c.name: "numeric" if c.numeric else "categorical" for c in self._columns}

    @property
    def has_labels(self) -> bool:
        return self._labeler is not None

    def sample(self, index: int) -> Sample:
        """Request ``index``: always the same for the same data, options and seed."""
        if index < 0:
            raise ValueError("request indexes start at 0")
        block = self._block(index // BLOCK)
        offset = index % BLOCK
        label = None if block.labels is None else block.labels[offset]
        return Sample(index, dict(block.records[offset]), label)

    def take(self, start: int, stop: int) -> list[Sample]:
        """Requests ``start`` to ``stop - 1``."""
        return [self.sample(i) for i in range(start, stop)]

    def frame(self, start: int, stop: int) -> pd.DataFrame:
        """Requests ``start`` to ``stop - 1`` as a DataFrame (plus ``label`` when labelled)."""
        samples = self.take(start, stop)
        frame = pd.DataFrame([s.record for s in samples], columns=self.features)
        if self.has_labels:
            frame["label"] = [s.label for s in samples]
        return frame

    # -- internals --------------------------------------------------------------------------

    def _rng(self, purpose: str, column: str, block: int) -> np.random.Generator:
        key = [self.seed, zlib.crc32(purpose.encode()), zlib.crc32(column.encode()), block]
        return np.random.default_rng(key)

    def _column(self, name: str, drift: FeatureDrift | None) -> _Column:
        values = self.data[name]
        numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
            values.dtype
        )
        empty: npt.NDArray[Any] = np.array([], dtype=object)
        if numeric:
            clean = values.dropna()
            if clean.empty:
                raise ValidationFailed(f"column {name!r} has no values to draw from")
            if drift is not None and drift.weights:
                raise ValidationFailed(
                    f"cannot re-weight numeric column {name!r}; use shift= or scale=",
                    details={"field": "drift"},
                )
            return _Column(
                name,
                numeric=True,
                integer=pd.api.types.is_integer_dtype(values.dtype),
                low=float(clean.min()),
                high=float(clean.max()),
                center=float(clean.mean()),
                categories=empty,
                drift=drift,
                drift_categories=empty,
                drift_shares=np.array([], dtype=np.float64),
            )
        counts = values.dropna().value_counts()
        if counts.empty:
            raise ValidationFailed(f"column {name!r} has no values to draw from")
        order = sorted(range(len(counts)), key=lambda i: sort_key(counts.index[i]))
        categories = np.array([plain(counts.index[i]) for i in order], dtype=object)
        drift_categories, shares = empty, np.array([], dtype=np.float64)
        if drift is not None and (drift.weights is not None or not drift.missing):
            if drift.shift != 0.0 or drift.scale != 1.0:
                raise ValidationFailed(
                    f"cannot shift or scale categorical column {name!r}; use weights=",
                    details={"field": "drift"},
                )
            drift_categories, shares = self._reweighted(name, counts, order, drift)
        return _Column(
            name,
            numeric=False,
            integer=False,
            low=math.nan,
            high=math.nan,
            center=math.nan,
            categories=categories,
            drift=drift,
            drift_categories=drift_categories,
            drift_shares=shares,
        )

    def _reweighted(
        self, name: str, counts: pd.Series, order: list[int], drift: FeatureDrift
    ) -> tuple[npt.NDArray[Any], npt.NDArray[np.float64]]:
        """The categories a drifted column is drawn from, and their probabilities."""
        categories = [plain(counts.index[i]) for i in order]
        if self.source == "uniform":
            base = [1.0 / len(categories)] * len(categories)
        else:
            base = [float(counts.iloc[i]) / float(counts.sum()) for i in order]
        weights = dict(drift.weights or {})
        if any(w < 0 or not math.isfinite(w) for w in weights.values()):
            raise ValidationFailed(
                f"drift weights of {name!r} must be numbers >= 0", details={"field": "drift"}
            )
        known = {str(c) for c in categories}
        extra = [k for k in weights if k not in known]
        shares = np.array(
            [b * weights.get(str(c), 1.0) for b, c in zip(base, categories, strict=True)]
            + [weights[k] / len(categories) for k in extra],
            dtype=np.float64,
        )
        if shares.sum() <= 0:
            raise ValidationFailed(
                f"drift weights of {name!r} leave no category to draw", details={"field": "drift"}
            )
        return np.array([*categories, *extra], dtype=object), shares / shares.sum()

    def _check_labels(self, labels: LabelOption) -> Labeler | Literal["target"] | None:
        if labels is None:
            return None
        if labels == "target":
            if self.target is None:
                raise ValidationFailed(
                    "labels from the data's rows need its label column (target)",
                    details={"field": "labels"},
                )
            if self.source == "uniform":
                raise ValidationFailed(
                    "uniform records are not rows of the data, so they have no label of their "
                    "own: sample rows, or label with a rule or a model",
                    details={"field": "labels"},
                )
            return "target"
        if isinstance(labels, str):
            raise ValidationFailed(f"unknown labels {labels!r}", details={"field": "labels"})
        if isinstance(labels, Rule):
            missing = sorted(labels.names - set(self.features))
            if missing:
                raise ValidationFailed(
                    f"rule {labels.expression!r} names {', '.join(missing)}, not a feature "
                    f"(features: {', '.join(self.features)})",
                    details={"field": "labels"},
                )
        return labels

    def _base_labels(self) -> Sequence[Any]:
        """The labels of the data itself, to learn the classes (or the labels' spread) from."""
        if self._labeler == "target":
            assert self.target is not None
            return list(self.data[self.target].to_numpy().tolist())
        assert callable(self._labeler)
        return self._labeler(self.data[self.features].head(LABEL_ROWS))

    def _block(self, k: int) -> _Block:
        if self._cache is not None and self._cache[0] == k:
            return self._cache[1]
        block = self._make_block(k)
        self._cache = (k, block)
        return block

    def _make_block(self, k: int) -> _Block:
        index = np.arange(k * BLOCK, (k + 1) * BLOCK)
        rows: npt.NDArray[np.int64] | None = None
        if self.source == "sample":
            rows = self._rng("rows", "", k).integers(0, len(self.data), BLOCK)
        elif self.source == "cycle":
            rows = index % len(self.data)
        drifted = (
            index >= self.drift_start
            if self.drift_start is not None
            else np.zeros(BLOCK, dtype=bool)
        )
        columns = {
            c.name: self._drifted(c, self._values(c, k, rows), drifted, k) for c in self._columns
        }
        frame = pd.DataFrame(columns, columns=self.features)
        lists = [python_list(columns[name]) for name in self.features]
        records = [dict(zip(self.features, row, strict=True)) for row in zip(*lists, strict=True)]
        return _Block(records, self._labels(frame, rows, index, k))

    def _values(
        self, column: _Column, k: int, rows: npt.NDArray[np.int64] | None
    ) -> npt.NDArray[Any]:
        if rows is not None:
            return np.asarray(self.data[column.name].to_numpy())[rows]
        rng = self._rng("uniform", column.name, k)
        if column.numeric and column.integer:
            return rng.integers(int(column.low), int(column.high), BLOCK, endpoint=True)
        if column.numeric:
            return rng.uniform(column.low, column.high, BLOCK)
        return column.categories[rng.integers(0, len(column.categories), BLOCK)]

    def _drifted(
        self, column: _Column, values: npt.NDArray[Any], drifted: npt.NDArray[np.bool_], k: int
    ) -> npt.NDArray[Any]:
        drift = column.drift
        if drift is None or not drifted.any():
            return values
        out: npt.NDArray[Any] = values
        if column.numeric and (drift.shift != 0.0 or drift.scale != 1.0):
            moved = column.center + (values.astype(np.float64) - column.center) * drift.scale
            moved = moved + drift.shift
            if column.integer:
                moved = np.round(moved).astype(np.int64)
            out = np.where(drifted, moved, values)
        elif len(column.drift_categories):
            draws = self._rng("drift", column.name, k).choice(
                len(column.drift_categories), size=BLOCK, p=column.drift_shares
            )
            out = values.astype(object)
            out[drifted] = column.drift_categories[draws][drifted]
        if drift.missing:
            gaps = self._rng("missing", column.name, k).random(BLOCK) < drift.missing
            out = out.astype(object)
            out[drifted & gaps] = None
        return out

    def _labels(
        self,
        frame: pd.DataFrame,
        rows: npt.NDArray[np.int64] | None,
        index: npt.NDArray[np.int64],
        k: int,
    ) -> list[Any] | None:
        if self._labeler is None:
            return None
        if self._labeler == "target":
            assert self.target is not None and rows is not None
            raw: Sequence[Any] = np.asarray(self.data[self.target].to_numpy())[rows].tolist()
        else:
            raw = self._labeler(frame)
            if len(raw) != len(frame):
                raise ValidationFailed(
                    f"the labeler gave {len(raw)} labels for {len(frame)} records",
                    details={"field": "labels"},
                )
        labels = [None if missing(v) else plain(v) for v in raw]
        space = self.label_space
        if space is None:
            return labels
        if self.flip_after is not None:
            for i in np.flatnonzero(index >= self.flip_after).tolist():
                labels[i] = space.flip(labels[i])
        if self.label_noise > 0:
            rng = self._rng("noise", "", k)
            draw = rng.random(BLOCK)
            pick = rng.integers(0, 2**31 - 1, BLOCK)
            gauss = rng.standard_normal(BLOCK)
            for i in range(BLOCK):
                labels[i] = space.noisy(
                    labels[i], float(draw[i]), int(pick[i]), float(gauss[i]), self.label_noise
                )
        return labels
