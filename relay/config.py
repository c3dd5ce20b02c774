"""Configuration: one TOML file decoded into msgspec Structs (docs/configuration.md).

Every problem is reported at once, one ``key: message`` line each, because an operator fixing
a config file one error per deploy is a bad afternoon. msgspec stops at the first error, so
:func:`validate` walks the Struct tree itself, checking each value against its field's type,
and only then decodes the whole tree. Unknown keys are errors: a typo must not pass silently.

Environment variables ``RELAY__<SECTION>__<KEY>`` override file values (``RELAY__REDIS__URL``);
a list of tables is addressed by index (``RELAY__CLEVER__DISTRICTS__0__TOKEN_ENV``). Values are
read as TOML values when they parse as one (``500``, ``true``, ``["a"]``), else as strings.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from relay.config_rules import (
    WHSEC_BYTES,
    check_semantics,
    check_tree,
    is_whsec,
    read_secret,
    whsec_length,
)
from relay.errors import ConfigError
from relay.logs import register_secret

ENV_PREFIX = "RELAY__"
CONFIG_ENV = "RELAY_CONFIG"

Component = Literal["poller", "translator", "http", "v2api", "webhooks"]
RecordType = Literal[
    "students",
    "teachers",
    "contacts",
    "districtadmins",
    "schooladmins",
    "sections",
    "schools",
    "districts",
    "courses",
    "terms",
]
ALL_RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)

ApiVersion = Literal["v3.0", "v3.1"]
PositiveSeconds = Annotated[float, Meta(gt=0)]
NonEmpty = Annotated[str, Meta(min_length=1)]


class Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Config sections reject unknown keys and are immutable once loaded."""


class RelaySection(Base, frozen=True):
    """``[relay]``: which components run and how the process stops."""

    components: list[Component] = msgspec.field(
        default_factory=lambda: ["poller", "translator", "http"]
    )
    shutdown_grace_s: PositiveSeconds = 20.0
    instance: str = ""
    """Name of this replica in logs and /status; empty means the host name."""
    lease_ttl_s: PositiveSeconds = 15.0
    """Lifetime of a district's polling lease; a dead replica's districts move after about this."""


class District(Base, frozen=True):
    """One ``[[clever.districts]]`` entry: a district and where its token comes from."""

    id: NonEmpty
    token: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    start: str = "latest"
    """``latest``, ``earliest`` or a Clever event id; used only when no cursor is stored."""

    def __repr__(self) -> str:
        """Never show the token, whatever logs or tracebacks print this object."""
        return f"District(id={self.id!r})"

    def resolve_token(self) -> str:
        """Read the token from wherever the config says it lives.

        Raises:
            ConfigError: the variable is unset or the file unreadable (naming the key, never
                the value).
        """
        return read_secret(
            f"clever.districts[{self.id}]",
            inline=self.token,
            env=self.token_env,
            file=self.token_file,
            names=("token_env", "token_file"),
        )


class Discovery(Base, frozen=True):
    """``[clever.discovery]``: districts read from Clever's OAuth tokens list (docs/fleet.md)."""

    client_id: str | None = None
    client_id_env: str | None = None
    client_id_file: str | None = None
    client_secret: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    oauth_base_url: str = "https://clever.com"
    """Scheme and host of Clever's OAuth server; the relay appends ``/oauth/tokens``."""
    interval_s: PositiveSeconds = 300.0
    """How often the token list is read again (and at once after a refused token)."""
    reread_min_s: PositiveSeconds = 30.0
    """A refused token re-reads the list at once, but never sooner than this after a read."""
    onboard: Literal["sync", "latest", "earliest"] = "sync"
    """What a newly discovered district does before polling (docs/fleet.md)."""
    max_onboarding: Annotated[int, Meta(ge=1, le=1000)] = 4
    """Onboarding syncs one replica runs at once (the others wait their turn)."""

    def __repr__(self) -> str:
        """Never show the client secret."""
        return f"Discovery(oauth_base_url={self.oauth_base_url!r})"

    def resolve_credentials(self) -> tuple[str, str]:
        """The app's client id and secret, from wherever the config says they live.

        Raises:
            ConfigError: a variable is unset or a file unreadable (naming the key only).
        """
        client_id = read_secret(
            "clever.discovery",
            inline=self.client_id,
            env=self.client_id_env,
            file=self.client_id_file,
            names=("client_id_env", "client_id_file"),
        )
        secret = read_secret(
            "clever.discovery",
            inline=self.client_secret,
            env=self.client_secret_env,
            file=self.client_secret_file,
            names=("client_secret_env", "client_secret_file"),
        )
        return client_id, secret


