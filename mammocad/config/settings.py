"""The one typed settings object of mammocad: the public import path of the config.

Read from a TOML file (``--config PATH``, else ``$MAMMOCAD_CONFIG``, else
``config/mammocad.toml``) with environment overrides such as
``MAMMOCAD_NODE__PORT=11113`` (double underscore between section and key).
Validation happens here, once: every other module may trust what it gets.

The pieces live in modules with one job each; import them from here:
``base`` (shared validators), ``output_kinds``, ``sections`` (node, broker, worker, delivery,
results), ``peers`` (callers, destinations), ``security`` (TLS, caller hosts), ``services``
(audit, metrics), ``schema`` (the whole document) and ``loading`` (file + environment, errors).
"""

from __future__ import annotations

from mammocad.config.base import validate_ae_title
from mammocad.config.loading import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_PATH,
    EXIT_INVALID_CONFIG,
    ConfigError,
    load_settings,
    resolve_config_path,
    settings_for_command,
    validate_config_data,
)
from mammocad.config.output_kinds import OutputKind
from mammocad.config.peers import Caller, Destination
from mammocad.config.schema import LOG_LEVELS, Settings
from mammocad.config.sections import (
    BrokerSettings,
    DeliverySettings,
    NodeSettings,
    ResultsSettings,
    WorkerSettings,
)
from mammocad.config.security import NodeTLSSettings
from mammocad.config.services import AuditSettings, MetricsSettings

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_PATH",
    "EXIT_INVALID_CONFIG",
    "LOG_LEVELS",
    "AuditSettings",
    "BrokerSettings",
    "Caller",
    "ConfigError",
    "DeliverySettings",
    "Destination",
    "MetricsSettings",
    "NodeSettings",
    "NodeTLSSettings",
    "OutputKind",
    "ResultsSettings",
    "Settings",
    "WorkerSettings",
    "load_settings",
    "settings_for_command",
    "resolve_config_path",
    "validate_ae_title",
    "validate_config_data",
]
