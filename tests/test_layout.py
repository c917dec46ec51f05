"""The layering holds (``make lint`` runs the same contracts) and a wrong-way import breaks it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_replica_importing_the_control_plane_breaks_the_contracts(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "modeldeck", copy / "modeldeck", ignore=shutil.ignore_patterns("__pycache__")
    )
    batcher = copy / "modeldeck" / "replica" / "batcher.py"
    batcher.write_text(batcher.read_text() + "\nimport modeldeck.platform  # the wrong way\n")
    result = lint_imports(copy)
    assert result.returncode != 0, result.stdout
    assert "A replica imports nothing of the control plane BROKEN" in result.stdout
    assert "modeldeck.replica.batcher -> modeldeck.platform" in result.stdout


def test_a_command_module_importing_cli_main_breaks_the_contracts(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "src" / "modeldeck", copy / "modeldeck", ignore=shutil.ignore_patterns("__pycache__")
    )
    keys = copy / "modeldeck" / "cli" / "keys.py"
    keys.write_text(keys.read_text() + "\nimport modeldeck.cli.main  # the wrong way\n")
    result = lint_imports(copy)
    assert result.returncode != 0, result.stdout
    assert "modeldeck.cli.keys -> modeldeck.cli.main" in result.stdout
