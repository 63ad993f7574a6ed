"""STS security tokens: each names the temporary AccessKeyId it was issued with."""

from __future__ import annotations

import base64
import hashlib
import secrets

from hpcplane.domain.errors import SecurityTokenMalformed

_PREFIX = "CAIS"


def new_token(access_key_id: str) -> str:
    """A fresh token bound to `access_key_id`: CAIS<base64url(id)>.<random>."""
    encoded = base64.urlsafe_b64encode(access_key_id.encode()).decode().rstrip("=")
    return f"{_PREFIX}{encoded}.{secrets.token_urlsafe(48)}"


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_key_id(token: str) -> str:
    """The AccessKeyId a token was issued with; InvalidSecurityToken.Malformed if it names none."""
    head, dot, tail = token.partition(".")
    if not (dot and tail and head.startswith(_PREFIX)):
        raise SecurityTokenMalformed()
    encoded = head[len(_PREFIX) :]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise SecurityTokenMalformed() from None
