"""Start-up hooks: the scripts of HPCPLANE_INIT_DIR, run in name order once the server answers
(as LocalStack runs its ready.d): `*.sh` with sh, `*.py` with this Python, other executables as they are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import structlog

log = structlog.get_logger("hpcplane.hooks")


def scripts(directory: Path) -> list[Path]:
    """The scripts that will run, in order."""
    if not directory.is_dir():
        return []
    found = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.suffix in (".sh", ".py") or os.access(path, os.X_OK)):
            found.append(path)
    return found


def run_scripts(directory: Path, env: dict[str, str], timeout: float = 600.0) -> list[tuple[str, int]]:
    """Run every script with `env` added to the environment; returns (name, exit code) of each."""
    bin_dir = str(Path(sys.executable).parent)
    full = {**os.environ, **env, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    results = []
    for path in scripts(directory):
        if path.suffix == ".sh":
            command = ["sh", str(path)]
        elif path.suffix == ".py":
            command = [sys.executable, str(path)]
        else:
            command = [str(path)]
        try:
            code = subprocess.run(command, env=full, cwd=directory, timeout=timeout, check=False).returncode  # noqa: S603 (the operator's own scripts)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.warning("init script could not run", script=path.name, error=type(error).__name__)
            code = -1
        log.info("init script ran", script=path.name, exit_code=code)
        results.append((path.name, code))
    log.info("init scripts done", count=len(results))
    return results
