"""The CI/CD pipeline's stages, one subcommand each, run in this order:

    python examples/ci/pipeline.py train      # MLflow runs, the best by hold-out accuracy
    python examples/ci/pipeline.py register   # a new version of the registered model
    python examples/ci/pipeline.py deploy     # a candidate deployment of that version
    python examples/ci/pipeline.py smoke      # the endpoint answers and records predictions
    python examples/ci/pipeline.py gate       # hold-out accuracy and live error rate thresholds
    python examples/ci/pipeline.py promote    # move the alias (champion) to the version
    python examples/ci/pipeline.py cleanup    # delete the candidate deployment (always run)

Every stage exits non-zero when it fails, so the CI system stops the pipeline there. Stages hand
their results to the next through ``$PIPELINE_STATE_DIR`` (default ``ci-state``): keep it as a
job artifact between jobs. It holds no secret: stages that call the candidate's endpoint take a
fresh access key (``rotate-key``) with the control-plane API key.

Settings (environment): ``MODELDECK_URL``, ``MODELDECK_API_KEY`` (a CI secret),
``MLFLOW_TRACKING_URI`` (a tracking server that the runners and the platform both reach),
``MODEL_NAME`` (``iris_classifier``), ``PROMOTE_ALIAS`` (``champion``), ``GATE_MIN_ACCURACY``
(0.9), ``GATE_MAX_ERROR_RATE`` (0.01), ``CANDIDATE_REPLICAS`` (1); the command-line options
override them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TARGET = "target"
"""The label column of the hold-out CSV; every other column is a feature."""
LABEL = "actual_result"


# -- plumbing -----------------------------------------------------------------------------------


def env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def state_dir() -> Path:
    path = Path(env("PIPELINE_STATE_DIR", "ci-state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_state(*needed: str) -> dict[str, Any]:
    path = state_dir() / "state.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    missing = [key for key in needed if key not in state]
    if missing:
        fail(f"{path} has no {', '.join(missing)}: run the earlier stages first")
    return state


def save_state(**updates: Any) -> None:
    state = load_state()
    state.update(updates)
    (state_dir() / "state.json").write_text(json.dumps(state, indent=2) + "\n")


def fail(message: str) -> None:
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        fail("MLFLOW_TRACKING_URI is not set (the MLflow server the platform reads too)")
    return str(uri)


def local_artifacts(uri: str) -> str | None:
    """Artifacts beside a local SQLite tracking store (rather than in ./mlruns); a tracking
    server decides for itself (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def modeldeck() -> Any:
    from modeldeck import Client

    return Client()  # MODELDECK_URL, MODELDECK_API_KEY


def now_ms() -> int:
    return int(time.time() * 1000)


def holdout() -> tuple[list[dict[str, Any]], list[Any]]:
    """The hold-out rows written by train: feature records, and their labels (``target``)."""
    import pandas as pd

    frame = pd.read_csv(state_dir() / "holdout.csv")
    features = frame.drop(columns=[TARGET])
    return features.to_dict(orient="records"), frame[TARGET].tolist()


# -- stages -------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> None:
    """Train one run per C, log each to MLflow with its training data; keep the best."""
    import mlflow
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(args.experiment) is None:
        mlflow.create_experiment(args.experiment, artifact_location=local_artifacts(uri))
    mlflow.set_experiment(args.experiment)
    data = load_iris(as_frame=True)
    X = data.data.set_axis(FEATURES, axis=1)
    y = data.target.astype("int64")
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=42, stratify=y
    )
    X_test.assign(**{TARGET: y_test}).to_csv(state_dir() / "holdout.csv", index=False)
    commit = os.environ.get("CI_COMMIT_SHA") or os.environ.get("GITHUB_SHA") or "local"
    best: dict[str, Any] | None = None
    for c in args.c:
        params = {"C": c, "max_iter": 500}
        with mlflow.start_run(run_name=f"ci-logreg-C{c:g}") as run:
            mlflow.set_tag("git_commit", commit)
            model = LogisticRegression(**params).fit(X_train, y_train)
            accuracy = float((model.predict(X_test) == y_test).mean())
            mlflow.log_params(params)
            mlflow.log_metric("accuracy", accuracy)
            info = mlflow.sklearn.log_model(
                model,
                name="model",
                signature=infer_signature(X_train, model.predict(X_train)),
                input_example=X_train.head(3),
                # Stated rather than inferred: inferring them costs seconds per model.
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            )
            with tempfile.TemporaryDirectory() as tmp:  # the drift baseline, kept with the run
                reference = Path(tmp) / "reference_data.parquet"
                X_train.assign(target=y_train).to_parquet(reference, index=False)
                mlflow.log_artifact(str(reference))
        print(f"run {run.info.run_id} C={c:g}: hold-out accuracy {accuracy:.4f}")
        if best is None or accuracy > best["accuracy"]:
            best = {"run_id": run.info.run_id, "model_uri": info.model_uri, "accuracy": accuracy}
    assert best is not None
    print(f"best: run {best['run_id']} with accuracy {best['accuracy']:.4f}")
    save_state(trained=best, commit=commit)


