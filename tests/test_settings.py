"""Settings: defaults, env prefix, and channel misconfiguration named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import SettingsError, load_settings

AES = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SALESBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_embedded_setup() -> None:
    s = load_settings()
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith(
        ".salesbot/salesbot.db")
    assert s.chroma_url is None and not s.telegram_enabled and not s.wecom_enabled


def test_environment_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SALESBOT_DATABASE_URL=postgresql+psycopg://u@h/db\n")
    monkeypatch.setenv("SALESBOT_TELEGRAM_TOKEN", "123:abc")
    s = load_settings()
    assert s.resolved_database_url == "postgresql+psycopg://u@h/db"
    assert s.telegram_enabled and s.telegram_token.get_secret_value() == "123:abc"


def test_partial_wecom_config_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESBOT_WECOM_CORP_ID", "wx49f0ab532d5d035a")
    monkeypatch.setenv("SALESBOT_WECOM_SECRET", "s")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "SALESBOT_WECOM_AGENT_ID" in str(info.value) and "SALESBOT_WECOM_AES_KEY" in str(info.value)
    assert "SALESBOT_WECOM_SECRET" not in str(info.value)


def test_bad_aes_key_length_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"CORP_ID": "wx1", "SECRET": "s", "AGENT_ID": "1000002", "TOKEN": "t",
                       "AES_KEY": AES[:-1]}.items():
        monkeypatch.setenv(f"SALESBOT_WECOM_{key}", value)
    with pytest.raises(SettingsError, match="SALESBOT_WECOM_AES_KEY"):
        load_settings()
    monkeypatch.setenv("SALESBOT_WECOM_AES_KEY", AES)
    assert load_settings().wecom_enabled
