"""Config checks that walk the whole tree, so every problem is reported at once.

msgspec stops at the first error; :func:`check_tree` instead checks each value against its
field's type and collects ``key: message`` lines, and :func:`check_semantics` adds the rules that
span fields (URLs, token sources, unique names). Kept apart from :mod:`relay.config.sections` so
that module stays the plain list of settings.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, get_args, get_origin
from urllib.parse import urlsplit

import msgspec

from relay.config.credentials import OBJECT_ID

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from relay.config.sections import Config


def check_tree(cls: type[msgspec.Struct], data: Any, path: str, problems: list[str]) -> None:
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
    tables = [a for a in get_args(tp) if isinstance(a, type) and issubclass(a, msgspec.Struct)]
    if tables and type(None) in get_args(tp) and value is not None:
        tp = tables[0]  # an optional table (``[clever.discovery]``): check its keys one by one
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        check_tree(tp, value, key, problems)
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
            check_tree(args[0], item, f"{key}[{i}]", problems)
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


def check_semantics(cfg: Config) -> list[str]:
    """Rules that span fields: URLs, token sources, unique ids, start positions."""
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
    if "poller" in enabled and not cfg.clever.districts and cfg.clever.discovery is None:
        problems.append(
            "clever.districts: at least one district (or [clever.discovery]) is required "
            "to run the poller"
        )
    problems.extend(_check_discovery(cfg))
    tokens = ("token", "token_env", "token_file")
    problems.extend(
        _entries(
            cfg.clever.districts,
            "clever.districts",
            name="id",
            what="district id",
            sources=tokens,
            extra=_start_problem,
        )
    )
    problems.extend(_check_webhooks(cfg))
    problems.extend(_check_v2api(cfg))
    if cfg.http.console_token_env and cfg.http.console_token_file:
        problems.append("http: set console_token_env or console_token_file, not both")
    if cfg.redis.cluster and not re.search(r"\{[^}]+\}", cfg.redis.prefix):
        problems.append(
            "redis.prefix: must contain a hash tag such as {clever} with cluster = true"
        )
    return problems


def _entries(
    entries: Sequence[Any],
    where: str,
    *,
    name: str,
    what: str,
    sources: tuple[str, str, str],
    extra: Callable[[Any], str | None] = lambda _entry: None,
) -> list[str]:
    """Each entry of a table array: a unique ``name``, exactly one secret source, ``extra``.

    ``extra`` returns one more problem of an entry (without its key), or None.
    """
    problems: list[str] = []
    seen: set[object] = set()
    for i, entry in enumerate(entries):
        key = f"{where}[{i}]"
        value = getattr(entry, name)
        if value in seen:
            problems.append(f"{key}.{name}: duplicate {what} {value}")
        seen.add(value)
        if sum(getattr(entry, source) is not None for source in sources) != 1:
            problems.append(f"{key}: exactly one of {', '.join(sources)} is required")
        if (problem := extra(entry)) is not None:
            problems.append(f"{key}.{problem}")
    return problems


def _check_discovery(cfg: Config) -> list[str]:
    """``[clever.discovery]``: one source for each credential, a scheme://host OAuth URL."""
    discovery = cfg.clever.discovery
    if discovery is None:
        return []
    problems = []
    for name in ("client_id", "client_secret"):
        sources = (name, f"{name}_env", f"{name}_file")
        if sum(getattr(discovery, source) is not None for source in sources) != 1:
            problems.append(f"clever.discovery: exactly one of {', '.join(sources)} is required")
    if discovery.onboard == "sync" and cfg.redis.cluster:
        problems.append(
            'clever.discovery.onboard: "sync" is not supported with redis.cluster = true yet '
            '(the Data API sync does not run on Redis Cluster); use "latest" or "earliest"'
        )
    url = urlsplit(discovery.oauth_base_url)
    if url.scheme not in ("http", "https") or not url.netloc or url.path not in ("", "/"):
        problems.append(
            "clever.discovery.oauth_base_url: must be scheme://host[:port] with no path"
        )
    return problems


def _start_problem(district: Any) -> str | None:
    if district.start in ("latest", "earliest") or OBJECT_ID.match(district.start):
        return None
    return "start: must be latest, earliest or a 24-hex Clever event id"


def _url_problem(endpoint: Any) -> str | None:
    url = urlsplit(endpoint.url)
    if url.scheme in ("http", "https") and url.netloc:
        return None
    return "url: must be an http:// or https:// URL"


def _check_v2api(cfg: Config) -> list[str]:
    tokens = ("token", "token_env", "token_file")
    problems = _entries(
        cfg.v2api.clients, "v2api.clients", name="name", what="client name", sources=tokens
    )
    if "v2api" in cfg.relay.components and not cfg.v2api.clients:
        problems.append("v2api.clients: at least one client is required to serve the v2 API")
    if cfg.v2api.max_concurrent_requests >= cfg.redis.api_max_connections:
        # Each v2 request holds one connection; /status and /metrics need one more.
        problems.append(
            "v2api.max_concurrent_requests: must be below redis.api_max_connections"
            f" ({cfg.redis.api_max_connections})"
        )
    return problems


def _check_webhooks(cfg: Config) -> list[str]:
    secrets = ("secret", "secret_env", "secret_file")
    endpoints = cfg.webhooks.endpoints
    problems = _entries(
        endpoints,
        "webhooks.endpoints",
        name="name",
        what="endpoint name",
        sources=secrets,
        extra=_url_problem,
    )
    if "webhooks" in cfg.relay.components and not cfg.webhooks.endpoints:
        problems.append("webhooks.endpoints: at least one endpoint is required to run webhooks")
    return problems
