"""Authentication: who signed a request, checked per protocol.md sections 1-4, always on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from hpcplane.api import signing
from hpcplane.api.protocol import RpcRequest
from hpcplane.clock import Clock
from hpcplane.domain.accounts import AccessKey, Account, KeyStatus, Principal
from hpcplane.domain.errors import (
    AccessKeyInactive,
    AccessKeyNotFound,
    IncompleteSignature,
    InvalidSignatureMethod,
    MissingParameter,
    MissingSecurityToken,
    SecurityTokenExpired,
    SecurityTokenMismatch,
    SignatureDoesNotMatch,
    SignatureNonceUsed,
    TimestampExpired,
    TimestampFormat,
)
from hpcplane.domain.sts import token_hash, token_key_id

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII)


class KeyDirectory(Protocol):
    """Finds an AccessKey (secret in clear) and the account it belongs to."""

    def lookup(self, access_key_id: str) -> tuple[AccessKey, Account] | None: ...


class NonceStore(Protocol):
    """Remembers nonces; `remember` is False for one already seen within its lifetime."""

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool: ...


@runtime_checkable
class ReadNonces(NonceStore, Protocol):
    """Nonces kept in the store the keys are read from: the key's read can tell whether the store holds a
    nonce (`KeyAndNonceDirectory`), and `remember_read` does the rest of `remember` (memory, backlog)."""

    def remember_read(
        self, access_key_id: str, nonce: str, now: datetime, ttl: int, *, stored: bool
    ) -> bool: ...


@runtime_checkable
class KeyAndNonceDirectory(KeyDirectory, Protocol):
    """A KeyDirectory that reads the key and whether the store holds a nonce for it in one statement."""

    def lookup_with_nonce(
        self, access_key_id: str, nonce: str, now: datetime
    ) -> tuple[tuple[AccessKey, Account] | None, bool]: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """The signature material of a request, found well formed but not yet verified."""

    version: str  # "V1" or "V3"
    access_key_id: str
    timestamp: str
    nonce: str
    signature: str
    algorithm: str
    signed_headers: tuple[str, ...] = ()
    security_token: str | None = None


def read_credentials(req: RpcRequest) -> Credentials:
    """Tell V3 from V1 and check the signature material is complete; raise the gateway's codes if not."""
    header = req.headers.get("authorization", "")
    if header.startswith("ACS3-"):
        return _v3_credentials(req, header)
    if "Signature" in req.params:
        return _v1_credentials(req)
    raise IncompleteSignature(reason="The request carries neither an Authorization header nor a Signature.")


def _v1_credentials(req: RpcRequest) -> Credentials:
    p = req.params
    for name in ("AccessKeyId", "SignatureMethod", "SignatureVersion", "Timestamp", "SignatureNonce"):
        if not p.get(name):
            raise MissingParameter(name=name)
    if p["SignatureMethod"] != "HMAC-SHA1" or p["SignatureVersion"] != "1.0":
        raise InvalidSignatureMethod()
    return Credentials(
        "V1",
        p["AccessKeyId"],
        p["Timestamp"],
        p["SignatureNonce"],
        p["Signature"],
        "HMAC-SHA1",
        security_token=p.get("SecurityToken") or None,
    )


def _v3_credentials(req: RpcRequest, header: str) -> Credentials:
    auth = signing.parse_authorization(header)
    if auth is None:
        raise IncompleteSignature(reason="The Authorization header is malformed.")
    if auth.algorithm not in signing.V3_ALGORITHMS:
        raise InvalidSignatureMethod()
    signed = set(auth.signed_headers)
    must_sign = {"host"} | {h for h in req.headers if h.startswith("x-acs-") or h == "content-type"}
    missing = sorted(must_sign - signed)
    if missing:
        raise IncompleteSignature(reason=f"Header {missing[0]} must be signed.")
    for name in ("x-acs-date", "x-acs-signature-nonce"):
        if not req.headers.get(name):
            raise MissingParameter(name=name)

    return Credentials(
        "V3",
        auth.access_key_id,
        req.headers["x-acs-date"],
        req.headers["x-acs-signature-nonce"],
        auth.signature,
        auth.algorithm,
        auth.signed_headers,
        security_token=req.headers.get("x-acs-security-token") or None,
    )


def string_to_sign(req: RpcRequest, creds: Credentials) -> str:
    """What the request should have signed, computed from what arrived."""
    if creds.version == "V1":
        return signing.v1_string_to_sign(req.method, req.params)
    canonical = signing.v3_canonical_request(
        req.method,
        req.path,
        req.query,
        req.headers,
        creds.signed_headers,
        signing.payload_hash(creds.algorithm, req.body),
    )
    return signing.v3_string_to_sign(creds.algorithm, canonical)


