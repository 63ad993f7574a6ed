"""Authentication beyond the account's own keys: the credentials read, RAM users' and temporary (STS)
keys with their tokens, the '+' encoding of V1, SM3, and what each refusal says (fakes of test_authn)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from hpcplane.api import signing
from hpcplane.api.authn import Credentials, read_credentials, string_to_sign
from hpcplane.api.protocol import RpcRequest
from hpcplane.domain import errors as e
from hpcplane.domain.accounts import AccessKey, KeyStatus, Principal, StsSession
from hpcplane.domain.sts import new_token, token_hash
from hpcplane.testing import SignedRequest, sign_v1, sign_v3
from tests.unit.test_authn import ACCOUNT, HOST, NOW, PARAMS, SECRET, Env, expect, raw_v1, received

TOKEN = new_token("sts-ak")
SESSION = StsSession("r-1", "ops", "s-1", token_hash(TOKEN), NOW + timedelta(hours=1))


@pytest.fixture
def env() -> Env:
    env = Env()
    env.keys.keys["user-ak"] = (
        AccessKey("user-ak", ACCOUNT.id, "u-1", "alice", SECRET, KeyStatus.ACTIVE),
        ACCOUNT,
    )
    env.keys.keys["sts-ak"] = (
        AccessKey("sts-ak", ACCOUNT.id, None, None, SECRET, KeyStatus.ACTIVE, SESSION),
        ACCOUNT,
    )
    return env


def v1_token(key: str = "sts-ak", token: str | None = TOKEN) -> RpcRequest:
    params = {**PARAMS, **({"SecurityToken": token} if token is not None else {})}
    return received(sign_v1("ListTasks", params, key, SECRET, when=NOW))


def v3_token(key: str = "sts-ak", token: str | None = TOKEN) -> RpcRequest:
    extra = {"x-acs-security-token": token} if token is not None else {}
    return received(sign_v3("ListTasks", PARAMS, key, SECRET, host=HOST, when=NOW, extra_headers=extra))


def test_credentials_read_from_v1_and_v3() -> None:
    """Every field of the credentials, V1 from the parameters (algorithm HMAC-SHA1) and V3 from the
    headers; the security token when given, None when absent or empty."""
    req = received(
        sign_v1("ListTasks", {**PARAMS, "SecurityToken": TOKEN}, "ak", SECRET, when=NOW, nonce="n1")
    )
    assert read_credentials(req) == Credentials(
        "V1", "ak", "2024-05-01T12:00:00Z", "n1", req.params["Signature"], "HMAC-SHA1", security_token=TOKEN
    )
    assert (
        read_credentials(received(sign_v1("ListTasks", PARAMS, "ak", SECRET, when=NOW))).security_token
        is None
    )
    empty = received(sign_v1("ListTasks", {**PARAMS, "SecurityToken": ""}, "ak", SECRET, when=NOW))
    assert read_credentials(empty).security_token is None
    signed = sign_v3(
        "ListTasks", PARAMS, "ak", SECRET, host=HOST, when=NOW, nonce="n3",
        extra_headers={"x-acs-security-token": TOKEN},
    )  # fmt: skip
    creds = read_credentials(received(signed))
    auth = signing.parse_authorization(signed.headers["authorization"])
    assert auth is not None
    assert creds == Credentials(
        "V3",
        "ak",
        "2024-05-01T12:00:00Z",
        "n3",
        auth.signature,
        "ACS3-HMAC-SHA256",
        auth.signed_headers,
        TOKEN,
    )
    assert read_credentials(v3_token("ak", token=None)).security_token is None
    assert read_credentials(v3_token("ak", token="")).security_token is None


def test_incomplete_signature_says_why(env: Env) -> None:
    """No signature at all, or an Authorization header that does not parse: the message says which."""
    error = expect(e.IncompleteSignature, "IncompleteSignature", 400, env, raw_v1("Action=ListTasks"))
    assert error.message == (
        "The request signature does not conform to Aliyun standards. "
        "The request carries neither an Authorization header nor a Signature."
    )
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    bad = received(signed, authorization="ACS3-HMAC-SHA256 garbage")
    error = expect(e.IncompleteSignature, "IncompleteSignature", 400, env, bad)
    assert error.message == (
        "The request signature does not conform to Aliyun standards. The Authorization header is malformed."
    )


def test_a_ram_users_key_gives_the_user(env: Env) -> None:
    """A RAM user's key authenticates as that user of the account (V1 and V3)."""
    for req in (received(sign_v1("ListTasks", PARAMS, "user-ak", SECRET, when=NOW)),
                received(sign_v3("ListTasks", PARAMS, "user-ak", SECRET, host=HOST, when=NOW))):  # fmt: skip
        principal = env.verify(req)
        assert principal == Principal(ACCOUNT, "user-ak", "u-1", "alice")
        assert not principal.is_account


def test_a_temporary_key_with_its_token_gives_the_session(env: Env) -> None:
    """A temporary key signed with its own token (V1 parameter, V3 header) acts as the role session."""
    for req in (v1_token(), v3_token()):
        assert env.verify(req) == Principal(ACCOUNT, "sts-ak", sts=SESSION)


