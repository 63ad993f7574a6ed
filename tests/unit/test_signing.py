"""Signatures V1 and V3: the worked examples of protocol.md section 8, byte for byte, and the test signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcplane.api import signing
from hpcplane.api.authn import expected_signature, read_credentials, string_to_sign
from hpcplane.api.protocol import RpcRequest, build_request
from hpcplane.testing import SignedRequest, sign_v1, sign_v3

SECRET = "testsecret"
NONCE = "3f2a9c1e7b6d4e8fa1b2c3d4e5f60718"
EMPTY_SM3 = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
TEA_UA = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2"

# --- Example A: V3, Tea default -----------------------------------------------------------------

A_QUERY = b"Archived=True&ClusterId=ehpc-hz-FYUr32%2A%2A%2A%2A&PageNumber=2&PageSize=20"
A_SIGNED = (
    "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;"
    "x-acs-date;x-acs-signature-nonce;x-acs-version"
)
A_STS_SIGNED = (
    "accept;host;user-agent;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;"
    "x-acs-credentials-provider;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version"
)
A_CANONICAL = (
    "GET\n"
    "/\n"
    "Archived=True&ClusterId=ehpc-hz-FYUr32%2A%2A%2A%2A&PageNumber=2&PageSize=20\n"
    "accept:application/json\n"
    "host:127.0.0.1:18080\n"
    f"user-agent:{TEA_UA}\n"
    "x-acs-action:ListTasks\n"
    "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "x-acs-credentials-provider:static_ak\n"
    "x-acs-date:2024-05-01T12:00:00Z\n"
    f"x-acs-signature-nonce:{NONCE}\n"
    "x-acs-version:2018-04-12\n"
    "\n"
    f"{A_SIGNED}\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
A_STS = "ACS3-HMAC-SHA256\n9e80a5c357d49fda9ee8da2c1188504eb43406d58c43f4ee7365cdc6e1aa470c"
A_SIGNATURE = "7a5bd67bc13ba021d7b5a25aef6d0171b0be4e8efadde19a0b86c9f8a0c6bcb9"
A_STS_TOKEN_SIGNATURE = "9ec6fef6059c06364293c194f3aa391a9cbcf1e7ac816c5a2f454a76bb1491fc"
A_SM3_SIGNATURE = "a4cad61c92edb8b16eaf5fa178a972bffec5d8e95cd849eae5af50b55858e183"


def _v3_capture(
    *,
    host: str = "127.0.0.1:18080",
    algorithm: str = "ACS3-HMAC-SHA256",
    content_hash: str = signing.EMPTY_SHA256,
    signed: str = A_SIGNED,
    signature: str = A_SIGNATURE,
    sts_token: str | None = None,
) -> RpcRequest:
    """Example A as captured (headers in wire order), optionally with the STS headers or on SM3."""
    headers = [
        ("Accept-Encoding", "identity"),
        ("host", host),
        ("x-acs-version", "2018-04-12"),
        ("x-acs-action", "ListTasks"),
        ("user-agent", TEA_UA),
        ("x-acs-date", "2024-05-01T12:00:00Z"),
        ("x-acs-signature-nonce", NONCE),
        ("accept", "application/json"),
        ("x-acs-content-sha256", content_hash),
        ("x-acs-credentials-provider", "static_ak" if sts_token is None else "static_sts"),
    ]
    if sts_token is not None:
        headers += [("x-acs-accesskey-id", "testid"), ("x-acs-security-token", sts_token)]
    authorization = f"{algorithm} Credential=testid,SignedHeaders={signed},Signature={signature}"
    headers.append(("Authorization", authorization))
    return build_request(
        method="GET",
        path="/",
        raw_query=A_QUERY,
        raw_headers=[(k.encode(), v.encode()) for k, v in headers],
        body=b"",
        client_ip="127.0.0.1",
    )


def _verify(req: RpcRequest, secret: str = SECRET) -> tuple[str, str, str]:
    """(string to sign, expected signature, sent signature) as the server computes them."""
    creds = read_credentials(req)
    sts = string_to_sign(req, creds)
    return sts, expected_signature(creds, sts, secret), creds.signature


def test_example_a_canonical_request_is_byte_exact() -> None:
    """Example A: the canonical request built from the captured wire request matches the digest text."""
    req = _v3_capture()
    canonical = signing.v3_canonical_request(
        req.method, req.path, req.query, req.headers, A_SIGNED.split(";"), signing.EMPTY_SHA256
    )
    assert canonical == A_CANONICAL
    assert hashlib.sha256(canonical.encode()).hexdigest() == A_STS.split("\n")[1]


def test_example_a_string_to_sign_and_signature() -> None:
    """Example A: StringToSign hash 9e80a5c3... and signature 7a5bd67b..., which the SDK sent."""
    assert signing.v3_string_to_sign("ACS3-HMAC-SHA256", A_CANONICAL) == A_STS
    assert signing.v3_signature("ACS3-HMAC-SHA256", A_STS, SECRET) == A_SIGNATURE
    assert _verify(_v3_capture()) == (A_STS, A_SIGNATURE, A_SIGNATURE)


def test_example_a_with_sts_token() -> None:
    """Example A with security_token 'STS.tok/en+=': the two extra signed headers give 9ec6fef6..."""
    req = _v3_capture(sts_token="STS.tok/en+=", signed=A_STS_SIGNED, signature=A_STS_TOKEN_SIGNATURE)
    assert req.headers["x-acs-security-token"] == "STS.tok/en+="
    _, expected, sent = _verify(req)
    assert expected == sent == A_STS_TOKEN_SIGNATURE


def test_example_a_sm3_variant() -> None:
    """Example A under ACS3-HMAC-SM3 on 127.0.0.1:18081: SM3 payload hash, signature a4cad61c..."""
    assert signing.payload_hash("ACS3-HMAC-SM3", b"") == EMPTY_SM3
    req = _v3_capture(
        host="127.0.0.1:18081",
        algorithm="ACS3-HMAC-SM3",
        content_hash=EMPTY_SM3,
        signature=A_SM3_SIGNATURE,
    )
    sts, expected, sent = _verify(req)
    assert sts.startswith("ACS3-HMAC-SM3\n")
    assert expected == sent == A_SM3_SIGNATURE


def test_example_a_fails_with_another_secret_or_host() -> None:
    """Example A does not verify with a different secret, nor when the signed host differs."""
    _, expected, sent = _verify(_v3_capture(), secret="othersecret")
    assert expected != sent
    _, expected, sent = _verify(_v3_capture(host="127.0.0.1:18081"))
    assert expected != sent


# --- Examples B and C: V1 -----------------------------------------------------------------------

B_QUERY = (
    b"Action=ListTasks&Format=json&Version=2018-04-12&Timestamp=2024-05-01T12%3A00%3A00Z"
    b"&SignatureNonce=3f2a9c1e7b6d4e8fa1b2c3d4e5f60718&Archived=True&ClusterId=ehpc-hz-FYUr32%2A%2A%2A%2A"
    b"&PageNumber=2&PageSize=20&SignatureMethod=HMAC-SHA1&SignatureVersion=1.0&AccessKeyId=testid"
    b"&Signature=FKAHp4xpiyo2gUL%2FXajsSYx2fd4%3D"
)
B_STS = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DListTasks%26Archived%3DTrue%26ClusterId%3Dehpc-hz-FYUr32"
    "%252A%252A%252A%252A%26Format%3Djson%26PageNumber%3D2%26PageSize%3D20%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3f2a9c1e7b6d4e8fa1b2c3d4e5f60718%26SignatureVersion%3D1.0%26Timestamp%3D"
    "2024-05-01T12%253A00%253A00Z%26Version%3D2018-04-12"
)
C_QUERY = (
    b"ClusterId=ehpc-hz-FYUr32%2A%2A%2A%2A&PageNumber=2&PageSize=20&Archived=True&Version=2018-04-12"
    b"&Action=ListTasks&Format=JSON&RegionId=cn-hangzhou&Timestamp=2024-05-01T12%3A00%3A00Z"
    b"&SignatureMethod=HMAC-SHA1&SignatureType=&SignatureVersion=1.0"
    b"&SignatureNonce=3f2a9c1e7b6d4e8fa1b2c3d4e5f60718&AccessKeyId=testid"
    b"&Signature=9Q7ISiCbXFNA%2BCs1bS40FXubsog%3D"
)
C_STS = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DListTasks%26Archived%3DTrue%26ClusterId%3Dehpc-hz-FYUr32"
    "%252A%252A%252A%252A%26Format%3DJSON%26PageNumber%3D2%26PageSize%3D20%26RegionId%3Dcn-hangzhou"
    "%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3f2a9c1e7b6d4e8fa1b2c3d4e5f60718"
    "%26SignatureType%3D%26SignatureVersion%3D1.0%26Timestamp%3D2024-05-01T12%253A00%253A00Z"
    "%26Version%3D2018-04-12"
)
B_HEADERS = [
    (b"Accept-Encoding", b"identity"),
    (b"host", b"127.0.0.1:18080"),
    (b"x-acs-version", b"2018-04-12"),
    (b"x-acs-action", b"ListTasks"),
    (b"user-agent", TEA_UA.encode()),
    (b"x-acs-credentials-provider", b"static_ak"),
]
C_HEADERS = [
    (b"Host", b"127.0.0.1:18080"),
    (b"User-Agent", b"AlibabaCloud (Linux 6.18.44-fc-v669;x86_64) Python/3.11.7 Core/2.16.1"),
    (b"Accept-Encoding", b"identity"),
    (b"Accept", b"*/*"),
    (b"Connection", b"keep-alive"),
    (b"x-acs-action", b"ListTasks"),
    (b"x-acs-version", b"2018-04-12"),
    (b"x-sdk-invoke-type", b"normal"),
    (b"x-sdk-client", b"python/2.0.0"),
]


def _v1_capture(query: bytes, headers: list[tuple[bytes, bytes]], method: str = "GET") -> RpcRequest:
    return build_request(
        method=method, path="/", raw_query=query, raw_headers=headers, body=b"", client_ip="127.0.0.1"
    )


def test_example_b_tea_v1() -> None:
    """Example B (Tea, signature_algorithm='v2'): StringToSign verbatim, signature FKAHp4xp..."""
    req = _v1_capture(B_QUERY, B_HEADERS)
    assert signing.v1_string_to_sign(req.method, req.params) == B_STS
    assert signing.v1_signature(B_STS, SECRET) == "FKAHp4xpiyo2gUL/XajsSYx2fd4="
    assert _verify(req) == (B_STS, "FKAHp4xpiyo2gUL/XajsSYx2fd4=", "FKAHp4xpiyo2gUL/XajsSYx2fd4=")


def test_example_c_legacy_v1_signs_empty_signature_type() -> None:
    """Example C (legacy AcsClient): the empty SignatureType is kept and signed; 9Q7ISiCb..."""
    req = _v1_capture(C_QUERY, C_HEADERS)
    assert req.params["SignatureType"] == ""
    assert signing.v1_string_to_sign(req.method, req.params) == C_STS
    assert _verify(req) == (C_STS, "9Q7ISiCbXFNA+Cs1bS40FXubsog=", "9Q7ISiCbXFNA+Cs1bS40FXubsog=")


def test_example_c_breaks_without_signature_type() -> None:
    """Example C no longer verifies once the empty SignatureType is dropped from the query."""
    req = _v1_capture(C_QUERY.replace(b"&SignatureType=", b""), C_HEADERS)
    assert "SignatureType" not in req.params
    _, expected, sent = _verify(req)
    assert expected != sent


def test_example_c_breaks_as_post() -> None:
    """Example C no longer verifies when the same query arrives with method POST."""
    _, expected, sent = _verify(_v1_capture(C_QUERY, C_HEADERS, method="POST"))
    assert expected != sent


def test_v1_signature_is_base64_hmac_sha1_with_ampersand_key() -> None:
    """The V1 key is the secret plus '&'; the result is standard Base64 of the HMAC-SHA1 digest."""
    digest = hmac.new(b"testsecret&", C_STS.encode(), hashlib.sha1).digest()
    assert signing.v1_signature(C_STS, SECRET) == base64.b64encode(digest).decode()


# --- Example D: encoding -------------------------------------------------------------------------

D_VALUE = "a b+c/d~e*f=g&hé中"
D_CANONICAL = "a%20b%2Bc%2Fd~e%2Af%3Dg%26h%C3%A9%E4%B8%AD"


@pytest.mark.parametrize(
    "raw",
    [b"a+b%2Bc%2Fd~e%2Af%3Dg%26h%C3%A9%E4%B8%AD", b"a%20b%2Bc%2Fd~e%2Af%3Dg%26h%C3%A9%E4%B8%AD"],
    ids=["tea-plus", "legacy-%20"],
)
def test_example_d_encoding(raw: bytes) -> None:
    """Example D: '+' and '%20' URL forms both decode to the value and encode to the same canonical form."""
    req = _v1_capture(b"ClusterId=" + raw, [])
    assert req.params["ClusterId"] == D_VALUE
    assert signing.enc(D_VALUE) == D_CANONICAL
    assert signing.canonical_query(req.query) == f"ClusterId={D_CANONICAL}"
    assert signing.v1_string_to_sign("GET", req.params) == f"GET&%2F&ClusterId%3D{signing.enc(D_CANONICAL)}"


def test_canonical_query_sorts_by_byte_order() -> None:
    """Names sort case-sensitively in byte order: AccessKeyId < Action < Archived, Tag.10 < Tag.2."""
    pairs = [("Tag.2", "x"), ("Archived", "y"), ("Action", "z"), ("Tag.10", "w"), ("AccessKeyId", "k")]
    assert signing.canonical_query(pairs) == "AccessKeyId=k&Action=z&Archived=y&Tag.10=w&Tag.2=x"


# --- hpcplane.testing: what the signer makes, the server verifies ---------------------------------

WHEN = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
RESERVED = {
    "Signature",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Action",
    "Version",
    "Format",
}


def _received(signed: SignedRequest) -> RpcRequest:
    """The signed request as the server would parse it."""
    url = urlsplit(signed.url_path)
    return build_request(
        method=signed.method,
        path=url.path,
        raw_query=url.query.encode(),
        raw_headers=[(k.encode(), v.encode()) for k, v in signed.headers.items()],
        body=signed.body,
        client_ip="127.0.0.1",
    )


def _verifies(signed: SignedRequest, secret: str = SECRET) -> bool:
    _, expected, sent = _verify(_received(signed), secret)
    return signing.same(expected, sent)


_names = st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,12}", fullmatch=True).filter(lambda n: n not in RESERVED)
_values = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)


@given(params=st.dictionaries(_names, _values, max_size=5), method=st.sampled_from(["GET", "POST"]))
def test_sign_v1_round_trip(params: Mapping[str, str], method: str) -> None:
    """Whatever the parameters, a sign_v1 request verifies with the server's V1 functions."""
    signed = sign_v1("ListTasks", params, "testid", SECRET, method=method, when=WHEN, nonce="n1")
    received = _received(signed).params
    assert {name: received[name] for name in params} == dict(params)
    assert _verifies(signed)
    assert not _verifies(signed, secret="wrong")


