"""Signature V1 (HMAC-SHA1) and V3 (ACS3-HMAC-SHA256, ACS3-HMAC-SM3): canonical strings and signatures.

Pure functions shared by the server's verifier and the client-side signer in `hpcplane.testing`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, quote_plus

V3_ALGORITHMS = ("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3")
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def enc(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8: only A-Z a-z 0-9 - _ . ~ stay literal."""
    if _UNRESERVED.fullmatch(value):  # most names and values: nothing to encode (half the cost of quote)
        return value
    return quote(value, safe="-_.~")


def enc_plus(value: str) -> str:
    """The same, but a space becomes '+', as the alibabacloud_credentials STS signer does (quote_plus)."""
    return quote_plus(value, safe="-_.~")


def canonical_query(params: Iterable[tuple[str, str]], encode: Callable[[str], str] = enc) -> str:
    """Encoded name=value pairs, sorted by encoded name (byte order), joined with '&'."""
    return "&".join(f"{k}={v}" for k, v in sorted((encode(k), encode(v)) for k, v in params))


# --- V1 -----------------------------------------------------------------------------------------


def v1_string_to_sign(method: str, params: Mapping[str, str], *, plus: bool = False) -> str:
    """METHOD&%2F&enc(canonical query without Signature); `plus` encodes spaces as '+' throughout."""
    encode = enc_plus if plus else enc
    cqs = canonical_query(((k, v) for k, v in params.items() if k != "Signature"), encode)
    return f"{method.upper()}&{encode('/')}&{encode(cqs)}"


# One name=value pair of a query already in canonical form: unreserved characters and upper-case %XX.
# Checked over the whole query at once (a character class and a literal scan, rather than a pattern
# with an alternation per character): no character outside the pairs' alphabet, no '%' without two
# upper-case hex digits; then each piece holds exactly one '=' after a non-empty name.
_OUTSIDE = re.compile(r"[^A-Za-z0-9_.~%=&-]", re.ASCII)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-F]{2})", re.ASCII)


def v1_string_to_sign_raw(method: str, raw_query: str) -> str | None:
    """The V1 string to sign built straight from the query as it arrived, when every pair of it is in
    the canonical encoding already (as the SDKs send it): no decoding and re-encoding of each name and
    value. None when some pair is not (a '+', lower-case hex, a bare name): then the caller builds it
    from the decoded parameters (v1_string_to_sign). A query whose pairs encode an unreserved character
    (%41 for A) gives a string the client did not sign: the caller falls back on a mismatch too."""
    if (
        _OUTSIDE.search(raw_query)
        or ("%" in raw_query and _BAD_ESCAPE.search(raw_query))
        or raw_query.count("=") != raw_query.count("&") + 1
    ):
        return None
    # (name, "=", value) triples sort as (name, value) pairs: by encoded name, then value, as
    # canonical_query orders them; each joins back into its piece.
    pairs = sorted(piece.partition("=") for piece in raw_query.split("&"))
    if not all(name and sep for name, sep, _ in pairs):  # a bare name, or an empty name or piece
        return None
    cqs = "&".join(["".join(pair) for pair in pairs if pair[0] != "Signature"])
    # enc() of a canonical query: only '%', '=' and '&' in it are not unreserved.
    return f"{method.upper()}&%2F&" + cqs.replace("%", "%25").replace("=", "%3D").replace("&", "%26")


def v1_signature(string_to_sign: str, secret: str) -> str:
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --- V3 -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorization:
    """The parts of an `Authorization: ACS3-... Credential=..,SignedHeaders=..,Signature=..` header."""

    algorithm: str
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(header: str) -> Authorization | None:
    """Split a V3 Authorization header; None when it is malformed."""
    algorithm, _, rest = header.strip().partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[name.strip()] = value.strip()
    credential = fields.get("Credential", "")
    signed = fields.get("SignedHeaders", "")
    signature = fields.get("Signature", "")
    if not (algorithm and credential and signed and signature):
        return None
    names = tuple(name.strip().lower() for name in signed.split(";") if name.strip())
    return Authorization(algorithm, credential, names, signature)


def _hasher(algorithm: str) -> Callable[[bytes], str]:
    if algorithm == "ACS3-HMAC-SM3":
        return lambda data: hashlib.new("sm3", data).hexdigest()
    return lambda data: hashlib.sha256(data).hexdigest()


def payload_hash(algorithm: str, body: bytes) -> str:
    """Lower-case hex hash of the body: SHA-256, or SM3 under ACS3-HMAC-SM3."""
    return _hasher(algorithm)(body)


def v3_canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Iterable[str],
    hashed_payload: str,
) -> str:
    """METHOD, URI, query, header lines, signed header names and payload hash, joined with newlines."""
    names = list(signed_headers)
    header_lines = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            quote(path or "/", safe="/-_.~"),
            canonical_query(query),
            header_lines,
            ";".join(names),
            hashed_payload,
        ]
    )


def v3_string_to_sign(algorithm: str, canonical_request: str) -> str:
    return f"{algorithm}\n{_hasher(algorithm)(canonical_request.encode())}"


def v3_signature(algorithm: str, string_to_sign: str, secret: str) -> str:
    digestmod = "sm3" if algorithm == "ACS3-HMAC-SM3" else hashlib.sha256
    return hmac.new(secret.encode(), string_to_sign.encode(), digestmod).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(a.encode(), b.encode())
