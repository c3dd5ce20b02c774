"""Configuration: one TOML file decoded into msgspec Structs (CONTRACT §3).

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
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

from relay.errors import ConfigError

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

PositiveSeconds = Annotated[float, Meta(gt=0)]
NonEmpty = Annotated[str, Meta(min_length=1)]
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


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
        if self.token is not None:
            return self.token
        if self.token_env is not None:
            value = os.environ.get(self.token_env, "")
            if not value:
                raise ConfigError(
                    [f"clever.districts[{self.id}].token_env: variable {self.token_env} is unset"]
                )
            return value
        assert self.token_file is not None
        try:
            return Path(self.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                [
                    f"clever.districts[{self.id}].token_file: cannot read {self.token_file}: "
                    f"{exc.strerror}"
                ]
            ) from None


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
    rate_limit_reserve: Annotated[int, Meta(ge=0)] = 5
    """Requests kept in hand before ``X-RateLimit-Remaining`` reaches 0; then wait for reset."""
    districts: list[District] = msgspec.field(default_factory=list)


class RedisSection(Base, frozen=True):
    """``[redis]``: the Redis the streams live in."""

    url: str = "redis://127.0.0.1:6379/0"
    prefix: NonEmpty = "clever"
    events_maxlen: Annotated[int, Meta(ge=1000)] = 1_000_000
    legacy_maxlen: Annotated[int, Meta(ge=1000)] = 1_000_000
    deadletter_maxlen: Annotated[int, Meta(ge=1000)] = 100_000
    health_check_interval_s: PositiveSeconds = 30.0
    """How often the maxmemory-policy and persistence checks run (CONTRACT §11)."""
    cluster: bool = False
    """Connect with the Redis Cluster client (the prefix must then carry a hash tag)."""


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


class LogSection(Base, frozen=True):
    """``[log]``: level and format of the JSON log lines."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class V2Client(Base, frozen=True):
    """One ``[[v2api.clients]]`` entry: a relay-issued key for one district (CONTRACT §9)."""

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
        key = f"v2api.clients[{self.name}]"
        if self.token is not None:
            return self.token
        if self.token_env is not None:
            value = os.environ.get(self.token_env, "")
            if not value:
                raise ConfigError([f"{key}.token_env: variable {self.token_env} is unset"])
            return value
        assert self.token_file is not None
        try:
            return Path(self.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(
                [f"{key}.token_file: cannot read {self.token_file}: {exc.strerror}"]
            ) from None


class V2ApiSection(Base, frozen=True):
    """``[v2api]``: the v2-compatible HTTP API served on the ops port."""

    clients: list[V2Client] = msgspec.field(default_factory=list)
    default_limit: Annotated[int, Meta(ge=1, le=10000)] = 100
    """Page size when a request gives no ``limit`` (Clever's documented default)."""


class WebhookEndpoint(Base, frozen=True):
    """One ``[[webhooks.endpoints]]`` entry (CONTRACT §10)."""

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
        if self.secret is not None:
            raw = self.secret
        elif self.secret_env is not None:
            raw = os.environ.get(self.secret_env, "")
            if not raw:
                raise ConfigError([f"{key}.secret_env: variable {self.secret_env} is unset"])
        else:
            assert self.secret_file is not None
            try:
                raw = Path(self.secret_file).read_text()
            except OSError as exc:
                raise ConfigError(
                    [f"{key}.secret_file: cannot read {self.secret_file}: {exc.strerror}"]
                ) from None
        secrets = raw.split()
        if not secrets or not all(_WHSEC.match(secret) for secret in secrets):
            raise ConfigError([f"{key}: secrets must be whsec_<base64>, space-separated"])
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
    """Return ``data`` with every ``RELAY__SECTION__KEY`` variable applied."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            continue
        _set_path(data, path, _parse_env_value(raw))
    return data


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _set_path(node: Any, path: list[str], value: Any) -> None:
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            if not part.isdigit():
                return
            index = int(part)
            while len(node) <= index:
                node.append({})
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})


def validate(data: dict[str, Any]) -> Config:
    """Check every key of ``data`` and return the decoded :class:`Config`.

    Raises:
        ConfigError: listing every problem found, not just the first.
    """
    problems: list[str] = []
    _check_struct(Config, data, "", problems)
    if not problems:
        problems.extend(_check_semantics(data))
    if problems:
        raise ConfigError(problems)
    return msgspec.convert(data, Config)


def _check_struct(cls: type[msgspec.Struct], data: Any, path: str, problems: list[str]) -> None:
    where = path or "config"
    if not isinstance(data, dict):
        problems.append(f"{where}: must be a table")
        return
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    problems.extend(
        f"{path + '.' if path else ''}{key}: unknown key" for key in data.keys() - fields.keys()
    )
    for name, field in fields.items():
        key = f"{path}.{name}" if path else name
        if name not in data:
            if field.required:
                problems.append(f"{key}: required")
            continue
        _check_value(field.type, data[name], key, problems)


def _check_value(tp: Any, value: Any, key: str, problems: list[str]) -> None:
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        _check_struct(tp, value, key, problems)
        return
    args = get_args(tp)
    if (
        get_origin(tp) is list
        and args
        and isinstance(args[0], type)
        and issubclass(args[0], msgspec.Struct)
    ):
        if not isinstance(value, list):
            problems.append(f"{key}: must be an array of tables")
            return
        for i, item in enumerate(value):
            _check_struct(args[0], item, f"{key}[{i}]", problems)
        return
    try:
        msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        problems.append(f"{key}: {_humanize(str(exc))}")


def _humanize(message: str) -> str:
    """Turn msgspec's ``Expected `int` <= 10000`` into ``must be <= 10000``."""
    message = re.sub(r" - at `\$[^`]*`$", "", message)
    if match := re.fullmatch(r"Expected `\w+` (.+)", message):
        return f"must be {match.group(1)}"
    if match := re.fullmatch(r"Invalid enum value (.+)", message):
        return f"invalid value {match.group(1)}"
    if match := re.fullmatch(r"Expected `(.+)`, got `(.+)`", message):
        return f"must be {match.group(1)}, got {match.group(2)}"
    return message


def _check_semantics(data: dict[str, Any]) -> list[str]:
    """Rules that span fields: URLs, token sources, unique ids, start positions."""
    cfg = msgspec.convert(data, Config)
    problems: list[str] = []
    base = urlsplit(cfg.clever.base_url)
    if base.scheme not in ("http", "https") or not base.netloc or base.path not in ("", "/"):
        problems.append("clever.base_url: must be scheme://host[:port] with no path")
    redis_url = urlsplit(cfg.redis.url)
    if redis_url.scheme not in ("redis", "rediss", "unix") or (
        redis_url.scheme != "unix" and not redis_url.hostname
    ):
        problems.append("redis.url: must be a redis://, rediss:// or unix:// URL")
    enabled = set(cfg.relay.components)
    if "poller" in enabled and not cfg.clever.districts:
        problems.append("clever.districts: at least one district is required to run the poller")
    seen: set[str] = set()
    for i, district in enumerate(cfg.clever.districts):
        key = f"clever.districts[{i}]"
        if district.id in seen:
            problems.append(f"{key}.id: duplicate district id {district.id}")
        seen.add(district.id)
        sources = [
            s for s in (district.token, district.token_env, district.token_file) if s is not None
        ]
        if len(sources) != 1:
            problems.append(f"{key}: exactly one of token, token_env, token_file is required")
        if district.start not in ("latest", "earliest") and not _OBJECT_ID.match(district.start):
            problems.append(f"{key}.start: must be latest, earliest or a 24-hex Clever event id")
    problems.extend(_check_webhooks(cfg))
    problems.extend(_check_v2api(cfg))
    if cfg.redis.cluster and not re.search(r"\{[^}]+\}", cfg.redis.prefix):
        problems.append(
            "redis.prefix: must contain a hash tag such as {clever} with cluster = true"
        )
    return problems


def _check_v2api(cfg: Config) -> list[str]:
    problems: list[str] = []
    names: set[str] = set()
    for i, client in enumerate(cfg.v2api.clients):
        key = f"v2api.clients[{i}]"
        if client.name in names:
            problems.append(f"{key}.name: duplicate client name {client.name}")
        names.add(client.name)
        sources = [client.token, client.token_env, client.token_file]
        if sum(source is not None for source in sources) != 1:
            problems.append(f"{key}: exactly one of token, token_env, token_file is required")
    if "v2api" in cfg.relay.components and not cfg.v2api.clients:
        problems.append("v2api.clients: at least one client is required to serve the v2 API")
    return problems


def _check_webhooks(cfg: Config) -> list[str]:
    problems: list[str] = []
    names: set[str] = set()
    for i, endpoint in enumerate(cfg.webhooks.endpoints):
        key = f"webhooks.endpoints[{i}]"
        if endpoint.name in names:
            problems.append(f"{key}.name: duplicate endpoint name {endpoint.name}")
        names.add(endpoint.name)
        url = urlsplit(endpoint.url)
        if url.scheme not in ("http", "https") or not url.netloc:
            problems.append(f"{key}.url: must be an http:// or https:// URL")
        sources = [endpoint.secret, endpoint.secret_env, endpoint.secret_file]
        if sum(source is not None for source in sources) != 1:
            problems.append(f"{key}: exactly one of secret, secret_env, secret_file is required")
    if "webhooks" in cfg.relay.components and not cfg.webhooks.endpoints:
        problems.append("webhooks.endpoints: at least one endpoint is required to run webhooks")
    return problems


def resolve_config_path(arg: str | None) -> str | None:
    """``--config`` wins, else ``RELAY_CONFIG``; ``None`` when neither is given."""
    return arg or os.environ.get(CONFIG_ENV) or None
