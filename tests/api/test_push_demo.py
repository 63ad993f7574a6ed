"""`hpcplane serve` on an empty home, as a new user meets it: the banner names the console's URL, and
the printed command makes a signed /events URL that streams the demo cluster's task changes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx

from tests.support.console import read_events
from tests.support.live import LiveServer
from tests.support.sdkclients import call


def test_banner_console_url_and_signed_events_command(tmp_path: Path) -> None:
    """The banner prints the console URL (which serves the page) and a command line whose inner
    `hpcplane events-url` part, run as printed, gives a URL that streams AddNodes' changes to its end."""
    server = LiveServer(tmp_path / "home", sim_step_seconds="0.05", sim_jitter="0").start()
    try:
        banner = server.log()
        console = re.search(r"^Console: (\S+)", banner, re.MULTILINE)
        assert console is not None, banner
        assert console.group(1) == f"http://{server.endpoint}/console/"
        assert "hpcplane console" in httpx.get(console.group(1)).text
        command = re.search(r'curl -N "\$\((.*?)\)"', banner, re.DOTALL)
        assert command is not None, banner
        url = subprocess.run(
            ["bash", "-c", command.group(1)], capture_output=True, text=True, check=True, timeout=60
        ).stdout.strip()
        assert url.startswith(f"http://{server.endpoint}/events?")
        key_id = re.search(r"AccessKeyId:\s+(\S+)", banner)
        secret = re.search(r"AccessKeySecret:\s+(\S+)", banner)
        cluster = re.search(r"cluster (ehpc-\S+)", banner)
        assert key_id is not None
        assert secret is not None
        assert cluster is not None
        with httpx.stream("GET", url, timeout=30) as stream:
            assert stream.status_code == 200
            call("legacy", server.endpoint, key_id.group(1), secret.group(1), "AddNodes",
                 {"ClusterId": cluster.group(1), "Count": 1})  # fmt: skip
            types = []
            for event in read_events(stream):
                types.append(event.type)
                if event.type == "task.ended":
                    break
        assert types[0] == "task.created"
        assert types.count("task.progress") == len(types) - 2
    finally:
        server.stop()
