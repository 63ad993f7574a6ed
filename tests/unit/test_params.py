"""Parameter reading: integer and boolean boundaries, and InvalidParams naming the parameter."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hpcplane.api.errors import status_of
from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams

LOW, HIGH, DEFAULT = 1, 50, 10


def page_size(value: str) -> int:
    """PageSize read as ListTasks reads it: 1 to 50, default 10."""
    return Params({"PageSize": value}).int("PageSize", default=DEFAULT, minimum=LOW, maximum=HIGH)


def refused(value: str, name: str = "PageSize") -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        page_size(value)
    assert caught.value.message == f"The specified parameter {name} is invalid."
    return caught.value


@pytest.mark.parametrize(("value", "expected"), [("1", 1), ("50", 50), ("20", 20), ("+7", 7), ("007", 7)])
def test_int_accepts_range_inclusive(value: str, expected: int) -> None:
    """Integers from minimum to maximum inclusive are accepted, with a '+' sign or leading zeros."""
    assert page_size(value) == expected


@pytest.mark.parametrize("value", ["0", "51", "-1", "999999999999999999999"])
def test_int_refuses_out_of_range(value: str) -> None:
    """minimum-1, maximum+1, negatives and huge numbers are InvalidParams."""
    assert "outside" in refused(value).reason


def test_int_missing_or_empty_is_default() -> None:
    """An absent or empty value gives the default (as the SDKs omit None, '' is treated as absent)."""
    assert Params({}).int("PageSize", default=DEFAULT, minimum=LOW, maximum=HIGH) == DEFAULT
    assert page_size("") == DEFAULT


def test_int_strips_surrounding_whitespace() -> None:
    """' 5 ' reads as 5: whitespace around the digits is ignored."""
    assert page_size(" 5 ") == 5


@pytest.mark.parametrize(
    "value",
    ["1.5", "1e3", "0x10", "1_0", "five", "5a", "+", "-", " ", "1 0", "５", "٣", "²", "+-5", "--5", "++5"],
)
def test_int_refuses_non_integers(value: str) -> None:
    """Decimals, exponents, hex, underscores, words, stray signs and non-ASCII digits are InvalidParams."""
    refused(value)


def test_int_refuses_very_long_digit_strings() -> None:
    """A digit string beyond Python's int conversion limit is InvalidParams, not a ValueError."""
    refused("1" * 5000)


def test_int_minus_zero_is_zero() -> None:
    """'-0' is the integer 0: accepted where 0 is in range, refused where it is not."""
    assert Params({"N": "-0"}).int("N", default=5, minimum=0, maximum=9) == 0
    refused("-0")


def test_invalid_params_names_the_parameter() -> None:
    """InvalidParams has code InvalidParams, HTTP 400 and 'The specified parameter X is invalid.'."""
    with pytest.raises(InvalidParams) as caught:
        Params({"PageNumber": "x"}).int("PageNumber", default=1, minimum=1, maximum=999)
    error = caught.value
    assert error.code == "InvalidParams"
    assert error.message == "The specified parameter PageNumber is invalid."
    assert str(error) == error.message
    assert status_of(error) == 400


@pytest.mark.parametrize(
    ("value", "expected"),
    [("True", True), ("true", True), ("TRUE", True), ("False", False), ("false", False), ("FALSE", False)],
)
def test_bool_accepts_true_false_in_any_case(value: str, expected: bool) -> None:
    """True/true/TRUE and False/false/FALSE are booleans (the SDKs send Python's str(bool))."""
    assert Params({"Archived": value}).bool("Archived", default=not expected) is expected


@pytest.mark.parametrize("value", ["yes", "no", "1", "0", "on", "off", "t", "f", "truee", "True1"])
def test_bool_refuses_other_words(value: str) -> None:
    """yes/no, 1/0, on/off and other spellings are InvalidParams naming the parameter."""
    with pytest.raises(InvalidParams, match=r"^The specified parameter Archived is invalid\.$"):
        Params({"Archived": value}).bool("Archived", default=False)


@pytest.mark.parametrize("default", [True, False])
def test_bool_missing_or_empty_is_default(default: bool) -> None:
    """An absent or empty boolean gives the default."""
    assert Params({}).bool("Archived", default=default) is default
    assert Params({"Archived": ""}).bool("Archived", default=default) is default


def test_text_required_and_length() -> None:
    """A required text that is absent or empty, or one longer than max_length, is InvalidParams."""
    assert Params({"ClusterId": "c"}).required_str("ClusterId") == "c"
    for raw in ({}, {"ClusterId": ""}, {"ClusterId": "x" * 65}):
        with pytest.raises(InvalidParams, match="ClusterId"):
            Params(raw).required_str("ClusterId", max_length=64)
    assert Params({"TaskId": ""}).text("TaskId") is None


