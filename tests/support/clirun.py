"""Running `hpcplane call|task|control` as a user would: a clean environment, the output and exit code."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from hpcplane.cli import main as cli_main
from tests.support.live import LiveServer

CREDENTIAL_VARIABLES = (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
)


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[0])
        return body


def user_env(user_home: Path, **extra: str | None) -> dict[str, str | None]:
    """No credentials, no HPCPLANE_* but what is given, HOME without an aliyun config unless written."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("HPCPLANE_")}
    env.update({name: None for name in CREDENTIAL_VARIABLES})
    env["HOME"] = str(user_home)
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str | None]) -> Ran:
    result = CliRunner().invoke(cli_main, list(args), env=env, catch_exceptions=False)
    return Ran(result.exit_code, result.stdout, result.stderr)


def demo(live: LiveServer) -> tuple[str, str, str]:
    """The demo account's AccessKeyId, secret and cluster, from what `serve` printed."""
    text = live.log()
    key = re.search(r"AccessKeyId:\s+(\S+)", text)
    secret = re.search(r"AccessKeySecret:\s+(\S+)", text)
    cluster = re.search(r"Demo account demo \(AccountId \d+\), cluster (\S+)", text)
    assert key, text
    assert secret, text
    assert cluster, text
    return key.group(1), secret.group(1), cluster.group(1)


def wait_for_log(live: LiveServer, pattern: str, timeout: float = 30.0) -> None:
    """Poll the server's output until `pattern` appears (the banner is printed before it serves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, live.log()):
            return
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in the server's output:\n{live.log()}")
