from __future__ import annotations

from pathlib import Path

import pytest

from modeldeck.cli.docs import settings_markdown, settings_rows
from modeldeck.config import ClientSettings, Settings

DOC = Path(__file__).parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    for cls in (Settings, ClientSettings):
        for name, field in cls.model_fields.items():
            assert field.description and len(field.description) > 10, f"{cls.__name__}.{name}"


def test_configuration_doc_matches_the_code() -> None:
    assert settings_markdown() in DOC.read_text(), (
        "docs/configuration.md is stale: regenerate the table with `modeldeck settings --markdown`"
    )


def test_settings_read_the_modeldeck_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELDECK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MODELDECK_PORT", "9123")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    s = Settings()
    assert s.port == 9123
    assert s.resolved_store_url() == f"sqlite:///{tmp_path.resolve() / 'modeldeck.db'}"
    assert s.resolved_tracking_uri() == "sqlite:///elsewhere.db"


def test_defaults_keep_everything_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = Settings(data_dir=Path("/srv/md"))
    assert s.resolved_tracking_uri() == "sqlite:////srv/md/mlflow.db"
    assert s.artifact_root() == "file:///srv/md/mlartifacts"
    assert s.resolved_public_url() == "http://127.0.0.1:8000"


def test_settings_rows_name_each_variable_once() -> None:
    names = [row[0] for row in settings_rows()]
    assert len(names) == len(set(names))
    assert "MLFLOW_TRACKING_URI" in names and "MODELDECK_STORE_URL" in names


def test_cli_doc_matches_the_commands() -> None:
    from modeldeck.cli.docs import cli_markdown

    doc = (Path(__file__).parents[1] / "docs" / "cli.md").read_text()
    from modeldeck.cli.main import main

    assert cli_markdown(main) in doc, "docs/cli.md is stale: regenerate its reference section"
