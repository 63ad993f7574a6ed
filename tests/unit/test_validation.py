"""The validation layer: integers, list indexes, JSON, NUL bytes, names and repeats, kept parameters."""

from __future__ import annotations

import contextlib
from urllib.parse import urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcplane.api import values
from hpcplane.api.actions.clusters import read_list_nodes
from hpcplane.api.actions.sts import read_assume_role
from hpcplane.api.listparams import indexed
from hpcplane.api.params import Params
from hpcplane.api.protocol import build_request
from hpcplane.api.validation import KEPT_VALUE_MAX_CHARS, check_request, kept
from hpcplane.domain.errors import HpcplaneError, InvalidDurationSeconds, InvalidParams


def refused(name: str) -> pytest.RaisesExc[InvalidParams]:
    """Expect InvalidParams naming `name` exactly."""
    return pytest.raises(InvalidParams, match=rf"^The specified parameter {name} is invalid\.$")


def request(query: bytes, body: bytes = b"") -> object:
    headers = [(b"content-type", b"application/x-www-form-urlencoded")] if body else []
    return build_request(
        method="POST", path="/", raw_query=query, raw_headers=headers, body=body, client_ip="127.0.0.1"
    )


# --- integers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["²", "٩٠٠", "９００", "1" * 5000, "9" * 65, "1\x00"])
def test_int_takes_ascii_digits_of_bounded_length_only(value: str) -> None:
    """Superscript, Arabic-Indic and full-width digits, and 5,000-digit strings, are InvalidParams."""
    with refused("PageSize"):
        Params({"PageSize": value}).int("PageSize", default=1, minimum=1, maximum=50)


@pytest.mark.parametrize("value", ["²", "٩٠٠", "1" * 5000, "9e2", "9 0"])
def test_assume_role_duration_is_ascii_digits(value: str) -> None:
    """AssumeRole DurationSeconds=² or ٩٠٠ or 5,000 digits is InvalidParameter.DurationSeconds, not 500."""
    raw = {"RoleArn": "acs:ram::1:role/r", "RoleSessionName": "s1", "DurationSeconds": value}
    with pytest.raises(InvalidDurationSeconds):
        read_assume_role(Params(raw))


def test_assume_role_duration_in_ascii_is_read() -> None:
    """DurationSeconds=900 is read as 900."""
    raw = {"RoleArn": "acs:ram::1:role/r", "RoleSessionName": "s1", "DurationSeconds": "900"}
    assert read_assume_role(Params(raw)).duration == 900


# --- list indexes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["01", "001", "١", "0", "1" * 5000, "", " 1", "1 ", "+1", "1.5"])
def test_list_index_must_be_canonical(index: str) -> None:
    """Instance.01.Id, an Arabic-Indic index, Instance.0.Id and Instance.<5000 ones>.Id are InvalidParams."""
    name = f"Instance.{index}.Id"
    with pytest.raises(InvalidParams) as caught:
        indexed({"Instance.1.Id": "i-a", name: "i-b"}, "Instance", "Id", maximum=100, required=True)
    assert caught.value.fields["name"] == name


def test_list_aliases_cannot_exceed_the_limit() -> None:
    """150 spellings of Instance 1 (1, 01, 001 ...) are refused, not read as 150 instances."""
    raw = {f"Instance.{'0' * n}1.Id": f"i-{n}" for n in range(150)}
    with pytest.raises(InvalidParams):
        indexed(raw, "Instance", "Id", maximum=100, required=True)


def test_list_reads_canonical_indexes_in_order() -> None:
    """Instance.2.Id and Instance.10.Id are read in N order; N above the maximum is InvalidParams."""
    raw = {"Instance.10.Id": "b", "Instance.2.Id": "a", "Other": "x"}
    assert indexed(raw, "Instance", "Id", maximum=100, required=True) == [
        ("Instance.2.Id", "a"),
        ("Instance.10.Id", "b"),
    ]
    with refused("Instance.101.Id"):
        indexed({"Instance.101.Id": "c"}, "Instance", "Id", maximum=100, required=True)


@given(st.text(max_size=8))
def test_any_index_is_refused_or_canonical(index: str) -> None:
    """For any text as N, indexed reads it only when it is the canonical spelling of 1..100."""
    try:
        found = indexed({f"Instance.{index}.Id": "i-x"}, "Instance", "Id", maximum=100, required=False)
    except InvalidParams:
        return
    if found:
        assert index.isascii()
        assert str(int(index)) == index
        assert 1 <= int(index) <= 100


