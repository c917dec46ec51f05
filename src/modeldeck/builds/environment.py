"""Isolated Python environments for model versions, and their cache on disk.

An environment is made from what MLflow logged beside the model (``requirements.txt`` and
``python_env.yaml``) plus the few packages the replica side of modeldeck imports
(:data:`REPLICA_REQUIREMENTS`), with ``uv venv`` + ``uv pip install`` (``uv``) or
``python -m venv`` + pip (``virtualenv``). modeldeck's own code is not installed into it: the
replica imports it from ``<cache>/replica-path``, a directory holding only a link to the
platform's ``modeldeck`` package, put on ``PYTHONPATH``, so replicas always run the platform's
code and an upgrade of modeldeck never needs a rebuild.

Layout under the cache directory::

    envs/<key>/env/               the virtual environment
    envs/<key>/environment.json   written last: the environment is complete
    envs/<key>/last-used          its modification time orders eviction
    models/<model uuid>/          the model's artifacts, downloaded once; replicas load them
    replica-path/modeldeck        -> the platform's modeldeck package

The key hashes everything that decides the environment's content: the environment manager,
the Python version, the model's requirements (and constraints) and the replica's requirements.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

EnvManager = Literal["local", "uv", "virtualenv"]
ISOLATED: tuple[str, ...] = ("uv", "virtualenv")

LAYOUT = 1
"""Bumped when the way environments are made changes: every key changes with it."""

REPLICA_REQUIREMENTS: tuple[str, ...] = (
    "orjson>=3.10",
    "starlette>=0.40",
    "uvicorn[standard]>=0.30",
    "sqlalchemy>=2.0.30,<3",
    "alembic>=1.13",
    "pydantic>=2.7",
    "pydantic-settings>=2.3",
    "httpx>=0.27",
)
"""What ``python -m modeldeck.replica.app`` imports besides the model's own packages (MLflow,
pandas, numpy): the HTTP server (with uvloop and httptools, as on the platform), the store's
writer and the settings. The versions are modeldeck's own lower bounds; the resolver picks
versions that agree with the model's pins."""

POSTGRES_REQUIREMENT = "psycopg[binary]>=3.1"
"""Added when the store is PostgreSQL: replicas write prediction records to it."""

META = "environment.json"
LOG_TAIL_LINES = 25
PROBE_PREFIX = "modeldeck-probe: "

# Run inside a new environment: the replica side must import there, and the versions of the
# model's packages are read as the replica will see them.
_PROBE = f"""
import json, platform, sys
from importlib import metadata
import mlflow.pyfunc
import modeldeck.replica.app
versions = {{}}
for name in json.loads(sys.argv[1]):
    try:
        versions[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
print({PROBE_PREFIX!r} + json.dumps(
    {{"python": platform.python_version(), "executable": sys.executable, "packages": versions}}
))
"""


class BuildError(Exception):
    """An environment could not be made; ``message`` says why (the resolver's words)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- what the model asks for ----------------------------------------------------------------


@dataclass(frozen=True)
class ModelFiles:
    """What MLflow logged beside a model, read from its downloaded directory."""

    path: Path
    requirements: tuple[str, ...]
    """``requirements.txt``'s lines, without comments and blank lines."""
    constraints: tuple[str, ...] = ()
    """``constraints.txt``'s lines when ``requirements.txt`` refers to it."""
    python: str = ""
    """The Python version the model was logged with (``python_env.yaml``), e.g. ``3.11.7``."""

    @property
    def python_minor(self) -> str:
        """``3.11`` of ``3.11.7``; the platform's own when the model did not say."""
        parts = self.python.split(".")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            return f"{parts[0]}.{parts[1]}"
        return f"{sys.version_info.major}.{sys.version_info.minor}"

    def package_names(self) -> list[str]:
        """The distribution names the requirements pin (``scikit-learn`` of
        ``scikit-learn==1.5.2``)."""
        names = []
        for line in self.requirements:
            name = requirement_name(line)
            if name:
                names.append(name)
        return names


def requirement_name(line: str) -> str | None:
    """The distribution name a requirement line names, normalised; None for options (``-r``)."""
    if line.startswith("-"):
        return None
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def _lines(path: Path) -> tuple[str, ...]:
    out = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)


