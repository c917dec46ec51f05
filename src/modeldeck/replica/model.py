"""The model runtime interface a replica serves, and its MLflow implementation.

A runtime loads once (``load``), builds its input from the rows of one batch (``make_input``),
predicts on it (``predict``) and releases what it holds (``unload``); ``ready`` says whether it
can take traffic. Only :class:`MlflowModel` imports MLflow.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Protocol

from modeldeck.replica.codecs import (
    ColumnSpec,
    TensorInput,
    dataframe,
    signature_columns,
    signature_tensor,
    tensor_array,
)

log = logging.getLogger("modeldeck.replica")

NUMERIC = {"double", "float", "long", "integer"}
PROBABILITY_DIGITS = 6
# scikit-learn classifiers whose ``predict`` is the class of highest ``predict_proba``: the
# probabilities are the scores ``predict`` takes the arg max of (trees, forests,
# histogram boosting) or a monotone map of them (a softmax or logistic of the decision function,
# normalised likelihoods). Where two probabilities tie, rounding may have merged scores that
# differ, so ``predict`` itself decides those rows' labels (``labels_from_probabilities``).
ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.linear_model.LogisticRegression",
        "sklearn.linear_model.LogisticRegressionCV",
        "sklearn.tree.DecisionTreeClassifier",
        "sklearn.tree.ExtraTreeClassifier",
        "sklearn.ensemble.RandomForestClassifier",
        "sklearn.ensemble.ExtraTreesClassifier",
        "sklearn.ensemble.GradientBoostingClassifier",
        "sklearn.ensemble.HistGradientBoostingClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.naive_bayes.MultinomialNB",
        "sklearn.naive_bayes.BernoulliNB",
        "sklearn.naive_bayes.ComplementNB",
        "sklearn.naive_bayes.CategoricalNB",
        "sklearn.neural_network.MLPClassifier",
    }
)


class Scored:
    """A batch's predicted labels with their class probabilities, one ``{class: probability}``
    per row rounded to six digits; slices by rows like both.

    The records are made once per batch (one rounding and one ``tolist`` for all its rows),
    not once per request of it.
    """

    def __init__(self, labels: Any, records: list[dict[str, float]]) -> None:
        self.labels = labels
        self.records = records

    @classmethod
    def of(cls, labels: Any, probabilities: Any, classes: list[str]) -> Scored:
        """From ``predict_proba``'s array (NumPy's rounding: 1.9 µs for one row where Python's
        ``round`` per value took 2.7, 3.1 for four where it took 10)."""
        rounded = probabilities.round(PROBABILITY_DIGITS).tolist()
        return cls(labels, [dict(zip(classes, row, strict=True)) for row in rounded])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, rows: slice) -> Scored:
        return Scored(self.labels[rows], self.records[rows])


class ModelRuntime(Protocol):
    ready: bool
    input_columns: list[ColumnSpec] | None
    input_tensor: TensorInput | None

    def load(self) -> None: ...

    def make_input(self, columns: list[str] | None, rows: list[list[Any]]) -> Any: ...

    def predict(self, data: Any) -> Any: ...

    def unload(self) -> None: ...


class MlflowModel:
    """A registered MLflow model, loaded as a pyfunc.

    scikit-learn models with an all-numeric signature take a fast path: the estimator the pyfunc
    wraps is called with a NumPy array in the estimator's own feature order, as the pyfunc would
    call it with a DataFrame, skipping DataFrame construction and schema enforcement (which the
    replica has already done while decoding). Everything else goes through ``pyfunc.predict``:
    with a DataFrame in the signature's dtypes, or, for a signature of one tensor (PyTorch,
    Keras...), with a NumPy array of the tensor's dtype and shape (MLflow refuses a float64
    array for a float32 tensor, and JSON numbers decode as float64).
    """

    def __init__(self, model_uri: str, tracking_uri: str | None = None) -> None:
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.ready = False
        self.input_columns: list[ColumnSpec] | None = None
        self.input_tensor: TensorInput | None = None
        self.fast_path = False
        self._pyfunc: Any = None
        self._estimator_fn: Any = None
        self._proba_fn: Any = None
        self._order: list[int] | None = None
        self.classes: list[str] | None = None
        """Set when the model gives class probabilities (a scikit-learn classifier)."""
        self._argmax_classes: Any = None
        """The estimator's ``classes_`` when its labels follow from its probabilities."""

    def load(self) -> None:
        import mlflow

        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
        self._pyfunc = mlflow.pyfunc.load_model(self.model_uri)
        signature = self._pyfunc.metadata.signature
        if signature is not None and signature.inputs is not None:
            inputs = {"inputs": signature.inputs.to_dict()}
            self.input_columns = signature_columns(inputs)
            self.input_tensor = signature_tensor(inputs)
        self._choose_fast_path()
        self.ready = True

    def _choose_fast_path(self) -> None:
        conf = self._pyfunc.metadata.flavors.get("python_function", {})
        specs = self.input_columns
        if conf.get("loader_module") != "mlflow.sklearn" or not specs:
            return
        if any(s.type not in NUMERIC for s in specs):
            return
        estimator = self._pyfunc.get_raw_model()
        fn = getattr(estimator, conf.get("predict_fn", "predict"), None)
        if fn is None or not takes_arrays(estimator):
            return
        names = [s.name for s in specs]
        fitted = getattr(estimator, "feature_names_in_", None)
        if fitted is not None:
            fitted = [str(f) for f in fitted]
            if sorted(fitted) != sorted(names):
                return
            self._order = None if fitted == names else [names.index(f) for f in fitted]
        # Fitted on a DataFrame, called with an array in the same column order: sklearn's
        # feature-name check has nothing left to catch.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        self._estimator_fn = fn
        proba = getattr(estimator, "predict_proba", None)
        classes = getattr(estimator, "classes_", None)
        if (
            conf.get("predict_fn", "predict") == "predict"
            and proba is not None
            and classes is not None
        ):
            self._proba_fn = proba
            self.classes = [str(c) for c in classes]
            if predicts_argmax(estimator):
                self._argmax_classes = classes
        self.fast_path = True
        log.info("serving %s through the scikit-learn fast path", self.model_uri)

    def make_input(self, columns: list[str] | None, rows: list[list[Any]]) -> Any:
        if self.fast_path:
            import numpy as np

            array = np.asarray(rows, dtype=np.float64)
            return array[:, self._order] if self._order is not None else array
        if self.input_tensor is not None:
            return tensor_array(rows, self.input_tensor)
        return dataframe(columns, rows, self.input_columns)

    def predict(self, data: Any) -> Any:
        if self.fast_path:
            return self._estimator_fn(data)
        return self._pyfunc.predict(data)

    def predict_scored(self, data: Any) -> Scored:
        """Labels and class probabilities (only when ``classes`` is set)."""
        assert self._proba_fn is not None and self.classes is not None
        probabilities = self._proba_fn(data)
        labels = None
        if self._argmax_classes is not None:
            # One call instead of two: half the cost of scoring a small batch.
            labels = labels_from_probabilities(probabilities, self._argmax_classes)
        if labels is None:
            labels = self._estimator_fn(data)
        return Scored.of(labels, probabilities, self.classes)

    def unload(self) -> None:
        self._pyfunc = None
        self._estimator_fn = None
        self._proba_fn = None
        self._argmax_classes = None
        self.ready = False


