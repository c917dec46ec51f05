"""Lab 2a, the model registry: register the best run's model in MLflow.

Registers the model of the run that step 01 found best as a new version of ``$LAB_MODEL``
(default ``iris_classifier``), describes it, and reads it back through modeldeck, which lists
registered models straight from MLflow (``GET /api/v1/models/{name}/versions/{version}``).

    python examples/lab/02_register.py
"""

from __future__ import annotations

import argparse

import lab
import mlflow


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    state = lab.load_state("best_run_id", "best_model_uri", "best_accuracy")
    mlflow.set_tracking_uri(lab.tracking_uri())
    registry = mlflow.MlflowClient()

    lab.heading(f"registering run {state['best_run_id']} as {lab.MODEL}")
    version = mlflow.register_model(state["best_model_uri"], lab.MODEL)
    registry.update_model_version(
        lab.MODEL,
        version.version,
        description=f"logistic regression on Iris, hold-out accuracy {state['best_accuracy']:.4f}",
    )
    print(f"registered {lab.MODEL} version {version.version} from {version.source}")

    lab.heading("as modeldeck sees it")
    with lab.client() as client:
        seen = client.model_version(lab.MODEL, version.version)
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(seen.run_metrics.items()))
    print(f"{seen.name} v{seen.version}: status {seen.status}, run {seen.run_id}")
    print(f"description: {seen.description}")
    print(f"run params: {seen.run_params}; run metrics: {metrics}")
    lab.save_state(model=lab.MODEL, version=str(version.version))


if __name__ == "__main__":
    main()
