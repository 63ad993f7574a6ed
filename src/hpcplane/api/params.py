"""Reading API parameters: every failure is InvalidParams naming the parameter."""

from __future__ import annotations

import builtins
from collections.abc import Mapping

from hpcplane.api import values
from hpcplane.domain.errors import InvalidParams

_TRUE = "true"
_FALSE = "false"


class Params:
    """Typed access to the string parameters of one call.

    Every reader obeys the rules of api/values.py: text holds no NUL byte or lone surrogate, integers
    are ASCII digits of bounded length, JSON is bounded in size and depth (see also api/validation.py,
    which checks every parameter of a request before any reader runs)."""

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
        return values.check_text(name, value)

    def required_str(self, name: str, *, max_length: int = 1024) -> str:
        value = self.text(name, required=True, max_length=max_length)
        assert value is not None
        return value

    def int(self, name: str, *, default: int, minimum: int, maximum: int) -> int:
        value = self._raw.get(name)
        if value is None or value == "":
            return default
        number = values.ascii_int(name, value)
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

    def json(
        self,
        name: str,
        *,
        required: builtins.bool = False,
        max_length: builtins.int = values.JSON_MAX_CHARS,
        max_depth: builtins.int = values.JSON_MAX_DEPTH,
    ) -> object | None:
        """A JSON parameter (the SDK's "shrink" parameters, ListNodes' Filter), parsed within bounds;
        None when absent or empty."""
        text = self.text(name, required=required, max_length=max_length)
        if text is None:
            return None
        return values.read_json(name, text, max_depth=max_depth, max_chars=max_length)
