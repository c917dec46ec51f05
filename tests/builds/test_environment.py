"""The pieces of a build that need no network: what a model asks for, keys, the cache's
bookkeeping and eviction, and the schema of the builds table. Real environments are made in
``tests/integration/test_builds.py``."""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path

import pytest

from modeldeck.builds.environment import (
    META,
    POSTGRES_REQUIREMENT,
    REPLICA_REQUIREMENTS,
    BuildError,
    Environment,
    EnvironmentCache,
    ModelFiles,
    read_model_files,
    recipe,
    replica_environment,
    requirement_name,
)
from modeldeck.store import Store
from tests.fixtures import schema_drift

ROOT = Path(__file__).parents[2]


def model_dir(tmp_path: Path, requirements: str, python_env: str | None = None) -> Path:
    path = tmp_path / "model"
    path.mkdir(exist_ok=True)
    (path / "requirements.txt").write_text(requirements)
    if python_env is not None:
        (path / "python_env.yaml").write_text(python_env)
    return path


def test_reads_requirements_constraints_and_python(tmp_path: Path) -> None:
    path = model_dir(
        tmp_path,
        "# logged by MLflow\nmlflow==3.1.0\nscikit-learn==1.5.2  # pinned\n\n-c constraints.txt\n",
        "python: 3.11.7\nbuild_dependencies:\n- pip==24.0\ndependencies:\n- -r requirements.txt\n",
    )
    (path / "constraints.txt").write_text("numpy<2\n")
    files = read_model_files(path)
    assert files.requirements == ("mlflow==3.1.0", "scikit-learn==1.5.2", "-c constraints.txt")
    assert files.constraints == ("numpy<2",)
    assert files.python == "3.11.7" and files.python_minor == "3.11"
    assert files.package_names() == ["mlflow", "scikit-learn"]


def test_a_model_without_requirements_cannot_be_built(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(BuildError, match=r"no requirements\.txt"):
        read_model_files(tmp_path)


def test_without_python_env_the_platforms_python_is_asked_for(tmp_path: Path) -> None:
    files = read_model_files(model_dir(tmp_path, "mlflow\n"))
    assert files.python_minor == f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ("scikit-learn==1.5.2", "scikit-learn"),
        ("Scikit_Learn>=1", "scikit-learn"),
        ("psycopg[binary]>=3.1", "psycopg"),
        ("mlflow-skinny", "mlflow-skinny"),
        ("-r other.txt", None),
        ("--extra-index-url https://example.invalid", None),
    ],
)
def test_requirement_names(line: str, name: str | None) -> None:
    assert requirement_name(line) == name


def test_the_key_changes_with_what_decides_the_environment(tmp_path: Path) -> None:
    files = ModelFiles(tmp_path, ("mlflow==3.1.0", "scikit-learn==1.5.2"), python="3.11.7")
    base = recipe("uv", files, postgres=False)
    assert base.key == recipe("uv", files, postgres=False).key
    reordered = ModelFiles(tmp_path, ("scikit-learn==1.5.2", "mlflow==3.1.0"), python="3.11.2")
    assert recipe("uv", reordered, postgres=False).key == base.key, "order and patch level"
    others = [
        recipe("virtualenv", files, postgres=False),
        recipe("uv", files, postgres=True),
        recipe(
            "uv", ModelFiles(tmp_path, ("mlflow==3.1.0", "scikit-learn==1.6.0")), postgres=False
        ),
        recipe("uv", ModelFiles(tmp_path, files.requirements, python="3.12.1"), postgres=False),
    ]
    assert len({base.key, *(r.key for r in others)}) == 5
    assert POSTGRES_REQUIREMENT in recipe("uv", files, postgres=True).replica_requirements


def test_mlflow_is_added_when_the_model_does_not_ask_for_it(tmp_path: Path) -> None:
    from importlib import metadata

    bare = recipe("uv", ModelFiles(tmp_path, ("scikit-learn==1.5.2",)), postgres=False)
    assert f"mlflow=={metadata.version('mlflow')}" in bare.replica_requirements
    skinny = recipe("uv", ModelFiles(tmp_path, ("mlflow-skinny==3.1",)), postgres=False)
    assert not any(r.startswith("mlflow") for r in skinny.replica_requirements)


