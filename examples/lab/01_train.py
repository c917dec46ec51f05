"""Lab 1, experiment tracking: several MLflow runs with different hyper-parameters, best by
accuracy.

Trains a logistic regression on Iris once per value of ``C`` and logs each run to MLflow: its
parameters, its accuracy on a hold-out set, the model with its signature and an input example,
and the training data as ``reference_data.parquet`` (the baseline modeldeck measures drift
against). Then asks MLflow for the most accurate run of this batch. The hold-out set is kept in
``$LAB_DIR/holdout.csv`` for step 05.

    python examples/lab/01_train.py [--c 0.01 0.1 1 10]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
from pathlib import Path

import lab
import mlflow
import sklearn
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--c", type=float, nargs="+", default=[0.01, 0.1, 1.0, 10.0], help="values of C to try"
    )
    args = parser.parse_args()

    uri = lab.tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(lab.EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment(lab.EXPERIMENT, artifact_location=lab.artifact_location(uri))
    )
    print(f"MLflow {uri}, experiment {lab.EXPERIMENT!r} (id {experiment_id})")

    data = load_iris(as_frame=True)
    X = data.data.set_axis(lab.FEATURES, axis=1)
    y = data.target.astype("int64")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=42, stratify=y
    )
    holdout = lab.lab_dir() / "holdout.csv"
    X_test.assign(target=y_test).to_csv(holdout, index=False)
    print(f"{len(X_train)} training rows, {len(X_test)} hold-out rows (kept in {holdout})")

    batch = secrets.token_hex(4)  # tags this invocation's runs
    model_uris: dict[str, str] = {}
    lab.heading(f"training {len(args.c)} runs (batch {batch})")
    for c in args.c:
        params = {"C": c, "max_iter": 500, "solver": "lbfgs"}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"logreg-C{c:g}") as run:
            mlflow.set_tag("lab_batch", batch)
            model = LogisticRegression(**params).fit(X_train, y_train)
            predicted = model.predict(X_test)
            accuracy = float(accuracy_score(y_test, predicted))
            f1 = float(f1_score(y_test, predicted, average="macro"))
            mlflow.log_params(params)
            mlflow.log_metrics({"accuracy": accuracy, "f1_macro": f1})
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X_train, model.predict(X_train)),
                input_example=X_train.head(3),
                # Stated rather than inferred: inferring them costs seconds per model.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            )
            with tempfile.TemporaryDirectory() as tmp:
                reference = Path(tmp) / "reference_data.parquet"
                X_train.assign(target=y_train).to_parquet(reference, index=False)
                mlflow.log_artifact(str(reference))
            model_uris[run.info.run_id] = info.model_uri
            print(f"run {run.info.run_id}  C={c:<6g} accuracy={accuracy:.4f}")

    # The lab's way: ask the tracking server for the best run rather than remembering it.
    runs = mlflow.search_runs(
        experiment_ids=[experiment_id],
        filter_string=f"tags.lab_batch = '{batch}'",
        order_by=["metrics.accuracy DESC", "start_time ASC"],
    )
    best = runs.iloc[0]
    run_id = str(best["run_id"])
    lab.heading("best run")
    print(
        f"run {run_id} (C={best['params.C']}) with accuracy {best['metrics.accuracy']:.4f}, "
        f"model {model_uris[run_id]}"
    )
    lab.save_state(
        experiment_id=experiment_id,
        batch=batch,
        best_run_id=run_id,
        best_model_uri=model_uris[run_id],
        best_accuracy=float(best["metrics.accuracy"]),
        best_params={"C": float(best["params.C"])},
        runs=len(runs),
    )
    print(f"state saved in {lab.state_path()}")


if __name__ == "__main__":
    main()
