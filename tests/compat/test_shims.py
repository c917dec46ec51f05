"""Cloudera ML's module names resolving to modeldeck's compatibility layer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import modeldeck.compat
from modeldeck.compat import cml

LAB = textwrap.dedent(
    """
    import cdsw, cml.metrics_v1 as metrics, cml.models_v1 as models

    @models.cml_model(metrics=True)
    def predict(args):
        metrics.track_metric("input", args)
        metrics.track_metric("output", 1)
        return 1

    out = predict({"petal_length": 4.0})
    assert sorted(out) == ["model_deployment_crn", "prediction", "uuid"], out
    assert out["model_deployment_crn"] == "crn:cdp:ml:::workspace:dev/model-deployment"
    metrics.track_delayed_metrics({"actual_result": 0}, out["uuid"], dev=True)
    metrics.track_aggregate_metrics({"accuracy": 0.5}, 0, 10, dev=True)
    records = cdsw.read_metrics(dev=True)["metrics"]
    assert len(records) == 2, records
    assert records[0]["predictionUuid"] == out["uuid"]
    expected = {"input": {"petal_length": 4.0}, "output": 1, "actual_result": 0}
    assert records[0]["metrics"] == expected
    assert records[1]["predictionUuid"] == "" and records[1]["metrics"] == {"accuracy": 0.5}
    build = records[0]["modelBuildCrn"]
    assert cdsw.read_metrics(dev=True, model_build_crn="nope")["metrics"] == []
    assert len(cdsw.read_metrics(dev=True, model_build_crn=build)["metrics"]) == 2
    print("shims at", cdsw.__file__)
    """
)


def test_a_cml_script_runs_in_dev_mode_with_the_shims_on_the_path(tmp_path: Path) -> None:
    script = tmp_path / "lab.py"
    script.write_text(LAB)
    env = {
        **os.environ,
        "PYTHONPATH": modeldeck.compat.path(),
        "MODELDECK_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("MODELDECK_URL", None)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert modeldeck.compat.path() in done.stdout


def test_install_refuses_to_shadow_a_real_installation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "cdsw"
    real.mkdir()
    (real / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="a real cdsw is installed"):
        modeldeck.compat.install()
    assert modeldeck.compat.path() not in sys.path


def test_read_metrics_needs_a_deployment_outside_dev_mode() -> None:
    from modeldeck.errors import BadRequest

    with pytest.raises(BadRequest, match="model_deployment_crn"):
        cml.read_metrics()


def test_the_platform_url_prefers_modeldeck_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELDECK_URL", raising=False)
    monkeypatch.setenv("CDSW_DOMAIN", "ml.example.com")
    assert cml.platform_url() == "https://ml.example.com"
    monkeypatch.setenv("MODELDECK_URL", "http://10.0.0.5:8000/")
    assert cml.platform_url() == "http://10.0.0.5:8000"


def test_a_client_built_by_hand_as_clouderas_documentation_shows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modeldeck.compat import cmlapi

    monkeypatch.delenv("MODELDECK_URL", raising=False)
    monkeypatch.delenv("CDSW_DOMAIN", raising=False)
    config = cmlapi.Configuration()
    config.host = "http://10.0.0.5:8000/"
    config.ssl_ca_cert = "/etc/ssl/ca.pem"  # accepted
    api = cmlapi.ApiClient(config)
    api.set_default_header("authorization", "Bearer mdk_key")
    client = cmlapi.CMLServiceApi(api)
    assert client.url == "http://10.0.0.5:8000"
    assert client.headers == {"Authorization": "Bearer mdk_key"}


def test_calls_modeldeck_does_not_serve_say_why() -> None:
    from modeldeck.compat import cmlapi

    client = cmlapi.CMLServiceApi("http://127.0.0.1:9", "k")
    for call, why in (
        ("list_projects", "no projects"),
        ("create_job_run", "runs no jobs"),
        ("create_application", "no applications"),
        ("create_experiment_run", "MLflow's"),
        ("create_registered_model", "the registry is MLflow's"),
        ("update_model_deployment", "create_model_deployment"),
        ("delete_model", "/api/v1/deployments"),
        ("list_runtimes", "no runtimes"),
        ("something_else", "deploy and watch models"),
    ):
        with pytest.raises(NotImplementedError, match=why) as caught:
            getattr(client, call)()
        assert f"cmlapi's {call}()" in str(caught.value)
    with pytest.raises(AttributeError):
        _ = client._private


def test_cdsw_and_cml_functions_modeldeck_does_not_serve_say_why(tmp_path: Path) -> None:
    script = tmp_path / "unsupported.py"
    script.write_text(
        textwrap.dedent(
            """
            import cdsw
            for name in ("launch_workers", "track_file", "html"):
                try:
                    getattr(cdsw, name)
                except NotImplementedError as exc:
                    print(name, "->", exc)
            for module in ("cml.workers_v1", "cml.data_v1"):
                try:
                    __import__(module)
                except ImportError as exc:
                    print(module, "->", exc)
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": modeldeck.compat.path()}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all("not supported by modeldeck" in line for line in lines)
