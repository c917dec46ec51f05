"""Prediction records read back as Cloudera ML shows them (``compat/cml_records.py``), on both
stores: which CML deployment each record belongs to, filtering by any combination of model,
build and deployment CRN with time bounds, ``prediction`` for registry deployments, paging.

The records are stored as replicas store them (under the modeldeck deployment, with the model
version and time that made them); the flows against a real platform are in
``tests/integration/test_cml_compat.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeldeck import metrics as sdk
from modeldeck.compat import cml
from modeldeck.compat.cml_records import CmlRecords, Serving, serving_at
from modeldeck.crn import build_crn, deployment_crn, model_crn
from modeldeck.errors import BadRequest, NotFound, ValidationFailed
from modeldeck.records.model_metrics import ModelMetrics
from modeldeck.records.sdk_backends import target_of
from modeldeck.store import Store
from modeldeck.store.schema import (
    CmlModelBuildRow,
    CmlModelDeploymentRow,
    CmlModelRow,
    DeploymentRow,
)
from tests.fixtures import add_deployment

INPUT = {"petal_length": 1.4}


def _uuid(n: int) -> str:
    return f"00000000-0000-7000-8000-{n:012d}"


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    if store_url.startswith("sqlite"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = Store(store_url)
    store.migrate()
    yield store
    store.close()


def _record(store: Store, deployment_id: str, n: int, version: str, at_ms: int) -> None:
    with store.read() as session:
        target = target_of(session.get_one(DeploymentRow, deployment_id))
    ModelMetrics(store).record(
        target,
        [
            {
                "uuid": _uuid(n),
                "start_timestamp_ms": at_ms - 1,
                "end_timestamp_ms": at_ms,
                "metrics": {"input": INPUT, "output": n},
                "model_version": version,
            }
        ],
    )


@pytest.fixture()
def history(store: Store) -> dict[str, str]:
    """A CML model served as modeldeck deployment ``x``: deployment d1 (build b1, version 1)
    live at 1000, d2 (build b2, version 2) at 2000, d1 restarted at 3000. Predictions: 1 (v1
    at 1500), 2 (v1 at 2100, while version 2 rolled out), 3 (v2 at 2500), 4 (v1 at 3500),
    5 (v2 at 3100, while version 1 rolled back in). A second model from the same registered
    model, never deployed, and modeldeck's own deployment ``y`` of iris (prediction 6)."""
    add_deployment(store, "x", "iris-cml", crn=deployment_crn("x"), model_name="iris")
    add_deployment(store, "y", "iris-own", crn=deployment_crn("y"), model_name="iris")
    with store.write() as session:
        for model_id, project in (("m1", "lab"), ("m2", "other")):
            session.add(
                CmlModelRow(
                    id=model_id, project_id=project, name="iris", description="",
                    deployment_name=f"iris-{model_id}", registered_model_id="iris",
                    auth_enabled=True,
                )
            )  # fmt: skip
        session.flush()
        for build_id, version in (("b1", "1"), ("b2", "2")):
            session.add(
                CmlModelBuildRow(
                    id=build_id, model_id="m1", project_id="lab", model_name="iris",
                    model_version=version, model_uri="", status="built", status_message="",
                )
            )  # fmt: skip
        session.flush()
        for row_id, build_id, since in (("d1", "b1", [1000, 3000]), ("d2", "b2", [2000])):
            session.add(
                CmlModelDeploymentRow(
                    id=row_id, model_id="m1", build_id=build_id, project_id="lab",
                    crn=deployment_crn(row_id), deployment_id="x", live_since_ms=since,
                    replicas=1, environment={}, status="stopped", status_message="",
                )
            )  # fmt: skip
    for n, version, at in ((1, "1", 1500), (2, "1", 2100), (3, "2", 2500), (4, "1", 3500),
                           (5, "2", 3100)):  # fmt: skip
        _record(store, "x", n, version, at)
    _record(store, "y", 6, "1", 1500)
    return {
        "model": model_crn("m1"),
        "other_model": model_crn("m2"),
        "b1": build_crn("b1"),
        "b2": build_crn("b2"),
        "d1": deployment_crn("d1"),
        "d2": deployment_crn("d2"),
        "x": deployment_crn("x"),
        "y": deployment_crn("y"),
    }


def _read(store: Store, **query: Any) -> list[dict[str, Any]]:
    query.setdefault("end_ms", 10_000)
    return list(CmlRecords(store).iter(**query))


def _numbers(records: list[dict[str, Any]]) -> list[int]:
    return sorted(int(r["predictionUuid"][-12:]) for r in records)


def test_each_record_carries_the_crns_of_the_deployment_that_made_it(
    store: Store, history: dict[str, str]
) -> None:
    records = {int(r["predictionUuid"][-12:]): r for r in _read(store, model_crn=history["model"])}
    assert sorted(records) == [1, 2, 3, 4, 5]  # every deployment of the model, none of y's
    made_by = {n: (r["modelDeploymentCrn"], r["modelBuildCrn"]) for n, r in records.items()}
    assert made_by == {
        1: (history["d1"], history["b1"]),
        2: (history["d1"], history["b1"]),  # version 1 still served while version 2 rolled out
        3: (history["d2"], history["b2"]),
        4: (history["d1"], history["b1"]),
        5: (history["d2"], history["b2"]),
    }
    assert {r["modelCrn"] for r in records.values()} == {history["model"]}
    # a registry deployment reads back as Cloudera ML's generated function records it
    assert records[3]["metrics"] == {"prediction": 3, "input": INPUT}
    assert list(records[3]["metrics"]) == ["prediction", "input"]


