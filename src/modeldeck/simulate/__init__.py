"""Synthetic traffic and delayed ground truth against a deployment, to watch monitoring move.

Two halves, kept apart:

* :class:`Generator` makes each request's feature record and label. It does no I/O: record
  ``i`` is a pure function of the data, the options, the seed and ``i``. Every random draw comes
  from its own stream, keyed by (seed, purpose, column, block of 1,024 requests), so drifting
  one column changes no other column's values, and asking for records 0-99 or 0-9,999 gives the
  same first hundred.
* :func:`run` sends a generator's records to a deployment's endpoint over HTTP (threads, a
  target rate, a concurrency limit, a number of requests or a duration) and sends each answered
  prediction's label as a delayed metric ``label_delay`` seconds after its answer.

:func:`simulate` does both for a deployment on a platform, taking the data from its reference
data or a file; the ``modeldeck simulate`` command is a thin layer over it::

    from modeldeck import Client
    from modeldeck.simulate import FeatureDrift, simulate

    with Client() as client:
        result = simulate(
            client, "iris", requests=500, seed=7, source="reference", labels="reference",
            drifts=[FeatureDrift("petal_length", shift=2.0)], drift_start=0.5, flip_after=0.5,
            label_delay=5.0, access_key="...",
        )
    print(result.to_dict())
"""

from __future__ import annotations

import ast
import heapq
import math
import operator
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from modeldeck.errors import ModeldeckError, ValidationFailed

if TYPE_CHECKING:
    import httpx
    import numpy.typing as npt

    from modeldeck.client import Client

__all__ = [
    "FeatureDrift",
    "Generator",
    "LabelSpace",
    "Prediction",
    "Progress",
    "Result",
    "Rule",
    "Sample",
    "model_labeler",
    "parse_position",
    "run",
    "simulate",
]

BLOCK = 1024
"""Requests per random block: the unit in which records are generated (and cached)."""
MAX_CLASSES = 50
LABEL_ROWS = 10_000
"""Rows of the data labelled once to learn the label values (classes, or mean and spread)."""
REFERENCE_ROWS = 10_000
"""Rows of the reference data that :func:`simulate` fetches (a random sample when larger)."""
LABEL_BATCH = 1000
ERRORS_KEPT = 10

GeneratorSource = Literal["uniform", "sample", "cycle"]
Labeler = Callable[[pd.DataFrame], Sequence[Any]]
LabelOption = Literal["target"] | Labeler | None
Position = int | float


