"""Settings: defaults, environment, TOML file, refusals; and the README documents every one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from hearth.config import (
    DEFAULT_CHAT_MODEL,
    LlamaCppEngineConfig,
    OpenAIEngineConfig,
    Settings,
)

README = Path(__file__).parent.parent / "README.md"


def test_defaults_need_no_configuration() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 8080
    assert settings.database_url is None
    assert [e.kind for e in settings.engines] == ["llamacpp", "embedder"]
    assert settings.engines[0].models[0].name == DEFAULT_CHAT_MODEL


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_PORT", "9090")
    monkeypatch.setenv(
        "HEARTH_ENGINES",
        '[{"kind": "openai", "name": "vllm", '
        '"base_url": "http://gpu:8000/v1", "models": [{"name": "llama"}]}]',
    )
    settings = Settings()
    assert settings.port == 9090
    assert isinstance(settings.engines[0], OpenAIEngineConfig)
    assert settings.engines[0].models[0].upstream_name == "llama"


def test_toml_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hearth.toml"
    config.write_text(
        'port = 7000\nlog_level = "debug"\n\n[[engines]]\nkind = "llamacpp"\nname = "cpu"\n'
        '[[engines.models]]\nname = "tiny"\nn_ctx = 1024\n'
    )
    monkeypatch.setenv("HEARTH_CONFIG", str(config))
    monkeypatch.setenv("HEARTH_LOG_LEVEL", "warning")
    settings = Settings()
    assert settings.port == 7000 and settings.log_level == "warning"
    engine = settings.engines[0]
    assert isinstance(engine, LlamaCppEngineConfig) and engine.models[0].n_ctx == 1024


def test_missing_config_file_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTH_CONFIG", "/nonexistent/hearth.toml")
    with pytest.raises(ValueError, match="not a file"):
        Settings()


def test_api_keys_are_required_off_loopback() -> None:
    assert not Settings().api_keys_required
    assert Settings(require_api_key=True).api_keys_required
    assert Settings(host="0.0.0.0").api_keys_required
    assert Settings(host="10.1.2.3").api_keys_required
    assert not Settings(host="::1").api_keys_required
    assert not Settings(host="0.0.0.0", allow_public_without_auth=True).api_keys_required


def test_unknown_setting_and_duplicate_engines_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(prot=1)
    with pytest.raises(ValidationError, match="unique"):
        Settings(engines=[LlamaCppEngineConfig(), LlamaCppEngineConfig()])


def test_every_setting_is_documented_in_the_readme() -> None:
    documented = set(re.findall(r"^\| `HEARTH_([A-Z_]+)`", README.read_text(), re.MULTILINE))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields - documented == set(), "settings missing from the README table"
    assert documented - fields - {"CONFIG"} == set(), "README documents settings that don't exist"
