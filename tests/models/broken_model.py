"""An MLflow model-from-code that fails to load: a deployment of it must end ``failed``."""

import mlflow
from mlflow.pyfunc import PythonModel


class BrokenModel(PythonModel):
    def load_context(self, context):  # type: ignore[no-untyped-def]
        raise RuntimeError("this model fails to load on purpose")

    def predict(self, context, model_input: list[str], params=None) -> list[str]:  # type: ignore[no-untyped-def]
        return model_input


mlflow.models.set_model(BrokenModel())
