"""What recording a metric costs: the gateway's `record_request` and the engine's `record_step`, in
prometheus_client's multiprocess mode, beside a locked dictionary increment as a yardstick (the ratio
stays meaningful on a loaded machine, where absolute figures are inflated).

`python -m bench.metrics_cost [--calls N]`
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path


def _per_call(action: Callable[[], None], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        action()
    return (time.perf_counter() - started) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        from hpcplane import metrics

        metrics.prepare(Path(directory))
        lock = threading.Lock()
        counts: dict[str, int] = {}

        def yardstick() -> None:
            with lock:
                counts["x"] = counts.get("x", 0) + 1

        metrics.record_request("ListTasks", "OK", 0.001)
        figures = {
            "record_request_us": _per_call(
                lambda: metrics.record_request("ListTasks", "OK", 0.001), args.calls
            ),
            "record_step_us": _per_call(lambda: metrics.record_step("AddComputes", 0.001, False), args.calls),
            "locked_dict_increment_us": _per_call(yardstick, args.calls),
        }
    figures["request_vs_yardstick"] = figures["record_request_us"] / figures["locked_dict_increment_us"]
    print(json.dumps({name: round(value, 3) for name, value in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
