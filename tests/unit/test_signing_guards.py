"""api/signing.py at the functions that own each check: the Authorization parser's guards, the '+'
encoding of V1, and the V3 canonical request's path and absent headers."""

from __future__ import annotations

import pytest

from hpcplane.api.signing import (
    Authorization,
    enc,
    enc_plus,
    parse_authorization,
    v1_string_to_sign,
    v3_canonical_request,
)

GOOD = "ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host;x-acs-date,Signature=abc"


def test_well_formed_header_parses_into_its_parts() -> None:
    """Algorithm, AccessKeyId, lower-cased SignedHeaders (empty names dropped) and the signature."""
    parsed = parse_authorization(
        " ACS3-HMAC-SM3 Credential=AK1,SignedHeaders=Host;;X-Acs-Date; ,Signature=abc "
    )
    assert parsed == Authorization("ACS3-HMAC-SM3", "AK1", ("host", "x-acs-date"), "abc")


def test_spaces_after_commas_and_around_names_are_allowed() -> None:
    """The algorithm is what comes before the first space; fields may be spaced out."""
    parsed = parse_authorization("ACS3-HMAC-SHA256 Credential = AK1, SignedHeaders=host , Signature= abc")
    assert parsed == Authorization("ACS3-HMAC-SHA256", "AK1", ("host",), "abc")


def test_a_value_may_contain_an_equals_sign() -> None:
    """A field splits at its first '=': the rest, '=' included, is the value."""
    parsed = parse_authorization("ACS3-HMAC-SHA256 Credential=AK=1,SignedHeaders=host,Signature=ab==")
    assert parsed == Authorization("ACS3-HMAC-SHA256", "AK=1", ("host",), "ab==")


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("ACS3-HMAC-SHA256 SignedHeaders=host,Signature=abc", id="no-credential"),
        pytest.param("ACS3-HMAC-SHA256 Credential=AK1,Signature=abc", id="no-signed-headers"),
        pytest.param("ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host", id="no-signature"),
        pytest.param("ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature=abc", id="empty-credential"),
        pytest.param("ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=,Signature=abc", id="empty-signed"),
        pytest.param("ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host,Signature=", id="empty-signature"),
        pytest.param(
            "ACS3-HMAC-SHA256 Credential=AK1,SignedHeaders=host,Signature", id="field-without-equals"
        ),
        pytest.param("ACS3-HMAC-SHA256 Credential=AK1,,SignedHeaders=host,Signature=abc", id="empty-field"),
        pytest.param("Credential=AK1,SignedHeaders=host,Signature=abc", id="no-algorithm"),
        pytest.param("ACS3-HMAC-SHA256", id="algorithm-only"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_header_is_refused_by_the_parser(header: str) -> None:
    """Each malformed header is None at the parser itself, not left for a later check to refuse."""
    assert parse_authorization(header) is None


def test_plus_encodes_spaces_as_plus_in_the_v1_string_to_sign() -> None:
    """`plus` (the STS signer's encoding) turns spaces into '+' in the query and in the outer encoding."""
    params = {"Name": "a b", "Signature": "ignored"}
    assert v1_string_to_sign("get", params) == "GET&%2F&Name%3Da%2520b"
    assert v1_string_to_sign("get", params, plus=True) == "GET&%2F&Name%3Da%2Bb"


def test_enc_and_enc_plus_leave_only_unreserved_characters() -> None:
    """RFC 3986: A-Z a-z 0-9 - _ . ~ stay; '*' and '/' are encoded; enc_plus writes a space as '+'."""
    assert enc("a b*~/") == "a%20b%2A~%2F"
    assert enc_plus("a b*~/-_.") == "a+b%2A~%2F-_."


def test_v3_canonical_request_path_and_absent_signed_header() -> None:
    """The path is encoded but keeps its slashes (an empty one is '/'); a signed header the request lacks
    is signed as empty."""
    lines = v3_canonical_request(
        "post", "/a b/c", [("k", "v")], {"host": " h "}, ["host", "x-absent"], "HASH"
    )
    assert lines == "POST\n/a%20b/c\nk=v\nhost:h\nx-absent:\n\nhost;x-absent\nHASH"
    assert v3_canonical_request("GET", "", [], {}, [], "H").split("\n")[1] == "/"