def register(args: argparse.Namespace) -> None:
    """Register the best run's model as a new version of MODEL_NAME."""
    import mlflow

    trained = load_state("trained")["trained"]
    mlflow.set_tracking_uri(tracking_uri())
    version = mlflow.register_model(trained["model_uri"], args.model)
    mlflow.MlflowClient().set_model_version_tag(
        args.model, version.version, "training_accuracy", f"{trained['accuracy']:.4f}"
    )
    print(f"registered {args.model} version {version.version} (run {trained['run_id']})")
    save_state(model=args.model, version=str(version.version))


def deploy(args: argparse.Namespace) -> None:
    """Deploy the registered version as this pipeline's candidate and wait until it runs."""
    from modeldeck.client import ApiError

    state = load_state("model", "version")
    run = os.environ.get("CI_PIPELINE_ID") or os.environ.get("GITHUB_RUN_ID")
    name = f"{state['model']}-candidate" + (f"-{run}" if run else "")
    with modeldeck() as client:
        try:
            client.delete(name)  # a re-run of the same pipeline
            print(f"deleted the previous {name}")
        except ApiError as exc:
            if exc.status_code != 404:
                raise
        started = now_ms()
        client.deploy(name, state["model"], version=state["version"], replicas=args.replicas)
        deployment = client.wait(name, timeout=args.timeout)
    print(
        f"{name}: {state['model']} v{deployment.version} {deployment.status} with "
        f"{deployment.ready_replicas} replica(s) at {deployment.endpoint_url}"
    )
    save_state(deployment=name, deployed_at_ms=started)


def smoke(args: argparse.Namespace) -> None:
    """The candidate answers each request form with a prediction and a UUID, and records it."""
    state = load_state("deployment")
    name = state["deployment"]
    records, labels = holdout()
    columns = list(records[0])
    bodies: list[dict[str, Any]] = [
        {"inputs": [list(records[0].values())]},
        {"dataframe_records": [records[1]]},
        {"dataframe_split": {"columns": columns, "data": [list(records[2].values())]}},
    ]
    with modeldeck() as client:
        client.wait(name, timeout=60)
        key = client.rotate_access_key(name)
        uuids = []
        for body in bodies:
            answer = client.predict(name, body, access_key=key)
            prediction = answer.prediction
            if not (isinstance(prediction, list) and len(prediction) == 1 and answer.uuid):
                fail(f"unexpected answer to {body}: {answer}")
            if prediction[0] not in labels:
                fail(f"{prediction[0]!r} is not one of the classes {sorted(set(labels))}")
            print(f"{next(iter(body))}: prediction {prediction}, uuid {answer.uuid}")
            uuids.append(answer.uuid)
        stored = client.read_metrics(name, uuids=uuids)["metrics"]
    if len(stored) != len(uuids) or not all("output" in r["metrics"] for r in stored):
        fail(f"{len(stored)} of {len(uuids)} predictions recorded with their output")
    print(f"smoke test passed: {len(uuids)} predictions answered and recorded")


