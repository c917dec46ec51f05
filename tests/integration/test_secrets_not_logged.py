"""No key is ever written to a log or to the store: a real platform at debug level, every way a
key is made, used, refused, rotated and revoked, then a search of every file it wrote."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from modeldeck.client import ApiError, Client
from tests.conftest import Registered, start_platform

PREDICT_PY = "def predict(args):\n    return {'double': args['x'] * 2}\n"


def test_no_key_reaches_a_log_or_the_store(mlflow_registry: Registered, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    platform = start_platform(
        data_dir,
        f"sqlite:///{data_dir / 'modeldeck.db'}",
        mlflow_registry.tracking_uri,
        MODELDECK_LOG_LEVEL="debug",
    )
    model = tmp_path / "double.py"
    model.write_text(PREDICT_PY)
    secrets = [platform.api_key]
    url = platform.url
    try:
        admin = platform.client()
        made = {s: admin.create_api_key(f"k-{s}", s) for s in ("read", "deploy")}
        secrets += [k["key"] for k in made.values()]
        rotated = admin.rotate_api_key(made["read"]["id"])
        secrets.append(rotated["key"])
        doomed = admin.create_api_key("doomed", "admin")
        secrets.append(doomed["key"])
        admin.revoke_api_key(doomed["id"])

        with Client(url, made["deploy"]["key"]) as deployer:
            created = deployer.deploy("sec", None, file=str(model))
            deployer.wait("sec", timeout=120)
            open_one = deployer.deploy("sec-open", None, file=str(model), auth_enabled=False)
            secrets.append(open_one["access_key"])  # /model finds even an open one by its key
        access = created["access_key"]
        secrets.append(access)
        made["predict:sec"] = admin.create_api_key("k-predict", "predict:sec")  # once it exists
        secrets.append(made["predict:sec"]["key"])

        def predict(key: str, name: str = "sec") -> int:
            r = httpx.post(f"{url}/deployments/{name}/predict", json={"x": 2},
                           headers={"Authorization": f"Bearer {key}"}, timeout=30)  # fmt: skip
            return r.status_code

        assert predict(access) == 200
        assert predict(made["predict:sec"]["key"]) == 200
        r = httpx.post(f"{url}/model", json={"accessKey": access, "request": {"x": 1}})
        assert r.status_code == 200, r.text
        r = httpx.post(f"{url}/model?accessKey={access}", json={"request": {"x": 1}})
        assert r.status_code == 200, r.text

        # refusals of every kind
        assert predict(made["read"]["key"]) == 401  # rotated away
        assert predict(rotated["key"]) == 403  # a read key opens no endpoint
        assert predict(platform.api_key) == 403
        assert predict(access[:-1] + ("0" if access[-1] != "0" else "1")) == 401
        for key in (made["read"]["key"], doomed["key"], "mdk_" + "f" * 40, access):
            r = httpx.get(f"{url}/api/v1/deployments", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 401
        r = httpx.delete(f"{url}/api/v1/deployments/sec",
                         headers={"Authorization": f"Bearer {rotated['key']}"})  # fmt: skip
        assert r.status_code == 403
        r = httpx.post(f"{url}/model", json={"accessKey": made["deploy"]["key"], "request": {}})
        assert r.status_code == 401

        new_access = admin.rotate_access_key("sec")
        secrets.append(new_access)
        assert predict(access) == 401
        deadline = time.monotonic() + 30
        while predict(new_access) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with pytest.raises(ApiError):
            Client(url, doomed["key"]).deployments()
        admin.delete("sec")
        admin.delete("sec-open")
    finally:
        platform.stop()

    files = [platform.log_path, *sorted(p for p in data_dir.rglob("*") if p.is_file())]
    logs = [p for p in files if p is not None and p.suffix in (".log", "")]
    assert any(p.name.startswith("replica-") for p in logs), "no replica log to search"
    assert platform.log_path is not None and "DEBUG" in platform.log_path.read_text()
    for path in files:
        assert path is not None
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a key appears in {path}"
