"""Probing a reader: the longest value it accepts for one parameter."""

from __future__ import annotations

from collections.abc import Mapping

from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams

PROBE_MAX = 40_000


def longest_accepted(read: object, base: Mapping[str, str], name: str, fill: str = "a") -> int:
    """The greatest n for which the reader accepts `name` = fill * n (0 when it accepts none)."""
    assert callable(read)

    def accepts(n: int) -> bool:
        try:
            read(Params({**base, name: fill * n}))
        except InvalidParams as error:
            if error.fields["name"] != name:
                raise
            return False
        return True

    low, high = 0, PROBE_MAX
    if not accepts(1):
        return 0
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if accepts(middle) else (low, middle - 1)
    return low
