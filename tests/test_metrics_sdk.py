"""The metrics SDK outside a replica: dev mode and batch deployments on the local store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import modeldeck
from modeldeck import metrics
from modeldeck.errors import BadRequest, NotFound, ValidationFailed


@pytest.fixture(autouse=True)
def local_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MODELDECK_URL", raising=False)
    monkeypatch.delenv("MODELDECK_STORE_URL", raising=False)
    metrics.configure()
    yield tmp_path
    metrics.configure()


@modeldeck.model(metrics=True)
def predict(args: dict[str, float]) -> int:
    metrics.track_metric("input", args)
    result = int(args["petal_length"] > 2.5)
    metrics.track_metric("output", result)
    return result


def test_dev_mode_records_under_fixed_dev_identifiers(local_data_dir: Path) -> None:
    answer = predict({"petal_length": 4.0})
    assert answer["prediction"] == 1
    assert answer["model_deployment_crn"] == "crn:cdp:ml:::workspace:dev/model-deployment"
    metrics.track_delayed_metrics({"actual_result": 0}, answer["uuid"], dev=True)
    (record,) = metrics.read_metrics(dev=True)["metrics"]
    assert record["predictionUuid"] == answer["uuid"]
    assert record["modelCrn"] == "crn:cdp:ml:::workspace:dev/model"
    assert record["modelBuildCrn"] == "crn:cdp:ml:::workspace:dev/model-build"
    assert record["metrics"] == {"input": {"petal_length": 4.0}, "output": 1, "actual_result": 0}
    assert (local_data_dir / "dev-metrics.db").exists()
    assert not (local_data_dir / "modeldeck.db").exists(), "dev mode keeps to its own store"


def test_track_metric_outside_a_prediction_is_a_clear_error() -> None:
    with pytest.raises(BadRequest, match=r"@modeldeck\.model"):
        metrics.track_metric("x", 1)


def test_non_json_values_name_the_key() -> None:
    @modeldeck.model(metrics=True)
    def bad(args: object) -> int:
        metrics.track_metric("weights", {1, 2})
        return 0

    with pytest.raises(ValidationFailed, match=r"metrics\.weights"):
        bad({})
    assert metrics.read_metrics(dev=True) == {"metrics": []}


def test_metrics_false_skips_recording() -> None:
    @modeldeck.model(metrics=False)
    def plain(args: object) -> int:
        return 7

    answer = plain({})
    assert answer["prediction"] == 7 and len(answer["uuid"]) == 36
    assert metrics.read_metrics(dev=True) == {"metrics": []}


def test_batch_deployment_on_the_local_store(local_data_dir: Path) -> None:
    import asyncio

    from modeldeck.config import Settings
    from modeldeck.deployments.schemas import DeploymentCreate
    from modeldeck.platform import Platform

    async def create() -> None:
        platform = Platform(Settings())
        await asyncio.to_thread(platform.store.migrate)
        await platform.deployments.create(DeploymentCreate(name="nightly", kind="batch"))
        platform.store.close()

    asyncio.run(create())

    @modeldeck.model(metrics=True, deployment="nightly")
    def score(args: dict[str, float]) -> float:
        metrics.track_metric("input", args)
        return args["x"] * 2

    uuids = [score({"x": float(i)})["uuid"] for i in range(5)]
    metrics.track_delayed_metrics({"actual": 4.0}, uuids[2], deployment="nightly")
    metrics.track_aggregate_metrics({"mae": 0.1}, 0, 2**40, deployment="nightly")
    frame = metrics.read_metrics_df(deployment="nightly")
    assert list(frame["predictionUuid"])[:5] == uuids and frame.iloc[5]["predictionUuid"] == ""
    assert frame.iloc[2]["actual"] == 4.0
    with pytest.raises(NotFound):
        metrics.read_metrics(deployment="no-such")
