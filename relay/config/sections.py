"""The config's sections: one msgspec Struct per TOML table (docs/configuration.md).

The plain list of settings, with their defaults and what each means; secrets are resolved through
:mod:`relay.config.credentials`. Checks that span fields are in :mod:`relay.config.checks`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from relay.config.credentials import WHSEC_BYTES, is_whsec, read_secret, whsec_length
from relay.config.values import (
    ALL_RECORD_TYPES,
    ApiVersion,
    ComponentName,
    NonEmpty,
    PositiveSeconds,
    RecordType,
    Section,
)
from relay.errors import ConfigError
from relay.logs import register_secret


class RelaySection(Section, frozen=True):
    """``[relay]``: which components run and how the process stops."""

    components: list[ComponentName] = msgspec.field(
        default_factory=lambda: ["poller", "translator", "http"]
    )
    shutdown_grace_s: PositiveSeconds = 20.0
    cancel_deadline_s: PositiveSeconds = 5.0
    """After cancelling what outlived the grace (or a task it stops), how long to wait for the
    cancelled tasks to finish their clean-up (:func:`relay.tasks.cancel_and_wait`)."""
    instance: str = ""
    """Name of this replica in logs and /status; empty means the host name."""
    lease_ttl_s: PositiveSeconds = 15.0
    """Lifetime of a district's polling lease; a dead replica's districts move after about this."""


class District(Section, frozen=True):
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


class Discovery(Section, frozen=True):
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


class CleverSection(Section, frozen=True):
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


class RedisSection(Section, frozen=True):
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
    partitions: Annotated[int, Meta(ge=1, le=256)] = 1
    """Partitions of the pipeline (docs/scaling.md); fixed once a deployment has data."""
    pipeline_max_connections: Annotated[int, Meta(ge=4, le=10000)] = 50
    """Connections of the pipeline's pool (poller, translator, leases, webhooks)."""
    api_max_connections: Annotated[int, Meta(ge=2, le=10000)] = 50
    """Connections of the request side's pool (v2 API, /status, /metrics): a separate budget,
    so API load can never take a connection the pipeline needs."""
    pool_timeout_s: PositiveSeconds = 10.0
    """How long a command waits for a free connection of its pool before failing."""


class LegacySection(Section, frozen=True):
    """``[legacy]``: the translator's output topics and consumer group."""

    record_types: list[RecordType] = msgspec.field(default_factory=lambda: list(ALL_RECORD_TYPES))
    group: NonEmpty = "legacy-translator"
    batch_size: Annotated[int, Meta(ge=1, le=10000)] = 500
    block_ms: Annotated[int, Meta(ge=1)] = 1000
    claim_idle_ms: Annotated[int, Meta(ge=1)] = 60_000
    max_deliveries: Annotated[int, Meta(ge=1)] = 5
    lease_ttl_s: PositiveSeconds = 15.0
    """The single active translator renews this lease; a standby takes over after it lapses."""


class HttpSection(Section, frozen=True):
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
            ConfigError: the variable is unset, the file unreadable (naming the key only), or the
                token shorter than :data:`MIN_CONSOLE_TOKEN_LENGTH` (like v2 keys).
        """
        token = read_secret(
            "http",
            inline=None,
            env=self.console_token_env,
            file=self.console_token_file,
            names=("console_token_env", "console_token_file"),
        )
        if len(token) < MIN_CONSOLE_TOKEN_LENGTH:  # it can purge dead letters: no guessable one
            raise ConfigError(
                [
                    f"http: console token too short ({len(token)} characters, at least "
                    f"{MIN_CONSOLE_TOKEN_LENGTH})"
                ]
            )
        return token


MIN_CONSOLE_TOKEN_LENGTH = 32
"""The console token's minimum length, as for v2 API keys (docs/console.md)."""


class LogSection(Section, frozen=True):
    """``[log]``: level and format of the JSON log lines."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class V2Client(Section, frozen=True):
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


class V2ApiSection(Section, frozen=True):
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


class WebhookEndpoint(Section, frozen=True):
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


class WebhooksSection(Section, frozen=True):
    """``[webhooks]``: push delivery of legacy and v3 events to HTTP endpoints."""

    endpoints: list[WebhookEndpoint] = msgspec.field(default_factory=list)


class Config(Section, frozen=True):
    """The whole configuration file."""

    relay: RelaySection = msgspec.field(default_factory=RelaySection)
    clever: CleverSection = msgspec.field(default_factory=CleverSection)
    redis: RedisSection = msgspec.field(default_factory=RedisSection)
    legacy: LegacySection = msgspec.field(default_factory=LegacySection)
    http: HttpSection = msgspec.field(default_factory=HttpSection)
    log: LogSection = msgspec.field(default_factory=LogSection)
    webhooks: WebhooksSection = msgspec.field(default_factory=WebhooksSection)
    v2api: V2ApiSection = msgspec.field(default_factory=V2ApiSection)
