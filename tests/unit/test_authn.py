"""Authentication: every gateway error in its order, with in-memory fakes of the key and nonce ports."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from hpcplane.api import signing
from hpcplane.api.authn import Authenticator, KeyDirectory, NonceStore, read_credentials
from hpcplane.api.errors import status_of
from hpcplane.api.protocol import RpcRequest, build_request
from hpcplane.domain import errors as e
from hpcplane.domain.accounts import AccessKey, Account, KeyStatus, Principal
from hpcplane.testing import SignedRequest, sign_v1, sign_v3

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SKEW = 900
TTL = 1800
HOST = "127.0.0.1:18080"
ACCOUNT = Account(id="1000000000000001", name="acme", ehpc_enabled=True)
SECRET = "s3cret"


class FakeKeys(KeyDirectory):
    """A KeyDirectory over a dict: AccessKeyId -> (key, account)."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[AccessKey, Account]] = {}

    def add(self, key_id: str, secret: str, status: KeyStatus = KeyStatus.ACTIVE) -> None:
        key = AccessKey(key_id, ACCOUNT.id, None, None, secret, status)
        self.keys[key_id] = (key, ACCOUNT)

    def lookup(self, access_key_id: str) -> tuple[AccessKey, Account] | None:
        return self.keys.get(access_key_id)


class FakeNonces(NonceStore):
    """A NonceStore over a dict: (AccessKeyId, nonce) -> expiry."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], datetime] = {}

    def remember(self, access_key_id: str, nonce: str, now: datetime, ttl: int) -> bool:
        expires = self.seen.get((access_key_id, nonce))
        if expires is not None and expires > now:
            return False
        self.seen[(access_key_id, nonce)] = now + timedelta(seconds=ttl)
        return True


class FixedClock:
    """A Clock that says NOW until told otherwise."""

    def __init__(self, now: datetime = NOW) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


class Env:
    """An Authenticator wired to the fakes, with an active key 'ak' and an inactive key 'off'."""

    def __init__(self) -> None:
        self.keys = FakeKeys()
        self.keys.add("ak", SECRET)
        self.keys.add("ak2", "other")
        self.keys.add("off", SECRET, KeyStatus.INACTIVE)
        self.nonces = FakeNonces()
        self.clock = FixedClock()
        self.authn = Authenticator(self.keys, self.nonces, self.clock, skew=SKEW, nonce_ttl=TTL)

    def verify(self, req: RpcRequest) -> Principal:
        """What the gateway does: read the credentials, then authenticate."""
        return self.authn.authenticate(req, read_credentials(req))


@pytest.fixture
def env() -> Env:
    return Env()


def received(signed: SignedRequest, **headers: str) -> RpcRequest:
    """The signed request as the server parses it, with `headers` added after signing."""
    url = urlsplit(signed.url_path)
    raw = {**signed.headers, **headers}
    return build_request(
        method=signed.method,
        path=url.path,
        raw_query=url.query.encode(),
        raw_headers=[(k.encode(), v.encode()) for k, v in raw.items()],
        body=signed.body,
        client_ip="127.0.0.1",
    )


PARAMS: Mapping[str, str] = {"ClusterId": "ehpc-hz-1"}


def v1(
    key: str = "ak", secret: str = SECRET, *, when: datetime = NOW, nonce: str | None = None
) -> RpcRequest:
    """A V1 ListTasks request signed with `key`/`secret` at `when`."""
    return received(sign_v1("ListTasks", PARAMS, key, secret, when=when, nonce=nonce))


def v3(
    key: str = "ak", secret: str = SECRET, *, when: datetime = NOW, nonce: str | None = None
) -> RpcRequest:
    """A V3 ListTasks request signed with `key`/`secret` at `when`."""
    return received(sign_v3("ListTasks", PARAMS, key, secret, host=HOST, when=when, nonce=nonce))


def raw_v1(query: str) -> RpcRequest:
    return build_request(
        method="GET", path="/", raw_query=query.encode(), raw_headers=[], body=b"", client_ip="127.0.0.1"
    )


def expect(
    error: type[e.HpcplaneError], code: str, status: int, env: Env, req: RpcRequest
) -> e.HpcplaneError:
    """Authenticating `req` raises exactly `error`, with that code and HTTP status."""
    with pytest.raises(e.HpcplaneError) as caught:
        env.verify(req)
    assert type(caught.value) is error
    assert caught.value.code == code
    assert status_of(caught.value) == status
    return caught.value


V1_BASE = (
    "AccessKeyId=ak&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&Timestamp=2024-05-01T12%3A00%3A00Z"
    "&SignatureNonce=n1&Signature=x"
)


def test_valid_v1_and_v3_give_the_principal(env: Env) -> None:
    """Correctly signed V1 and V3 requests authenticate as the key's account."""
    for req in (v1(), v3()):
        principal = env.verify(req)
        assert principal == Principal(account=ACCOUNT, access_key_id="ak")
        assert principal.is_account