# -- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    """Drift injected into one feature from the generator's ``drift_start`` onward.

    Numeric columns: ``x -> center + (x - center) * scale + shift``, where ``center`` is the
    column's mean in the data; ``scale`` widens (> 1) or narrows (< 1) the spread around the
    mean, ``shift`` moves it. Integer columns stay integers (rounded).

    Categorical columns: each value is drawn afresh with probability proportional to the
    category's share of the data (every category alike for the ``uniform`` source) times its
    weight; categories not named keep weight 1, a name that is not a category of the data adds
    a new, unseen category.
    """

    column: str
    shift: float = 0.0
    scale: float = 1.0
    weights: Mapping[str, float] | None = None

    @classmethod
    def parse(cls, text: str) -> FeatureDrift:
        """``"petal_length:shift=2"``, ``"age:scale=1.5,shift=-3"``,
        ``"colour:weights=red=3,blue=1"`` (weights last: the pairs after it are categories)."""
        column, sep, rest = text.partition(":")
        column = column.strip()
        if not sep or not column or not rest.strip():
            raise ValidationFailed(
                f"expected COLUMN:shift=X,scale=Y or COLUMN:weights=A=3,B=1; got {text!r}",
                details={"field": "drift"},
            )
        shift, scale = 0.0, 1.0
        weights: dict[str, float] | None = None
        for part in rest.split(","):
            key, eq, value = (s.strip() for s in part.partition("="))
            try:
                if key in ("shift", "scale") and eq and weights is None:
                    number = float(value)
                    if key == "shift":
                        shift = number
                    else:
                        scale = number
                elif key == "weights" and eq:
                    category, eq2, weight = (s.strip() for s in value.partition("="))
                    if not eq2:
                        raise ValueError
                    weights = {category: float(weight)}
                elif weights is not None and eq:
                    weights[key] = float(value)
                else:
                    raise ValueError
            except ValueError:
                raise ValidationFailed(
                    f"cannot read {part!r} in drift {text!r}: expected shift=X, scale=Y or "
                    "weights=CATEGORY=W,CATEGORY=W",
                    details={"field": "drift"},
                ) from None
        if not math.isfinite(shift) or not math.isfinite(scale):
            raise ValidationFailed(f"drift {text!r}: shift and scale must be finite numbers")
        return cls(column, shift=shift, scale=scale, weights=weights)


def parse_position(text: str) -> Position:
    """A request index (``"500"``) or a share of the run (``"0.5"``, ``"50%"``)."""
    value = text.strip()
    try:
        if value.endswith("%"):
            return float(value[:-1]) / 100
        if value.lstrip("+").isdigit():
            return int(value)
        return float(value)
    except ValueError:
        raise ValidationFailed(
            f"expected a request index (500) or a share of the run (0.5, 50%); got {text!r}"
        ) from None


def resolve_position(value: Position | None, total: int | None, what: str) -> int | None:
    """The request index that ``value`` (an index, or a share 0..1 of ``total``) stands for."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationFailed(f"{what} must be a request index or a share of the run")
    if isinstance(value, int):
        if value < 0:
            raise ValidationFailed(f"{what} must not be negative", details={"field": what})
        return value
    if not 0.0 <= value <= 1.0:
        raise ValidationFailed(
            f"{what} {value:g} is neither a request index (a whole number) nor a share (0..1)",
            details={"field": what},
        )
    if total is None:
        raise ValidationFailed(
            f"{what} as a share ({value:g}) needs a known number of requests: give a number of "
            "requests, or a rate with a duration, or an index instead",
            details={"field": what},
        )
    return round(value * total)


def planned_requests(
    requests: int | None, duration: float | None, rate: float | None
) -> int | None:
    """How many requests a run will send, when that is known in advance."""
    if requests is not None:
        return (
            requests
            if duration is None or rate is None
            else min(requests, _by_rate(duration, rate))
        )
    if duration is not None and rate is not None:
        return _by_rate(duration, rate)
    return None


def _by_rate(duration: float, rate: float) -> int:
    return math.ceil(duration * rate - 1e-9)


# -- rules ----------------------------------------------------------------------------------

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: lambda a, b: float(a) ** float(b),
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Not: operator.not_,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "min": min, "max": max, "round": round}