@given(params=st.dictionaries(_names, _values, max_size=5))
def test_sign_v3_round_trip(params: Mapping[str, str]) -> None:
    """Whatever the parameters, a sign_v3 request verifies with the server's V3 functions."""
    signed = sign_v3("ListTasks", params, "testid", SECRET, host="127.0.0.1:8080", when=WHEN, nonce="n1")
    creds = read_credentials(_received(signed))
    assert (creds.version, creds.access_key_id, creds.nonce) == ("V3", "testid", "n1")
    assert creds.timestamp == "2024-05-01T12:00:00Z"
    assert _verifies(signed)
    assert not _verifies(signed, secret="wrong")


@pytest.mark.parametrize("algorithm", signing.V3_ALGORITHMS)
def test_sign_v3_round_trip_with_body_and_extra_headers(algorithm: str) -> None:
    """sign_v3 with a form body, an STS token header and either algorithm verifies; the body is signed."""
    signed = sign_v3(
        "ListTasks",
        {"ClusterId": D_VALUE},
        "testid",
        SECRET,
        host="127.0.0.1:8080",
        method="POST",
        algorithm=algorithm,
        body=b"PageSize=5",
        extra_headers={"X-Acs-Security-Token": "STS.tok/en+=", "Content-Type": "text/plain"},
    )
    assert signed.headers["x-acs-content-sha256"] == signing.payload_hash(algorithm, b"PageSize=5")
    assert _verifies(signed)
    tampered = SignedRequest(signed.method, signed.url_path, signed.headers, b"PageSize=6")
    assert not _verifies(tampered)


