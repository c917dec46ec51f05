"""The platform's secret and the access keys it encrypts (``keyvault.py``)."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import pytest
from pydantic import SecretStr

from modeldeck.auth.keys import new_access_key
from modeldeck.auth.vault import SECRET_FILE, KeyVault, SecretUnavailable
from modeldeck.config import Settings


def test_the_secret_is_made_once_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    key = new_access_key().plaintext
    vault = KeyVault(settings)
    token = vault.encrypt(key)
    secret = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert key not in token and key not in secret.read_text()
    assert vault.encrypt(key) != token  # a random IV per value
    made = secret.read_bytes()
    again = KeyVault(settings)  # a restart reads the same secret back
    assert again.decrypt(token) == key
    assert secret.read_bytes() == made
    assert again.decrypt(None) is None and again.decrypt("") is None
    assert again.decrypt("not a token") is None


def test_platforms_starting_at_once_agree_on_one_secret(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    vaults = [KeyVault(settings) for _ in range(8)]
    threads = [threading.Thread(target=v.load) for v in vaults]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    token = vaults[0].encrypt("key")
    assert all(v.decrypt(token) == "key" for v in vaults)
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary left


def test_the_configured_secret_wins_and_another_secret_reads_nothing(tmp_path: Path) -> None:
    configured = Settings(data_dir=tmp_path, secret_key=SecretStr("s" * 40))
    token = KeyVault(configured).encrypt("key")
    assert not (tmp_path / SECRET_FILE).exists()
    same = Settings(data_dir=tmp_path / "elsewhere", secret_key=SecretStr("s" * 40))
    assert KeyVault(same).decrypt(token) == "key"
    other = Settings(data_dir=tmp_path, secret_key=SecretStr("t" * 40))
    assert KeyVault(other).decrypt(token) is None  # unreadable until rotated, never an error


def test_an_unusable_secret_is_said_without_showing_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(SecretUnavailable, match="MODELDECK_SECRET_KEY holds 5 characters") as e:
        KeyVault(Settings(data_dir=tmp_path, secret_key=SecretStr("short"))).load()
    assert "short" not in str(e.value)
    (tmp_path / SECRET_FILE).write_text("cut\n")
    with pytest.raises(SecretUnavailable, match="holds 3 characters"):
        KeyVault(Settings(data_dir=tmp_path)).load()
    (tmp_path / SECRET_FILE).write_text("x" * 44)
    (tmp_path / SECRET_FILE).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="modeldeck.auth.keys"):
        KeyVault(Settings(data_dir=tmp_path)).load()
    assert "readable by others" in caplog.text and "x" * 44 not in caplog.text
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(SecretUnavailable, match="set MODELDECK_SECRET_KEY"):
        KeyVault(Settings(data_dir=blocked / "data")).load()  # not a directory
