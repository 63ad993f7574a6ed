"""The load generator: corpora of pre-signed requests, and wrk replaying each request once from a Lua script.

Full load is a closed loop (every connection sends its next request when the answer arrives). Half load
and the polling during the engine runs are a fixed rate on a schedule: the script's `delay()` holds each
request until its slot, `1000 / rate` ms after the previous one of the run (the run's one wrk thread
shares the schedule across its connections), read from the monotonic clock through LuaJIT's ffi. The
rate is then the one asked for whatever the answers' latency, as long as a connection is free for each
slot; a server that cannot keep up falls behind it (the achieved rate says so). Without LuaJIT's ffi the
script falls back to a think time of `connections * 1000 / rate` ms a connection after each answer.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hpcplane.testing import sign_v1

WRK_CORE = 1
LUA = """
local paths = {}
for line in io.lines("%(paths)s") do paths[#paths + 1] = line end
local count = #paths
local i = %(offset)d
local interval = %(interval).6f
local carry = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[((i - 1) %% count) + 1])
end
if interval > 0 then
  local ok, ffi = pcall(require, "ffi")
  if ok then
    ffi.cdef[[
      typedef struct { long tv_sec; long tv_nsec; } hpcplane_timespec;
      int clock_gettime(int clk_id, hpcplane_timespec *tp);
    ]]
    local ts = ffi.new("hpcplane_timespec")
    local slot = nil
    delay = function()
      ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
      local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
      slot = (slot or now) + interval
      local wait = slot - now
      if wait <= 0 then return 0 end
      return math.floor(wait + 0.5)
    end
  else
    local think = interval * %(connections)d
    delay = function()
      carry = carry + think
      local whole = math.floor(carry)
      carry = carry - whole
      return whole
    end
  end
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "non_2xx": %%d, "connect": %%d, "read": %%d, '
    .. '"write": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass
class Corpus:
    """A file of signed request paths, one per line, each to be sent once."""

    path: Path
    size: int
    sign_seconds: float


@dataclass
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int


def _sign_chunk(job: tuple[str, dict[str, str], str, str, list[str], int, int]) -> list[str]:
    action, params, key_id, secret, cluster_ids, size, seed = job
    rng = random.Random(seed)
    return [
        sign_v1(action, {**params, "ClusterId": rng.choice(cluster_ids)}, key_id, secret).url_path
        for _ in range(size)
    ]


def sign_corpus(
    path: Path,
    action: str,
    params: Mapping[str, str],
    key: tuple[str, str],
    cluster_ids: Sequence[str],
    size: int,
) -> Corpus:
    """`size` requests signed now (fresh nonces, current timestamps), each on a random cluster."""
    began = time.monotonic()
    size = max(1, size)
    workers = min(os.cpu_count() or 1, 4) if size >= 4000 else 1
    share = -(-size // workers)
    jobs = [
        (
            action,
            dict(params),
            key[0],
            key[1],
            list(cluster_ids),
            min(share, size - i * share),
            random.randrange(2**32),
        )
        for i in range(workers)
    ]
    with path.open("w") as out:
        if workers == 1:
            out.write("\n".join(_sign_chunk(jobs[0])) + "\n")
        else:
            with ProcessPoolExecutor(workers) as pool:
                for lines in pool.map(_sign_chunk, jobs):
                    out.write("\n".join(lines) + "\n")
    return Corpus(path, size, round(time.monotonic() - began, 2))


def plain_corpus(path: Path, url_path: str = "/") -> Corpus:
    """One unsigned path, sent again and again (the bare baseline)."""
    path.write_text(url_path + "\n")
    return Corpus(path, 0, 0.0)


def interval_ms(rate: float) -> float:
    """The time between two requests of a fixed-rate run at `rate` req/s (the script's schedule)."""
    return 1000.0 / rate


def write_script(corpus: Corpus, interval: float, offset: int = 0, connections: int = 1) -> Path:
    """The Lua script replaying `corpus` from line `offset` on, one request every `interval` ms (0: as
    fast as the answers come)."""
    script = corpus.path.with_name(f"{corpus.path.stem}-{offset}.lua")
    values = {"paths": str(corpus.path), "interval": interval, "offset": offset, "connections": connections}
    script.write_text(LUA % values)
    return script


def wrk_command(
    port: int, script: Path, seconds: float, connections: int, core: int | None = WRK_CORE
) -> list[str]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/",
    ]
    return ["taskset", "-c", str(core), *command] if core is not None else command


def parse(output: str) -> WrkResult:
    """The WRKJSON line the script's done() prints."""
    match = re.search(r"^WRKJSON (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no summary:\n{output[-2000:]}")
    raw = json.loads(match.group(1))
    seconds = raw["duration_us"] / 1e6
    return WrkResult(
        requests=raw["requests"],
        seconds=round(seconds, 2),
        requests_per_s=round(raw["requests"] / seconds, 1) if seconds else 0.0,
        p50_ms=round(raw["p50_us"] / 1000, 3),
        p90_ms=round(raw["p90_us"] / 1000, 3),
        p99_ms=round(raw["p99_us"] / 1000, 3),
        max_ms=round(raw["max_us"] / 1000, 3),
        non_2xx=raw["non_2xx"],
        socket_errors=raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
    )


def run_wrk(
    port: int,
    corpus: Corpus,
    seconds: float,
    connections: int,
    interval: float = 0.0,
    core: int | None = WRK_CORE,
    offset: int = 0,
) -> WrkResult:
    """One blocking wrk run of `seconds`, from line `offset` of the corpus."""
    script = write_script(corpus, interval, offset, connections)
    command = wrk_command(port, script, seconds, connections, core)
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return parse(done.stdout)


def fixed_rate(port: int, corpus: Corpus, seconds: float, connections: int, rate: float) -> WrkResult:
    """A run at `rate` req/s on the script's schedule (the module's docstring)."""
    return run_wrk(port, corpus, seconds, connections, interval_ms(rate))


class Background:
    """wrk started now and stopped (SIGINT: it prints its summary) when the caller says so."""

    def __init__(
        self, port: int, corpus: Corpus, connections: int, interval: float, core: int | None
    ) -> None:
        command = wrk_command(port, write_script(corpus, interval, 0, connections), 3600, connections, core)
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self) -> WrkResult:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            out, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        if "WRKJSON" not in out:
            raise RuntimeError(f"wrk failed ({self.process.returncode}): {err.strip()[-500:]}")
        return parse(out)
