"""Secrets in the config: read from inline, an environment variable or a file; whsec checks.

Sections resolve their secrets through :func:`read_secret` (at start-up, so a missing one fails
naming the key, never the value); the checks use :func:`is_whsec` on webhook secrets.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from pathlib import Path

from relay.errors import ConfigError

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")


WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/]+={0,2}$")


WHSEC_BYTES = (24, 64)
"""Decoded length range of a signing secret, as Standard Webhooks asks."""


def is_whsec(secret: str) -> bool:
    """True for ``whsec_<base64>`` whose base64 part decodes (the shape alone can be unpaddable).

    Checked at load time so that a bad secret is a config error (exit 2, naming the key), not
    a ``binascii.Error`` when the webhooks component starts.
    """
    return whsec_length(secret) is not None


def whsec_length(secret: str) -> int | None:
    """The decoded length of a ``whsec_<base64>`` secret; None when it is not one."""
    if not WHSEC.match(secret):
        return None
    try:
        return len(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except binascii.Error:
        return None


def read_secret(
    key: str, *, inline: str | None, env: str | None, file: str | None, names: tuple[str, str]
) -> str:
    """Read a secret given inline, by environment variable name, or by file path.

    Args:
        key: the config key the secret belongs to, for error messages.
        inline, env, file: the three sources; exactly one is set (checked at load time).
        names: the config names of the env and file keys, for error messages.

    Raises:
        ConfigError: the variable is unset or the file unreadable (naming the key, never the
            value).
    """
    if inline is not None:
        return inline
    if env is not None:
        value = os.environ.get(env, "")
        if not value:
            raise ConfigError([f"{key}.{names[0]}: variable {env} is unset"])
        return value
    assert file is not None
    try:
        return Path(file).read_text().strip()
    except OSError as exc:
        raise ConfigError([f"{key}.{names[1]}: cannot read {file}: {exc.strerror}"]) from None
