"""The config file: its model and its loading (the only code that reads the YAML)."""

from ivr.config.load import flow_dependencies, load_config, parse_config, prompt_source
from ivr.config.model import (
    SHIPPED_CONFIG,
    SHIPPED_PROMPTS,
    AuditSettings,
    BotConfig,
    Config,
    EncryptionSettings,
    HttpConfig,
    LimitsConfig,
    NumberConfig,
    PromptSource,
    SipSettings,
    TeamConfig,
    canonical_origin,
    parse_port_range,
)

__all__ = [
    "SHIPPED_CONFIG",
    "SHIPPED_PROMPTS",
    "AuditSettings",
    "BotConfig",
    "Config",
    "EncryptionSettings",
    "HttpConfig",
    "LimitsConfig",
    "NumberConfig",
    "PromptSource",
    "SipSettings",
    "TeamConfig",
    "canonical_origin",
    "flow_dependencies",
    "load_config",
    "parse_config",
    "parse_port_range",
    "prompt_source",
]
