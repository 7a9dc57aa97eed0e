"""The typed settings reject what a PACS or the node could not work with, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mammocad.config import ConfigError, OutputKind, Settings, load_settings, validate_ae_title
from mammocad.config.settings import validate_config_data


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("value", ["A", "MAMMOCAD", "X" * 16, "PACS-1_ROOM.2", "  PACS  "])
def test_valid_ae_titles(value: str) -> None:
    assert validate_ae_title(value) == value.strip()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "1-16 characters"),
        ("   ", "1-16 characters"),
        ("X" * 17, "1-16 characters"),
        ("PA\\CS", "backslash"),
        ("PA\tCS", "control characters"),
        ("PA\x01CS", "control characters"),
        ("PA\x7fCS", "control characters"),
    ],
)
def test_invalid_ae_titles(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_ae_title(value)


@pytest.mark.parametrize(("port", "ok"), [(0, False), (1, True), (104, True), (65535, True), (65536, False)])
def test_port_range_node_and_destination(tmp_path: Path, clean_env: None, port: int, ok: bool) -> None:
    node = _write(tmp_path, f"[node]\nport = {port}\n")
    dest = tmp_path / "d.toml"
    dest.write_text(f'[[destinations]]\nname = "p"\nae_title = "P"\nhost = "h"\nport = {port}\n')
    if ok:
        assert load_settings(node).node.port == port
        assert load_settings(dest).destinations[0].port == port
    else:
        with pytest.raises(ConfigError, match=r"node\.port: .*port must be 1-65535"):
            load_settings(node)
        with pytest.raises(ConfigError, match=r"destinations\[0\]\.port: .*port must be 1-65535"):
            load_settings(dest)


def test_bad_ae_in_file_names_key_and_file(tmp_path: Path, clean_env: None) -> None:
    path = _write(tmp_path, '[node]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n[[callers]]\nae_title = "A\\\\B"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    text = str(err.value)
    assert str(path) in text
    assert "node.ae_title" in text and "1-16 characters" in text
    assert "callers[0].ae_title" in text and "backslash" in text


def test_destination_names_must_be_unique(tmp_path: Path, clean_env: None) -> None:
    """The error was reported at "(top level)" with the whole file as the value it got, broker
    password included."""
    entry = '[[destinations]]\nname = "pacs"\nae_title = "P{0}"\nhost = "h"\nport = 104\n'
    path = _write(tmp_path, '[broker]\nurl = "redis://:s3cret@10.0.0.2:6379/0"\n' + entry.format(1) + entry.format(2))
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    lines = str(raised.value).splitlines()
    assert lines[1] == ("  destinations: Value error, names must be unique, repeated: pacs; rename or remove one of "
                        "each in the file"), lines
    assert len(lines) == 3 and "s3cret" not in str(raised.value) and "(top level)" not in str(raised.value)


def test_unknown_key_and_unknown_output_are_named(tmp_path: Path, clean_env: None) -> None:
    path = _write(tmp_path, '[node]\naetitle = "X"\n')
    with pytest.raises(ConfigError, match=r"node\.aetitle: Extra inputs are not permitted"):
        load_settings(path)
    path = _write(tmp_path, '[[destinations]]\nname = "p"\nae_title = "P"\nhost = "h"\nport = 1\noutputs = ["pdf"]\n')
    with pytest.raises(ConfigError, match=r"destinations\[0\]\.outputs\[0\]"):
        load_settings(path)


def test_env_override_wins_over_file(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[node]\nport = 11112\n")
    monkeypatch.setenv("MAMMOCAD_NODE__PORT", "11113")
    assert load_settings(path).node.port == 11113


def test_keyword_overrides_win_over_environment_and_file(tmp_path: Path, clean_env: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[node]\nport = 11112\nae_title = \"FROMFILE\"\n")
    monkeypatch.setenv("MAMMOCAD_NODE__PORT", "11113")
    settings = load_settings(path, log_level="debug", node={"port": 11114, "ae_title": "KWARG"})
    assert (settings.node.port, settings.node.ae_title, settings.log_level) == (11114, "KWARG", "DEBUG")
    # The file was read for this call only: a bare Settings() sees the environment, not the file.
    assert Settings().node.port == 11113 and Settings().node.ae_title != "FROMFILE"


def test_bad_env_override_names_the_variable(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, "[node]\nport = 11112\n")
    monkeypatch.setenv("MAMMOCAD_NODE__PORT", "70000")
    with pytest.raises(ConfigError, match=r"node\.port: .*\[from environment variable MAMMOCAD_NODE__PORT\]"):
        load_settings(path)


@pytest.mark.parametrize(("var", "value", "example"), [
    ("MAMMOCAD_CALLERS", "PACS", "MAMMOCAD_CALLERS='[{\"ae_title\": \"PACS\""),
    ("MAMMOCAD_BROKER", "redis://broker:6379/0", "MAMMOCAD_BROKER__KEY=value"),
    ("MAMMOCAD_BROKER", "redis://:s3cret@broker:6379/0", "MAMMOCAD_BROKER__KEY=value"),
])
def test_env_value_that_is_not_json_names_the_variable(tmp_path: Path, clean_env: None,
                                                       monkeypatch: pytest.MonkeyPatch, var: str, value: str,
                                                       example: str) -> None:
    """pydantic-settings said 'error parsing value for field "callers" from source
    "EnvSettingsSource"', reported as a problem in the TOML file, with no variable and no fix."""
    path = _write(tmp_path, "[node]\nport = 11112\n")
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    message = str(raised.value)
    assert message.startswith(f"invalid configuration in the environment: {var} must be JSON")
    shown = value.replace(":s3cret@", ":***@")  # a broker password is never echoed
    assert example in message and repr(shown) in message and str(path) not in message
    assert "s3cret" not in message


