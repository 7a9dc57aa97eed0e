"""Typed configuration: one place, read from a TOML file plus the environment."""

from mammocad.config.settings import (
    Caller,
    ConfigError,
    Destination,
    OutputKind,
    Settings,
    load_settings,
    resolve_config_path,
    validate_ae_title,
)

__all__ = [
    "Caller",
    "ConfigError",
    "Destination",
    "OutputKind",
    "Settings",
    "load_settings",
    "resolve_config_path",
    "validate_ae_title",
]
