"""Settings: declared once, documented, strict, and layered defaults < toml < env < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from koban.errors import ConfigError
from koban.settings import OPTION_NAMES, load_settings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def test_every_setting_is_documented():
    text = DOCS.read_text()
    missing = [name for name in OPTION_NAMES if f"`{name}`" not in text]
    assert not missing, f"add these to docs/configuration.md: {missing}"


def test_flags_win_over_environment_over_file_over_defaults(tmp_path):
    config = tmp_path / "koban.toml"
    config.write_text('port = 1111\notlp_grpc_port = 2222\ndata_dir = "/from/file"\n')
    env = {"KOBAN_PORT": "3333", "KOBAN_DATA_DIR": "/from/env"}
    settings = load_settings({"port": "4444"}, environ=env, config_file=str(config))
    assert settings.port == 4444
    assert settings.data_dir == "/from/env"
    assert settings.otlp_grpc_port == 2222
    assert settings.otlp_http_port == 4318


@pytest.mark.parametrize(
    "flags,env,fragment",
    [
        ({"port": "seventy"}, {}, "port must be int, got 'seventy'"),
        ({}, {"KOBAN_QUEUE_MAX_RECORDS": "-5"}, "queue_max_records must be positive"),
        ({"port": "70000"}, {}, "port must be a port number"),
        ({}, {"KOBAN_DEMO": "maybe"}, "KOBAN_DEMO: demo must be bool"),
    ],
)
def test_a_bad_value_is_rejected_naming_the_key_and_value(flags, env, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(flags, environ=env, config_file=None)
    assert fragment in str(info.value)


def test_an_unknown_key_in_the_file_is_rejected(tmp_path):
    config = tmp_path / "koban.toml"
    config.write_text("prot = 7070\n")
    with pytest.raises(ConfigError, match="unknown option 'prot'"):
        load_settings(environ={}, config_file=str(config))


def test_koban_config_masks_secrets_but_shows_everything_else():
    settings = load_settings(environ={"KOBAN_CLICKHOUSE_URL": "http://u:hunter2@h:8123/db"}, config_file=None)
    shown = {name: value for name, value, _ in settings.describe()}
    assert shown["clickhouse_url"] == "********"
    assert "hunter2" not in "".join(shown.values())
    assert shown["port"] == "7070"
    assert set(shown) == set(OPTION_NAMES)