def test_file_only_validation_ignores_environment(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMMOCAD_NODE__PORT", "70000")
    assert validate_config_data({"node": {"port": 104}}).node.port == 104


def test_missing_explicit_file_is_an_error(tmp_path: Path, clean_env: None) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_worker_time_limits_checked(tmp_path: Path, clean_env: None) -> None:
    path = _write(tmp_path, "[worker]\nsoft_time_limit_s = 900\ntime_limit_s = 900\n")
    with pytest.raises(ConfigError, match="soft_time_limit_s .* must be below"):
        load_settings(path)


def test_shipped_config_is_valid(clean_env: None) -> None:
    settings = load_settings(Path(__file__).resolve().parents[2] / "config" / "mammocad.toml")
    assert settings.node.ae_title == "MAMMOCAD"
    assert settings.destination("pacs").outputs == list(OutputKind)
    assert settings.caller_allowed("PACS", "127.0.0.1") and not settings.caller_allowed("PACS", "10.0.0.1")


@pytest.mark.parametrize("url", ["10.0.0.2:6379", "redis//10.0.0.2:6379/0", "amqp://:s3cret@10.0.0.2//",
                                 "redis://:s3cret@10.0.0.2:63 79/0"])
def test_broker_url_that_is_not_redis_is_refused_without_its_password(
        tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Celery took "10.0.0.2:6379" for AMQP to a host named "10.0.0.2:6379": config check
    passed and the node listened and accepted images it could never queue."""
    monkeypatch.setenv("MAMMOCAD_BROKER__URL", url)
    with pytest.raises(ConfigError) as raised:
        load_settings(_write(tmp_path, ""))
    message = str(raised.value)
    assert "broker.url" in message and "MAMMOCAD_BROKER__URL" in message and "s3cret" not in message


@pytest.mark.parametrize("url", ["redis://:pw@10.0.0.2:6379/0", "rediss://:pw@broker:6379/0?ssl_cert_reqs=required",
                                 "redis://localhost", ""])
def test_redis_broker_urls_are_accepted(tmp_path: Path, clean_env: None, monkeypatch: pytest.MonkeyPatch,
                                        url: str) -> None:
    monkeypatch.setenv("MAMMOCAD_BROKER__URL", url)
    assert load_settings(_write(tmp_path, "")).broker.url == url
