"""For users' tests and ours: sign raw requests the way the SDKs do, to send what an SDK cannot."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from hpcplane import API_VERSION
from hpcplane.api import signing
from hpcplane.api.authn import TIMESTAMP_FORMAT


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request ready to send: method, path with query, headers and body."""

    method: str
    url_path: str
    headers: dict[str, str]
    body: bytes = b""


def _timestamp(when: datetime | None) -> str:
    return (when or datetime.now(UTC)).strftime(TIMESTAMP_FORMAT)


def sign_v1(
    action: str,
    params: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    method: str = "GET",
    when: datetime | None = None,
    nonce: str | None = None,
    version: str = API_VERSION,
) -> SignedRequest:
    """An HMAC-SHA1 (V1) request with every parameter in the query, as aliyun-python-sdk-core sends it."""
    full = {
        "Action": action,
        "Version": version,
        "Format": "JSON",
        "AccessKeyId": access_key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": _timestamp(when),
        **params,
    }
    full["Signature"] = signing.v1_signature(signing.v1_string_to_sign(method, full), secret)
    return SignedRequest(method, "/?" + _query(full), {})


def sign_v3(
    action: str,
    params: Mapping[str, str],
    access_key_id: str,
    secret: str,
    *,
    host: str,
    method: str = "GET",
    when: datetime | None = None,
    nonce: str | None = None,
    algorithm: str = "ACS3-HMAC-SHA256",
    version: str = API_VERSION,
    body: bytes = b"",
    extra_headers: Mapping[str, str] | None = None,
) -> SignedRequest:
    """An ACS3 (V3) request: parameters in the query, Action/Version in headers, as Tea sends it."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": _timestamp(when),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": signing.payload_hash(algorithm, body),
        "accept": "application/json",
        **{k.lower(): v for k, v in (extra_headers or {}).items()},
    }
    signed = sorted(headers)
    canonical = signing.v3_canonical_request(
        method, "/", params.items(), headers, signed, signing.payload_hash(algorithm, body)
    )
    signature = signing.v3_signature(algorithm, signing.v3_string_to_sign(algorithm, canonical), secret)
    headers["authorization"] = (
        f"{algorithm} Credential={access_key_id},SignedHeaders={';'.join(signed)},Signature={signature}"
    )
    query = _query(params)
    return SignedRequest(method, "/" + (f"?{query}" if query else ""), headers, body)


def _query(params: Mapping[str, str]) -> str:
    return "&".join(f"{signing.enc(k)}={signing.enc(v)}" for k, v in params.items())
