"""The config file: its model and its loading (the only code that reads the YAML)."""

from ivr.config.load import flow_dependencies, load_config, parse_config, prompt_source
from ivr.config.model import (
    SHIPPED_CONFIG,
    SHIPPED_PROMPTS,
    BotConfig,
    Config,
    HttpConfig,
    LimitsConfig,
    NumberConfig,
    PromptSource,
    TeamConfig,
    canonical_origin,
)

__all__ = [
    "SHIPPED_CONFIG",
    "SHIPPED_PROMPTS",
    "BotConfig",
    "Config",
    "HttpConfig",
    "LimitsConfig",
    "NumberConfig",
    "PromptSource",
    "TeamConfig",
    "canonical_origin",
    "flow_dependencies",
    "load_config",
    "parse_config",
    "prompt_source",
]
