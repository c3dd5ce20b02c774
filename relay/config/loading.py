"""Loading a config: the TOML file, the environment overrides, validation of the whole tree.

Every problem is reported at once, one ``key: message`` line each, because an operator fixing
a config file one error per deploy is a bad afternoon. msgspec stops at the first error, so
:func:`validate` walks the Struct tree itself (:mod:`relay.config.checks`), checking each value
against its field's type, and only then decodes the whole tree. Unknown keys are errors: a typo
must not pass silently.

Environment variables ``RELAY__<SECTION>__<KEY>`` override file values (``RELAY__REDIS__URL``);
a list of tables is addressed by index (``RELAY__CLEVER__DISTRICTS__0__TOKEN_ENV``). Values are
read as TOML values when they parse as one (``500``, ``true``, ``["a"]``), else as strings.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from relay.config.checks import check_semantics, check_tree
from relay.config.sections import Config
from relay.config.values import CONFIG_ENV, ENV_PREFIX
from relay.errors import ConfigError


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
