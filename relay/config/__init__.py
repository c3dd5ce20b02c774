"""Configuration: one TOML file decoded into msgspec Structs (docs/configuration.md).

The package's modules import only the ones listed before them:

- :mod:`relay.config.values`: value types (component and record-type names, durations) and
  :class:`~relay.config.values.Section`, the base of every section.
- :mod:`relay.config.credentials`: secrets read from inline, an environment variable or a file.
- :mod:`relay.config.sections`: the sections and :class:`Config`.
- :mod:`relay.config.checks`: checks that walk the whole tree and span fields.
- :mod:`relay.config.loading`: :func:`load_config` (file, environment overrides, validation).

``from relay.config import X`` is the way in: every public name is re-exported here.
"""

from relay.config.loading import (
    apply_env_overrides,
    load_config,
    resolve_config_path,
    validate,
)
from relay.config.sections import (
    CleverSection,
    Config,
    Discovery,
    District,
    HttpSection,
    LegacySection,
    LogSection,
    RedisSection,
    RelaySection,
    V2ApiSection,
    V2Client,
    WebhookEndpoint,
    WebhooksSection,
)
from relay.config.values import (
    ALL_RECORD_TYPES,
    CONFIG_ENV,
    ENV_PREFIX,
    ApiVersion,
    ComponentName,
    RecordType,
)

__all__ = [
    "ALL_RECORD_TYPES",
    "CONFIG_ENV",
    "ENV_PREFIX",
    "ApiVersion",
    "CleverSection",
    "ComponentName",
    "Config",
    "Discovery",
    "District",
    "HttpSection",
    "LegacySection",
    "LogSection",
    "RecordType",
    "RedisSection",
    "RelaySection",
    "V2ApiSection",
    "V2Client",
    "WebhookEndpoint",
    "WebhooksSection",
    "apply_env_overrides",
    "load_config",
    "resolve_config_path",
    "validate",
]
