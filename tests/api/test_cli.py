"""The documented CLI, run as real `python -m hpcplane` processes, HPCPLANE_HOME in a temporary directory.

Commands under test run as processes; their effects are read back in-process (a process costs ~1 s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from hpcplane.config import Settings
from hpcplane.domain.accounts import Account
from hpcplane.store import migrate as migrations
from hpcplane.store.db import Database
from hpcplane.wiring import Services, build_services
from tests.support.backends import PgDatabases
from tests.support.live import free_port

NO_ACCOUNT = "no account {!r} (give its AccountId or its name)"
WRONG_KEY = (
    "the secret key does not decrypt the stored AccessKey secrets: "
    "set HPCPLANE_SECRET_KEY to the key the store was made with"
)


def hpcplane(
    home: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m hpcplane ARGS` with HPCPLANE_HOME=home (no other HPCPLANE_* from outside)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_")}
    full_env["HPCPLANE_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hpcplane", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The standard output of a command that must have succeeded."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    """A command that must fail with exit code 1, `Error: <message>` and no traceback."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    assert f"Error: {message}" in result.stderr, result.stderr


def in_parallel(
    home: Path, *commands: Sequence[str], env: Mapping[str, str] | None = None
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent commands at the same time (each process takes about a second to start)."""
    with ThreadPoolExecutor(len(commands)) as pool:
        return list(pool.map(lambda args: hpcplane(home, *args, env=env), commands))


@contextmanager
def store(home: Path) -> Iterator[Services]:
    """The services of the SQLite store under `home`, opened in this process."""
    services = build_services(Settings(home=home, database_url=None, redis_url=None), run_migrations=False)
    try:
        yield services
    finally:
        services.close()


def accounts(home: Path) -> dict[str, Account]:
    """The accounts of the store, by name (read in-process)."""
    with store(home) as services:
        return {account.name: account for account in services.accounts.list_accounts()}


def keys(home: Path, account: str) -> dict[str, tuple[str, str | None]]:
    """The AccessKeys of an account: AccessKeyId -> (status, RAM user name), read in-process."""
    with store(home) as services:
        return {key.id: (key.status.value, key.user_name) for key in services.accounts.list_keys(account)}


def check_key(record: Mapping[str, str]) -> None:
    """An AccountId of 16 digits, an AccessKeyId like LTAI + 20, a 30-character secret."""
    assert re.fullmatch(r"[1-9]\d{15}", record["AccountId"])
    assert re.fullmatch(r"LTAI[A-Za-z0-9]{20}", record["AccessKeyId"])
    assert re.fullmatch(r"[A-Za-z0-9]{30}", record["AccessKeySecret"])


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A new home where `accounts create alpha --json` was the first command run; its output."""
    path = tmp_path_factory.mktemp("cli-home")
    return path, ok(hpcplane(path, "accounts", "create", "alpha", "--json"))


@pytest.fixture(scope="module")
def home(created: tuple[Path, str]) -> Path:
    """A store holding the account alpha."""
    return created[0]


@pytest.fixture(scope="module")
def alpha(home: Path) -> Account:
    """The alpha account."""
    return accounts(home)["alpha"]


def test_create_prints_key_as_json(created: tuple[Path, str], alpha: Account) -> None:
    """`accounts create NAME --json` prints one JSON object: the account and its first AccessKey pair."""
    home, output = created
    record = json.loads(output)
    assert set(record) == {"AccountId", "AccessKeyId", "AccessKeySecret"}
    assert output.count("\n") == 1
    check_key(record)
    assert record["AccountId"] == alpha.id
    assert alpha.ehpc_enabled
    assert (home / "hpcplane.db").is_file()
    with store(home) as services:  # the printed secret is the stored one
        (key,) = services.accounts.list_keys("alpha")
    assert (key.id, key.secret, key.status.value, key.user_name) == (
        record["AccessKeyId"],
        record["AccessKeySecret"],
        "Active",
        None,
    )


def test_create_prints_key_as_text(home: Path) -> None:
    """Without --json, `accounts create` prints `Name: value` lines."""
    lines = dict(
        line.split(": ", 1) for line in ok(hpcplane(home, "accounts", "create", "plain")).splitlines()
    )
    assert list(lines) == ["AccountId", "AccessKeyId", "AccessKeySecret"]
    check_key(lines)
    assert accounts(home)["plain"].id == lines["AccountId"]
    assert keys(home, "plain") == {lines["AccessKeyId"]: ("Active", None)}


def test_service_switch_takes_account_name_or_id(home: Path, alpha: Account) -> None:
    """disable-service and enable-service accept the account's name and its AccountId."""
    disabled = ok(hpcplane(home, "accounts", "disable-service", "alpha"))
    assert disabled == f"E-HPC disabled for alpha ({alpha.id})\n"
    assert accounts(home)["alpha"].ehpc_enabled is False
    enabled = ok(hpcplane(home, "accounts", "enable-service", alpha.id))
    assert enabled == f"E-HPC enabled for alpha ({alpha.id})\n"
    assert accounts(home)["alpha"].ehpc_enabled is True


def test_keys_create_takes_account_name_or_id(home: Path, alpha: Account) -> None:
    """keys create ACCOUNT takes the AccountId or the name; --user issues the key to a RAM user."""
    with store(home) as services:
        services.accounts.create_user("alpha", "ops")
    by_id, by_name = in_parallel(
        home, ("keys", "create", alpha.id, "--json"), ("keys", "create", "alpha", "--user", "ops", "--json")
    )
    for_account, for_user = json.loads(ok(by_id)), json.loads(ok(by_name))
    for record in (for_account, for_user):
        check_key(record)
        assert record["AccountId"] == alpha.id
    assert "UserName" not in for_account
    assert for_user["UserName"] == "ops"
    assert for_account["AccessKeyId"] != for_user["AccessKeyId"]
    stored = keys(home, "alpha")
    assert stored[for_account["AccessKeyId"]] == ("Active", None)
    assert stored[for_user["AccessKeyId"]] == ("Active", "ops")


def test_keys_disable_and_enable(home: Path) -> None:
    """`keys disable` makes that key (only) Inactive; `keys enable` makes it Active again."""
    with store(home) as services:
        key = services.accounts.create_key("alpha").access_key_id
    assert ok(hpcplane(home, "keys", "disable", key)) == f"{key} disabled\n"
    stored = keys(home, "alpha")
    assert stored.pop(key) == ("Inactive", None)
    assert {status for status, _ in stored.values()} == {"Active"}
    assert ok(hpcplane(home, "keys", "enable", key)) == f"{key} enabled\n"
    assert keys(home, "alpha")[key] == ("Active", None)


def test_duplicate_account_name_is_refused(home: Path, alpha: Account) -> None:
    """Creating an account under a name in use fails clearly, exits non-zero and changes nothing."""
    before = keys(home, "alpha")
    result = hpcplane(home, "accounts", "create", "alpha", "--json")
    refused(result, "an account named 'alpha' exists already")
    assert result.stdout == ""
    assert accounts(home)["alpha"].id == alpha.id
    assert keys(home, "alpha") == before


def test_unknown_account_or_key_is_refused(home: Path) -> None:
    """Commands naming an account or key that does not exist say so clearly and change nothing."""
    before = accounts(home)
    service, key, disable = in_parallel(
        home,
        ("accounts", "disable-service", "ghost"),
        ("keys", "create", "ghost", "--json"),
        ("keys", "disable", "LTAInope"),
    )
    refused(service, NO_ACCOUNT.format("ghost"))
    refused(key, NO_ACCOUNT.format("ghost"))
    refused(disable, "no AccessKey 'LTAInope'")
    assert service.stdout == key.stdout == disable.stdout == ""
    assert accounts(home) == before


def test_migrate_sqlite(tmp_path: Path) -> None:
    """`migrate` creates the SQLite store under HPCPLANE_HOME at the newest revision, and no account."""
    assert ok(hpcplane(tmp_path, "migrate")) == f"database at revision {migrations.head_revision()}\n"
    assert (tmp_path / "hpcplane.db").is_file()
    assert accounts(tmp_path) == {}


def revision(url: str) -> str | None:
    db = Database(url)
    try:
        return migrations.current_revision(db)
    finally:
        db.dispose()


@pytest.mark.postgres
def test_migrate_postgres_by_option_and_by_env(pg_databases: PgDatabases, tmp_path: Path) -> None:
    """migrate reads HPCPLANE_DATABASE_URL, and --database-url takes precedence over it."""
    by_option, by_env = pg_databases.create(), pg_databases.create()
    env = {"HPCPLANE_DATABASE_URL": by_env}
    head = f"database at revision {migrations.head_revision()}\n"
    assert ok(hpcplane(tmp_path, "migrate", "--database-url", by_option, env=env)) == head
    assert (revision(by_option), revision(by_env)) == (migrations.head_revision(), None)
    assert ok(hpcplane(tmp_path, "migrate", env=env)) == head
    assert revision(by_env) == migrations.head_revision()
    assert not (tmp_path / "hpcplane.db").exists()


def test_unreachable_database_is_refused(tmp_path: Path) -> None:
    """A database URL nothing answers at: migrate fails with `cannot reach the store`, no traceback."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    refused(hpcplane(tmp_path, "migrate", "--database-url", url), "cannot reach the store")


def test_invalid_option_from_the_environment_is_a_usage_error(tmp_path: Path) -> None:
    """A bad HPCPLANE_<OPTION> value is reported as a usage error naming the option (exit 2)."""
    result = hpcplane(tmp_path, "accounts", "list", env={"HPCPLANE_DB_TIMEOUT": "-1"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "db_timeout" in result.stderr
    assert not (tmp_path / "hpcplane.db").exists()


def test_wrong_secret_key_is_refused(home: Path) -> None:
    """With a HPCPLANE_SECRET_KEY that did not make the store, serve and accounts refuse to run."""
    wrong = {"HPCPLANE_SECRET_KEY": Fernet.generate_key().decode(), "HPCPLANE_PORT": str(free_port())}
    for result in in_parallel(home, ("accounts", "list"), ("serve",), env=wrong):
        refused(result, WRONG_KEY)
        assert result.stdout == ""
    right = (home / "secret.key").read_text().strip()
    services = build_services(Settings(home=home, secret_key=right), run_migrations=False)
    try:
        assert "alpha" in {account.name for account in services.accounts.list_accounts()}
    finally:
        services.close()


def test_malformed_secret_key_is_refused(home: Path) -> None:
    """A HPCPLANE_SECRET_KEY that is not a Fernet key at all is refused with a message, not a traceback."""
    for result in in_parallel(
        home, ("accounts", "list"), ("serve",), env={"HPCPLANE_SECRET_KEY": "not-a-key"}
    ):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr, result.stderr
        assert "HPCPLANE_SECRET_KEY" in result.stderr, result.stderr
