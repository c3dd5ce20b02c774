"""Sign-in for the web console: one shared token, a signed cookie, a CSRF token per session.

Sessions are stateless: the cookie carries when it was issued, a random session id and the
operator's name, signed with a key derived from the console token. Any replica with the same
token accepts it (no sticky sessions needed behind a Service), and rotating the token signs
everybody out. The CSRF token is derived from the session id, so it needs no storage either.
Every comparison of something the browser sent is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from collections.abc import Callable

COOKIE = "relay_console"
SESSION_TTL_S = 12 * 3600.0
"""A session lasts a working day; then the operator signs in again."""
NAME_MAX = 64


class Session(msgspec.Struct, frozen=True):
    """A signed-in browser."""

    sid: str
    who: str
    """The name the operator gave at sign-in (recorded with every action)."""
    issued_at: float


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def clean_name(raw: str) -> str:
    """The operator's name as recorded: printable, bounded, never empty."""
    name = re.sub(r"[^\w .@-]", "", raw).strip()[:NAME_MAX]
    return name or "operator"


class ConsoleAuth:
    """Checks the token, issues and verifies session cookies and CSRF tokens.

    Args:
        token: the console token (from ``[http] console_token_env`` or ``_file``).
        clock: Unix time source (tests pin it).
    """

    def __init__(self, token: str, *, clock: Callable[[], float] = time.time) -> None:
        self._token_digest = _digest(token)
        self._key = hmac.new(token.encode(), b"clever-relay console session v1", "sha256").digest()
        self._clock = clock

    def token_ok(self, given: str) -> bool:
        """Whether ``given`` is the token (digests compared, so length leaks nothing either)."""
        return hmac.compare_digest(_digest(given), self._token_digest)

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), "sha256").hexdigest()

    def issue(self, who: str) -> str:
        """A new session cookie value for ``who``."""
        name = base64.urlsafe_b64encode(clean_name(who).encode()).decode().rstrip("=")
        body = f"{int(self._clock())}.{secrets.token_hex(16)}.{name}"
        return f"{body}.{self._sign(body)}"

    def session(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or ``None`` (missing, forged, malformed or expired)."""
        if not cookie or cookie.count(".") != 3:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        issued, sid, name = body.split(".")
        try:
            issued_at = float(issued)
            who = base64.urlsafe_b64decode(name + "=" * (-len(name) % 4)).decode()
        except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
            return None
        if not 0 <= self._clock() - issued_at <= SESSION_TTL_S:
            return None
        return Session(sid=sid, who=who, issued_at=issued_at)

    def csrf(self, session: Session) -> str:
        """The CSRF token every state-changing form of this session must carry."""
        return self._sign(f"csrf:{session.sid}")

    def csrf_ok(self, session: Session, given: str) -> bool:
        """Whether a posted CSRF token belongs to this session."""
        return hmac.compare_digest(self.csrf(session), given)
