from __future__ import annotations

from starlette.testclient import TestClient

from modeldeck.replica.app import ReplicaConfig, create_replica_app
from tests.fixtures import SumModel


def _client(model: SumModel) -> TestClient:
    model.load()
    config = ReplicaConfig(deployment="d", replica=1, model_uri="models:/m/1", model_version="1")
    return TestClient(create_replica_app(config, model))


def test_predict_answers_prediction_uuid_and_headers() -> None:
    with _client(SumModel()) as client:
        r = client.post("/predict", json={"inputs": [[1, 2], [3, 4]]})
        assert r.status_code == 200
        body = r.json()
        assert body["prediction"] == [3.0, 7.0]
        assert r.headers["x-prediction-id"] == body["uuid"]
        assert r.headers["x-modeldeck-replica"] == "1"
        other = client.post("/predict", json={"inputs": [[1, 2]]}).json()["uuid"]
        assert other != body["uuid"]


def test_health_reports_ready_only_when_loaded() -> None:
    model = SumModel()
    with _client(model) as client:
        assert client.get("/health").json()["status"] == "ready"
        model.ready = False
        assert client.get("/health").status_code == 503


def test_errors_have_the_one_shape() -> None:
    with _client(SumModel()) as client:
        cases = {
            b"{nope": (400, "invalid_json"),
            b'{"inputs": [[1]]}': (422, "validation_failed"),
            b'{"inputs": [[-1, 1]]}': (500, "model_error"),
            b'{"other": 1}': (400, "bad_request"),
        }
        for body, (status, code) in cases.items():
            r = client.post("/predict", content=body)
            assert r.status_code == status, body
            error = r.json()["error"]
            assert error["code"] == code
            assert set(error) == {"code", "message", "details"}
        assert (
            "negative input"
            in client.post("/predict", json={"inputs": [[-1, 1]]}).json()["error"]["message"]
        )


def _tracking_client(tmp_path, deployment_id: str):  # type: ignore[no-untyped-def]
    from modeldeck.records.model_metrics import ModelMetrics
    from modeldeck.records.writer import GroupWriter
    from modeldeck.store import Store
    from tests.fixtures import add_deployment

    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    add_deployment(store, "dep-1", "d")
    metrics = ModelMetrics(store)
    writer = GroupWriter(metrics)
    writer.start()
    model = SumModel()
    model.load()
    config = ReplicaConfig(
        deployment="d",
        replica=0,
        model_uri="models:/m/1",
        model_version="1",
        deployment_id=deployment_id,
        track_metrics=True,
    )
    return TestClient(create_replica_app(config, model, writer)), metrics, writer


def test_predictions_are_committed_before_they_are_answered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from modeldeck.records.model_metrics import Target

    client, metrics, writer = _tracking_client(tmp_path, "dep-1")
    with client:
        one = client.post("/predict", json={"inputs": [[1, 2]]}).json()
        many = client.post("/predict", json={"inputs": [[1, 2], [3, 4]]}).json()
        records = {
            r["predictionUuid"]: r["metrics"]
            for r in metrics.read(Target("dep-1", "d"), start_ms=0).metrics
        }
    writer.stop()
    assert records[one["uuid"]] == {"input": {"a": 1, "b": 2}, "output": 3.0}
    assert records[many["uuid"]] == {
        "input": [{"a": 1, "b": 2}, {"a": 3, "b": 4}],
        "output": [3.0, 7.0],
    }


def test_a_prediction_that_cannot_be_recorded_is_not_answered(tmp_path) -> None:  # type: ignore[no-untyped-def]
    client, metrics, writer = _tracking_client(tmp_path, "no-such-deployment")  # FK fails
    with client:
        r = client.post("/predict", json={"inputs": [[1, 2]]})
    writer.stop()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "unavailable"
    assert "prediction" not in r.json()
    from modeldeck.records.model_metrics import Target

    assert metrics.count(Target("no-such-deployment", "x")) == 0


def test_a_nul_character_is_refused_before_it_can_spoil_a_group_commit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's JSONB cannot hold U+0000: a record with one would fail the group commit
    of every prediction it shares a group with, so it is a 422 before it joins one."""
    from modeldeck.records.model_metrics import ModelMetrics, Target
    from modeldeck.records.writer import GroupWriter
    from modeldeck.replica.function import PythonFunction
    from modeldeck.store import Store
    from tests.fixtures import add_deployment

    (tmp_path / "echo.py").write_text(
        "def predict(args):\n    return {'echo': args.get('text'), 'tail': args.get('tail')}\n"
    )
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    store.migrate()
    add_deployment(store, "dep-1", "d")
    metrics = ModelMetrics(store)
    writer = GroupWriter(metrics)
    writer.start()
    echo = PythonFunction(str(tmp_path / "echo.py"), "predict")
    echo.load()
    config = ReplicaConfig(
        deployment="d", replica=0, model_uri="", model_version="1", deployment_id="dep-1",
        track_metrics=True, source="file",
    )  # fmt: skip
    with TestClient(create_replica_app(config, echo, writer)) as client:
        refused = client.post("/predict", content=b'{"text": "a\\u0000b"}')
        nested = client.post("/predict", content=b'{"tail": {"k\\u0000": 1}}')
        literal = client.post("/predict", content=b'{"text": "a\\\\u0000b"}')  # a backslash
        fine = client.post("/predict", json={"text": "plain"})
    writer.stop()
    for r in (refused, nested):
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"] == {"field": "input"}
        assert "NUL" in r.json()["error"]["message"]
    assert literal.status_code == 200 and literal.json()["prediction"]["echo"] == "a\\u0000b"
    assert fine.status_code == 200
    stored = {r["predictionUuid"] for r in metrics.read(Target("dep-1", "d"), start_ms=0).metrics}
    assert stored == {literal.json()["uuid"], fine.json()["uuid"]}
