"""The README's examples: every Python block compiles and names nothing undefined (pyflakes'
rules, through ``ruff check``), and the examples run against one platform (``make run``'s) do
not create the same deployment twice."""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RUFF = Path(sys.executable).parent / "ruff"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def pyflakes(code: str, name: str) -> subprocess.CompletedProcess[str]:
    """``ruff check`` with pyflakes' rules (F: undefined names, unused imports...) on ``code``."""
    return subprocess.run(
        [str(RUFF), "check", "--no-cache", "--isolated", "--select", "F", "--output-format",
         "concise", "--stdin-filename", name, "-"],
        input=code, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


PYTHON_BLOCKS = blocks(README.read_text(), "python")


def test_the_readme_has_python_examples() -> None:
    assert len(PYTHON_BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_a_readme_python_block_compiles_and_uses_no_undefined_name(index: int) -> None:
    code = PYTHON_BLOCKS[index]
    compile(code, f"README.md python block {index + 1}", "exec")
    result = pyflakes(code, f"readme_block_{index + 1}.py")
    assert result.returncode == 0, f"README.md python block {index + 1}:\n{result.stdout}"


def test_the_check_catches_an_undefined_name() -> None:
    """The README's old metrics snippet: ``uuid`` came from nowhere."""
    old = "import modeldeck.metrics as metrics\n\nmetrics.track_delayed_metrics({}, uuid)\n"
    result = pyflakes(old, "old.py")
    assert result.returncode != 0 and "F821" in result.stdout and "uuid" in result.stdout


def created_deployments(text: str) -> list[str]:
    """Deployments the README's examples create on ``make run``'s platform, in order: the CLI's
    ``modeldeck deploy MODEL [--name NAME]`` and Python's ``client.deploy(NAME, ...)``."""
    names: list[str] = []
    for lang, body in FENCE.findall(text):
        if lang == "bash":
            for line in body.splitlines():
                words = shlex.split(line.split("#", 1)[0])
                if len(words) > 2 and words[0].endswith("modeldeck") and words[1] == "deploy":
                    named = words[words.index("--name") + 1] if "--name" in words else words[2]
                    names.append(named)
        elif lang == "python":
            for node in ast.walk(ast.parse(body)):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "deploy"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    names.append(str(node.args[0].value))
    return names


def test_the_readme_never_creates_a_deployment_twice() -> None:
    """Followed in order, the README's examples would get a 409 from a second create."""
    # The lab walk-through runs its own platform (--data-dir .modeldeck/lab/platform).
    text = README.read_text().split("## Lab walk-through", 1)[0]
    names = created_deployments(text)
    assert "iris" in names and "iris-py" in names
    assert len(names) == len(set(names)), names


def test_the_clash_check_catches_the_old_readme() -> None:
    old = (
        "```bash\n.venv/bin/modeldeck deploy sklearn_model --name iris --alias champion\n```\n"
        '```python\ncreated = client.deploy("iris", "sklearn_model", alias="champion")\n```\n'
    )
    assert created_deployments(old) == ["iris", "iris"]