def test_neither_authorization_nor_signature(env: Env) -> None:
    """A request with no Authorization header and no Signature parameter is IncompleteSignature."""
    expect(e.IncompleteSignature, "IncompleteSignature", 400, env, raw_v1("Action=ListTasks"))


@pytest.mark.parametrize(
    "header",
    [
        "ACS3-HMAC-SHA256",
        "ACS3-HMAC-SHA256 garbage",
        "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host",
        "ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=ab",
    ],
)
def test_malformed_authorization(env: Env, header: str) -> None:
    """An ACS3 Authorization lacking Credential, SignedHeaders or Signature is IncompleteSignature."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    expect(e.IncompleteSignature, "IncompleteSignature", 400, env, received(signed, authorization=header))


@pytest.mark.parametrize("header", ["x-acs-security-token", "content-type", "x-acs-anything"])
def test_unsigned_acs_header_or_content_type(env: Env, header: str) -> None:
    """An x-acs-* header or a content-type that is present but not in SignedHeaders is IncompleteSignature."""
    error = expect(
        e.IncompleteSignature,
        "IncompleteSignature",
        400,
        env,
        received(sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW), **{header: "v"}),
    )
    assert header in error.message


def test_unsigned_host(env: Env) -> None:
    """A V3 request whose SignedHeaders omit host is IncompleteSignature."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    auth = signed.headers["authorization"].replace("SignedHeaders=accept;host;", "SignedHeaders=accept;")
    expect(e.IncompleteSignature, "IncompleteSignature", 400, env, received(signed, authorization=auth))


@pytest.mark.parametrize(
    "change",
    [
        ("SignatureMethod=HMAC-SHA1", "SignatureMethod=HMAC-SHA256"),
        ("SignatureVersion=1.0", "SignatureVersion=2.0"),
    ],
)
def test_v1_invalid_signature_method(env: Env, change: tuple[str, str]) -> None:
    """V1 with SignatureMethod != HMAC-SHA1 or SignatureVersion != 1.0 is InvalidSignatureMethod."""
    req = raw_v1(V1_BASE.replace(*change))
    expect(e.InvalidSignatureMethod, "InvalidSignatureMethod", 400, env, req)