def gate(args: argparse.Namespace) -> None:
    """Hold-out accuracy (measured by modeldeck) and live error rate against thresholds."""
    from modeldeck.client import ApiError

    state = load_state("model", "version", "deployment", "deployed_at_ms")
    name = state["deployment"]
    records, targets = holdout()
    with modeldeck() as client:
        key = client.rotate_access_key(name)
        start = now_ms()
        labels: list[tuple[str, dict[str, Any]]] = []
        for record, target in zip(records, targets, strict=True):
            try:
                answer = client.predict(name, {"inputs": [record]}, access_key=key)
            except ApiError as exc:
                print(f"request failed: {exc}")
                continue
            if answer.uuid:
                labels.append((answer.uuid, {LABEL: target}))
        client.track_delayed_metrics_batch(name, labels)
        end = now_ms() + 1
        report = client.performance(name, start_ms=start, end_ms=end)
        technical = client.technical_metrics(name, start_ms=state["deployed_at_ms"], end_ms=end)

    # Realised accuracy as modeldeck joined predictions and labels; a row that got no answer
    # counts as wrong.
    labelled = sum(w["labelled"] for w in report.windows)
    right = sum(w["realised"]["accuracy"] * w["labelled"] for w in report.windows if w["labelled"])
    accuracy = right / len(records)
    totals = technical.totals
    error_rate = totals["failed"] / totals["requests"] if totals["requests"] else 0.0
    checks = [
        (
            "hold-out accuracy",
            accuracy,
            accuracy >= args.min_accuracy,
            f">= {args.min_accuracy:g}",
            f"{labelled} of {len(records)} hold-out rows answered and labelled",
        ),
        (
            "live error rate",
            error_rate,
            error_rate <= args.max_error_rate,
            f"<= {args.max_error_rate:g}",
            f"{totals['failed']} of {totals['requests']} requests failed since the deploy",
        ),
    ]
    print(f"gate for {state['model']} v{state['version']} (deployment {name}):")
    for label, value, ok, threshold, detail in checks:
        print(f"  {label:<18} {value:.4f}  {threshold:<8} {'pass' if ok else 'FAIL'}  {detail}")
    passed = all(ok for _, _, ok, _, _ in checks)
    save_state(gate={"passed": passed, "accuracy": accuracy, "error_rate": error_rate})
    if not passed:
        fail("the gate did not pass: " + ", ".join(c[0] for c in checks if not c[2]))
    print("gate passed")


def promote(args: argparse.Namespace) -> None:
    """Point the alias at the gated version, through modeldeck."""
    state = load_state("model", "version", "gate")
    if not state["gate"]["passed"]:
        fail(f"version {state['version']} did not pass the gate")
    model, version = state["model"], state["version"]
    with modeldeck() as client:
        moved = client.set_alias(model, args.alias, version)
        now = client.model(model).aliases.get(args.alias)
    if now != str(version):
        fail(f"modeldeck sees @{args.alias} -> {now}, not {version}")
    print(f"{model}@{args.alias}: {moved.previous_version or 'unset'} -> {version}")


def cleanup(args: argparse.Namespace) -> None:
    """Delete the candidate deployment, if the pipeline got that far."""
    from modeldeck.client import ApiError

    name = load_state().get("deployment")
    if not name:
        print("no candidate deployment to delete")
        return
    with modeldeck() as client:
        try:
            client.delete(name)
        except ApiError as exc:
            if exc.status_code != 404:
                raise
    print(f"deleted {name}")


STAGES: dict[str, Callable[[argparse.Namespace], None]] = {
    "train": train,
    "register": register,
    "deploy": deploy,
    "smoke": smoke,
    "gate": gate,
    "promote": promote,
    "cleanup": cleanup,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="modeldeck CI/CD stages.")
    sub = parser.add_subparsers(dest="stage", required=True)
    for name, fn in STAGES.items():
        stage = sub.add_parser(name, help=(fn.__doc__ or "").split("\n")[0])
        stage.add_argument("--model", default=env("MODEL_NAME", "iris_classifier"))
        if name == "train":
            stage.add_argument("--experiment", default=env("MLFLOW_EXPERIMENT", "iris-ci"))
            stage.add_argument("--c", type=float, nargs="+", default=[0.1, 1.0, 10.0])
        if name == "deploy":
            stage.add_argument("--replicas", type=int, default=int(env("CANDIDATE_REPLICAS", "1")))
            stage.add_argument("--timeout", type=float, default=300.0)
        if name == "gate":
            stage.add_argument(
                "--min-accuracy", type=float, default=float(env("GATE_MIN_ACCURACY", "0.9"))
            )
            stage.add_argument(
                "--max-error-rate", type=float, default=float(env("GATE_MAX_ERROR_RATE", "0.01"))
            )
        if name == "promote":
            stage.add_argument("--alias", default=env("PROMOTE_ALIAS", "champion"))
    args = parser.parse_args(argv)
    from modeldeck.client import ApiError

    try:
        STAGES[args.stage](args)
    except ApiError as exc:
        fail(f"modeldeck: {exc}")


if __name__ == "__main__":
    main()