class Rule:
    """A label computed from each record's features by a small expression, for example
    ``"petal_length > 2.45"`` or ``"0 if petal_length < 2.45 else (1 if petal_width < 1.75
    else 2)"``.

    Only literals, feature names, arithmetic (``+ - * / // % **``), comparisons (also ``in``
    and ``not in`` a literal tuple or list), ``and`` / ``or`` / ``not``, ``x if c else y`` and
    the functions ``abs``, ``min``, ``max`` and ``round`` are allowed: the expression is checked
    node by node and never handed to ``eval``. A comparison's True/False becomes 1/0.
    """

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValidationFailed(
                f"rule {expression!r} is not a valid expression: {exc.msg}",
                details={"field": "labels"},
            ) from None
        self._body = tree.body
        names: set[str] = set()
        for node in ast.walk(self._body):
            self._check(node)
            if isinstance(node, ast.Name) and node.id not in _FUNCTIONS:
                names.add(node.id)
        self.names = frozenset(names)

    def __repr__(self) -> str:
        return f"Rule({self.expression!r})"

    def __call__(self, frame: pd.DataFrame) -> list[Any]:
        return [self.evaluate(record) for record in frame.to_dict("records")]

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        try:
            value = self._eval(self._body, record)
        except ValidationFailed:
            raise
        except Exception as exc:
            raise ValidationFailed(
                f"rule {self.expression!r} failed on {dict(record)}: {type(exc).__name__}: {exc}",
                details={"field": "labels"},
            ) from None
        if isinstance(value, bool | np.bool_):
            return int(value)
        return _plain(value)

    def _check(self, node: ast.AST) -> None:
        allowed = (
            ast.Expression,
            ast.BoolOp,
            ast.BinOp,
            ast.UnaryOp,
            ast.Compare,
            ast.IfExp,
            ast.Name,
            ast.Constant,
            ast.Tuple,
            ast.List,
            ast.Call,
            ast.Load,
            ast.And,
            ast.Or,
            *_BINARY,
            *_UNARY,
            *_COMPARE,
        )
        problem = None
        if not isinstance(node, allowed):
            problem = f"{type(node).__name__} is not allowed"
        elif isinstance(node, ast.Constant) and not isinstance(
            node.value, int | float | str | bool | type(None)
        ):
            problem = f"the constant {node.value!r} is not allowed"
        elif isinstance(node, ast.Call) and (
            not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords
        ):
            problem = "only abs(), min(), max() and round() may be called, without keywords"
        if problem:
            raise ValidationFailed(
                f"rule {self.expression!r}: {problem} (use feature names, numbers, strings, "
                "arithmetic, comparisons, and/or/not, x if c else y, abs/min/max/round)",
                details={"field": "labels"},
            )

    def _eval(self, node: ast.expr, record: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in record:
                raise ValidationFailed(
                    f"rule {self.expression!r} names {node.id!r}, which is not a feature",
                    details={"field": "labels"},
                )
            return record[node.id]
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self._eval(e, record) for e in node.elts)
        if isinstance(node, ast.BoolOp):
            value: Any = None
            for operand in node.values:
                value = self._eval(operand, record)
                if isinstance(node.op, ast.And) and not value:
                    return value
                if isinstance(node.op, ast.Or) and value:
                    return value
            return value
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, record))
        if isinstance(node, ast.BinOp):
            left, right = self._eval(node.left, record), self._eval(node.right, record)
            if isinstance(node.op, ast.Mult | ast.Mod) and (
                isinstance(left, str | tuple) or isinstance(right, str | tuple)
            ):
                raise ValueError("* and % take numbers")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, record)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, record)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            branch = node.body if self._eval(node.test, record) else node.orelse
            return self._eval(branch, record)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _FUNCTIONS[node.func.id](*(self._eval(a, record) for a in node.args))
        raise ValueError(f"{type(node).__name__} is not allowed")  # checked in __init__


def model_labeler(model_uri: str) -> Labeler:
    """Labels from an MLflow model loaded in this process, e.g. ``"models:/iris/1"``.

    The tracking server is MLflow's usual ``MLFLOW_TRACKING_URI``. A deployment's own model
    labels its inputs with what it predicts: a perfect oracle until ``label_noise`` or
    ``flip_after`` make it wrong.
    """
    try:
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # MLflow raises many types for a missing or unloadable model
        raise ValidationFailed(
            f"cannot load {model_uri} here to label the requests ({type(exc).__name__}: {exc}); "
            "is MLFLOW_TRACKING_URI set to the platform's tracking server?",
            details={"field": "labels"},
        ) from None

    def label(frame: pd.DataFrame) -> list[Any]:
        output = model.predict(frame)
        if isinstance(output, pd.DataFrame):
            output = output.iloc[:, 0]
        return [_plain(v) for v in np.asarray(output).ravel().tolist()]

    return label


