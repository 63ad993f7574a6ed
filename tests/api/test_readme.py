"""Every example of README.md runs as printed against a fresh `hpcplane serve` (docs/readme-examples.md):
each ```sh / ```python block, in order, unless an HTML comment `<!-- not run: reason -->` precedes it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.clirun import demo
from tests.support.live import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"
RUNNABLE = {"sh": "sh", "bash": "sh", "python": "python"}
_FENCE = re.compile(r"^```(\S*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(.+?)\s*-->\s*$")


@dataclass(frozen=True)
class Block:
    line: int
    language: str
    code: str
    not_run: str | None  # the reason given, when the block is marked not to be run
    section: str


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, with the `not run` mark and section of each."""
    found: list[Block] = []
    lines = text.splitlines()
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = _FENCE.match(line)
        if fence is None:
            index += 1
            continue
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines) and not lines[index].startswith("```"):
            body.append(lines[index])
            index += 1
        previous = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        mark = _NOT_RUN.match(previous.strip())
        found.append(
            Block(start + 1, fence.group(1), "\n".join(body) + "\n", mark.group(1) if mark else None, section)
        )
        index += 1
    return found


def test_the_block_reader() -> None:
    """The reader finds languages, marks and sections; a block without the mark is to be run."""
    text = (
        "## A\n```sh\necho 1\n```\n\n<!-- not run: starts a server -->\n```sh\nserve\n```\n"
        "## B\n```json\n{}\n```\n"
    )
    assert [(b.language, b.code, b.not_run, b.section) for b in blocks(text)] == [
        ("sh", "echo 1\n", None, "A"),
        ("sh", "serve\n", "starts a server", "A"),
        ("json", "{}\n", None, "B"),
    ]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A fresh embedded server, as after `make serve` (steps instant, so the examples are quick)."""
    server = LiveServer(tmp_path_factory.mktemp("readme") / "home", sim_step_seconds="0").start()
    yield server
    server.stop()


@pytest.mark.timeout(600)
def test_every_example_runs_as_printed(live: LiveServer, tmp_path: Path) -> None:
    """Each runnable block exits 0 with the demo's variables exported as the banner says; the set
    includes the asynchronous example, which waits for CreateCluster before AddNodes."""
    key, secret, _ = demo(live)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HPCPLANE_", "ALIBABA_CLOUD_"))}
    env.update(
        HOME=str(tmp_path),
        PATH=str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", ""),
        HPCPLANE_HOME=str(live.home),
        HPCPLANE_ENDPOINT=live.endpoint,
        ALIBABA_CLOUD_ACCESS_KEY_ID=key,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
    )
    runnable = [b for b in blocks(README.read_text()) if b.language in RUNNABLE and b.not_run is None]
    assert any("add_nodes" in b.code and "wait(" in b.code for b in runnable)
    assert any("hpcplane call" in b.code for b in runnable)
    for block in runnable:
        command = (
            ["bash", "-e", "-c", block.code]
            if RUNNABLE[block.language] == "sh"
            else [sys.executable, "-c", block.code]
        )
        ran = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        assert ran.returncode == 0, (
            f"README.md line {block.line} ({block.section}):\n{ran.stdout}\n{ran.stderr}"
        )
    marked = [b for b in blocks(README.read_text()) if b.not_run is not None]
    assert all(b.not_run for b in marked)
