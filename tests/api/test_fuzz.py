"""Schemathesis against the served OpenAPI spec: no 5xx, every answer as the spec says.

In process (the app behind FastAPI's TestClient, lifespan and all) with a real SQLite store, the
real MLflow registry of ``conftest`` and one real deployment of ``iris`` whose replica answers
the model endpoint. Every operation of ``/openapi.json`` gets positive and negative cases
(schemathesis' two generation modes); operations under a deployment also get cases aimed at the
real one, so generated bodies reach its routes past the 404. Checks: no server error, status code
documented, content type and body as documented, and negative data rejected.

Derandomized, so CI runs the same cases every time. ``MODELDECK_FUZZ_EXAMPLES`` (default 9) sets
the count per operation and mode, for a longer run:
``MODELDECK_FUZZ_EXAMPLES=200 pytest tests/api/test_fuzz.py``.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from modeldeck.api.app import create_app
from modeldeck.config import Settings
from tests.conftest import Registered

pytestmark = pytest.mark.slow  # make test-slow

API_KEY = "mdk_fuzz_test"
DEPLOYMENT = "fuzz"
EXAMPLES = int(os.environ.get("MODELDECK_FUZZ_EXAMPLES", "9"))
MIN_REQUESTS = 1000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# Aimed at the real deployment only where the call cannot take it away from the other cases.
DESTRUCTIVE = ("/stop", "/scale", "/access-key", "/redeploy", "/rollback", "/start")


class Fuzzed:
    def __init__(self, client: TestClient, access_key: str) -> None:
        self.client = client
        self.access_key = access_key
        self.statuses: Counter[int] = Counter()
        self.predict_statuses: Counter[int] = Counter()

    def send(self, case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url="http://testserver")
        data = kwargs.pop("data", None)
        if data is not None:
            kwargs["content"] = data.encode() if isinstance(data, str) else data
        kwargs.pop("auth", None)
        kwargs.pop("verify", None)
        response = self.client.request(**kwargs)
        self.statuses[response.status_code] += 1
        if case.path == "/deployments/{name}/predict" and case.path_parameters == {
            "name": DEPLOYMENT
        }:
            self.predict_statuses[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))


@pytest.fixture(scope="module")
def fuzzed(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fuzzed]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(
        data_dir=data_dir, mlflow_tracking_uri=mlflow_registry.tracking_uri, api_key=API_KEY
    )
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with TestClient(create_app(app_settings), raise_server_exceptions=False) as client:
        created = client.post(
            "/api/v1/deployments",
            json={"name": DEPLOYMENT, "model": "iris", "version": "1"},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 120
        while client.get(f"/api/v1/deployments/{DEPLOYMENT}", headers=auth).json()["status"] != (
            "deployed"
        ):
            assert time.monotonic() < deadline, "the fuzz deployment did not come up"
            time.sleep(0.2)
        yield Fuzzed(client, created.json()["access_key"])


def _cases(fuzzed: Fuzzed) -> Iterator[tuple[str, Any]]:
    spec = fuzzed.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    for result in schema.get_all_operations():
        operation = result.ok()
        path: str = operation.path
        model_endpoint = not path.startswith("/api/")
        headers = {"Authorization": f"Bearer {fuzzed.access_key if model_endpoint else API_KEY}"}
        aims: list[dict[str, Any] | None] = [None]
        if "{name}" in path and not path.endswith(DESTRUCTIVE) and operation.method != "delete":
            aims.append({"name": DEPLOYMENT})
        modes = [GenerationMode.POSITIVE]
        if operation.body or operation.query:  # path strings and headers have no invalid values
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            for aim in aims:
                label = f"{operation.method.upper()} {path} {mode.value}{' aimed' if aim else ''}"
                yield label, operation.as_strategy(mode, headers=headers, path_parameters=aim)


def describe(exc: BaseException) -> str:
    """The failure and, for a group (schemathesis', Hypothesis' flaky), each of its parts."""
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(f"\n  - {describe(part)}" for part in exc.exceptions)
    return text


def test_fuzz_the_served_spec(fuzzed: Fuzzed) -> None:
    failures: dict[str, str] = {}
    unsatisfiable: list[str] = []
    for label, strategy in _cases(fuzzed):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the report shows the case
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def run(case: Any) -> None:
            fuzzed.send(case)

        try:
            run()
        except Unsatisfiable:
            unsatisfiable.append(label)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
            failures[label] = describe(exc)[:4000]
    sent = sum(fuzzed.statuses.values())
    print(f"fuzz: {sent} requests, statuses {sorted(fuzzed.statuses.items())}, predict aimed at")
    print(f"the real deployment: {sorted(fuzzed.predict_statuses.items())}")
    report = "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
    assert not failures, f"{len(failures)} operations failed ({sent} requests):\n{report}"
    assert sent >= MIN_REQUESTS, (dict(fuzzed.statuses), unsatisfiable)
    assert not [s for s in fuzzed.statuses if s >= 500], dict(fuzzed.statuses)
    # The real replica answered generated bodies (a prediction, or its signature's 422).
    assert set(fuzzed.predict_statuses) & {200, 422}, dict(fuzzed.predict_statuses)