def test_a_temporary_key_needs_its_own_unexpired_token(env: Env) -> None:
    """No token: MissingSecurityToken; another token naming the same key: SecurityTokenMismatch; a
    token naming another key: SecurityTokenMismatch; the session ended (at its end time): Expired."""
    expect(e.MissingSecurityToken, "MissingSecurityToken", 400, env, v1_token(token=None))
    expect(e.MissingSecurityToken, "MissingSecurityToken", 400, env, v3_token(token=None))
    forged = new_token("sts-ak")
    expect(
        e.SecurityTokenMismatch,
        "InvalidSecurityToken.MismatchWithAccessKey",
        400,
        env,
        v3_token(token=forged),
    )
    other = new_token("ak")
    expect(
        e.SecurityTokenMismatch, "InvalidSecurityToken.MismatchWithAccessKey", 400, env, v1_token(token=other)
    )
    key, account = env.keys.keys["sts-ak"]
    assert key.sts is not None
    env.keys.keys["sts-ak"] = (replace(key, sts=replace(key.sts, expires_at=NOW)), account)
    expect(e.SecurityTokenExpired, "InvalidSecurityToken.Expired", 400, env, v3_token())
    env.keys.keys["sts-ak"] = (
        replace(key, sts=replace(key.sts, expires_at=NOW + timedelta(seconds=1))),
        account,
    )
    assert env.verify(v3_token()).sts is not None


def test_a_permanent_key_takes_no_token(env: Env) -> None:
    """A token (naming the key) sent with a permanent key is SecurityTokenMismatch."""
    expect(
        e.SecurityTokenMismatch,
        "InvalidSecurityToken.MismatchWithAccessKey",
        400,
        env,
        v3_token("ak", new_token("ak")),
    )


SPACED = {"ClusterId": "ehpc-hz-1", "Description": "two words"}


def plus_signed_v1(secret: str = SECRET) -> RpcRequest:
    """A V1 request whose spaces were signed as '+' (the STS signer of alibabacloud_credentials)."""
    signed = sign_v1("ListTasks", SPACED, "ak", secret, when=NOW)
    params = {k: v for k, v in received(signed).params.items() if k != "Signature"}
    signature = signing.v1_signature(signing.v1_string_to_sign("GET", params, plus=True), secret)
    url = urlsplit(signed.url_path)
    query = "&".join(p for p in url.query.split("&") if not p.startswith("Signature="))
    return received(SignedRequest("GET", f"/?{query}&Signature={signing.enc(signature)}", {}))


def test_v1_signed_with_plus_for_spaces_is_accepted(env: Env) -> None:
    """The '+' encoding of spaces is accepted for V1, with the right secret only."""
    assert env.verify(plus_signed_v1()).access_key_id == "ak"
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, plus_signed_v1("wrong"))


def test_v3_is_never_checked_against_the_v1_plus_encoding(env: Env) -> None:
    """A V3 request whose Signature is the V1 '+' signature of its parameters is refused."""
    signed = sign_v3("ListTasks", SPACED, "ak", SECRET, host=HOST, when=NOW)
    req = received(signed)
    v1_sig = signing.v1_signature(signing.v1_string_to_sign("GET", req.params, plus=True), SECRET)
    auth = signed.headers["authorization"].rsplit("Signature=", 1)[0] + f"Signature={v1_sig}"
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, received(signed, authorization=auth))


def test_sm3_requests_are_verified_with_sm3(env: Env) -> None:
    """ACS3-HMAC-SM3: the payload hash, the string to sign and the signature all use SM3; a declared
    x-acs-content-sha256 is compared with the body's SM3 hash."""
    body = b"A=1"
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW, method="POST", body=body,
                     algorithm="ACS3-HMAC-SM3")  # fmt: skip
    assert signed.headers["x-acs-content-sha256"] == signing.payload_hash("ACS3-HMAC-SM3", body)
    assert env.verify(received(signed)).access_key_id == "ak"


def test_v3_on_another_path_signs_that_path(env: Env) -> None:
    """The canonical request carries the request's own path: signed for /api it verifies at /api."""
    signed = sign_v3("ListTasks", PARAMS, "ak", SECRET, host=HOST, when=NOW)
    req = received(SignedRequest(signed.method, "/api" + signed.url_path[1:], signed.headers))
    creds = read_credentials(req)
    canonical = signing.v3_canonical_request(
        "GET",
        "/api",
        req.query,
        req.headers,
        creds.signed_headers,
        signing.payload_hash(creds.algorithm, b""),
    )
    signature = signing.v3_signature(
        creds.algorithm, signing.v3_string_to_sign(creds.algorithm, canonical), SECRET
    )
    auth = signed.headers["authorization"].rsplit("Signature=", 1)[0] + f"Signature={signature}"
    at_api = SignedRequest("GET", "/api" + signed.url_path[1:], {**signed.headers, "authorization": auth})
    assert env.verify(received(at_api)).access_key_id == "ak"
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, req)


def test_a_declared_body_hash_that_does_not_match_shows_the_string_to_sign(env: Env) -> None:
    """A signed x-acs-content-sha256 that is not the body's hash: SignatureDoesNotMatch whose message
    ends with the string to sign the server computed."""
    signed = sign_v3(
        "ListTasks", {}, "ak", SECRET, host=HOST, when=NOW, extra_headers={"x-acs-content-sha256": "0" * 64}
    )
    req = received(signed)
    error = expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, req)
    assert error.message.endswith("server string to sign is:" + string_to_sign(req, read_credentials(req)))