class CleverSection(Base, frozen=True):
    """``[clever]``: where Clever is and how to poll it."""

    base_url: str = "https://api.clever.com"
    page_limit: Annotated[int, Meta(ge=1, le=10000)] = 1000
    poll_interval_s: PositiveSeconds = 5.0
    request_timeout_s: PositiveSeconds = 30.0
    max_backoff_s: PositiveSeconds = 60.0
    """Cap of the exponential backoff between retries of a failing request."""
    auth_retry_s: PositiveSeconds = 300.0
    """How long a district whose token Clever refused waits before trying again."""
    on_cursor_lost: Literal["fail", "latest"] = "fail"
    retention_check_interval_s: Annotated[float, Meta(gt=0, le=86400)] = 300.0
    """How often a quiet district with a cursor near Clever's retention asks for the newest
    event (the lost-cursor check): at most once per this, not on every empty page."""
    rate_limit_reserve: Annotated[int, Meta(ge=0)] = 5
    """Requests kept in hand before ``X-RateLimit-Remaining`` reaches 0; then wait for reset."""
    api_version: ApiVersion = "v3.0"
    """Which Clever API version events and Data API calls use (``/v3.0/...`` or ``/v3.1/...``)."""
    districts: list[District] = msgspec.field(default_factory=list)
    discovery: Discovery | None = None
    """Absent: static districts only."""


class RedisSection(Base, frozen=True):
    """``[redis]``: the Redis the streams live in."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: NonEmpty = "clever"
    events_maxlen: Annotated[int, Meta(ge=1000)] = 1_000_000
    legacy_maxlen: Annotated[int, Meta(ge=1000)] = 1_000_000
    deadletter_maxlen: Annotated[int, Meta(ge=1000)] = 100_000
    health_check_interval_s: PositiveSeconds = 30.0
    """How often the maxmemory-policy and persistence checks run (docs/operations.md)."""
    cluster: bool = False
    """Connect with the Redis Cluster client (the prefix must then carry a hash tag)."""
    pipeline_max_connections: Annotated[int, Meta(ge=4, le=10000)] = 50
    """Connections of the pipeline's pool (poller, translator, leases, webhooks)."""
    api_max_connections: Annotated[int, Meta(ge=2, le=10000)] = 50
    """Connections of the request side's pool (v2 API, /status, /metrics): a separate budget,
    so API load can never take a connection the pipeline needs."""
    pool_timeout_s: PositiveSeconds = 10.0
    """How long a command waits for a free connection of its pool before failing."""


class LegacySection(Base, frozen=True):
    """``[legacy]``: the translator's output topics and consumer group."""

    record_types: list[RecordType] = msgspec.field(default_factory=lambda: list(ALL_RECORD_TYPES))
    group: NonEmpty = "legacy-translator"
    batch_size: Annotated[int, Meta(ge=1, le=10000)] = 500
    block_ms: Annotated[int, Meta(ge=1)] = 1000
    claim_idle_ms: Annotated[int, Meta(ge=1)] = 60_000
    max_deliveries: Annotated[int, Meta(ge=1)] = 5
    lease_ttl_s: PositiveSeconds = 15.0
    """The single active translator renews this lease; a standby takes over after it lapses."""


