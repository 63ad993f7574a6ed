"""`hpcplane serve` on an empty home: the demo banner, its snippet run exactly as printed, and restarts."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.live import free_port

START_TIMEOUT = 60.0
PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user with only HPCPLANE_HOME set (no proxies, no other HPCPLANE_*)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_") and k not in PROXY_VARIABLES}
    return {**env, "HPCPLANE_HOME": str(home), **extra}


@dataclass
class Served:
    """A `hpcplane serve` process, what it printed up to the end of the demo banner, and its snippet."""

    process: subprocess.Popen[str]
    printed: str
    snippet: str
    port: int

    def field(self, name: str) -> str:
        """A value of the banner, such as `AccessKeyId:     LTAI...`."""
        found = re.search(rf"^\s*{name}:\s+(\S+)\s*$", self.printed, re.MULTILINE)
        assert found, self.printed
        return found.group(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def serve(home: Path) -> Served:
    """Start `hpcplane serve`, stdout captured; return once the snippet is printed and /healthz answers."""
    port = free_port()
    stderr = (home.parent / f"{home.name}-serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "hpcplane", "serve"],
        env=clean_env(home, HPCPLANE_PORT=str(port)),
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    stderr.close()
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    printed: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT
    try:
        snippet = _read_snippet(lines, printed, deadline)
        _wait_healthy(port, deadline)
    except BaseException:
        Served(process, "".join(printed), "", port).stop()
        raise
    return Served(process, "".join(printed), snippet, port)


def _read_snippet(lines: queue.Queue[str | None], printed: list[str], deadline: float) -> str:
    """Collect stdout up to the line `PY` that ends the block opened by a line ending in <<'PY'."""
    snippet: list[str] | None = None
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no demo snippet printed within {START_TIMEOUT}s:\n{''.join(printed)}")
        if line is None:
            pytest.fail(f"serve exited before printing the demo snippet:\n{''.join(printed)}")
        printed.append(line)
        text = line.rstrip("\n")
        if snippet is None and text.endswith("<<'PY'"):
            snippet = [line]
        elif snippet is not None:
            snippet.append(line)
            if text == "PY":
                return "".join(snippet)


def _wait_healthy(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"serve did not answer /healthz on port {port}")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HPCPLANE_HOME that does not exist yet."""
    return tmp_path_factory.mktemp("demo") / "home"


@pytest.fixture(scope="module")
def first_start(home: Path) -> Iterator[Served]:
    """The first `hpcplane serve` on the empty home."""
    served = serve(home)
    yield served
    served.stop()


def test_banner_shows_the_demo_key_and_cluster(first_start: Served) -> None:
    """The banner names the demo account, its AccessKey pair and cluster, and the address served."""
    assert f"on http://127.0.0.1:{first_start.port}" in first_start.printed
    assert re.fullmatch(r"LTAI[A-Za-z0-9]{20}", first_start.field("AccessKeyId"))
    assert re.fullmatch(r"[A-Za-z0-9]{30}", first_start.field("AccessKeySecret"))
    assert re.search(r"Demo account demo \(AccountId \d{16}\), cluster ehpc-hz-\w+", first_start.printed)
    assert first_start.field("AccessKeyId") in first_start.snippet
    assert first_start.field("AccessKeySecret") in first_start.snippet


def test_printed_snippet_runs_unchanged(first_start: Served, tmp_path: Path) -> None:
    """The snippet, run with bash exactly as printed, calls ListTasks through the SDK and prints it."""
    script = tmp_path / "snippet.sh"
    script.write_text(first_start.snippet)
    result = subprocess.run(
        ["bash", str(script)],
        env=clean_env(tmp_path / "elsewhere"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "TotalCount" in result.stdout
    assert "RequestId" in result.stdout
    assert "'Tasks':" in result.stdout


def test_restart_keeps_the_same_demo(first_start: Served, home: Path) -> None:
    """A second start of the same home prints the same demo key and cluster and creates no second account."""
    first_start.stop()
    second = serve(home)
    try:
        for name in ("AccessKeyId", "AccessKeySecret"):
            assert second.field(name) == first_start.field(name)
        demo_line = re.compile(r"^Demo account .*$", re.MULTILINE)
        assert demo_line.findall(second.printed) == demo_line.findall(first_start.printed)
    finally:
        second.stop()
    listed = subprocess.run(
        [sys.executable, "-m", "hpcplane", "accounts", "list", "--json"],
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    accounts = json.loads(listed.stdout)
    assert [account["Name"] for account in accounts] == ["demo"]
    assert f"AccountId {accounts[0]['AccountId']})" in first_start.printed
