from __future__ import annotations

from starlette.testclient import TestClient

from modeldeck.serving.replica import ReplicaConfig, create_replica_app
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