# -- labels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelSpace:
    """What the labels look like: classes (sorted) or, for regression, their mean and spread.

    Inferred from the data's labels: text, booleans or at most 50 distinct whole numbers make
    a classification; anything else a regression.
    """

    task: Literal["classification", "regression"]
    classes: tuple[Any, ...] = ()
    mean: float = 0.0
    std: float = 0.0

    @classmethod
    def infer(cls, labels: Sequence[Any]) -> LabelSpace:
        values = [_plain(v) for v in labels if not _missing(v)]
        distinct = set(values)
        whole = all(
            isinstance(v, str | bool | int) or (isinstance(v, float) and v.is_integer())
            for v in distinct
        )
        if whole and len(distinct) <= MAX_CLASSES:
            return cls("classification", classes=tuple(sorted(distinct, key=_sort_key)))
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValidationFailed(
                f"labels with more than {MAX_CLASSES} distinct values must be numbers",
                details={"field": "labels"},
            ) from None
        return cls("regression", mean=float(numbers.mean()), std=float(numbers.std()))

    def flip(self, label: Any) -> Any:
        """Classification: the next class in sorted order (the last becomes the first).
        Regression: the label mirrored around the mean. Unknown classes stay as they are."""
        if self.task == "regression":
            return None if _missing(label) else 2 * self.mean - float(label)
        position = self._position(label)
        return label if position is None else self.classes[(position + 1) % len(self.classes)]

    def noisy(self, label: Any, draw: float, pick: int, gauss: float, noise: float) -> Any:
        """Classification: another class, chosen uniformly, when ``draw < noise``.
        Regression: plus gaussian noise with a standard deviation of ``noise`` times the
        labels' own."""
        if self.task == "regression":
            return None if _missing(label) else float(label) + gauss * noise * self.std
        position = self._position(label)
        if draw >= noise or position is None or len(self.classes) < 2:
            return label
        offset = 1 + pick % (len(self.classes) - 1)
        return self.classes[(position + offset) % len(self.classes)]

    def _position(self, label: Any) -> int | None:
        try:
            return self.classes.index(label)
        except ValueError:
            return None


# -- generation -----------------------------------------------------------------------------


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
                    "classification", classes=tuple(sorted(set(classes), key=_sort_key))
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
        order = sorted(range(len(counts)), key=lambda i: _sort_key(counts.index[i]))
        categories = np.array([_plain(counts.index[i]) for i in order], dtype=object)
        drift_categories, shares = empty, np.array([], dtype=np.float64)
        if drift is not None:
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
        categories = [_plain(counts.index[i]) for i in order]
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
        lists = [_python_list(columns[name]) for name in self.features]
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
        if column.numeric:
            moved = column.center + (values.astype(np.float64) - column.center) * drift.scale
            moved = moved + drift.shift
            if column.integer:
                moved = np.round(moved).astype(np.int64)
            return np.where(drifted, moved, values)
        draws = self._rng("drift", column.name, k).choice(
            len(column.drift_categories), size=BLOCK, p=column.drift_shares
        )
        out = values.astype(object)
        out[drifted] = column.drift_categories[draws][drifted]
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
        labels = [None if _missing(v) else _plain(v) for v in raw]
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


def _plain(value: Any) -> Any:
    """A JSON-friendly Python scalar for numpy and pandas scalars."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _python_list(values: npt.NDArray[Any]) -> list[Any]:
    items = values.tolist()
    return [None if _missing(v) else _plain(v) for v in items]


def _sort_key(value: Any) -> tuple[int, float, str]:
    value = _plain(value)
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


# -- sending --------------------------------------------------------------------------------


@dataclass
class Prediction:
    """One request as sent and answered, and its label as delivered."""

    index: int
    record: dict[str, Any]
    label: Any
    status: int | None = None
    """HTTP status; None when no answer came (connection error, timeout)."""
    uuid: str | None = None
    latency_ms: float | None = None
    answered_at: float | None = None
    """When the answer arrived, seconds since the epoch."""
    error: str | None = None
    label_sent_at: float | None = None
    """When the label was delivered as a delayed metric, seconds since the epoch."""


@dataclass(frozen=True)
class Progress:
    """A run's state, handed to ``on_progress`` about ten times a second."""

    phase: Literal["traffic", "labels", "done"]
    sent: int
    ok: int
    failed: int
    planned: int | None
    elapsed: float
    duration: float | None
    labels_sent: int
    labels_pending: int
    next_label_in: float | None


