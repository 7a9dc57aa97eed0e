"""Typed configuration: one place, read from a TOML file plus the environment."""

from mammocad.config.settings import (
    EXIT_INVALID_CONFIG,
    Caller,
    ConfigError,
    Destination,
    OutputKind,
    Settings,
    load_settings,
    resolve_config_path,
    settings_for_command,
    validate_ae_title,
)

__all__ = [
    "EXIT_INVALID_CONFIG",
    "Caller",
    "ConfigError",
    "Destination",
    "OutputKind",
    "Settings",
    "load_settings",
    "resolve_config_path",
    "settings_for_command",
    "validate_ae_title",
]
