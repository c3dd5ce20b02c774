"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

A signature is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the
base64-decoded part of a ``whsec_<base64>`` secret. During a secret rotation the endpoint has
several secrets and the header carries one signature per secret, space-separated, so a
receiver that knows either the old or the new secret accepts the request. The timestamp is
the time of the attempt (each retry is signed afresh), which lets receivers reject replays of
old requests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from relay.errors import SignatureError

WHSEC_PREFIX = "whsec_"
VERSION = "v1"
DEFAULT_TOLERANCE_S = 300


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional, as in the spec).

    Raises:
        ValueError: the part after the prefix is not base64.
    """
    raw = secret.removeprefix(WHSEC_PREFIX)
    return base64.b64decode(raw, validate=True)


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a message under one key."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one signature per key, space-separated."""
    return " ".join(signature(key, msg_id, timestamp, body) for key in keys)


def verify(
    keys: list[bytes],
    *,
    msg_id: str,
    timestamp: str,
    signatures: str,
    body: bytes,
    now_s: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Check a received request the way a Standard Webhooks receiver does.

    Every comparison is constant-time (``hmac.compare_digest``).

    Raises:
        SignatureError: the timestamp is malformed or outside ``tolerance_s`` of ``now_s``, or
            no signature matches any key.
    """
    if not timestamp.isdigit():
        raise SignatureError("malformed webhook-timestamp")
    stamp = int(timestamp)
    if abs(now_s - stamp) > tolerance_s:
        raise SignatureError("webhook-timestamp outside the tolerance")
    expected = [signature(key, msg_id, stamp, body) for key in keys]
    matched = False
    for candidate in signatures.split():
        for wanted in expected:
            # Accumulate instead of returning early so timing does not reveal which matched.
            matched |= hmac.compare_digest(candidate.encode(), wanted.encode())
    if not matched:
        raise SignatureError("no matching signature")
