"""The ``ray`` runtime's parts that need no Ray cluster (tests/integration/test_ray.py runs it
on one): a clear 422 without the extra, the map from Serve's replica states to ours, and the
router keeping local deployments local."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path

import pytest

from modeldeck.config import Settings
from modeldeck.errors import ValidationFailed
from modeldeck.runtimes import ray as ray_runtime
from modeldeck.runtimes.base import DeploymentSpec
from modeldeck.runtimes.router import Runtimes


def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a)
    )


def test_without_the_extra_runtime_ray_is_a_422_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    no_ray(monkeypatch)
    with pytest.raises(ValidationFailed) as caught:
        ray_runtime.require_ray()
    assert caught.value.status_code == 422
    assert "modeldeck[ray]" in str(caught.value)
    assert caught.value.to_dict()["error"]["details"] == {"field": "runtime"}

    async def deploy() -> None:
        runtimes = Runtimes(Settings(data_dir=tmp_path, replica_preload=[]), "sqlite://")
        await runtimes.startup(lambda event: asyncio.sleep(0))
        try:
            spec = DeploymentSpec(name="r", model_uri="models:/m/1", model_version="1",
                                  replicas=1, runtime="ray")  # fmt: skip
            with pytest.raises(ValidationFailed):
                await runtimes.deploy(spec)
            assert not runtimes.running("r") and runtimes.pick("r") is None
        finally:
            await runtimes.shutdown()

    asyncio.run(deploy())


def test_the_platform_imports_no_ray_until_a_deployment_asks_for_it() -> None:
    import subprocess
    import sys

    code = (
        "import sys, modeldeck.platform, modeldeck.runtimes.router; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