def takes_arrays(estimator: Any) -> bool:
    """Whether ``estimator`` answers a NumPy array as it answers the DataFrame it was fitted on.

    Not when any estimator inside it is code of its own (not scikit-learn's), a
    ``FunctionTransformer`` with a function (which may read columns by name), or a
    ``ColumnTransformer`` that picks columns by name or by a callable: given an array, those
    raise, and every request would fail. Such models go through the pyfunc.
    """
    stack, seen = [estimator], set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kind = type(current)
        if not kind.__module__.startswith("sklearn."):
            return False
        if kind.__name__ == "FunctionTransformer" and (
            getattr(current, "func", None) is not None
            or getattr(current, "inverse_func", None) is not None
        ):
            return False
        if kind.__name__ == "ColumnTransformer" and not all(
            _positional(columns) for _, _, columns in getattr(current, "transformers", [])
        ):
            return False
        for value in current.get_params(deep=False).values():
            for item in value if isinstance(value, list | tuple) else [value]:
                for part in item if isinstance(item, tuple) else [item]:
                    if hasattr(part, "get_params") and not isinstance(part, type):
                        stack.append(part)
    return True


def _positional(columns: Any) -> bool:
    """A ``ColumnTransformer`` selection that works on an array: positions, a slice of
    positions or a boolean mask."""
    if isinstance(columns, slice):
        return all(v is None or isinstance(v, int) for v in (columns.start, columns.stop))
    if isinstance(columns, bool | str) or callable(columns):
        return False
    if isinstance(columns, int):
        return True
    dtype = getattr(columns, "dtype", None)
    if dtype is not None:
        return dtype.kind in "iub"
    return isinstance(columns, list | tuple) and all(
        isinstance(c, int) and not isinstance(c, str) for c in columns
    )


def predicts_argmax(estimator: Any) -> bool:
    """Whether ``estimator.predict`` is the class of highest ``predict_proba`` (see
    ``ARGMAX_CLASSIFIERS``); a pipeline is judged by its last step."""
    steps = getattr(estimator, "steps", None)
    if isinstance(steps, list) and steps and type(estimator).__name__ == "Pipeline":
        estimator = steps[-1][1]
    kind = type(estimator)
    if not kind.__module__.startswith("sklearn."):
        return False
    classes = getattr(estimator, "classes_", None)
    # Multi-output classifiers keep one array of classes per output.
    if getattr(classes, "ndim", None) != 1:
        return False
    return f"sklearn.{kind.__module__.split('.')[1]}.{kind.__name__}" in ARGMAX_CLASSIFIERS


def labels_from_probabilities(probabilities: Any, classes: Any) -> Any:
    """``classes`` at each row's highest probability; ``None`` when a row's highest is tied
    (the scores behind equal probabilities may differ: ``predict`` must decide)."""
    import numpy as np

    if probabilities.ndim != 2 or probabilities.shape[1] != len(classes):
        return None
    top = probabilities.max(axis=1, keepdims=True)
    if np.count_nonzero(probabilities == top) != probabilities.shape[0]:
        return None
    return classes[probabilities.argmax(axis=1)]