# --- JSON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a":' + "[" * 1015,
        "[" * 33 + "]" * 33,
        '{"status": "\\u0000"}',
        '{"status": "\\ud800"}',
        '{"a": NaN}',
        "{" + '"k": 1,' * 3000 + "}",
        "{not json",
    ],
)
def test_json_parameters_are_bounded(text: str) -> None:
    """Deep, large, NUL- or surrogate-holding, or malformed JSON is InvalidParams, never RecursionError."""
    with refused("Filter"):
        Params({"Filter": text}).json("Filter")


def test_json_within_bounds_is_parsed() -> None:
    """JSON nested up to the bound, with 64-bit integers, is returned parsed; absent is None."""
    nested = "[" * values.JSON_MAX_DEPTH + "]" * values.JSON_MAX_DEPTH
    assert Params({"F": nested}).json("F") is not None
    assert Params({"F": '{"n": -9223372036854775808, "s": "é[{"}'}).json("F") == {
        "n": -(2**63),
        "s": "é[{",
    }
    assert Params({}).json("F") is None


def test_list_nodes_deep_filter_is_invalid_params() -> None:
    """ListNodes Filter='{"a":' + '['*1015 is InvalidParams Filter (it was a RecursionError, so a 500)."""
    with refused("Filter"):
        read_list_nodes(Params({"ClusterId": "c", "Filter": '{"a":' + "[" * 1015}))


# --- text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a\x00b", "\x00", "a\ud800b"])
def test_text_refuses_nul_and_lone_surrogates(value: str) -> None:
    """A NUL byte or a lone surrogate in any text parameter is InvalidParams (PostgreSQL cannot store it)."""
    with refused("ClusterId"):
        Params({"ClusterId": value}).text("ClusterId")


# --- request-level checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        (b"Instance.1.Id%0A=i-x", "Instance.1.Id\\n"),
        (b"Instance.01.Id=i-x", "Instance.01.Id"),
        (b"Instance.%D9%A1.Id=i-x", "Instance.\\u0661.Id"),
        (b"Instance.1.Id=a&Instance.1.Id=b", "Instance.1.Id"),
        (b"ClusterId=a%00b", "ClusterId"),
        (b"Name=" + b"x" * 40_000, "Name"),
        (b"%00=x", "\\x00"),
    ],
)
def test_request_checks_names_repeats_and_text(query: bytes, name: str) -> None:
    """Names with control characters or non-canonical indexes, repeated names, NUL values and huge values
    are InvalidParams naming the parameter, before any reader runs."""
    with pytest.raises(InvalidParams) as caught:
        check_request(request(query))  # type: ignore[arg-type]
    assert caught.value.fields["name"] == name


def test_request_query_and_form_may_agree_but_not_differ() -> None:
    """A parameter in both the query and the form body is accepted when equal, refused when different."""
    check_request(request(b"ClusterId=c", b"ClusterId=c"))  # type: ignore[arg-type]
    with refused("ClusterId"):
        check_request(request(b"ClusterId=c", b"ClusterId=d"))  # type: ignore[arg-type]


def test_request_of_sdk_shape_passes() -> None:
    """A V1 request as the SDKs send it (envelope, lists, spaces, non-ASCII values) passes the checks."""
    check_request(
        request(  # type: ignore[arg-type]
            b"Action=StopNodes&Version=2018-04-12&AccessKeyId=LTAI1&SignatureNonce=ab&Timestamp=2026-01-01T00"
            b"%3A00%3A00Z&Signature=x%2By%3D&Instance.1.Id=i-1&Instance.10.Id=i-2&Name=%E4%B8%AD+x&SignatureType="
        )
    )


# --- kept parameters -------------------------------------------------------------------------------


def test_kept_parameters_are_capped() -> None:
    """A parameter an action stores without reading it is bounded in length, count and total size."""
    assert kept({"Plugin": "x"}) == {"Plugin": "x"}
    with refused("Junk"):
        kept({"Junk": "x" * (KEPT_VALUE_MAX_CHARS + 1)})
    with pytest.raises(InvalidParams):
        kept({f"P{i}": "x" for i in range(500)})
    with pytest.raises(InvalidParams):
        kept({f"P{i}": "x" * 1000 for i in range(50)})


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=6))
def test_request_checks_never_fail_otherwise(params: dict[str, str]) -> None:
    """For any parameters, the request checks pass or raise a catalogued error, never anything else."""
    with contextlib.suppress(HpcplaneError):
        check_request(request(urlencode(params).encode()))  # type: ignore[arg-type]