# Any text, plus text made mostly of the characters an integer parser has to think about.
_INTISH = st.text() | st.from_regex(r" ?[+-]{0,2}[0-9５_]{0,4}[.e]?[0-9]{0,2} ?", fullmatch=True)


@given(_INTISH)
@example("+-5")
@example("1" * 5000)
@example("５")
def test_int_never_fails_otherwise(value: str) -> None:
    """For any text, Params.int returns an int within range (or the default) or raises InvalidParams."""
    outcome: int | InvalidParams
    try:
        outcome = page_size(value)
    except InvalidParams as error:  # anything else propagates and fails the test
        outcome = error
    if isinstance(outcome, InvalidParams):
        assert outcome.fields == {"name": "PageSize"}
    else:
        assert type(outcome) is int
        assert LOW <= outcome <= HIGH


@given(st.integers())
def test_int_round_trips_in_range(number: int) -> None:
    """Every integer written in decimal is read back exactly when in range, and refused otherwise."""
    if LOW <= number <= HIGH:
        assert page_size(str(number)) == number
    else:
        refused(str(number))


def reason_of(call: Callable[[], object], name: str) -> str:
    """The reason of the InvalidParams `call` raises, after checking it names `name`."""
    with pytest.raises(InvalidParams) as caught:
        call()
    assert caught.value.fields == {"name": name}
    return caught.value.reason


def test_text_default_max_length_is_1024() -> None:
    """Without max_length, text and required_str take 1,024 characters and refuse 1,025, saying so."""
    at, over = Params({"Name": "x" * 1024}), Params({"Name": "x" * 1025})
    assert at.text("Name") == "x" * 1024
    assert at.required_str("Name") == "x" * 1024
    assert reason_of(lambda: over.text("Name"), "Name") == "is longer than 1024 characters"
    assert reason_of(lambda: over.required_str("Name"), "Name") == "is longer than 1024 characters"


def test_text_max_length_is_inclusive() -> None:
    """max_length characters are accepted, one more is refused with the limit in the reason."""
    assert Params({"Name": "x" * 8}).text("Name", max_length=8) == "x" * 8
    assert reason_of(lambda: Params({"Name": "x" * 9}).text("Name", max_length=8), "Name") == (
        "is longer than 8 characters"
    )


def test_text_reasons_name_what_is_wrong() -> None:
    """The reason (logged by the gateway) says a required text is missing, or that it holds a NUL byte,
    and the error names the parameter read."""
    assert reason_of(lambda: Params({}).required_str("ClusterId"), "ClusterId") == "is required"
    assert reason_of(lambda: Params({"ClusterId": ""}).text("ClusterId", required=True), "ClusterId") == (
        "is required"
    )
    assert reason_of(lambda: Params({"Name": "a\x00b"}).text("Name"), "Name") == "holds a NUL byte"


def test_bool_reason() -> None:
    """A word that is not a boolean: the reason says so."""
    assert reason_of(lambda: Params({"Archived": "yes"}).bool("Archived", default=False), "Archived") == (
        "is not a boolean"
    )


def test_json_absent_empty_or_required() -> None:
    """An absent or empty JSON parameter is None unless required ("is required")."""
    assert Params({}).json("Filter") is None
    assert Params({"Filter": ""}).json("Filter") is None
    assert reason_of(lambda: Params({}).json("Filter", required=True), "Filter") == "is required"
    assert Params({"Filter": '{"a": [1, "b"]}'}).json("Filter", required=True) == {"a": [1, "b"]}


def test_json_bounds_default_and_given() -> None:
    """JSON is bounded by max_length (default 16,384 characters) and max_depth (default 32 levels), and
    the bounds given are the ones applied, also above the defaults; errors name the parameter."""
    padded = '"' + "x" * 16_382 + '"'  # 16,384 characters
    assert Params({"Filter": padded}).json("Filter") == "x" * 16_382
    longer = Params({"Filter": '"' + "x" * 16_383 + '"'})
    assert reason_of(lambda: longer.json("Filter"), "Filter") == "is longer than 16384 characters"
    assert longer.json("Filter", max_length=20_000) == "x" * 16_383
    assert reason_of(lambda: Params({"Filter": "[1, 2]"}).json("Filter", max_length=5), "Filter") == (
        "is longer than 5 characters"
    )
    deep = "[" * 32 + "]" * 32
    assert Params({"Filter": deep}).json("Filter") is not None
    assert reason_of(lambda: Params({"Filter": "[" + deep + "]"}).json("Filter"), "Filter") == (
        "nests deeper than 32 levels"
    )
    assert reason_of(lambda: Params({"Filter": "[[[]]]"}).json("Filter", max_depth=2), "Filter") == (
        "nests deeper than 2 levels"
    )
    assert reason_of(lambda: Params({"Filter": "{"}).json("Filter"), "Filter") == "is not valid JSON"
