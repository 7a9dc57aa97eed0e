"""Reading the config: which file, environment overrides, and errors that name the bad key."""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Mapping
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    TomlConfigSettingsSource,
)

from mammocad.config.paths import resolve_file_paths
from mammocad.config.schema import Settings
from mammocad.config.sections import redact_url

DEFAULT_CONFIG_PATH = Path("config/mammocad.toml")
CONFIG_ENV_VAR = "MAMMOCAD_CONFIG"

#: Exit status of every command when the configuration (file, environment or a command's own
#: options, all validated by :func:`load_settings`) is invalid: the command cannot run as given,
#: as for a bad command line (argparse's 2). Most commands, and the node and workers under
#: systemd, already exited 2; docs/ADMIN.md ("Exit status") documents it. 1 stays "the
#: operation failed" (a refused edit, a failed echo), so a script can tell the two apart.
EXIT_INVALID_CONFIG = 2


class ConfigError(Exception):
    """The configuration file or environment is invalid; the message names the key."""


def resolve_config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """``--config`` wins, then ``$MAMMOCAD_CONFIG``, then ``config/mammocad.toml``."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV_VAR)
    if env:
        return Path(env)
    return DEFAULT_CONFIG_PATH


def load_settings(path: str | os.PathLike[str] | None = None, *,
                  options: Mapping[str, tuple[str, Any]] | None = None, **overrides: Any) -> Settings:
    """Load and validate settings; raise :class:`ConfigError` naming the bad key.

    A missing file is an error only when it was asked for explicitly; otherwise the
    built-in defaults apply (the embedded default used by ``make run``).

    ``options`` are a command's own options by the key each sets, e.g.
    ``{"node.port": ("--port", 104)}``: like ``overrides`` they win over file and
    environment, and they are validated with everything else; a bad one is reported in one
    line naming the option (naming the key alone sends the admin to a file that is fine).
    """
    for key, (_, value) in (options or {}).items():
        _set_key(overrides, key.split("."), value)
    config_path = resolve_config_path(path)
    config_path_or_none = _readable_file(config_path, explicit=bool(path) or bool(os.environ.get(CONFIG_ENV_VAR)),
                                         named_by=None if path else _named_by_environment())
    try:
        # The sources of this one call, highest first; no state outlives it, so a reload in
        # the config watcher's thread cannot change what another thread is loading.
        sources: list[PydanticBaseSettingsSource] = [InitSettingsSource(Settings, init_kwargs=overrides),
                                                     EnvSettingsSource(Settings)]
        if config_path_or_none is not None:
            sources.append(_ConfigFileSource(Settings, toml_file=config_path_or_none))
        return Settings(_build_sources=(tuple(sources), overrides))
    except Exception as exc:  # pydantic ValidationError or TOML decode error
        flags = {tuple(key.split(".")): flag for key, (flag, _) in (options or {}).items()}
        raise ConfigError(_explain(exc, config_path_or_none, flags)) from exc


class _ConfigFileSource(TomlConfigSettingsSource):
    """The TOML file, its relative paths made absolute against its folder
    (:mod:`mammocad.config.paths`): the node, the workers and an admin's command, each started
    from its own working directory, read one spool and one set of certificates from one file."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        data = super()._read_file(file_path)
        return resolve_file_paths(data, str(file_path), Settings) if isinstance(file_path, Path) else data


def _named_by_environment() -> str | None:
    return f"${CONFIG_ENV_VAR}" if os.environ.get(CONFIG_ENV_VAR) else None


def _readable_file(config_path: Path, *, explicit: bool, named_by: str | None) -> Path | None:
    """``config_path`` when it is a readable TOML file; None when it is the default path and
    absent (the built-in defaults apply); else :class:`ConfigError`, one line saying what to do.

    pydantic-settings reads only what ``is_file()`` says is a file: a folder given by mistake
    loaded as an empty file (``config check`` said "configuration OK" with every default), and
    its own errors for an unreadable file or a TOML syntax error read as a bad key.
    """
    source = f" (named by {named_by})" if named_by else ""
    try:
        with config_path.open("rb") as f:
            tomllib.load(f)
    except FileNotFoundError:
        if not explicit:
            return None
        raise ConfigError(f"configuration file {config_path}{source} does not exist: give the right path with "
                          f"--config (or ${CONFIG_ENV_VAR}), or create it: `mammocad aet add AE` writes a "
                          "commented one") from None
    except IsADirectoryError:
        raise ConfigError(f"configuration file {config_path}{source} is a folder: give the file, e.g. "
                          f"--config {config_path / 'mammocad.toml'}") from None
    except OSError as exc:  # e.g. the file or a folder above it is not readable by this user
        raise ConfigError(f"cannot read configuration file {config_path}{source}: {exc.strerror or exc}; "
                          "check the permissions of the file and its folders (run as the services' "
                          "user, or give it read access: mode 0640, group mammocad)") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {config_path}{source} is not valid TOML: {exc}; fix that line, "
                          "then run `mammocad config check`") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {config_path}{source} is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start}); save it as UTF-8, then run `mammocad config check`") from exc
    return config_path


