"""What labels look like and how they are made wrong: a :class:`LabelSpace` (classes, or a
regression's mean and spread) that flips and noises labels; labels from an MLflow model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from modeldeck.errors import ValidationFailed
from modeldeck.simulate.values import missing, plain, sort_key

MAX_CLASSES = 50

Labeler = Callable[[pd.DataFrame], Sequence[Any]]
LabelOption = Literal["target"] | Labeler | None


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
        return [plain(v) for v in np.asarray(output).ravel().tolist()]

    return label


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
        values = [plain(v) for v in labels if not missing(v)]
        distinct = set(values)
        whole = all(
            isinstance(v, str | bool | int) or (isinstance(v, float) and v.is_integer())
            for v in distinct
        )
        if whole and len(distinct) <= MAX_CLASSES:
            return cls("classification", classes=tuple(sorted(distinct, key=sort_key)))
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
            return None if missing(label) else 2 * self.mean - float(label)
        position = self._position(label)
        return label if position is None else self.classes[(position + 1) % len(self.classes)]

    def noisy(self, label: Any, draw: float, pick: int, gauss: float, noise: float) -> Any:
        """Classification: another class, chosen uniformly, when ``draw < noise``.
        Regression: plus gaussian noise with a standard deviation of ``noise`` times the
        labels' own."""
        if self.task == "regression":
            return None if missing(label) else float(label) + gauss * noise * self.std
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