def test_v3_unknown_algorithm(env: Env) -> None:
    """An ACS3 algorithm other than HMAC-SHA256/HMAC-SM3 is InvalidSignatureMethod."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    auth = signed.headers["authorization"].replace("ACS3-HMAC-SHA256", "ACS3-HMAC-MD5")
    expect(e.InvalidSignatureMethod, "InvalidSignatureMethod", 400, env, received(signed, authorization=auth))


@pytest.mark.parametrize("name", ["Timestamp", "SignatureNonce", "AccessKeyId"])
def test_v1_missing_parameter(env: Env, name: str) -> None:
    """V1 without Timestamp, SignatureNonce or AccessKeyId is MissingParameter naming it."""
    query = "&".join(p for p in V1_BASE.split("&") if not p.startswith(name + "="))
    error = expect(e.MissingParameter, "MissingParameter", 400, env, raw_v1(query))
    assert name in error.message


@pytest.mark.parametrize("name", ["x-acs-date", "x-acs-signature-nonce"])
def test_v3_missing_time_or_nonce(env: Env, name: str) -> None:
    """V3 without x-acs-date or x-acs-signature-nonce is MissingParameter naming it."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    headers = {k: v for k, v in signed.headers.items() if k != name}
    req = received(SignedRequest(signed.method, signed.url_path, headers))
    error = expect(e.MissingParameter, "MissingParameter", 400, env, req)
    assert name in error.message


@pytest.mark.parametrize(
    "stamp",
    [
        "2024-05-01 12:00:00",
        "2024-05-01T12:00:00",
        "2024-05-01T12:00:00.000Z",
        "2024-05-01T12:00:00+08:00",
        "1714564800",
        "2024-13-01T12:00:00Z",
        "garbage",
    ],
)
def test_malformed_timestamp(env: Env, stamp: str) -> None:
    """A time that is not yyyy-MM-ddTHH:mm:ssZ is InvalidTimeStamp.Format."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW)
    req = received(SignedRequest(signed.method, signed.url_path, {**signed.headers, "x-acs-date": stamp}))
    expect(e.TimestampFormat, "InvalidTimeStamp.Format", 400, env, req)


@pytest.mark.parametrize("sign", [v1, v3], ids=["v1", "v3"])
@pytest.mark.parametrize("direction", [-1, 1], ids=["past", "future"])
def test_timestamp_window(env: Env, sign: Callable[..., RpcRequest], direction: int) -> None:
    """Exactly 15 minutes away is accepted; 15 min + 1 s, past or future, is InvalidTimeStamp.Expired."""
    edge = NOW + direction * timedelta(seconds=SKEW)
    assert env.verify(sign(when=edge)).access_key_id == "ak"
    late = edge + direction * timedelta(seconds=1)
    expect(e.TimestampExpired, "InvalidTimeStamp.Expired", 400, env, sign(when=late))


def test_unknown_access_key(env: Env) -> None:
    """An AccessKeyId the directory does not know is InvalidAccessKeyId.NotFound (404)."""
    expect(e.AccessKeyNotFound, "InvalidAccessKeyId.NotFound", 404, env, v3(key="nobody"))


def test_inactive_access_key(env: Env) -> None:
    """A disabled AccessKey is InvalidAccessKeyId.Inactive, even correctly signed."""
    expect(e.AccessKeyInactive, "InvalidAccessKeyId.Inactive", 400, env, v1(key="off"))


def test_v1_signature_mismatch_message_carries_string_to_sign(env: Env) -> None:
    """V1 with the wrong secret: the message ends 'server string to sign is:' + the exact V1 StringToSign."""
    req = v1(secret="wrong")
    sts = signing.v1_string_to_sign("GET", req.params)
    error = expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, req)
    assert error.message.endswith("server string to sign is:" + sts)
    assert error.message.split(":")[1] == sts  # what the legacy SDK compares with its own


def test_v3_signature_mismatch(env: Env) -> None:
    """V3 with the wrong secret is SignatureDoesNotMatch."""
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, v3(secret="wrong"))


def test_v3_tampered_body(env: Env) -> None:
    """A V3 body changed after signing no longer matches x-acs-content-sha256: SignatureDoesNotMatch."""
    signed = sign_v3("ListTasks", {}, "ak", SECRET, host=HOST, when=NOW, method="POST", body=b"A=1")
    tampered = SignedRequest(signed.method, signed.url_path, signed.headers, b"A=2")
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, received(tampered))


def test_v3_content_sha256_header_must_match_body(env: Env) -> None:
    """An x-acs-content-sha256 header that is not the hash of the body is refused, even when signed."""
    signed = sign_v3(
        "ListTasks", {}, "ak", SECRET, host=HOST, when=NOW, extra_headers={"x-acs-content-sha256": "0" * 64}
    )
    with pytest.raises(e.HpcplaneError) as caught:
        env.verify(received(signed))
    assert status_of(caught.value) == 400


def test_nonce_reuse(env: Env) -> None:
    """The same nonce twice for one key: the second is SignatureNonceUsed."""
    env.verify(v3(nonce="n-1"))
    expect(e.SignatureNonceUsed, "SignatureNonceUsed", 400, env, v3(nonce="n-1"))
    expect(e.SignatureNonceUsed, "SignatureNonceUsed", 400, env, v1(nonce="n-1"))


def test_nonce_not_burnt_by_bad_signature(env: Env) -> None:
    """A request whose signature fails does not record its nonce; a later valid one with it succeeds."""
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, v1(secret="wrong", nonce="n-2"))
    assert env.nonces.seen == {}
    assert env.verify(v1(nonce="n-2")).access_key_id == "ak"


def test_nonce_is_per_access_key(env: Env) -> None:
    """The same nonce under two different AccessKeys is accepted for both."""
    assert env.verify(v3(nonce="shared")).access_key_id == "ak"
    assert env.verify(v3(key="ak2", secret="other", nonce="shared")).access_key_id == "ak2"


def test_nonce_remembered_for_its_ttl(env: Env) -> None:
    """The store is asked to keep the nonce for nonce_ttl seconds from the server's time."""
    env.verify(v3(nonce="n-3"))
    assert env.nonces.seen == {("ak", "n-3"): NOW + timedelta(seconds=TTL)}


