"""Config: YAML < env < CLI flags, and invalid config names the field and exits 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmserve.cli import app
from llmserve.config import ConfigError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmserve.yaml"
    path.write_text(text)
    return path


def test_defaults_serve_the_bundled_model(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert [(m.name, m.provider, m.model) for m in settings.models] == [("tiny-chat", "local", "tiny-chat")]
    assert settings.default_model == "tiny-chat"
    assert (settings.server.host, settings.server.port) == ("127.0.0.1", 8888)


def test_yaml_groups_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(
        tmp_path,
        """
server: {port: 9000, host: 0.0.0.0}
models:
  - {name: chat, model: tiny-chat}
  - {name: chat, model: tiny-chat, device: cpu, dtype: float32}
  - name: gpt-4o
    provider: openai
    model: gpt-4o
    api_base: https://api.openai.com/v1
    api_key: sk-secret
    pricing: {input_per_1k: 0.0025, output_per_1k: 0.01}
""",
    )
    monkeypatch.setenv("LLMSERVE_SERVER__PORT", "9100")
    settings = load_settings(config, server={"host": "127.0.0.2"})
    assert settings.server.port == 9100  # env beats the file
    assert settings.server.host == "127.0.0.2"  # a CLI flag beats both
    assert [m.name for m in settings.models] == ["chat", "chat", "gpt-4o"]
    assert settings.default_model == "chat"
    remote = settings.models[2]
    assert remote.pricing is not None and remote.pricing.output_per_1k == 0.01
    assert "sk-secret" not in repr(remote)  # secrets never land in logs


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("models:\n  - {name: a, model: m, provider: opnai}\n", "models.0.provider"),
        ("models:\n  - {name: a, model: m, devise: cpu}\n", "models.0.devise"),
        ("server: {port: 99999}\n", "server.port"),
        ("models: []\n", "models"),
        ("default_model: missing\n", "default_model"),
    ],
)
def test_invalid_config_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert field in str(caught.value)


def test_cli_exits_2_with_the_field_on_invalid_config(tmp_path: Path) -> None:
    config = write(tmp_path, "models:\n  - {name: a, model: m, provider: opnai}\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert "models.0.provider" in result.output


def test_cli_exits_2_on_a_missing_config_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "not found" in result.output


def test_broken_yaml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(write(tmp_path, "models: [unclosed\n"))


def test_production_refuses_remote_code(tmp_path: Path) -> None:
    config = write(
        tmp_path, "environment: production\nmodels:\n  - {name: a, model: m, trust_remote_code: true}\n"
    )
    with pytest.raises(ConfigError, match="trust_remote_code"):
        load_settings(config)


def test_secrets_come_literally_or_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-from-env")
    monkeypatch.setenv("MASTER_FROM_ENV", "m" * 16)
    monkeypatch.delenv("UNSET_KEY", raising=False)
    upstream = {"name": "gpt", "provider": "openai", "model": "gpt-4o", "api_base": "http://127.0.0.1:9/v1"}
    settings = load_settings(
        master_key="env:MASTER_FROM_ENV",
        models=[{**upstream, "api_key": "env:UPSTREAM_KEY"}, {**upstream, "api_key": "short", "id": "b"}],
    )
    assert settings.master_key is not None and settings.master_key.get_secret_value() == "m" * 16
    # An upstream's key is whatever its provider issued: no minimum length, unlike our own secrets.
    assert [m.api_key.get_secret_value() for m in settings.models if m.api_key] == ["sk-from-env", "short"]
    with pytest.raises(ConfigError, match="master_key must be at least 16 characters"):
        load_settings(master_key="short")
    with pytest.raises(ConfigError, match=r"models\.0\.api_key: .*UNSET_KEY, which is not set"):
        load_settings(models=[{**upstream, "api_key": "env:UNSET_KEY"}])


def test_the_default_model_is_a_chat_group_even_when_embeddings_come_first() -> None:
    settings = load_settings(
        models=[
            {"name": "embedder", "model": "all-MiniLM-L6-v2", "task": "embeddings"},
            {"name": "chat", "model": "tiny-chat"},
        ]
    )
    assert settings.default_model == "chat"
