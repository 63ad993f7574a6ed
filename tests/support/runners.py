"""A Runner (providers/local/commands.py) that runs nothing, for the local provider's tests without root."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hpcplane.providers.local.commands import Completed


class FakeRunner:
    """Records every command and answers it with `answer`; here no command may run: each one fails the
    test (subclasses answer the commands they expect)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, ...]] = []

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 60.0,
        daemon: bool = False,
    ) -> Completed:
        self.commands.append(tuple(argv))
        return self.answer(tuple(argv))

    def answer(self, argv: tuple[str, ...]) -> Completed:
        raise AssertionError(f"no command should run here: {list(argv)}")
