"""A PgBouncer in transaction pooling mode in front of the test PostgreSQL, on a free port.

Found as the `pgbouncer` program (Debian's package; .ci/run installs it): skipped with a one-line reason
when absent, failed under CI=true. PgBouncer will not run as root, so as root it is started as the
`postgres` user, with its files in a directory that user can read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.support.backends import IN_CI, PG_ADMIN_URL, PgDatabases
from tests.support.live import free_port

POOL_SIZE = 3  # server connections per database and user


def _config(directory: Path, port: int, pg_host: str, pg_port: int) -> Path:
    (directory / "users.txt").write_text('"postgres" ""\n"root" ""\n')
    ini = directory / "pgbouncer.ini"
    ini.write_text(
        "[databases]\n"
        f"* = host={pg_host} port={pg_port}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        f"unix_socket_dir = {directory}\n"
        "auth_type = trust\n"
        f"auth_file = {directory / 'users.txt'}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {POOL_SIZE}\n"
        "reserve_pool_size = 0\n"
        "max_client_conn = 500\n"
        f"logfile = {directory / 'pgbouncer.log'}\n"
        f"pidfile = {directory / 'pgbouncer.pid'}\n"
    )
    return ini


@contextlib.contextmanager
def pgbouncer() -> Iterator[int]:
    """Run PgBouncer until the block ends; yields its port."""
    program = shutil.which("pgbouncer")
    if program is None:
        reason = "pgbouncer not installed (Debian: apt-get install pgbouncer)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true requires it", pytrace=False)
        pytest.skip(reason)
    admin = make_url(PG_ADMIN_URL)
    directory = Path(tempfile.mkdtemp(prefix="hpcplane-pgbouncer-"))
    directory.chmod(0o777)
    port = free_port()
    ini = _config(directory, port, admin.host or "127.0.0.1", admin.port or 5432)
    for path in directory.iterdir():
        path.chmod(0o644)
    command = [program, *(["-u", "postgres"] if os.geteuid() == 0 else []), str(ini)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(
                    f"postgresql://postgres@127.0.0.1:{port}/postgres",
                    connect_timeout=2,
                    prepare_threshold=None,
                ).close()
                break
            except psycopg.Error:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = directory / "pgbouncer.log"
                    raise RuntimeError(
                        f"pgbouncer did not start: {log.read_text() if log.exists() else process.returncode}"
                    ) from None
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def through(databases: PgDatabases, port: int) -> str:
    """A new test database, and its URL through PgBouncer's port."""
    return make_url(databases.create()).set(port=port).render_as_string(hide_password=False)