def read_model_files(path: Path) -> ModelFiles:
    """The requirements and Python version logged beside the model at ``path``."""
    requirements_file = path / "requirements.txt"
    if not requirements_file.is_file():
        raise BuildError(
            "the model has no requirements.txt beside it: log it with MLflow "
            "(pip_requirements=...) to build an isolated environment, or deploy with "
            "env_manager 'local'"
        )
    requirements = _lines(requirements_file)
    constraints: tuple[str, ...] = ()
    for line in requirements:
        if line.startswith(("-c ", "--constraint ")):
            target = path / line.split(None, 1)[1].strip()
            if target.is_file():
                constraints += _lines(target)
    python = ""
    env_file = path / "python_env.yaml"
    if env_file.is_file():
        match = re.search(r"^python:\s*['\"]?([0-9][0-9.]*)", env_file.read_text(), re.M)
        if match:
            python = match.group(1)
    return ModelFiles(path, requirements, constraints, python)


# -- the recipe and its key -------------------------------------------------------------------


@dataclass(frozen=True)
class EnvRecipe:
    """Everything that decides an environment's content; its hash is the cache key."""

    manager: str
    python: str  # major.minor
    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    replica_requirements: tuple[str, ...]

    @property
    def key(self) -> str:
        text = json.dumps(
            {
                "layout": LAYOUT,
                "manager": self.manager,
                "python": self.python,
                "requirements": sorted(self.requirements),
                "constraints": sorted(self.constraints),
                "replica": sorted(self.replica_requirements),
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def recipe(manager: str, files: ModelFiles, *, postgres: bool) -> EnvRecipe:
    """The recipe of the environment that serves the model in ``files``."""
    extra = list(REPLICA_REQUIREMENTS)
    if postgres:
        extra.append(POSTGRES_REQUIREMENT)
    names = set(files.package_names())
    if not names & {"mlflow", "mlflow-skinny"}:
        # Replicas load the model with MLflow: the platform's version, as `mlflow models
        # serve` adds its own.
        extra.append(f"mlflow=={metadata.version('mlflow')}")
    return EnvRecipe(
        manager=manager,
        python=files.python_minor,
        requirements=files.requirements,
        constraints=files.constraints,
        replica_requirements=tuple(extra),
    )


# -- environments on disk ---------------------------------------------------------------------


@dataclass
class Environment:
    """A complete environment in the cache."""

    key: str
    manager: str
    path: str
    """The environment's directory (``.../envs/<key>/env``)."""
    python: str
    """Its interpreter."""
    python_version: str
    packages: list[str] = field(default_factory=list)
    """``pip freeze`` of the environment."""
    model_packages: dict[str, str] = field(default_factory=dict)
    """Installed versions of the packages the model's requirements name, read inside it."""
    size_bytes: int = 0
    created_at: float = 0.0
    build_seconds: float = 0.0
    last_used_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EnvironmentCache:
    """Environments under one directory: look up, make, evict."""

    def __init__(self, root: Path, max_bytes: int, timeout_seconds: float) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def entry(self, key: str) -> Path:
        return self.envs_dir / key

    # -- reading ------------------------------------------------------------------------------

    def lookup(self, key: str) -> Environment | None:
        """The complete environment of ``key`` (its interpreter still runs), or None."""
        env = self._read(self.entry(key))
        if env is None or not Path(env.python).exists():
            return None
        return env

    def entries(self) -> list[Environment]:
        """Every complete environment, least recently used first."""
        if not self.envs_dir.is_dir():
            return []
        found = [self._read(p) for p in self.envs_dir.iterdir() if p.is_dir()]
        return sorted((e for e in found if e is not None), key=lambda e: e.last_used_at)

    def _read(self, entry: Path) -> Environment | None:
        try:
            data = json.loads((entry / META).read_text())
            env = Environment(**data)
        except (OSError, ValueError, TypeError):
            return None
        with contextlib.suppress(OSError):
            env.last_used_at = (entry / "last-used").stat().st_mtime
        return env

    def touch(self, key: str) -> None:
        """Mark ``key`` as used now (eviction removes the least recently used first)."""
        marker = self.entry(key) / "last-used"
        with contextlib.suppress(OSError):
            marker.touch()

    # -- making -------------------------------------------------------------------------------

    def replica_path(self) -> Path:
        """A directory holding only the platform's ``modeldeck`` package (a link), for
        ``PYTHONPATH``: the replica side without the platform's other packages."""
        import modeldeck

        target = Path(modeldeck.__file__).resolve().parent
        base = self.root / "replica-path"
        link = base / "modeldeck"
        base.mkdir(parents=True, exist_ok=True)
        if not (link.is_symlink() and Path(os.readlink(link)) == target):
            tmp = base / f".modeldeck-{os.getpid()}"
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(target, target_is_directory=True)
            os.replace(tmp, link)
        return base

    async def create(self, spec: EnvRecipe, files: ModelFiles, log: list[str]) -> Environment:
        """Make the environment of ``spec`` (replacing an incomplete one). Raises
        :class:`BuildError` with the failing step's output when it cannot."""
        started = time.monotonic()
        deadline = started + self.timeout_seconds
        entry = self.entry(spec.key)
        if entry.exists():
            log.append(f"removing an incomplete environment at {entry}")
            await asyncio.to_thread(shutil.rmtree, entry, True)
        entry.mkdir(parents=True)
        env_dir = entry / "env"
        python = env_dir / "bin" / "python"
        interpreter = _interpreter(spec.manager, spec.python)
        try:
            install = ["-r", str(files.path / "requirements.txt"), *spec.replica_requirements]
            if spec.manager == "uv":
                uv = uv_binary()
                await _run([uv, "venv", "--python", interpreter, str(env_dir)], log, deadline)
                await _run(
                    [uv, "pip", "install", "--compile-bytecode", "--python", str(python), *install],
                    log,
                    deadline,
                    what="uv pip install",
                )
                freeze = await _run(
                    [uv, "pip", "freeze", "--python", str(python)], log, deadline, quiet=True
                )
            else:
                await _run([interpreter, "-m", "venv", str(env_dir)], log, deadline)
                pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
                await _run([*pip, "install", *install], log, deadline, what="pip install")
                freeze = await _run([*pip, "freeze"], log, deadline, quiet=True)
            probe = await self.probe(str(python), files.package_names(), log, deadline)
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, entry, True)
            raise
        env = Environment(
            key=spec.key,
            manager=spec.manager,
            path=str(env_dir),
            python=str(python),
            python_version=str(probe.get("python", "")),
            packages=[line for line in freeze.splitlines() if line.strip()],
            model_packages=dict(probe.get("packages", {})),
            created_at=time.time(),
            build_seconds=round(time.monotonic() - started, 3),
        )
        env.size_bytes = await asyncio.to_thread(directory_size, env_dir)
        (entry / META).write_text(json.dumps(env.to_dict(), indent=1))
        self.touch(spec.key)
        return env

    async def probe(
        self, python: str, names: Sequence[str], log: list[str], deadline: float
    ) -> dict[str, Any]:
        """Import the replica side inside the environment; the versions of ``names`` there."""
        output = await _run(
            [python, "-c", _PROBE, json.dumps(list(names))],
            log,
            deadline,
            env=replica_environment(python, self.replica_path(), {}),
            what="the replica check (import modeldeck.replica.app and mlflow)",
        )
        for line in reversed(output.splitlines()):
            if line.startswith(PROBE_PREFIX):
                return dict(json.loads(line[len(PROBE_PREFIX) :]))
        raise BuildError(f"the replica check printed no result:\n{_tail(output)}")

    # -- eviction -----------------------------------------------------------------------------

    def evict(self, in_use: Iterable[str], max_bytes: int | None = None) -> list[Environment]:
        """Remove the least recently used environments not in ``in_use`` until the cache holds
        at most ``max_bytes`` (the configured limit by default; 0 removes every unused one)."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        keep = set(in_use)
        entries = self.entries()
        total = sum(e.size_bytes for e in entries)
        removed = []
        for env in entries:
            if total <= limit:
                break
            if env.key in keep:
                continue
            shutil.rmtree(self.entry(env.key), ignore_errors=True)
            total -= env.size_bytes
            removed.append(env)
        self._remove_incomplete(keep)
        return removed

    def _remove_incomplete(self, keep: set[str]) -> None:
        """Directories of builds that never finished (the platform died meanwhile)."""
        if not self.envs_dir.is_dir():
            return
        for entry in self.envs_dir.iterdir():
            if entry.name not in keep and entry.is_dir() and not (entry / META).exists():
                shutil.rmtree(entry, ignore_errors=True)

    def prune_models(self, in_use: Iterable[str]) -> int:
        """Remove downloaded models no replica loads; the number removed."""
        keep = {Path(p).name for p in in_use}
        removed = 0
        if self.models_dir.is_dir():
            for entry in self.models_dir.iterdir():
                if entry.name not in keep:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed


def replica_environment(python: str, replica_path: Path, extra: dict[str, str]) -> dict[str, str]:
    """The process environment of a replica (or a check) running in an isolated environment:
    the platform's variables, the environment's ``bin`` first on ``PATH``, and on
    ``PYTHONPATH`` only modeldeck (plus what the deployment's own ``PYTHONPATH`` adds)."""
    env_dir = Path(python).parent.parent
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    paths = [str(replica_path), extra.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env["VIRTUAL_ENV"] = str(env_dir)
    env["PATH"] = os.pathsep.join([str(env_dir / "bin"), os.environ.get("PATH", "")])
    return env


def uv_binary() -> str:
    """The ``uv`` executable: the one the ``uv`` package installed, else one on ``PATH``."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found:
        return found
    raise BuildError(
        "env_manager 'uv' needs uv: install it with pip install 'modeldeck[builds]' "
        "(or put uv on PATH), or use env_manager 'virtualenv'"
    )


def _interpreter(manager: str, wanted: str) -> str:
    """The base interpreter for a new environment of Python ``wanted`` (major.minor)."""
    if wanted == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    if manager == "uv":
        return wanted  # uv finds an installed interpreter (or fetches one, per its settings)
    found = shutil.which(f"python{wanted}")
    if found is None:
        raise BuildError(
            f"the model was logged with Python {wanted} and no python{wanted} is on this "
            f"machine's PATH (the platform runs {platform.python_version()})"
        )
    return found


async def _run(
    cmd: list[str],
    log: list[str],
    deadline: float,
    *,
    env: dict[str, str] | None = None,
    quiet: bool = False,
    what: str | None = None,
) -> str:
    """Run one build step; its output goes to ``log`` (unless ``quiet``) and is returned."""
    shown = shlex.join("<script>" if "\n" in c else c for c in cmd)
    shown = shown if len(shown) <= 400 else shown[:400] + " ..."
    log.append(f"$ {shown}")
    child_env = dict(env if env is not None else os.environ)
    child_env.setdefault("NO_COLOR", "1")
    if env is None:
        child_env.pop("VIRTUAL_ENV", None)  # the platform's own venv is not the target
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=child_env,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), max(1.0, deadline - time.monotonic()))
    except (TimeoutError, asyncio.CancelledError) as exc:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise BuildError(f"{what or shown} did not finish before the build timed out") from exc
    text = out.decode(errors="replace")
    if not quiet and text.strip():
        log.append(text.rstrip())
    if proc.returncode != 0:
        if quiet:
            log.append(text.rstrip())
        name = what or f"{Path(cmd[0]).name} {' '.join(cmd[1:3])}"
        raise BuildError(f"{name} failed (exit code {proc.returncode}):\n{_tail(text)}")
    return text


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def directory_size(path: Path) -> int:
    """Bytes in the files under ``path``, each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            ident = (st.st_dev, st.st_ino)
            if ident in seen:
                continue
            seen.add(ident)
            total += st.st_size
    return total


__all__ = [
    "ISOLATED",
    "REPLICA_REQUIREMENTS",
    "BuildError",
    "EnvManager",
    "EnvRecipe",
    "Environment",
    "EnvironmentCache",
    "ModelFiles",
    "read_model_files",
    "recipe",
    "replica_environment",
    "requirement_name",
    "uv_binary",
]
