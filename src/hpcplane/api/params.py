"""Reading API parameters: every failure is InvalidParams naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Mapping

from hpcplane.domain.errors import InvalidParams

_INTEGER = re.compile(r"^[+-]?[0-9]{1,64}$")
_TRUE = "true"
_FALSE = "false"


class Params:
    """Typed access to the string parameters of one call."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self._raw = raw

    def raw(self) -> Mapping[str, str]:
        return self._raw

    def text(self, name: str, *, required: bool = False, max_length: int = 1024) -> str | None:
        value = self._raw.get(name)
        if value is None or value == "":
            if required:
                raise InvalidParams(name, "is required")
            return None
        if len(value) > max_length:
            raise InvalidParams(name, f"is longer than {max_length} characters")
        return value

    def required_str(self, name: str, *, max_length: int = 1024) -> str:
        value = self.text(name, required=True, max_length=max_length)
        assert value is not None
        return value

    def int(self, name: str, *, default: int, minimum: int, maximum: int) -> int:
        value = self._raw.get(name)
        if value is None or value == "":
            return default
        text = value.strip()
        if not _INTEGER.match(text):
            raise InvalidParams(name, "is not an integer")
        number = int(text)
        if not minimum <= number <= maximum:
            raise InvalidParams(name, f"is outside {minimum} to {maximum}")
        return number

    def bool(self, name: str, *, default: bool) -> bool:
        """True/true/False/false (the SDKs send Python's str(bool)); any case is accepted."""
        value = self._raw.get(name)
        if value is None or value == "":
            return default
        lowered = value.strip().lower()
        if lowered == _TRUE:
            return True
        if lowered == _FALSE:
            return False
        raise InvalidParams(name, "is not a boolean")