def test_sign_v1_tampered_parameter_fails() -> None:
    """Changing one parameter of a sign_v1 request after signing breaks its signature."""
    signed = sign_v1("ListTasks", {"PageSize": "5"}, "testid", SECRET, when=WHEN)
    tampered = SignedRequest(signed.method, signed.url_path.replace("PageSize=5", "PageSize=6"), {})
    assert _verifies(signed)
    assert not _verifies(tampered)


# --- V1 from the raw query (the fast way) ----------------------------------------------------------


@given(params=st.dictionaries(_names, _values, max_size=6), method=st.sampled_from(["GET", "POST"]))
def test_v1_raw_string_is_the_canonical_string_when_the_query_is_canonical(
    params: Mapping[str, str], method: str
) -> None:
    """For a query as sign_v1 (and the SDKs) encode it, the string built from the raw query is exactly
    the one built from the decoded parameters, names that prefix each other (Tag, Tag.1) included."""
    signed = sign_v1("ListTasks", {"Tag": "a", "Tag.1": "b", **params}, "id", SECRET, method=method)
    received = _received(signed)
    creds = read_credentials(received)
    raw = signing.v1_string_to_sign_raw(method, received.raw_query)
    assert raw == string_to_sign(received, creds)


@pytest.mark.parametrize(
    "query",
    [
        "Action=ListTasks&Name=a+b",  # '+' for a space
        "Action=ListTasks&Name=%2a",  # lower-case hex
        "Action=ListTasks&Name",  # a bare name
        "Action=ListTasks&&Name=x",  # an empty pair
        "Action=ListTasks&Name=100%",  # a '%' that escapes nothing
        "Action=ListTasks&Name=%4",  # a '%' with one hex digit
        "Action=ListTasks&=x",  # an empty name
        "Action=ListTasks&Name=a=b",  # a second '=' in a pair
        "Action=ListTasks&Name=a&",  # an empty last pair
        "Action=ListTasks&Name=a b",  # a space
    ],
)
def test_v1_raw_string_gives_way_on_a_query_not_in_canonical_form(query: str) -> None:
    assert signing.v1_string_to_sign_raw("GET", query) is None
