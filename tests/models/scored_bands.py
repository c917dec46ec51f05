"""An MLflow model-from-code answering a DataFrame of several columns per row: a class label, a
score and a band (text). Used by the flavour tests (tests/flavours.py)."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class ScoredBands(PythonModel):
    """Iris by petal length alone: the label, a score in [0, 1] and a band."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:  # type: ignore[no-untyped-def]
        petal = model_input["petal_length"].astype(float)
        label = (petal >= 2.5).astype("int64") + (petal >= 4.9).astype("int64")
        score = (petal / 7.0).clip(0.0, 1.0).round(4)
        band = label.map({0: "short", 1: "medium", 2: "long"})
        return pd.DataFrame({"label": label, "score": score, "band": band})


mlflow.models.set_model(ScoredBands())