def _set_key(data: dict[str, Any], parts: list[str], value: Any) -> None:
    """``data[a][b] = value`` for ``parts == [a, b]``, copying the sections on the way (the
    caller's dicts stay as they were); the sources are merged key by key, so the option
    replaces one key of the file's section, not the section."""
    head, *rest = parts
    if rest:
        section = data[head] = dict(data.get(head) or {})
        _set_key(section, rest, value)
    else:
        data[head] = value


def _env_source(loc: tuple[Any, ...]) -> str:
    """Name the MAMMOCAD_* variable when the bad value came from the environment."""
    names = [str(p) for p in loc if not isinstance(p, int)]
    for n in range(len(names), 0, -1):
        var = "MAMMOCAD_" + "__".join(names[:n]).upper()
        if var in os.environ:
            return f" [from environment variable {var}]"
    return ""


_UNPARSABLE_ENV = re.compile(r'error parsing value for field "(\w+)" from source "EnvSettingsSource"')


def _unparsable_env(exc: Exception) -> str | None:
    """pydantic-settings' own words for a list or section variable that is not JSON name
    neither the variable nor the fix, and blame the file; say both."""
    found = _UNPARSABLE_ENV.search(str(exc))
    if found is None:
        return None
    field = found.group(1)
    var = next((name for name in os.environ if name.upper() == f"MAMMOCAD_{field.upper()}"), f"MAMMOCAD_{field.upper()}")
    example = ("""'[{"ae_title": "PACS", "host": "10.0.0.5"}]'""" if field in ("callers", "destinations")
               else f"""'{{"key": "value"}}' (or one key at a time: MAMMOCAD_{field.upper()}__KEY=value)""")
    return (f"invalid configuration in the environment: {var} must be JSON, e.g. {var}={example}; "
            f"{exc.__cause__ or exc} (got {redact_url(os.environ.get(var, ''))!r})")


def _explain(exc: Exception, path: Path | None, flags: Mapping[tuple[str, ...], str] | None = None,
             hint: bool = True) -> str:
    """One line per bad key, with where its value came from; ``flags`` names the
    command-line option that set a key. When options alone are at fault the message is
    one line about them: the file and the environment are fine. ``hint`` ends a list of bad
    keys with what to do (not for a refused edit: the command's own arguments were wrong)."""
    unparsable = _unparsable_env(exc)
    if unparsable is not None:
        return unparsable
    where = f"in {path}" if path else "in the environment"
    errors = getattr(exc, "errors", None)
    if callable(errors):
        lines, bad_options = [], []
        for err in errors():
            loc = err.get("loc", ())
            key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
            got = err.get("input")
            if tuple(loc) == ("broker", "url") and isinstance(got, str):
                got = redact_url(got)  # the broker password must not reach the journal
            flag = (flags or {}).get(tuple(str(p) for p in loc))
            source = f" [from option {flag}]" if flag else _env_source(loc)
            # A whole section or list is not "what you wrote": echoing it repeated the whole
            # file, broker password included.
            shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"  {key}: {err.get('msg')}{shown}{source}")
            if flag:
                reason = str(err.get("msg", "")).removeprefix("Value error, ")
                bad_options.append(f"invalid {flag} {got!r}: {reason}; give a valid value, "
                                   f"or leave {flag} out to use {key} from the configuration")
        if bad_options and len(bad_options) == len(lines):
            return "; ".join(bad_options)
        fix = (f"fix each key named above (in {path}, or the environment variable named), then run "
               "`mammocad config check`" if path else
               "fix each key named above (the environment variable named), then run `mammocad config check`")
        return f"invalid configuration {where}:\n" + "\n".join(lines) + ("\n" + fix if hint else "")
    return f"invalid configuration {where}: {exc}"


class _FileOnlySettings(Settings):
    """Settings read from the given data alone: no environment, no file source."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def validate_config_data(data: dict[str, Any], path: Path | None = None) -> Settings:
    """Validate the content of a config file on its own (environment ignored).

    Used before an edit is written, so a bad ``MAMMOCAD_*`` variable in the admin's
    shell neither blocks nor hides a problem in the file itself. With ``path`` (the file the
    data is, or will be, in), relative paths are relative to its folder, as when the services
    load it; ``data`` itself is not changed.
    """
    if path is not None:
        data = resolve_file_paths(data, path, Settings)
    try:
        return _FileOnlySettings(**data)
    except Exception as exc:
        raise ConfigError(_explain(exc, path, hint=False)) from exc


def settings_for_command(config: str | os.PathLike[str] | None) -> Settings | None:
    """A command's settings (``--config``, else the default file and the environment), or None
    after saying why on stderr (``mammocad: <the ConfigError>``): the command then returns
    ``EXIT_INVALID_CONFIG``. Each command group once kept its own copy of these lines."""
    try:
        return load_settings(config)
    except ConfigError as exc:
        print(f"mammocad: {exc}", file=sys.stderr)
        return None