class HttpSection(Base, frozen=True):
    """``[http]``: the ops server."""

    host: str = "0.0.0.0"  # noqa: S104 - a container's server must listen on all interfaces
    port: Annotated[int, Meta(ge=1, le=65535)] = 8080
    per_district_metrics: bool = True
    """Export per-district series (lag, up, cursor age, per-district counters) on /metrics;
    off, only aggregates remain (for fleets of thousands of districts)."""
    console_token_env: str | None = None
    """Environment variable holding the web console's sign-in token; the console is off unless
    this or ``console_token_file`` is set (docs/console.md)."""
    console_token_file: str | None = None

    @property
    def console_enabled(self) -> bool:
        """Whether ``/console`` is served at all."""
        return bool(self.console_token_env or self.console_token_file)

    def resolve_console_token(self) -> str:
        """The console's sign-in token.

        Raises:
            ConfigError: the variable is unset or the file unreadable (naming the key only).
        """
        return read_secret(
            "http",
            inline=None,
            env=self.console_token_env,
            file=self.console_token_file,
            names=("console_token_env", "console_token_file"),
        )


class LogSection(Base, frozen=True):
    """``[log]``: level and format of the JSON log lines."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class V2Client(Base, frozen=True):
    """One ``[[v2api.clients]]`` entry: a relay-issued key for one district (docs/v2-api.md)."""

    name: NonEmpty
    district: NonEmpty
    token: str | None = None
    token_env: str | None = None
    token_file: str | None = None

    def __repr__(self) -> str:
        """Never show the key."""
        return f"V2Client(name={self.name!r}, district={self.district!r})"

    def resolve_token(self) -> str:
        """Read the client's key from wherever the config says it lives.

        Raises:
            ConfigError: the variable is unset or the file unreadable.
        """
        return read_secret(
            f"v2api.clients[{self.name}]",
            inline=self.token,
            env=self.token_env,
            file=self.token_file,
            names=("token_env", "token_file"),
        )


class V2ApiSection(Base, frozen=True):
    """``[v2api]``: the v2-compatible HTTP API served on the ops port."""

    clients: list[V2Client] = msgspec.field(default_factory=list)
    default_limit: Annotated[int, Meta(ge=1, le=10000)] = 100
    """Page size when a request gives no ``limit`` (Clever's documented default)."""
    idmap_deleted_retention_s: PositiveSeconds = 90 * 86400.0
    """How long a deleted user's (or replaced ``legacy_id``'s) ID-crosswalk mapping stays
    resolvable, flagged deleted (``docs/migration.md``)."""
    max_concurrent_requests: Annotated[int, Meta(ge=1, le=10000)] = 40
    """v2 requests served at once by this process; more are answered 503 with ``Retry-After``
    before touching Redis. At most ``redis.api_max_connections`` (each holds one connection)."""
    retry_after_s: Annotated[int, Meta(ge=1, le=3600)] = 1
    """The ``Retry-After`` seconds of that 503."""


class WebhookEndpoint(Base, frozen=True):
    """One ``[[webhooks.endpoints]]`` entry (docs/webhooks.md)."""

    name: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+$")]
    url: NonEmpty
    topics: Annotated[list[NonEmpty], Meta(min_length=1)]
    """Legacy (``students.*``) or v3 (``users.*``) event types; ``*`` is a wildcard."""
    districts: list[str] = msgspec.field(default_factory=list)
    """Districts whose events are delivered; empty means all."""
    secret: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    timeout_s: PositiveSeconds = 10.0
    retry_schedule_s: Annotated[list[Annotated[float, Meta(ge=0)]], Meta(min_length=1)] = (
        msgspec.field(default_factory=lambda: [5, 300, 1800, 7200, 18000, 36000, 36000])
    )
    max_in_flight: Annotated[int, Meta(ge=1, le=1000)] = 16
    """Requests in flight to this endpoint at once (across districts)."""

    def __repr__(self) -> str:
        """Never show the secret."""
        return f"WebhookEndpoint(name={self.name!r}, url={self.url!r})"

    def resolve_secrets(self) -> list[str]:
        """The endpoint's signing secrets (several, space-separated, during rotation).

        Raises:
            ConfigError: the source is unset or unreadable, or a secret is not ``whsec_<base64>``.
        """
        key = f"webhooks.endpoints[{self.name}]"
        raw = read_secret(
            key,
            inline=self.secret,
            env=self.secret_env,
            file=self.secret_file,
            names=("secret_env", "secret_file"),
        )
        secrets = raw.split()
        for secret in secrets:
            register_secret(secret)
        if not secrets or not all(is_whsec(secret) for secret in secrets):
            raise ConfigError([f"{key}: secrets must be whsec_<base64>, space-separated"])
        low, high = WHSEC_BYTES
        for secret in secrets:
            size = whsec_length(secret) or 0
            if not low <= size <= high:
                raise ConfigError(
                    [f"{key}: a secret decodes to {size} bytes; {low} to {high} are required"]
                )
        return secrets


class WebhooksSection(Base, frozen=True):
    """``[webhooks]``: push delivery of legacy and v3 events to HTTP endpoints."""

    endpoints: list[WebhookEndpoint] = msgspec.field(default_factory=list)


class Config(Base, frozen=True):
    """The whole configuration file."""

    relay: RelaySection = msgspec.field(default_factory=RelaySection)
    clever: CleverSection = msgspec.field(default_factory=CleverSection)
    redis: RedisSection = msgspec.field(default_factory=RedisSection)
    legacy: LegacySection = msgspec.field(default_factory=LegacySection)
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    log: LogSection = msgspec.field(default_factory=LogSection)
    webhooks: WebhooksSection = msgspec.field(default_factory=WebhooksSection)
    v2api: V2ApiSection = msgspec.field(default_factory=V2ApiSection)


def load_config(
    path: str | Path | None,
    *,
    defaults: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Config:
    """Read, override from the environment, and validate a config.

    Args:
        path: the TOML file; ``None`` uses only ``defaults`` (the demo's built-in config).
        defaults: a config tree to start from instead of a file.
        environ: the environment to read overrides from (``os.environ`` when omitted).

    Raises:
        ConfigError: with one line per problem.
    """
    data: dict[str, Any] = dict(defaults or {})
    if path is not None:
        data = _read_toml(Path(path))
    data = apply_env_overrides(data, os.environ if environ is None else environ)
    return validate(data)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None


def apply_env_overrides(
    data: dict[str, Any], environ: dict[str, str] | os._Environ[str]
) -> dict[str, Any]:
    """Return ``data`` with every ``RELAY__SECTION__KEY`` variable applied.

    Raises:
        ConfigError: a variable that cannot address a key (an empty part, a key inside a
            value that is not a table, an array entry not given by index), one line each:
            an override that would be dropped silently is as bad as a typo in the file.
    """
    problems: list[str] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        problem = _set_path(data, path, _parse_env_value(raw)) if all(path) else "empty key part"
        if problem is not None:
            problems.append(f"{name}: {problem}")
    if problems:
        raise ConfigError(problems)
    return data


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_path(node: Any, path: list[str], value: Any) -> str | None:
    """Set ``value`` at ``path``; the reason when the path cannot exist, else ``None``."""
    for i, part in enumerate(path):
        last = i == len(path) - 1
        where = ".".join(path[:i]) or "config"
        if isinstance(node, list):
            if not part.isdigit():
                return f"{where} is an array of tables: address an entry by index"
            index = int(part)
            while len(node) <= index:
                node.append({})
        elif not isinstance(node, dict):
            return f"{where} is not a table"
        if last:
            node[int(part) if isinstance(node, list) else part] = value
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, [] if path[i + 1].isdigit() else {})
    return None


def validate(data: dict[str, Any]) -> Config:
    """Check every key of ``data`` and return the decoded :class:`Config`.

    Raises:
        ConfigError: listing every problem found, not just the first.
    """
    problems: list[str] = []
    check_tree(Config, data, "", problems)
    if not problems:
        problems.extend(check_semantics(msgspec.convert(data, Config)))
    if problems:
        raise ConfigError(problems)
    return msgspec.convert(data, Config)


def resolve_config_path(arg: str | None) -> str | None:
    """``--config`` wins, else ``RELAY_CONFIG``; ``None`` when neither is given."""
    return arg or os.environ.get(CONFIG_ENV) or None
