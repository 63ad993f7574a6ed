"""The value rules (api/values.py) at the module itself: each refusal's parameter and reason (the reason
is what the gateway logs), the bounds inclusive, and the bracket counter that runs before the parser."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from hpcplane.api import values
from hpcplane.domain.errors import InvalidParams


def reason(call: Callable[[], object], name: str = "P") -> str:
    """The reason of the InvalidParams `call` raises, after checking it names parameter `name`."""
    with pytest.raises(InvalidParams) as caught:
        call()
    assert caught.value.fields == {"name": name}
    return caught.value.reason


def test_text_refusals_say_why() -> None:
    """A NUL byte and a lone surrogate are refused with their own reasons; other text is unchanged."""
    assert reason(lambda: values.check_text("P", "a\x00b")) == "holds a NUL byte"
    assert reason(lambda: values.check_text("P", "a\ud800b")) == "is not valid Unicode"
    assert values.check_text("P", "日本 ok") == "日本 ok"


def test_integer_refusal_says_why() -> None:
    """A non-integer: the reason gives the rule, 64 ASCII digits at most (64 accepted, 65 refused)."""
    assert reason(lambda: values.ascii_int("P", "1.5")) == "is not an integer of at most 64 ASCII digits"
    assert values.ascii_int("P", "9" * 64) == int("9" * 64)
    assert reason(lambda: values.ascii_int("P", "9" * 65)) == "is not an integer of at most 64 ASCII digits"


def test_list_index_bounds_and_reasons() -> None:
    """N from 1 to maximum inclusive; a leading zero or a non-digit, and N past maximum, say so."""
    assert values.list_index("P", "1", 5) == 1
    assert values.list_index("P", "5", 5) == 5
    assert reason(lambda: values.list_index("P", "6", 5)) == "N must be 1 to 5"
    for text in ("05", "0", "x", "١"):
        assert reason(partial(values.list_index, "P", text, 5)) == (
            "N must be written in ASCII digits without a leading zero"
        )


def test_json_length_is_inclusive_and_named() -> None:
    """max_chars characters are read, one more is refused naming the parameter and the limit."""
    assert values.read_json("P", "[1, 2]", max_chars=6) == [1, 2]
    assert reason(lambda: values.read_json("P", "[1, 2] ", max_chars=6)) == "is longer than 6 characters"
    assert reason(lambda: values.read_json("P", "{")) == "is not valid JSON"


@pytest.mark.parametrize(
    "text",
    [
        '["[[[[", "]]]]"]',  # brackets inside strings are text
        '["\\"[[[["]',  # an escaped quote does not end the string
        "[[], [], [], []]",  # closing brackets bring the depth back down
        '{"a": {}, "b": {}}',
        '[1, "x", {"k": "v"}]',
    ],
)
def test_depth_counts_only_brackets_outside_strings(text: str) -> None:
    """With max_depth 2 these nest at most two levels (whatever their strings hold) and are read."""
    assert values.read_json("P", text, max_depth=2) is not None


@pytest.mark.parametrize(
    "text",
    [
        '["\\\\", [[]]]',  # an escaped backslash: the quote after it ends the string
        "[[[]]]",
        '{"a": {"b": {}}}',
        "[[[],[[]]]]",  # back down to 3, then deeper again
        "[[],[[]]]",  # back down by one only, then deeper again
        "[1, [2, [3]]]",
    ],
)
def test_depth_past_the_limit_is_refused(text: str) -> None:
    """Each of these nests three levels or more at some point: refused before parsing, max_depth 2."""
    assert reason(lambda: values.read_json("P", text, max_depth=2)) == "nests deeper than 2 levels"


def test_depth_is_counted_before_the_parser_runs() -> None:
    """Text that is not JSON is refused as such when its brackets stay within the depth (a closed
    bracket really closes: `[][[]]` reaches depth 2 at most), and as too deep when they do not."""
    assert reason(lambda: values.read_json("P", "[][[]]", max_depth=2)) == "is not valid JSON"
    assert reason(lambda: values.read_json("P", "XXXX", max_depth=2)) == "is not valid JSON"
    assert reason(lambda: values.read_json("P", '"\\\\" [[[', max_depth=2)) == "nests deeper than 2 levels"
    assert reason(lambda: values.read_json("P", "[[[", max_depth=2)) == "nests deeper than 2 levels"
    assert reason(lambda: values.read_json("P", "[[X[", max_depth=2)) == "nests deeper than 2 levels"


def test_json_integers_fit_in_64_bits() -> None:
    """-2**63 and 2**63-1 are read; integers past 2**63-1 are refused, naming the parameter (orjson
    reads an integer below -2**63 as a float, so the lower bound never meets one)."""
    assert values.read_json("P", f"[{-(2**63)}, {2**63 - 1}]") == [-(2**63), 2**63 - 1]
    for number in (2**63, 2**64 - 1):
        assert reason(partial(values.read_json, "P", f"[{number}]")) == (
            "holds an integer out of the 64-bit range"
        )


def test_every_string_and_key_of_the_tree_is_checked() -> None:
    """The walk goes on past booleans, floats and nulls: a NUL byte after them, in a value or a key,
    is still found."""
    for text in ('["a\\u0000", 1.5]', '["a\\u0000", true]', '["a\\u0000", null]', '{"k\\u0000": 1}'):
        assert reason(partial(values.read_json, "P", text)) == "holds a NUL byte"
    assert values.read_json("P", '[1.5, true, null, {"k": [1]}]') == [1.5, True, None, {"k": [1]}]