@dataclass
class Result:
    """What a run sent and how the deployment answered."""

    deployment: str
    seed: int
    source: str
    sent: int
    ok: int
    failed: int
    failures: dict[str, int]
    """Failed requests by HTTP status, or by error type when no answer came."""
    seconds: float
    rps: float
    latency_ms: dict[str, float | None]
    """p50, p95 and p99 over every answered request, in milliseconds."""
    drift_start: int | None
    flip_after: int | None
    labels_sent: int
    labels_failed: int
    label_delay: float
    label_key: str
    errors: list[str] = field(default_factory=list)
    """The first distinct error messages."""
    predictions: list[Prediction] = field(default_factory=list)
    """Every request in index order: record, label, status, UUID, latency."""

    def to_dict(self, *, predictions: bool = False) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "predictions"}
        if predictions:
            out["predictions"] = [asdict(p) for p in self.predictions]
        return out


class _LabelSender:
    """Sends each queued label once its time has come, in batches, from a thread of its own."""

    def __init__(self, client: Client, deployment: str, label_key: str, delay: float) -> None:
        self.client = client
        self.deployment = deployment
        self.label_key = label_key
        self.delay = delay
        self.sent = 0
        self.failed = 0
        self.errors: list[str] = []
        self.failure: BaseException | None = None
        self._heap: list[tuple[float, int, Prediction]] = []
        self._in_flight = 0
        self._closed = False
        self._aborted = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="simulate-labels", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, prediction: Prediction, answered: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (answered + self.delay, prediction.index, prediction))
            self._cond.notify()

    def close(self) -> None:
        """No more labels: send what is queued when its time comes, then stop."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def pending(self) -> tuple[int, float | None]:
        """Labels not delivered yet, and seconds until the next is due."""
        with self._cond:
            due = self._heap[0][0] - time.monotonic() if self._heap else None
            return len(self._heap) + self._in_flight, None if due is None else max(0.0, due)

    def _loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while True:
                        if self._aborted:
                            return
                        if self._heap:
                            wait = self._heap[0][0] - time.monotonic()
                            if wait <= 0:
                                break
                            self._cond.wait(wait)
                        elif self._closed:
                            return
                        else:
                            self._cond.wait()
                    now = time.monotonic()
                    batch: list[Prediction] = []
                    while self._heap and self._heap[0][0] <= now and len(batch) < LABEL_BATCH:
                        batch.append(heapq.heappop(self._heap)[2])
                    self._in_flight = len(batch)
                try:
                    self._send(batch)
                finally:
                    with self._cond:
                        self._in_flight = 0
        except BaseException as exc:  # re-raised by run() in the caller's thread
            self.failure = exc

    def _send(self, batch: list[Prediction]) -> None:
        items = [(p.uuid or "", {self.label_key: p.label}) for p in batch]
        try:
            self.client.track_delayed_metrics_batch(self.deployment, items)
        except ModeldeckError as exc:
            self.failed += len(batch)
            if len(self.errors) < ERRORS_KEPT:
                self.errors.append(f"ground truth: {exc}")
            return
        delivered = time.time()
        for p in batch:
            p.label_sent_at = delivered
        self.sent += len(batch)


class _Traffic:
    """Worker threads share one request counter; request ``i`` leaves at ``t0 + i / rate``."""

    def __init__(
        self,
        generator: Generator,
        http: httpx.Client,
        path: str,
        labels: _LabelSender | None,
        requests: int | None,
        duration: float | None,
        rate: float | None,
    ) -> None:
        self.generator = generator
        self.http = http
        self.path = path
        self.labels = labels
        self.requests = requests
        self.rate = rate
        self.t0 = time.monotonic()
        self.deadline = None if duration is None else self.t0 + duration
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.next_index = 0
        self.predictions: list[Prediction] = []
        self.ok = 0
        self.failed = 0
        self.last_answer = self.t0
        self.failure: BaseException | None = None

    def worker(self) -> None:
        try:
            while not self.stop.is_set():
                claimed = self._claim()
                if claimed is None:
                    return
                at, sample = claimed
                wait = at - time.monotonic()
                if wait > 0 and self.stop.wait(wait):
                    return
                self._send(sample)
        except BaseException as exc:  # re-raised by run() in the caller's thread
            self.failure = exc
            self.stop.set()

    def _claim(self) -> tuple[float, Sample] | None:
        with self.lock:
            index = self.next_index
            if self.requests is not None and index >= self.requests:
                return None
            at = self.t0 + index / self.rate if self.rate else time.monotonic()
            if self.deadline is not None and max(at, time.monotonic()) >= self.deadline:
                return None
            sample = self.generator.sample(index)
            self.next_index += 1
            return at, sample

    def _send(self, sample: Sample) -> None:
        import httpx

        prediction = Prediction(sample.index, sample.record, sample.label)
        started = time.perf_counter()
        try:
            response = self.http.post(self.path, json={"dataframe_records": [sample.record]})
        except httpx.HTTPError as exc:
            prediction.error = f"{type(exc).__name__}: {exc}"
        else:
            prediction.status = response.status_code
            if response.status_code == 200:
                prediction.uuid = str(response.json()["uuid"])
            else:
                prediction.error = _error_message(response)
        answered = time.monotonic()
        if prediction.status is not None:
            prediction.latency_ms = (time.perf_counter() - started) * 1000
        prediction.answered_at = time.time()
        with self.lock:
            self.predictions.append(prediction)
            self.last_answer = max(self.last_answer, answered)
            if prediction.uuid is not None:
                self.ok += 1
            else:
                self.failed += 1
        if prediction.uuid is not None and prediction.label is not None and self.labels:
            self.labels.put(prediction, answered)


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        message = str(error.get("message") or response.text[:200])
    except (ValueError, AttributeError):
        message = response.text[:200]
    return f"{response.status_code}: {message}"


def run(
    client: Client,
    deployment: str | Mapping[str, Any],
    generator: Generator,
    *,
    requests: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    access_key: str | None = None,
    label_delay: float = 0.0,
    label_key: str = "actual_result",
    timeout: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
    source: str | None = None,
) -> Result:
    """Send ``generator``'s requests to ``deployment`` and, ``label_delay`` seconds after each
    answered prediction, its label as the delayed metric ``label_key``.

    Stops after ``requests`` requests or ``duration`` seconds, whichever comes first. With a
    ``rate``, request ``i`` leaves ``i / rate`` seconds after the start (never earlier; later
    when ``concurrency`` requests are already waiting for answers); without one, each of the
    ``concurrency`` workers sends its next request as soon as its last is answered. Returns
    once every label is delivered, so the call lasts at least ``label_delay`` longer than the
    traffic. ``on_progress`` is called from the calling thread. ``deployment`` is a name or
    the deployment as :meth:`Client.deployment` returns it; ``source`` is the name the result
    gives the source (default: the generator's).
    """
    import httpx

    if requests is None and duration is None:
        raise ValidationFailed("give a number of requests or a duration")
    if requests is not None and requests < 0:
        raise ValidationFailed("the number of requests must not be negative")
    if duration is not None and duration <= 0:
        raise ValidationFailed("the duration must be positive")
    if rate is not None and rate <= 0:
        raise ValidationFailed("the rate must be positive")
    if concurrency < 1:
        raise ValidationFailed("concurrency must be at least 1")
    if label_delay < 0:
        raise ValidationFailed("the label delay must not be negative")
    info = client.deployment(deployment) if isinstance(deployment, str) else deployment
    name = str(info["name"])
    if info.get("kind") == "batch":
        raise ValidationFailed(f"deployment {name!r} is a batch deployment: it has no endpoint")
    if info.get("status") != "deployed":
        raise ValidationFailed(
            f"deployment {name!r} is {info.get('status')}, not deployed",
            details={"deployment": name},
        )
    if info.get("auth_enabled") and not access_key:
        raise ValidationFailed(
            f"deployment {name!r} requires its access key (--access-key or MODELDECK_ACCESS_KEY)",
            details={"deployment": name},
        )
    generator.sample(0)  # a rule or a labeler that cannot work fails here, before any traffic
    planned = planned_requests(requests, duration, rate)
    headers = {"Authorization": f"Bearer {access_key}"} if access_key else {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    labels = _LabelSender(client, name, label_key, label_delay) if generator.has_labels else None
    with httpx.Client(base_url=client.url, headers=headers, timeout=timeout, limits=limits) as http:
        traffic = _Traffic(
            generator, http, f"/deployments/{name}/predict", labels, requests, duration, rate
        )

        def report(phase: Literal["traffic", "labels", "done"]) -> None:
            if on_progress is None:
                return
            pending, due = labels.pending() if labels else (0, None)
            with traffic.lock:
                ok, failed = traffic.ok, traffic.failed
            on_progress(
                Progress(
                    phase=phase,
                    sent=ok + failed,
                    ok=ok,
                    failed=failed,
                    planned=planned,
                    elapsed=time.monotonic() - traffic.t0,
                    duration=duration,
                    labels_sent=labels.sent if labels else 0,
                    labels_pending=pending,
                    next_label_in=due,
                )
            )

        workers = [
            threading.Thread(target=traffic.worker, name=f"simulate-{i}", daemon=True)
            for i in range(concurrency)
        ]
        try:
            if labels:
                labels.start()
            for worker in workers:
                worker.start()
            for worker in workers:
                while worker.is_alive():
                    report("traffic")
                    worker.join(0.1)
            if traffic.failure is not None:
                raise traffic.failure
            if labels:
                labels.close()
                while labels.is_alive():
                    report("labels")
                    labels.join(0.1)
                if labels.failure is not None:
                    raise labels.failure
            report("done")
        finally:
            traffic.stop.set()
            if labels:
                labels.abort()
            for worker in workers:
                worker.join(timeout + 1)
            if labels:
                labels.join(timeout + 1)
    predictions = sorted(traffic.predictions, key=lambda p: p.index)
    seconds = max(traffic.last_answer - traffic.t0, 1e-9)
    latencies = [p.latency_ms for p in predictions if p.status is not None]
    failures: dict[str, int] = {}
    errors: list[str] = []
    for p in predictions:
        if p.uuid is None:
            key = str(p.status) if p.status is not None else (p.error or "error").split(":")[0]
            failures[key] = failures.get(key, 0) + 1
            if p.error and p.error not in errors and len(errors) < ERRORS_KEPT:
                errors.append(p.error)
    if labels:
        errors.extend(labels.errors)
    return Result(
        deployment=name,
        seed=generator.seed,
        source=source or generator.source,
        sent=len(predictions),
        ok=traffic.ok,
        failed=traffic.failed,
        failures=failures,
        seconds=round(seconds, 3),
        rps=round(len(predictions) / seconds, 2) if predictions else 0.0,
        latency_ms=_percentiles([x for x in latencies if x is not None]),
        drift_start=generator.drift_start,
        flip_after=generator.flip_after,
        labels_sent=labels.sent if labels else 0,
        labels_failed=labels.failed if labels else 0,
        label_delay=label_delay,
        label_key=label_key,
        errors=errors,
        predictions=predictions,
    )


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50": None, "p95": None, "p99": None}
    values = np.percentile(np.asarray(latencies), [50, 95, 99])
    return {name: round(float(v), 2) for name, v in zip(("p50", "p95", "p99"), values, strict=True)}


# -- the whole thing against a platform -----------------------------------------------------


def simulate(
    client: Client,
    deployment: str,
    *,
    requests: int | None = None,
    duration: float | None = None,
    rate: float | None = None,
    concurrency: int = 4,
    seed: int | None = None,
    source: Literal["uniform", "reference", "file"] = "uniform",
    file: str | Path | pd.DataFrame | None = None,
    drifts: Sequence[FeatureDrift] = (),
    drift_start: Position = 0,
    labels: str | Rule | Labeler | None = None,
    label_noise: float = 0.0,
    flip_after: Position | None = None,
    label_delay: float = 0.0,
    label_key: str = "actual_result",
    access_key: str | None = None,
    timeout: float = 30.0,
    on_progress: Callable[[Progress], None] | None = None,
) -> Result:
    """Synthetic traffic against ``deployment`` and, with ``labels``, delayed ground truth.

    ``source``: ``"uniform"`` (each feature uniform within its range in the reference data, as
    the lab does), ``"reference"`` (reference rows drawn with replacement) or ``"file"``
    (``file``'s rows in order, cycling; a CSV or Parquet path, or a DataFrame). The reference is
    the deployment's (at most 10,000 of its rows, sampled with the seed).

    ``labels``: ``"reference"`` (the drawn reference row's target), ``"model"`` (the
    deployment's registered model, loaded here: :func:`model_labeler`), ``"file:COLUMN"``,
    ``"rule:EXPR"`` (:class:`Rule`), a :class:`Rule` or function, or None for no ground truth.

    ``seed`` (default: a random one, reported in the result) makes the requests and labels
    reproducible; the rest is as :class:`Generator` and :func:`run` describe.
    """
    if seed is None:
        seed = secrets.randbelow(2**31)
    info = client.deployment(deployment)
    total = planned_requests(requests, duration, rate)
    kinds = {"uniform": "uniform", "reference": "sample", "file": "cycle"}
    if source not in kinds:
        raise ValidationFailed(f"unknown source {source!r}: uniform, reference or file")
    label_option: LabelOption
    target: str | None = None
    features: list[str] | None = None
    if source == "file":
        if file is None:
            raise ValidationFailed("the file source needs a file", details={"field": "file"})
        data = file if isinstance(file, pd.DataFrame) else _read_file(Path(file))
    else:
        if file is not None:
            raise ValidationFailed("a file is read only by the file source (source='file')")
        data, target, features = _reference(client, deployment, seed)
    if isinstance(labels, str):
        kind, _, argument = labels.partition(":")
        if labels == "reference":
            if source != "reference":
                raise ValidationFailed(
                    "labels from the reference come with its rows: use the reference source",
                    details={"field": "labels"},
                )
            if target is None:
                raise ValidationFailed(
                    f"the reference data of {deployment!r} has no target column; set one with "
                    "'modeldeck reference set NAME FILE --target-column COLUMN'",
                    details={"field": "labels"},
                )
            label_option = "target"
        elif kind == "file" and argument:
            if source != "file":
                raise ValidationFailed(
                    "labels from a file column come with the file's rows: use the file source",
                    details={"field": "labels"},
                )
            target = argument
            label_option = "target"
        elif labels == "model":
            if info.get("source") != "registry":
                raise ValidationFailed(
                    f"deployment {deployment!r} does not serve a registered model",
                    details={"field": "labels"},
                )
            label_option = model_labeler(str(info["model_uri"]))
        elif kind == "rule" and argument:
            label_option = Rule(argument)
        else:
            raise ValidationFailed(
                f"unknown labels {labels!r}: reference, model, file:COLUMN or rule:EXPR",
                details={"field": "labels"},
            )
    else:
        label_option = labels
    generator = Generator(
        data,
        source=kinds[source],  # type: ignore[arg-type]
        seed=seed,
        features=features if source != "file" else None,
        target=target,
        drifts=drifts,
        drift_start=drift_start,
        labels=label_option,
        label_noise=label_noise,
        flip_after=flip_after,
        total=total,
    )
    return run(
        client,
        info,
        generator,
        requests=requests,
        duration=duration,
        rate=rate,
        concurrency=concurrency,
        access_key=access_key,
        label_delay=label_delay,
        label_key=label_key,
        timeout=timeout,
        on_progress=on_progress,
        source=source,
    )


def _reference(
    client: Client, deployment: str, seed: int
) -> tuple[pd.DataFrame, str | None, list[str]]:
    """The deployment's reference data (a sample of at most 10,000 rows), its target column
    and its features."""
    summary = client.reference(deployment, rows=REFERENCE_ROWS, sample=True, seed=seed % 2**32)
    columns = [c["name"] for c in summary["columns"]]
    frame = pd.DataFrame.from_records(summary["sample"], columns=columns)
    for column in summary["columns"]:
        if column["kind"] == "numeric":
            frame[column["name"]] = pd.to_numeric(frame[column["name"]])
    skip = {summary.get("target_column"), summary.get("prediction_column")}
    return frame, summary.get("target_column"), [c for c in columns if c not in skip]


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix == ".csv":
            return pd.read_csv(path)
    except Exception as exc:  # the readers raise many types for malformed files
        raise ValidationFailed(f"could not read {path}: {exc}", details={"field": "file"}) from exc
    raise ValidationFailed(
        f"the file must be .csv or .parquet, not {path.name!r}", details={"field": "file"}
    )
