"""The request checks (api/validation.py) at the module: credential material, names, sizes and kept
parameters, each bound inclusive, each refusal with the parameter it names and its reason."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcplane.api import validation as v
from hpcplane.api.authn import Credentials
from hpcplane.api.protocol import RpcRequest, build_request, parse_query
from hpcplane.domain.errors import AccessKeyNotFound, InvalidParams, SecurityTokenMalformed


def refusal(call: Callable[[], object]) -> tuple[str, str]:
    """The parameter an InvalidParams from `call` names, and its reason."""
    with pytest.raises(InvalidParams) as caught:
        call()
    return caught.value.fields["name"], caught.value.reason


def creds(version: str = "V3", key: str = "ak", nonce: str = "n", token: str | None = None) -> Credentials:
    return Credentials(version, key, "2024-05-01T12:00:00Z", nonce, "sig", "HMAC-SHA1", security_token=token)


def request(query: list[tuple[str, str]], form: list[tuple[str, str]] | None = None) -> RpcRequest:
    body = urlencode(form).encode() if form else b""
    headers = [(b"content-type", b"application/x-www-form-urlencoded")] if form else []
    return build_request(
        method="POST",
        path="/",
        raw_query=urlencode(query).encode(),
        raw_headers=headers,
        body=body,
        client_ip="127.0.0.1",
    )


def test_shown_quotes_names_printably_in_64_characters() -> None:
    """A name is shown escaped to ASCII; up to 64 characters whole, longer ones cut to 61 and '...'."""
    assert v.shown("Name\n\x00") == "Name\\n\\x00"
    assert v.shown("a" * 64) == "a" * 64
    assert v.shown("a" * 65) == "a" * 61 + "..."
    assert v.shown("é" * 20) == ("\\xe9" * 20)[:61] + "..."


def test_access_key_ids_are_well_formed() -> None:
    """1 to 64 of letters, digits and `._-`: anything else is InvalidAccessKeyId.NotFound."""
    v.check_credentials(creds(key="LTAI.ab_c-9" + "x" * 53))
    for key in ("", "a b", "ak\x00", "é", "x" * 65):
        with pytest.raises(AccessKeyNotFound):
            v.check_credentials(creds(key=key))


def test_the_nonce_is_checked_under_its_protocols_name() -> None:
    """A NUL byte in the nonce, or a nonce wider than the nonces column (128): InvalidParams naming
    SignatureNonce for V1 and x-acs-signature-nonce for V3; 128 characters are accepted."""
    v.check_credentials(creds("V1", nonce="n" * 128))
    v.check_credentials(creds("V3", nonce="n" * 128))
    assert refusal(lambda: v.check_credentials(creds("V1", nonce="a\x00"))) == (
        "SignatureNonce",
        "holds a NUL byte",
    )
    assert refusal(lambda: v.check_credentials(creds("V3", nonce="a\x00"))) == (
        "x-acs-signature-nonce",
        "holds a NUL byte",
    )
    assert refusal(lambda: v.check_credentials(creds("V1", nonce="n" * 129))) == (
        "SignatureNonce",
        "is longer than 128 characters",
    )
    assert refusal(lambda: v.check_credentials(creds("V3", nonce="n" * 129))) == (
        "x-acs-signature-nonce",
        "is longer than 128 characters",
    )


def test_security_tokens_are_bounded_ascii_without_nul() -> None:
    """No token, or an ASCII token of up to 4,096 characters, passes; longer, non-ASCII or holding a
    NUL byte is InvalidSecurityToken.Malformed."""
    v.check_credentials(creds(token=None))
    v.check_credentials(creds(token="CAIS" + "t" * 4092))
    for token in ("CAIS" + "t" * 4093, "CAISé.x", "CAIS\x00.x"):
        with pytest.raises(SecurityTokenMalformed):
            v.check_credentials(creds(token=token))


def test_repeats_are_refused_with_their_reason() -> None:
    """A name twice in the query, or in query and form with different values: "is given more than once"."""
    assert refusal(lambda: v.check_request(request([("A", "1"), ("A", "2")]))) == (
        "A",
        "is given more than once",
    )
    assert refusal(lambda: v.check_request(request([("A", "1")], [("A", "2")]))) == (
        "A",
        "is given more than once",
    )
    v.check_request(request([("A", "1")], [("A", "1")]))


def test_at_most_1000_parameter_names() -> None:
    """1,000 names pass; the 1,001st is refused, named, as beyond the limit."""
    names = [f"P{i}" for i in range(1001)]
    v.check_names(names[:1000])
    assert refusal(lambda: v.check_names(names)) == ("P1000", "is beyond 1000 parameters")


def test_malformed_names_and_list_indexes() -> None:
    """A name that is not letters, digits and `._:-` is refused (shown escaped); a numeric segment is a
    canonical list index of 1 to 999999."""
    assert refusal(lambda: v.check_names(["A b"])) == ("A b", "is not a well-formed parameter name")
    assert refusal(lambda: v.check_names(["A\n"])) == ("A\\n", "is not a well-formed parameter name")
    v.check_names(["Instance.1.Id", "Instance.60.Id", "Instance.999999.Id"])
    assert refusal(lambda: v.check_names(["Instance.01.Id"]))[0] == "Instance.01.Id"


def test_value_and_call_sizes_are_inclusive() -> None:
    """One value of 32,768 characters passes, 32,769 is refused; names and values of one call may add
    up to 65,536 characters, and the parameter that takes them beyond is named."""
    v.check_values({"A": "x" * 32_768})
    assert refusal(lambda: v.check_values({"A": "x" * 32_769})) == ("A", "is longer than 32768 characters")
    exact = {"A": "x" * 32_767, "B": "y" * 32_767}  # 1 + 32,767 twice: 65,536
    v.check_values(exact)
    assert refusal(lambda: v.check_values({**exact, "C": ""})) == (
        "C",
        "takes the call's parameters beyond 65536 characters",
    )
    assert refusal(lambda: v.check_values({"A": "x" * 32_767, "BB": "y" * 32_767})) == (
        "BB",
        "takes the call's parameters beyond 65536 characters",
    )


def test_kept_parameters_bounds_are_inclusive() -> None:
    """200 kept parameters pass, 201 are refused naming the 201st in name order; a kept value of 1,024
    characters passes, 1,025 is refused; names and values may add up to 16,384 characters."""
    many = {f"K{i:03d}": "v" for i in range(201)}
    assert v.kept(dict(list(many.items())[:200])) == dict(list(many.items())[:200])
    assert refusal(lambda: v.kept(many)) == ("K200", "beyond 200 parameters")
    assert v.kept({"K": "x" * 1024}) == {"K": "x" * 1024}
    assert refusal(lambda: v.kept({"K": "x" * 1025})) == ("K", "is longer than 1024 characters")
    exact = {f"K{i:02d}": "x" * (1024 - 3) for i in range(16)}  # 16 x 1,024: 16,384
    assert v.kept(exact) == exact
    assert refusal(lambda: v.kept({**exact, "Z": ""})) == (
        "Z",
        "takes the stored parameters beyond 16384 characters",
    )


@given(st.text(alphabet="ab=&+%2F0x\u00e9 ;", max_size=40))
def test_parse_query_is_parse_qsl_with_blank_values(text: str) -> None:
    """protocol.parse_query gives what urllib's parse_qsl(keep_blank_values=True) gives, pair for pair."""
    assert parse_query(text) == parse_qsl(text, keep_blank_values=True)
