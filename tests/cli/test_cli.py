"""The CLI against a real running platform (SQLite), driven through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from modeldeck.cli.main import main
from modeldeck.views.deployments import AUTH_DISABLED_WARNING
from tests.conftest import Registered, RunningPlatform, start_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli_platform(
    mlflow_registry: Registered, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    data_dir = tmp_path_factory.mktemp("cli")
    running = start_platform(
        data_dir, f"sqlite:///{data_dir / 'modeldeck.db'}", mlflow_registry.tracking_uri
    )
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def run(cli_platform: RunningPlatform):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, key: str | None = None) -> tuple[int, str]:
        result = runner.invoke(
            main,
            ["--url", cli_platform.url, "--api-key", key or cli_platform.api_key, *args],
            catch_exceptions=False,
        )
        return result.exit_code, result.output

    return invoke


def test_models_list_and_show(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("models", "list", "--json")
    assert code == 0
    assert {m["name"] for m in json.loads(out)} >= {"iris", "broken"}
    code, out = run("models", "show", "iris")
    assert code == 0 and "champion" in out and "accuracy=" in out


@pytest.fixture
def staging_alias(mlflow_registry: Registered) -> Iterator[None]:
    """Removes the alias the test sets: the registry is shared by the whole session."""
    yield
    import mlflow

    uri = mlflow_registry.tracking_uri
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).delete_registered_model_alias(
        "iris", "staging"
    )


@pytest.mark.usefixtures("staging_alias")
def test_models_alias_points_an_alias_at_a_version(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("models", "alias", "iris", "staging", "2")
    assert code == 0, out
    assert "iris@staging: unset -> 2" in out
    code, out = run("models", "alias", "iris", "staging", "1")
    assert code == 0 and "iris@staging: 2 -> 1" in out
    code, out = run("models", "show", "iris", "--json")
    versions = {v["version"]: v["aliases"] for v in json.loads(out)["versions"]}
    assert "staging" in versions["1"] and "staging" not in versions["2"]
    # An unknown version or a number as the alias is refused, and nothing moves.
    code, out = run("models", "alias", "iris", "staging", "99")
    assert code != 0 and "no version 99" in out
    code, out = run("models", "alias", "iris", "7", "2")
    assert code != 0 and "invalid alias" in out
    code, out = run("models", "show", "iris", "--json")
    assert "staging" in {v["version"]: v["aliases"] for v in json.loads(out)["versions"]}["1"]


def test_deploy_list_show_predict_scale_delete(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("deploy", "iris", "--name", "cli-iris", "--alias", "champion", "--json")
    assert code == 0, out
    created = json.loads(out)
    assert created["status"] == "deployed" and created["version"] == "1"
    assert created["track_alias"] is True, "a deployment from an alias follows it"
    key = created["access_key"]

    code, out = run("deployments", "list", "--json")
    assert [d["name"] for d in json.loads(out)] == ["cli-iris"]

    code, out = run(
        "deploy", "iris", "--name", "cli-pinned", "--alias", "champion", "--no-follow",
        "--no-wait", "--json",
    )  # fmt: skip
    assert code == 0, out
    pinned = json.loads(out)
    assert (pinned["version_spec"], pinned["track_alias"]) == ("@champion", False)
    code, out = run("deployments", "delete", "cli-pinned", "--yes")
    assert code == 0, out
    code, out = run("deployments", "show", "cli-iris")
    assert code == 0 and "ready" in out

    code, out = run(
        "predict", "cli-iris", "--access-key", key, "-d", '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
    )
    assert code == 0, out
    assert json.loads(out)["prediction"] == [0]

    code, out = run("deployments", "scale", "cli-iris", "--replicas", "2", "--json")
    assert code == 0 and json.loads(out)["replicas"] == 2
    code, out = run("deployments", "scale", "cli-iris", "--min", "2")  # a fixed count: no max
    assert code == 2 and "autoscaling needs --max-replicas" in out

    code, out = run(
        "deployments", "scale", "cli-iris", "--min", "1", "--max", "3", "--target-inflight", "8",
        "--scale-down-delay", "30", "--json",
    )  # fmt: skip
    assert code == 0, out
    scaled = json.loads(out)
    assert scaled["replicas"] == 2, "within the bounds already"
    assert scaled["autoscaling"] == {
        "min_replicas": 1, "max_replicas": 3, "target_inflight": 8.0,
        "scale_up_delay_seconds": 5.0, "scale_down_delay_seconds": 30.0,
    }  # fmt: skip
    code, out = run("deployments", "show", "cli-iris")
    assert code == 0 and "autoscaling: 1-3 replicas, target 8 in flight per replica" in out
    # On an autoscaled deployment the options given change the policy; the rest keep theirs.
    code, out = run("deployments", "scale", "cli-iris", "--min", "2", "--json")
    assert code == 0, out
    assert json.loads(out)["autoscaling"] == {
        "min_replicas": 2, "max_replicas": 3, "target_inflight": 8.0,
        "scale_up_delay_seconds": 5.0, "scale_down_delay_seconds": 30.0,
    }  # fmt: skip
    code, out = run("deployments", "scale", "cli-iris", "--min", "3", "--max", "2")
    assert code == 1 and "max_replicas (2) is below min_replicas (3)" in out

    code, out = run("deployments", "delete", "cli-iris", "--yes")
    assert code == 0
    code, out = run("deployments", "list", "--json")
    assert json.loads(out) == []


def test_errors_are_one_line_not_tracebacks(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("deploy", "no-such-model")
    assert code == 1
    assert "Error: registered model 'no-such-model' not found (404 not_found)" in out
    assert "Traceback" not in out
    code, out = run("deployments", "list", key="mdk_wrong")
    assert code == 1 and "invalid API key (401 unauthorized)" in out
    code, out = run("predict", "x", "-d", "{nope")
    assert code == 2 and "not valid JSON" in out


def test_unreachable_platform_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["--url", "http://127.0.0.1:9", "deployments", "list"])
    assert result.exit_code == 1
    assert "cannot reach modeldeck at http://127.0.0.1:9" in result.output


def test_settings_lists_every_variable() -> None:
    result = CliRunner().invoke(main, ["settings", "--markdown"])
    assert result.exit_code == 0
    assert "`MODELDECK_STORE_URL`" in result.output and "`MLFLOW_TRACKING_URI`" in result.output


def test_model_metrics_commands(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, out = run("deploy", "iris", "--name", "cli-metrics", "--version", "2", "--json")
    assert code == 0, out
    key = json.loads(out)["access_key"]
    code, out = run(
        "predict", "cli-metrics", "--access-key", key, "-d", '{"inputs": [[6.7, 3.0, 5.2, 2.3]]}'
    )
    uuid = json.loads(out)["uuid"]

    code, out = run("metrics", "delayed", uuid, '{"actual_result": 2}')
    assert code == 0 and uuid in out
    code, out = run(
        "metrics", "aggregate", "cli-metrics", '{"accuracy": 1.0}', "--start", "0", "--end", "1"
    )
    assert code == 0
    code, out = run("metrics", "model", "cli-metrics", "--since", "1h", "--json")
    assert code == 0, out
    records = json.loads(out)["metrics"]
    assert [r["predictionUuid"] for r in records] == [uuid]
    assert records[0]["metrics"]["actual_result"] == 2 and records[0]["metrics"]["output"] == 2
    code, out = run("metrics", "model", "cli-metrics")
    assert code == 0 and "2 records" in out and "(aggregate)" in out
    code, out = run("metrics", "model", "cli-metrics", "--since", "1h", "--csv")
    assert code == 0, out
    (row,) = csv.DictReader(io.StringIO(out))  # the prediction; the aggregate is no prediction
    assert list(row)[:4] == ["prediction_uuid", "start_ms", "end_ms", "model_version"]
    assert row["prediction_uuid"] == uuid and row["output"] == "2"
    assert row["actual_result"] == "2"

    code, out = run("metrics", "delayed", uuid, "{nope")
    assert code == 2 and "not valid JSON" in out
    code, out = run("metrics", "model", "cli-metrics", "--since", "soon")
    assert code == 2 and "duration" in out
    code, out = run("metrics", "delayed", "00000000-0000-4000-8000-000000000000", "{}")
    assert code == 1 and "404" in out
    run("deployments", "delete", "cli-metrics", "--yes")


def test_deploy_a_file_and_a_batch_deployment(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "double.py"
    path.write_text("def predict(args):\n    return args['x'] * 2\n")
    code, out = run("deploy", "--file", str(path), "--json")
    assert code == 0, out
    created = json.loads(out)
    assert created["name"] == "double" and created["source"] == "file"
    code, out = run("predict", "double", "--access-key", created["access_key"], "-d", '{"x": 21}')
    assert json.loads(out)["prediction"] == 42

    code, out = run("deploy", "--batch", "--name", "nightly", "--json")
    assert code == 0 and json.loads(out)["kind"] == "batch"
    code, out = run("deploy")
    assert code == 2 and "give a registered MODEL or --file" in out
    for name in ("double", "nightly"):
        run("deployments", "delete", name, "--yes")


def test_technical_metrics_command(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("deploy", "iris", "--name", "cli-tech", "--version", "1", "--json")
    key = json.loads(out)["access_key"]
    for body in ('{"inputs": [[5.1, 3.5, 1.4, 0.2]]}',) * 3 + ('{"inputs": [[1]]}',):
        run("predict", "cli-tech", "--access-key", key, "-d", body)
    code, out = run("metrics", "technical", "cli-tech", "--since", "10m", "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["totals"]["requests"], data["totals"]["failed"]) == (4, 1)
    code, out = run("metrics", "technical", "cli-tech", "--since", "10m")
    assert code == 0
    assert "received" in out and "total" in out and "p50" in out
    run("deployments", "delete", "cli-tech", "--yes")


def test_keys_create_list_rotate_revoke(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("keys", "create", "ci-reader", "--scope", "read")
    assert code == 0, out
    key = out.strip()
    assert key.startswith("mdk_")
    code, out = run("keys", "list", "--json")
    listed = {k["name"]: k for k in json.loads(out)}
    assert listed["ci-reader"]["scope"] == "read" and key.startswith(listed["ci-reader"]["prefix"])
    key_id = listed["ci-reader"]["id"]
    code, out = run("keys", "list")
    assert code == 0 and "ci-reader" in out and "read" in out and key not in out
    assert run("deployments", "list", key=key)[0] == 0
    code, out = run("keys", "create", "x", key=key)
    assert code == 1 and "403" in out and "'admin'" in out
    code, out = run("keys", "create", "x", "--scope", "root")
    assert code == 2 and "predict:<deployment>" in out

    code, out = run("keys", "rotate", key_id)
    assert code == 0, out
    new = out.strip()
    assert new.startswith("mdk_") and new != key
    code, out = run("deployments", "list", key=key)
    assert code == 1 and "401" in out
    assert run("deployments", "list", key=new)[0] == 0
    assert run("keys", "revoke", key_id)[0] == 0
    code, out = run("deployments", "list", key=new)
    assert code == 1 and "401" in out


def test_deployments_without_auth_are_flagged(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "open_model.py"
    path.write_text("def predict(args):\n    return 1\n")
    code, out = run("deploy", "--file", str(path), "--no-auth", "--no-wait", "--json")
    assert code == 0, out
    assert json.loads(out)["warnings"] == [AUTH_DISABLED_WARNING]
    for command in (("deployments", "list"), ("deployments", "show", "open_model")):
        code, out = run(*command)
        assert code == 0 and "open_model: authentication is disabled" in out, command
    code, out = run("deployments", "show", "open_model", "--json")
    assert json.loads(out)["warnings"] == [AUTH_DISABLED_WARNING]
    run("deployments", "delete", "open_model", "--yes")


def test_a_failed_wait_still_prints_the_access_key(run) -> None:  # type: ignore[no-untyped-def]
    """The key is shown once: when waiting for the deployment fails (here: times out at once),
    the deployment exists and its key must still reach the user."""
    code, out = run("deploy", "iris", "--name", "cli-impatient", "--version", "1", "--timeout", "0")
    assert code != 0, out
    assert re.search(r"access key of cli-impatient: [0-9a-f]{40}\b", out), out
    code, out = run("deployments", "delete", "cli-impatient", "--yes")
    assert code == 0, out


@pytest.fixture
def run80(cli_platform: RunningPlatform):  # type: ignore[no-untyped-def]
    """``run`` in an 80-column terminal (``COLUMNS=80``)."""
    runner = CliRunner(env={"COLUMNS": "80"})

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(
            main,
            ["--url", cli_platform.url, "--api-key", cli_platform.api_key, *args],
            catch_exceptions=False,
        )
        return result.exit_code, result.output

    return invoke


def test_tables_fit_80_columns_and_never_cut_a_number(run80) -> None:  # type: ignore[no-untyped-def]
    name = "a-deployment-with-a-rather-long-name-to-fold"
    code, out = run80("deploy", "iris", "--name", name, "--version", "1", "--json")
    assert code == 0, out
    key = json.loads(out)["access_key"]
    for _ in range(3):
        run80("predict", name, "--access-key", key, "-d", '{"inputs": [[5.1, 3.5, 1.4, 0.2]]}')
    try:
        for command in (("models", "list"), ("deployments", "list")):
            code, out = run80(*command)
            assert code == 0, out
            assert "…" not in out, out  # folded or dropped, never cut
            assert max(len(line) for line in out.splitlines()) <= 80, out
        assert "1/1" in out  # replicas whole

        code, out = run80("metrics", "technical", name, "--since", "10m", "--step", "1m")
        assert code == 0, out
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80, out
        code, raw = run80("metrics", "technical", name, "--since", "10m", "--step", "1m", "--json")
        data = json.loads(raw)
        assert data["step"] == 60_000  # --step takes a duration, as performance --step does
        assert sum(p["requests"] for p in data["requests"]) == 3
        # Every shown time and rate whole: the table's rows are full HH:MM:SS times and
        # rates with two decimals, and its rates add up to the three requests (a minute
        # each). The two calls' slots may differ (each starts 10m before its own now).
        shown = re.findall(r"│ (\d\d:\d\d:\d\d) +│ +(\d+\.\d\d) ", out)
        assert shown, out
        assert abs(sum(float(rps) for _, rps in shown) * 60 - 3) < 0.7, out
        # --csv prints every column and every point.
        code, csv_out = run80(
            "metrics", "technical", name, "--since", "10m", "--step", "60", "--csv"
        )
        assert code == 0, csv_out
        lines = csv_out.splitlines()
        assert lines[0].split(",")[:4] == ["t", "requests", "rps", "failed"]
        assert len(lines) == len(data["requests"]) + 1
        code, csv_out = run80("deployments", "list", "--csv")
        assert code == 0 and f"{name},iris,1,deployed,1/1,on," in csv_out
        code, out = run80("metrics", "technical", name, "--step", "1x")
        assert code == 2 and "expected a duration" in out
    finally:
        run80("deployments", "delete", name, "--yes")


def test_drift_says_not_enough_data_and_names_the_p_value(run, cli_platform) -> None:  # type: ignore[no-untyped-def]
    client = cli_platform.client()
    code, out = run("deploy", "iris", "--name", "cli-drift", "--version", "1", "--json")
    assert code == 0, out
    try:
        client.reference_from_registry("cli-drift")
        now = int(time.time() * 1000)
        features = {
            "sepal_length": 5.1,
            "sepal_width": 3.5,
            "petal_length": 1.4,
            "petal_width": 0.2,
        }
        client.record_predictions(
            "cli-drift",
            [
                {
                    "metrics": {"input": features, "output": 0},
                    "start_timestamp_ms": now - 1000 * i,
                    "end_timestamp_ms": now - 1000 * i,
                }
                for i in range(3)
            ],
        )
        code, out = run("drift", "cli-drift", "--since", "1h")
        assert code == 0, out
        assert "statistic" in out and "p-value" in out and "…" not in out
        report = json.loads(run("drift", "cli-drift", "--since", "1h", "--json")[1])
        ks = next(c for c in report["columns"] if c["method"] == "ks")
        assert 0 < ks["test_statistic"] <= 1 and ks["test_statistic"] != ks["p_value"]  # D
        assert f"{ks['test_statistic']:,.4f}" in out
        assert "not enough data: 3 of the 30 rows a verdict needs" in out
        code, out = run("drift", "cli-drift", "--since", "1h", "--json")
        assert json.loads(out)["verdict"]["level"] == "not_enough_data"

        # Over time: a window per step, the three predictions in the last one.
        args = ("drift", "cli-drift", "--over-time", "--since", "1h", "--step", "10m")
        code, out = run(*args, "--json")
        assert code == 0, out
        series = json.loads(out)
        assert series["step"] == 600_000 and len(series["windows"]) in (6, 7)
        assert sum(w["predictions"] for w in series["windows"]) == 3
        last = series["windows"][-1]
        assert last["verdict"] == "not_enough_data" and last["columns"]["sepal_length"]["method"]
        code, out = run(*args)
        assert code == 0, out
        assert "drift per 10m over the last 1h" in out and "few" in out and "sepal_width" in out
        code, out = run("drift", "cli-drift", "--step", "10m")
        assert code == 2 and "--step needs --over-time" in out
    finally:
        run("deployments", "delete", "cli-drift", "--yes")


def test_drift_and_performance_fit_their_window_to_a_young_deployment(run, cli_platform) -> None:  # type: ignore[no-untyped-def]
    """Without --since/--step a deployment two minutes old is shown over the last five minutes
    in five-second windows, labelled to the second; a given --step starts on whole steps."""
    client = cli_platform.client()
    code, out = run("deploy", "iris", "--name", "cli-young", "--version", "1", "--no-wait")
    assert code == 0, out
    try:
        client.reference_from_registry("cli-young")
        now = int(time.time() * 1000)
        features = {
            "sepal_length": 5.1,
            "sepal_width": 3.5,
            "petal_length": 1.4,
            "petal_width": 0.2,
        }
        uuids = client.record_predictions(
            "cli-young",
            [
                {
                    "metrics": {"input": features, "output": 0},
                    "start_timestamp_ms": now - 120_000 + 10_000 * i,
                    "end_timestamp_ms": now - 120_000 + 10_000 * i,
                }
                for i in range(12)
            ],
        )
        client.track_delayed_metrics_batch(
            "cli-young", [(u, {"actual_result": 0 if i < 6 else 1}) for i, u in enumerate(uuids)]
        )
        code, out = run("performance", "cli-young", "--json")
        assert code == 0, out
        fitted = json.loads(out)
        assert fitted["step"] == 5_000 and fitted["start"] % 5_000 == 0
        assert fitted["start"] <= now - 120_000 < fitted["start"] + 305_000
        accuracy = [w["realised"]["accuracy"] for w in fitted["windows"] if w["realised"]]
        assert accuracy[0] == 1.0 and accuracy[-1] == 0.0 and len(accuracy) == 12
        code, out = run("performance", "cli-young")
        assert code == 0 and "the last 5m in windows of 5s" in out, out
        assert re.search(r"\d\d-\d\d \d\d:\d\d:\d\d", out), out  # seconds kept
        code, out = run("performance", "cli-young", "--since", "6h", "--step", "1h", "--json")
        hourly = json.loads(out)
        assert hourly["step"] == 3_600_000 and hourly["start"] % 3_600_000 == 0
        assert all(w["start"] % 3_600_000 == 0 for w in hourly["windows"])
        code, out = run("drift", "cli-young", "--json")
        assert code == 0 and json.loads(out)["start"] % 5_000 == 0, out
        assert json.loads(out)["predictions"] == 12
        code, out = run("drift", "cli-young")
        assert code == 0 and "drift over the last 5m" in out, out
    finally:
        run("deployments", "delete", "cli-young", "--yes")


def test_alerts_list_takes_the_deployment_as_alerts_create_does(run) -> None:  # type: ignore[no-untyped-def]
    code, out = run("deploy", "iris", "--name", "cli-alerts", "--version", "1", "--no-wait")
    assert code == 0, out
    try:
        code, out = run(
            "alerts", "create", "cli-alerts", "low-acc", "--metric", "performance.accuracy",
            "--when", "lt", "--threshold", "0.8",
        )  # fmt: skip
        assert code == 0, out
        code, out = run("alerts", "list", "cli-alerts", "--json")
        assert code == 0, out
        assert [(r["deployment"], r["name"]) for r in json.loads(out)] == [
            ("cli-alerts", "low-acc")
        ]
        code, old = run("alerts", "list", "--deployment", "cli-alerts", "--json")
        assert code == 0 and json.loads(old) == json.loads(out)  # the option still works
        code, out = run("alerts", "events", "cli-alerts", "--json")
        assert code == 0 and json.loads(out) == []
        code, out = run("alerts", "list", "cli-alerts", "--deployment", "other")
        assert code == 2 and "two deployments given" in out
    finally:
        run("deployments", "delete", "cli-alerts", "--yes")


def test_a_missing_api_key_says_to_set_modeldeck_api_key(
    cli_platform: RunningPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELDECK_API_KEY", raising=False)
    result = CliRunner().invoke(main, ["--url", cli_platform.url, "deployments", "list"])
    assert result.exit_code == 1
    assert "set MODELDECK_API_KEY" in result.output
    assert "Traceback" not in result.output


def test_quality_flags_missing_values_and_bad_types(run, run80, cli_platform) -> None:  # type: ignore[no-untyped-def]
    client = cli_platform.client()
    code, out = run("deploy", "iris", "--name", "cli-quality", "--version", "1", "--no-wait")
    assert code == 0, out
    try:
        client.reference_from_registry("cli-quality")
        now = int(time.time() * 1000)
        features: dict[str, object] = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_width": 0.2}
        client.record_predictions(
            "cli-quality",
            [
                {
                    # petal_length: absent in half the records, text in one, else in range
                    "metrics": {
                        "input": {**features, **({} if i % 2 else {"petal_length": 1.4})}
                        | ({"petal_length": "n/a"} if i == 1 else {}),
                        "output": 0,
                    },
                    "start_timestamp_ms": now - 1000 * i,
                    "end_timestamp_ms": now - 1000 * i,
                }
                for i in range(8)
            ],
        )
        code, out = run("quality", "cli-quality", "--since", "1h", "--json")
        assert code == 0, out
        report = json.loads(out)
        petal = {c["column"]: c for c in report["total"]["columns"]}["petal_length"]
        assert petal["missing"] == 3 and petal["type_violations"] == 1
        # one value, 1.4, where the reference varies: constant too
        assert petal["problems"] == ["missing", "type_violation", "constant"]
        code, out = run80("quality", "cli-quality", "--since", "1h")
        assert code == 0, out
        assert "37.5%" in out and "data quality over the last 1h" in out
        assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80, out
        code, out = run("quality", "cli-quality", "--since", "1h", "--step", "30m", "--csv")
        assert code == 0, out
        rows = list(csv.DictReader(io.StringIO(out)))
        assert {r["column"] for r in rows} >= {"petal_length", "sepal_length"}
        assert next(r for r in rows if r["column"] == "petal_length")["missing_share"] == "0.375"
    finally:
        run("deployments", "delete", "cli-quality", "--yes")