def test_replica_requirements_are_declared_dependencies_of_modeldeck() -> None:
    """The replica installs a subset of the platform's own dependencies, same lower bounds."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    by_name = {requirement_name(d): d for d in declared}
    for requirement in REPLICA_REQUIREMENTS:
        assert by_name.get(requirement_name(requirement)) == requirement


def test_the_replica_side_imports_nothing_beyond_its_requirements(tmp_path: Path) -> None:
    """``python -m modeldeck.replica.app`` imports only the packages environments get
    (plus what the model itself needs: MLflow, pandas, numpy)."""
    code = (
        "import sys, json; import modeldeck.replica.app; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = set(json.loads(out))
    allowed = {
        "orjson", "starlette", "uvicorn", "sqlalchemy", "alembic", "pydantic",
        "pydantic_settings", "pydantic_core", "httpx", "httpcore", "anyio", "h11", "idna",
        "certifi", "sniffio", "typing_extensions", "typing_inspection", "annotated_types",
        "mako", "markupsafe", "dotenv", "click", "greenlet", "modeldeck", "cython_runtime",
        "rich", "pygments",  # httpx's command line imports them only where they are installed
        "brotli",  # httpx decodes brotli when the package is installed (the dev tools bring it)
        "python_multipart",  # starlette imports it when installed (the dev tools bring it)
    }  # fmt: skip
    third_party = {m for m in modules if m not in sys.stdlib_module_names and not m.startswith("_")}
    assert third_party <= allowed, sorted(third_party - allowed)


# -- the cache --------------------------------------------------------------------------------


def fake_env(cache: EnvironmentCache, key: str, size: int, last_used: float) -> None:
    """A complete-looking environment entry (its interpreter is the platform's)."""
    entry = cache.entry(key)
    entry.mkdir(parents=True)
    env = Environment(
        key=key,
        manager="uv",
        path=str(entry / "env"),
        python=sys.executable,
        python_version="3.11",
        size_bytes=size,
        created_at=last_used,
    )
    (entry / META).write_text(json.dumps(env.to_dict()))
    (entry / "last-used").touch()
    os.utime(entry / "last-used", (last_used, last_used))


def test_lookup_finds_complete_environments_only(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path, max_bytes=10**9, timeout_seconds=60)
    fake_env(cache, "done", 100, time.time())
    cache.entry("half-made").mkdir(parents=True)
    assert cache.lookup("done") is not None
    assert cache.lookup("half-made") is None
    assert cache.lookup("never") is None
    assert [e.key for e in cache.entries()] == ["done"]


def test_eviction_removes_least_recently_used_unused_environments(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path, max_bytes=250, timeout_seconds=60)
    now = time.time()
    fake_env(cache, "oldest-in-use", 100, now - 400)
    fake_env(cache, "old", 100, now - 300)
    fake_env(cache, "recent", 100, now - 200)
    fake_env(cache, "newest", 100, now - 100)
    cache.entry("abandoned-build").mkdir(parents=True)
    removed = cache.evict(in_use={"oldest-in-use"})
    assert [e.key for e in removed] == ["old", "recent"]
    assert {e.key for e in cache.entries()} == {"oldest-in-use", "newest"}
    assert not cache.entry("abandoned-build").exists()

    cache.touch("newest")
    assert cache.entries()[-1].key == "newest"
    assert [e.key for e in cache.evict(in_use={"oldest-in-use"}, max_bytes=0)] == ["newest"]
    assert [e.key for e in cache.entries()] == ["oldest-in-use"]


def test_unused_downloaded_models_are_pruned(tmp_path: Path) -> None:
    cache = EnvironmentCache(tmp_path, max_bytes=0, timeout_seconds=60)
    for name in ("m-used", "m-unused"):
        (cache.models_dir / name).mkdir(parents=True)
    assert cache.prune_models([str(cache.models_dir / "m-used")]) == 1
    assert [p.name for p in cache.models_dir.iterdir()] == ["m-used"]


def test_replica_path_holds_only_modeldeck(tmp_path: Path) -> None:
    import modeldeck

    cache = EnvironmentCache(tmp_path, max_bytes=0, timeout_seconds=60)
    path = cache.replica_path()
    assert [p.name for p in path.iterdir()] == ["modeldeck"]
    assert (path / "modeldeck").resolve() == Path(modeldeck.__file__).resolve().parent
    assert cache.replica_path() == path  # idempotent


def test_replica_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/platform/site-packages")
    env = replica_environment(
        str(tmp_path / "env" / "bin" / "python"), tmp_path / "rp", {"PYTHONPATH": "/mine", "A": "1"}
    )
    assert env["PYTHONPATH"] == os.pathsep.join([str(tmp_path / "rp"), "/mine"])
    assert env["VIRTUAL_ENV"] == str(tmp_path / "env")
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "env" / "bin")
    assert env["A"] == "1"


# -- the store --------------------------------------------------------------------------------


def test_the_migration_creates_what_the_schema_declares(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert schema_drift(url) == []
    assert "builds" in Store(url).table_names()


# -- real installers, failing fast --------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("manager", ["uv", "virtualenv"])
def test_an_unresolvable_pin_fails_with_the_installers_words(tmp_path: Path, manager: str) -> None:
    """Both environment managers, for real: the build fails with what the resolver said, and
    leaves nothing behind in the cache."""
    import asyncio

    files = read_model_files(model_dir(tmp_path, "scikit-learn==0.0.999\n", "python: 3.11.7\n"))
    cache = EnvironmentCache(tmp_path / "cache", max_bytes=10**9, timeout_seconds=300)
    spec = recipe(manager, files, postgres=False)
    log: list[str] = []
    with pytest.raises(BuildError) as failed:
        asyncio.run(cache.create(spec, files, log))
    message = failed.value.message
    assert "install failed (exit code 1)" in message
    assert "scikit-learn" in message and "0.0.999" in message
    assert any(line.startswith("$ ") and "install" in line for line in log)
    assert not cache.entry(spec.key).exists()
    assert cache.lookup(spec.key) is None