def test_checks_run_in_order(env: Env) -> None:
    """Time before key, key before status, status before signature, signature before nonce."""
    env.verify(v3(nonce="used"))
    late = NOW - timedelta(hours=1)
    expect(e.TimestampExpired, "InvalidTimeStamp.Expired", 400, env, v3(key="nobody", secret="x", when=late))
    expect(e.AccessKeyNotFound, "InvalidAccessKeyId.NotFound", 404, env, v3(key="nobody", secret="x"))
    expect(e.AccessKeyInactive, "InvalidAccessKeyId.Inactive", 400, env, v3(key="off", secret="x"))
    expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, v3(secret="x", nonce="used"))
    bad_method = raw_v1(V1_BASE.replace("HMAC-SHA1", "MD5").replace("Timestamp=2024", "Timestamp=1999"))
    expect(e.InvalidSignatureMethod, "InvalidSignatureMethod", 400, env, bad_method)


def test_v1_query_not_in_canonical_form_still_verifies(env: Env) -> None:
    """The fast string from the raw query is only a shortcut: a query that escapes unreserved characters
    (%41 for A) or writes a space as '+' is verified over its decoded parameters."""
    for value, sent in (("A-1", "%41-1"), ("a b", "a+b")):
        signed = sign_v1("ListTasks", {"ClusterId": value}, "ak", SECRET, when=NOW)
        encoded = signed.url_path.replace(
            "ClusterId=" + ("A-1" if value == "A-1" else "a%20b"), "ClusterId=" + sent
        )
        req = received(SignedRequest(signed.method, encoded, {}))
        assert req.params["ClusterId"] == value
        assert env.verify(req).access_key_id == "ak"


def test_v1_raw_query_tampered_fails(env: Env) -> None:
    """A canonical query changed after signing fails on both strings, with the decoded one in the error."""
    signed = sign_v1("ListTasks", {"ClusterId": "ehpc-hz-1"}, "ak", SECRET, when=NOW)
    req = received(SignedRequest(signed.method, signed.url_path.replace("ehpc-hz-1", "ehpc-hz-2"), {}))
    error = expect(e.SignatureDoesNotMatch, "SignatureDoesNotMatch", 400, env, req)
    assert "ehpc-hz-2" in error.message