def test_any_combination_of_crns_and_time_bounds(store: Store, history: dict[str, str]) -> None:
    h = history
    assert _numbers(_read(store, model_build_crn=h["b1"])) == [1, 2, 4]
    assert _numbers(_read(store, model_build_crn=h["b2"])) == [3, 5]
    assert _numbers(_read(store, model_deployment_crn=h["d2"])) == [3, 5]
    assert _numbers(_read(store, model_crn=h["model"], model_deployment_crn=h["d1"])) == [1, 2, 4]
    assert _numbers(_read(store, model_crn=h["model"], model_build_crn=h["b2"])) == [3, 5]
    assert _read(store, model_build_crn=h["b1"], model_deployment_crn=h["d2"]) == []
    three = _read(store, model_crn=h["model"], model_build_crn=h["b1"],
                  model_deployment_crn=h["d1"], start_ms=2000, end_ms=3200)  # fmt: skip
    assert _numbers(three) == [2]
    assert _numbers(_read(store, model_crn=h["model"], start_ms=2000, end_ms=3200)) == [2, 3, 5]
    # another model from the same registered model has a CRN of its own, and no records
    assert h["other_model"] != h["model"]
    assert _read(store, model_crn=h["other_model"]) == []
    # the modeldeck deployment's own CRN: all its records, as the CML deployments made them
    everything = _read(store, model_deployment_crn=h["x"])
    assert _numbers(everything) == [1, 2, 3, 4, 5]
    assert {r["modelDeploymentCrn"] for r in everything} == {h["d1"], h["d2"]}
    # modeldeck's own deployments keep their CRNs and are found by them
    [own] = _read(store, model_deployment_crn=h["y"])
    assert own["modelDeploymentCrn"] == h["y"] and own["modelCrn"].endswith("/model/iris")
    assert own["metrics"] == {"prediction": 6, "input": INPUT}
    assert _numbers(_read(store, model_build_crn=own["modelBuildCrn"])) == [6]


def test_pages_and_errors(store: Store, history: dict[str, str]) -> None:
    records = CmlRecords(store)
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = records.page(
            model_deployment_crn=history["x"], end_ms=10_000, limit=2, cursor=cursor
        )
        seen.extend(page)
        pages += 1
        if cursor is None:
            break
    assert pages == 3 and [r["predictionUuid"] for r in seen] == [
        r["predictionUuid"] for r in _read(store, model_deployment_crn=history["x"])
    ]
    with pytest.raises(BadRequest, match="model_crn, model_build_crn or model_deployment_crn"):
        records.page()
    with pytest.raises(ValidationFailed, match="NUL") as refused:
        records.page(model_build_crn="crn:\x00")
    assert refused.value.details == {"field": "model_build_crn"}
    with pytest.raises(ValidationFailed, match="NUL"):
        records.track_aggregate({"a": 1}, 0, 1, "crn:\x00")
    for cursor in ("no-bar", "|1:x", "x|1:\x00"):
        with pytest.raises(ValidationFailed, match="cursor"):
            records.page(model_deployment_crn=history["x"], cursor=cursor)
    for field in ("model_crn", "model_build_crn", "model_deployment_crn"):
        with pytest.raises(NotFound) as caught:
            records.page(**{field: "crn:cdp:ml:::workspace:modeldeck/model/nope"})
        assert caught.value.details == {field: "crn:cdp:ml:::workspace:modeldeck/model/nope"}


def test_aggregates_tracked_by_a_deployment_crn_read_back_with_it(
    store: Store, history: dict[str, str]
) -> None:
    records = CmlRecords(store)
    records.track_aggregate({"accuracy": 0.9}, 3200, 3900, history["d1"])
    found = _read(store, model_build_crn=history["b1"])
    [aggregate] = [r for r in found if not r["predictionUuid"]]
    assert aggregate["modelDeploymentCrn"] == history["d1"]
    assert aggregate["metrics"] == {"accuracy": 0.9}
    with pytest.raises(NotFound):
        records.track_aggregate({"accuracy": 0.9}, 0, 1, deployment_crn("nope"))


def test_cml_read_metrics_reads_the_local_store(
    store_url: str, history: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``cml.metrics_v1.read_metrics`` without a platform URL reads the store directly."""
    monkeypatch.delenv("MODELDECK_URL", raising=False)
    monkeypatch.setenv("MODELDECK_STORE_URL", store_url)
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(tmp_path / "data"))
    sdk.configure()
    try:
        found = cml.read_metrics(model_crn=history["model"], end_timestamp_ms=10_000)
        assert _numbers(found["metrics"]) == [1, 2, 3, 4, 5]
        built = cml.read_metrics(model_build_crn=history["b2"], end_timestamp_ms=10_000)
        assert _numbers(built["metrics"]) == [3, 5]
        with pytest.raises(BadRequest):
            cml.read_metrics()
    finally:
        sdk.configure()


def test_the_deployment_a_record_belongs_to() -> None:
    def serving(since: int, version: str, name: str) -> Serving:
        return Serving(since, version, name, f"build-{name}", "model", True)

    servings = [serving(1000, "1", "d1"), serving(2000, "2", "d2"), serving(3000, "1", "d3")]
    assert serving_at([], "1", 5) is None
    assert serving_at(servings, "1", 500).deployment_crn == "d1"  # before any: the first
    assert serving_at(servings, "1", 2500).deployment_crn == "d1"  # its version's latest
    assert serving_at(servings, "2", 2500).deployment_crn == "d2"
    assert serving_at(servings, "1", 3000).deployment_crn == "d3"
    assert serving_at(servings, "3", 2500).deployment_crn == "d2"  # no such version: latest