def raw_string_to_sign(req: RpcRequest, creds: Credentials) -> str | None:
    """The V1 string to sign straight from the raw query (signing.v1_string_to_sign_raw), for a request
    whose parameters are all in its query; None otherwise."""
    if creds.version != "V1" or req.form or not req.raw_query:
        return None
    return signing.v1_string_to_sign_raw(req.method, req.raw_query)


def expected_signature(creds: Credentials, sts: str, secret: str) -> str:
    if creds.version == "V1":
        return signing.v1_signature(sts, secret)
    return signing.v3_signature(creds.algorithm, sts, secret)


class Authenticator:
    """Checks time, key, signature and nonce, in that order, and returns the principal."""

    def __init__(self, keys: KeyDirectory, nonces: NonceStore, clock: Clock, *, skew: int, nonce_ttl: int):
        self._keys = keys
        self._nonces = nonces
        self._clock = clock
        self._skew = skew
        self._ttl = nonce_ttl
        # Key and nonce in one read when the nonces live in the keys' store (not Redis).
        self._one_read = (
            (keys, nonces)
            if isinstance(keys, KeyAndNonceDirectory) and isinstance(nonces, ReadNonces)
            else None
        )

    def authenticate(self, req: RpcRequest, creds: Credentials) -> Principal:
        now = self._clock.now()
        self._check_time(creds.timestamp, now)
        if creds.security_token is not None and token_key_id(creds.security_token) != creds.access_key_id:
            raise SecurityTokenMismatch()
        one_read = self._one_read
        stored = False
        if one_read is None:
            found = self._keys.lookup(creds.access_key_id)
        else:
            found, stored = one_read[0].lookup_with_nonce(creds.access_key_id, creds.nonce, now)
        if found is None:
            raise AccessKeyNotFound()
        key, account = found
        if key.status is not KeyStatus.ACTIVE:
            raise AccessKeyInactive()
        self._check_token(key, creds.security_token, now)
        self._check_signature(req, creds, key.secret)
        declared = req.headers.get("x-acs-content-sha256")
        if creds.version == "V3" and declared is not None and declared.strip() != self._body_hash(creds, req):
            raise SignatureDoesNotMatch(sts=string_to_sign(req, creds))
        if one_read is None:
            fresh = self._nonces.remember(key.id, creds.nonce, now, self._ttl)
        else:
            fresh = one_read[1].remember_read(key.id, creds.nonce, now, self._ttl, stored=stored)
        if not fresh:
            raise SignatureNonceUsed()
        return Principal(
            account=account, access_key_id=key.id, user_id=key.user_id, user_name=key.user_name, sts=key.sts
        )

    def _check_signature(self, req: RpcRequest, creds: Credentials, secret: str) -> None:
        """The signature over the string built from the raw query when it is canonical (V1 from an SDK:
        the fast way), else, or when that does not match, over the string built from the decoded
        parameters (and for V1 with '+' for spaces)."""
        fast = raw_string_to_sign(req, creds)
        if fast is not None and signing.same(expected_signature(creds, fast, secret), creds.signature):
            return
        sts = string_to_sign(req, creds)
        if sts != fast and signing.same(expected_signature(creds, sts, secret), creds.signature):
            return
        if not self._plus_signed(req, creds, secret):
            raise SignatureDoesNotMatch(sts=sts)

    @staticmethod
    def _check_token(key: AccessKey, token: str | None, now: datetime) -> None:
        """A temporary key needs its own, unexpired token; a permanent key takes none."""
        if key.sts is None:
            if token is not None:
                raise SecurityTokenMismatch()
            return
        if token is None:
            raise MissingSecurityToken()
        if not signing.same(token_hash(token), key.sts.token_hash):
            raise SecurityTokenMismatch()
        if key.sts.expires_at <= now:
            raise SecurityTokenExpired()

    @staticmethod
    def _plus_signed(req: RpcRequest, creds: Credentials, secret: str) -> bool:
        """A V1 request whose values hold spaces may have been signed with '+' for them (the STS signer of
        alibabacloud_credentials does): accept that encoding too."""
        if creds.version != "V1" or not any(" " in value for value in req.params.values()):
            return False
        sts = signing.v1_string_to_sign(req.method, req.params, plus=True)
        return signing.same(signing.v1_signature(sts, secret), creds.signature)

    @staticmethod
    def _body_hash(creds: Credentials, req: RpcRequest) -> str:
        return signing.payload_hash(creds.algorithm, req.body)

    def _check_time(self, value: str, now: datetime) -> None:
        # The exact form first (strptime would also take single-digit fields), then a fast parse.
        if not _TIMESTAMP.fullmatch(value):
            raise TimestampFormat()
        try:
            stamp = datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
        except ValueError:
            raise TimestampFormat() from None
        if abs((now - stamp).total_seconds()) > self._skew:
            raise TimestampExpired()
