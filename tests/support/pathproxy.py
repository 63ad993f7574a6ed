"""A TCP proxy in a process of its own, so a test can make a path refuse (kill it) or freeze (SIGSTOP).

A frozen proxy is what a dead network path looks like to a client: connections stay open, the kernel
still accepts new ones into the listen backlog, and nothing ever answers. ``python -m
tests.support.pathproxy TARGET_HOST TARGET_PORT [LISTEN_HOST] [LISTEN_PORT]`` prints its port and runs
until killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]


class PathProxy:
    """A forwarding proxy process from `listen_host:port` to a target; refuse/restore, freeze/thaw."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = 0
        self.process: subprocess.Popen[str] | None = None
        self.frozen = False
        self.restore()

    @property
    def endpoint(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def restore(self) -> None:
        """Listen again (on the same port once it has one)."""
        if self.process is not None and self.process.poll() is None:
            return
        env = {**os.environ, "PYTHONPATH": str(_ROOT)}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.pathproxy",
                *map(str, self.target),
                self.listen_host,
                str(self.port),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"proxy did not start: {line!r}")
        self.port = int(line)
        self.frozen = False

    def refuse(self) -> None:
        """Kill the proxy: its port refuses connections and the live ones are reset."""
        self.thaw()
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def freeze(self) -> None:
        """SIGSTOP: every connection through the proxy, open or new, stops answering."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True
            _wait_state(self.process.pid, "T")

    def thaw(self) -> None:
        if self.frozen and self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.frozen = False

    def close(self) -> None:
        self.refuse()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> PathProxy:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _wait_state(pid: int, state: str, timeout: float = 5.0) -> None:
    """Wait until the kernel shows the process in `state` (T: stopped), so a freeze is in effect."""
    deadline = time.monotonic() + timeout
    stat = Path(f"/proc/{pid}/stat")
    while time.monotonic() < deadline:
        if stat.read_text().rsplit(")", 1)[1].split()[0] == state:
            return
        time.sleep(0.005)
    raise RuntimeError(f"process {pid} did not reach state {state}")


def _main(argv: list[str]) -> None:
    from tests.support.proxy import Proxy

    target_host, target_port = argv[0], int(argv[1])
    listen_host = argv[2] if len(argv) > 2 else "127.0.0.1"
    port = int(argv[3]) if len(argv) > 3 else 0
    proxy = Proxy(target_host, target_port, port=port, host=listen_host)
    print(proxy.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    _main(sys.argv[1:])
