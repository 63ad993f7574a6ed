"""The store on real SQLite and PostgreSQL: migrations, accounts, keys, nonces, ListTasks, failures."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import insert, inspect, select

from hpcplane.domain.accounts import KeyStatus, Principal
from hpcplane.domain.errors import ClusterNotFound, DbError, NotEnabled, RedisError
from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.services.accounts import AccountError, AccountService, StoreKeyDirectory
from hpcplane.services.clusters import seed_cluster
from hpcplane.services.tasks import TaskQuery, TaskReader, record_task
from hpcplane.store import migrate
from hpcplane.store.db import Database
from hpcplane.store.nonces import RedisNonces, SqlNonces
from hpcplane.store.secrets import SecretBox, SecretKeyMismatch
from hpcplane.store.tables import access_keys, accounts, clusters
from hpcplane.store.tables import nonces as nonces_table
from hpcplane.store.tasks import NewTask, TaskPage, insert_task, list_tasks
from hpcplane.wiring import check_secret_key
from tests.integration.conftest import START, FakeClock
from tests.support.backends import PgDatabases

# --- schema ------------------------------------------------------------------------------------


def test_migrations_reach_head_and_are_idempotent(db: Database) -> None:
    """upgrade brings the store to the newest revision; running it again changes nothing."""
    head = migrate.head_revision()
    assert head is not None
    assert migrate.current_revision(db) == head
    migrate.upgrade(db)
    assert migrate.current_revision(db) == head
    tables = set(inspect(db.engine).get_table_names())
    assert {"meta", "accounts", "ram_users", "access_keys", "clusters", "nodes", "tasks", "nonces"} <= tables


def test_listtasks_indexes_exist(db: Database) -> None:
    """The two ListTasks indexes exist on (cluster_id, created_at, seq); the running one is partial."""
    indexes = {ix["name"]: ix for ix in inspect(db.engine).get_indexes("tasks")}
    for name in ("ix_tasks_cluster_created", "ix_tasks_cluster_running"):
        assert indexes[name]["column_names"] == ["cluster_id", "created_at", "seq"]
    where = indexes["ix_tasks_cluster_running"]["dialect_options"]
    assert {"sqlite_where", "postgresql_where"} & set(where)
    assert "finished_at" not in indexes["ix_tasks_cluster_created"]["dialect_options"]


@pytest.mark.postgres
def test_tasks_pages_keep_room_for_in_place_updates(pg_databases: PgDatabases) -> None:
    """On PostgreSQL the tasks table is filled to 70% (migration 0010), so a step's UPDATE, which
    changes no indexed column, can stay on its page (HOT); SQLite has no such setting."""
    db = Database(pg_databases.create())
    try:
        migrate.upgrade(db)
        with db.engine.connect() as conn:
            options = conn.exec_driver_sql("SELECT reloptions FROM pg_class WHERE relname = 'tasks'").scalar()
    finally:
        db.dispose()
    assert options == ["fillfactor=70"]


# --- accounts, users and keys --------------------------------------------------------------------


def test_account_create_and_find(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """A new account is found by its id and by its name, with E-HPC enabled and one active key."""
    service = AccountService(db, box, clock)
    issued = service.create_account("acme")
    by_id, by_name = service.find(issued.account_id), service.find("acme")
    assert by_id == by_name
    assert (by_id.id, by_id.name, by_id.ehpc_enabled) == (issued.account_id, "acme", True)
    [key] = service.list_keys("acme")
    assert (key.id, key.secret, key.status) == (
        issued.access_key_id,
        issued.access_key_secret,
        KeyStatus.ACTIVE,
    )
    with pytest.raises(AccountError):
        service.find("nobody")


@pytest.mark.parametrize("name", ["acme", "", "x" * 65])
def test_account_duplicate_or_bad_name_refused(
    db: Database, box: SecretBox, clock: FakeClock, name: str
) -> None:
    """A name already taken, an empty name or one over 64 characters is refused."""
    service = AccountService(db, box, clock)
    service.create_account("acme")
    with pytest.raises(AccountError):
        service.create_account(name)
    assert [a.name for a in service.list_accounts()] == ["acme"]


def test_keys_create_disable_enable(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """A second key can be added; disable makes it Inactive to the key lookup, enable makes it Active."""
    service, directory = AccountService(db, box, clock), StoreKeyDirectory(db, box)
    first = service.create_account("acme")
    second = service.create_key("acme")
    assert second.account_id == first.account_id
    assert second.access_key_id != first.access_key_id
    service.disable_key(second.access_key_id)
    found = directory.lookup(second.access_key_id)
    assert found is not None
    assert found[0].status is KeyStatus.INACTIVE
    assert found[0].secret == second.access_key_secret
    assert found[1].id == first.account_id
    service.enable_key(second.access_key_id)
    found = directory.lookup(second.access_key_id)
    assert found is not None
    assert found[0].status is KeyStatus.ACTIVE
    assert directory.lookup("LTAInothere") is None
    for change in (service.disable_key, service.enable_key):
        with pytest.raises(AccountError):
            change("LTAInothere")


def test_key_and_nonce_read_together_see_another_connections_changes(
    db: Database, box: SecretBox, clock: FakeClock
) -> None:
    """lookup_with_nonce reads the key, its account and the nonce on every call: a key disabled or an
    account switched off by another connection (another process, the CLI) shows on the very next read,
    and so does a nonce another process recorded."""
    service, directory = AccountService(db, box, clock), StoreKeyDirectory(db, box)
    issued = service.create_account("acme")
    key_id = issued.access_key_id
    found, stored = directory.lookup_with_nonce(key_id, "n1", START)
    assert found is not None
    assert not stored
    assert found[0].status is KeyStatus.ACTIVE
    assert found[0].secret == issued.access_key_secret
    assert found[1].ehpc_enabled
    other = Database(db.url.render_as_string(hide_password=False), timeout=5.0, pool_size=2)
    try:
        AccountService(other, box, clock).disable_key(key_id)
        found, _ = directory.lookup_with_nonce(key_id, "n1", START)
        assert found is not None
        assert found[0].status is KeyStatus.INACTIVE
        AccountService(other, box, clock).enable_key(key_id)
        AccountService(other, box, clock).set_service("acme", False)
        found, _ = directory.lookup_with_nonce(key_id, "n1", START)
        assert found is not None
        assert found[0].status is KeyStatus.ACTIVE
        assert not found[1].ehpc_enabled
        with other.write() as conn:
            conn.execute(
                insert(nonces_table).values(
                    access_key_id=key_id, nonce="n1", expires_at=START + timedelta(seconds=60)
                )
            )
        assert directory.lookup_with_nonce(key_id, "n1", START)[1]
        assert not directory.lookup_with_nonce(key_id, "n1", START + timedelta(seconds=61))[1]
        assert not directory.lookup_with_nonce(key_id, "n2", START)[1]
    finally:
        other.dispose()
    assert directory.lookup_with_nonce("LTAInothere", "n1", START) == (None, False)


def test_ram_user_keys(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """A RAM user's key names the user; duplicate users and keys for unknown users are refused."""
    service, directory = AccountService(db, box, clock), StoreKeyDirectory(db, box)
    account = service.create_account("acme").account_id
    user_id = service.create_user("acme", "alice")
    issued = service.create_key(account, "alice")
    assert issued.user_name == "alice"
    found = directory.lookup(issued.access_key_id)
    assert found is not None
    assert (found[0].user_id, found[0].user_name, found[0].account_id) == (user_id, "alice", account)
    with pytest.raises(AccountError):
        service.create_user("acme", "alice")
    with pytest.raises(AccountError):
        service.create_key("acme", "bob")


def test_secrets_encrypted_at_rest(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """No column of any access_keys row holds a plaintext secret; the sealed value opens to it."""
    service = AccountService(db, box, clock)
    issued = [service.create_account("acme"), service.create_key("acme")]
    with db.read() as conn:
        rows = conn.execute(select(access_keys)).mappings().all()
    dump = json.dumps([{k: str(v) for k, v in row.items()} for row in rows])
    for key in issued:
        assert key.access_key_secret not in dump
    sealed = {row["id"]: row["secret_enc"] for row in rows}
    for key in issued:
        assert box.open(sealed[key.access_key_id]) == key.access_key_secret


def test_wrong_secret_key_refused(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """check_secret_key accepts the key that made the store and raises SecretKeyMismatch for another."""
    AccountService(db, box, clock).create_account("acme")
    check_secret_key(db, box)
    check_secret_key(db, box)
    other = SecretBox(Fernet.generate_key())
    with pytest.raises(SecretKeyMismatch):
        check_secret_key(db, other)
    [key] = AccountService(db, box, clock).list_keys("acme")
    with pytest.raises(SecretKeyMismatch):
        StoreKeyDirectory(db, other).lookup(key.id)


# --- nonces --------------------------------------------------------------------------------------


def test_sql_nonces(db: Database) -> None:
    """remember: fresh True, repeat False, after expiry True again (and renewed), other key True."""
    nonces = SqlNonces(db)
    assert nonces.remember("ak", "n1", START, 60)
    assert not nonces.remember("ak", "n1", START, 60)
    assert not nonces.remember("ak", "n1", START + timedelta(seconds=59), 60)
    assert nonces.remember("ak", "n1", START + timedelta(seconds=61), 60)
    assert not nonces.remember("ak", "n1", START + timedelta(seconds=62), 60)
    assert nonces.remember("ak2", "n1", START, 60)
    assert nonces.remember("ak", "n2", START, 60)


def test_sql_nonces_purge_expired(db: Database) -> None:
    """Every 1000th nonce also deletes the expired ones; a purged nonce is fresh again."""
    nonces = SqlNonces(db)
    assert nonces.remember("ak", "old", START, 60)
    later = START + timedelta(seconds=120)
    for n in range(999):
        assert nonces.remember("ak", f"n{n}", later, 60)
    with db.read() as conn:
        keys = set(conn.execute(select(nonces_table.c.nonce)).scalars())
    assert "old" not in keys
    assert len(keys) == 999


@pytest.mark.postgres
def test_idle_connection_killed_by_the_server_costs_no_failed_call(
    pg_databases: PgDatabases, box: SecretBox
) -> None:
    """A pooled PostgreSQL connection that sat idle is checked before use: the server ending it (a restart,
    an idle timeout) costs no failed call on the hot path. The pool's idle clock is moved, not waited for."""
    idle_clock = [1000.0]
    db = Database(pg_databases.create(), timeout=5.0, pool_size=2, monotonic=lambda: idle_clock[0])
    migrate.upgrade(db)
    clock = FakeClock()
    service, directory = AccountService(db, box, clock), StoreKeyDirectory(db, box)
    issued = service.create_account("pinged")
    assert directory.lookup(issued.access_key_id) is not None
    admin = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    idle_clock[0] += 1.5  # longer than the pool's idle threshold
    assert directory.lookup(issued.access_key_id) is not None
    assert SqlNonces(db).remember(issued.access_key_id, "after-restart", clock.now(), 60)
    db.dispose()


@pytest.mark.redis
def test_redis_nonces(redis_url: str) -> None:
    """RedisNonces: fresh True, repeat False, the same nonce under another key True."""
    nonces = RedisNonces(redis_url, 2.0)
    nonce = uuid.uuid4().hex
    try:
        assert nonces.remember("ak", nonce, START, 60)
        assert not nonces.remember("ak", nonce, START, 60)
        assert nonces.remember("ak2", nonce, START, 60)
    finally:
        nonces.close()


def test_redis_unreachable_is_redis_error() -> None:
    """RedisNonces pointed at a closed port raises RedisError."""
    nonces = RedisNonces("redis://127.0.0.1:1/0", 0.5)
    try:
        with pytest.raises(RedisError):
            nonces.remember("ak", "n", START, 60)
    finally:
        nonces.close()


# --- the ListTasks read ----------------------------------------------------------------------------


def add_tasks(
    db: Database, *specs: tuple[int, float, float | None], account: str = "A", cluster: str = "C"
) -> None:
    """Insert tasks in order; each spec is (index, created seconds after START, finished seconds or None).

    The account and the cluster are created on first use (a cluster belongs to one account)."""
    with db.write() as conn:
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account)).first() is None:
            conn.execute(
                insert(accounts).values(id=account, name=account, ehpc_enabled=True, created_at=START)
            )
        if conn.execute(select(clusters.c.id).where(clusters.c.id == cluster)).first() is None:
            conn.execute(
                insert(clusters).values(
                    id=cluster,
                    account_id=account,
                    region_id="cn-hangzhou",
                    name=cluster,
                    status="running",
                    created_at=START,
                    updated_at=START,
                )
            )
        for index, created, finished in specs:
            end = None if finished is None else START + timedelta(seconds=finished)
            task = NewTask(
                task_id=f"{account}-{index}",
                account_id=account,
                cluster_id=cluster,
                task_type=TaskType.ADD_COMPUTES,
                total_steps=2,
                request=json.dumps({"index": index}),
                status=TaskStatus.PROCESSING if end is None else TaskStatus.SUCCESS,
                finished_at=end,
            )
            insert_task(conn, task, START + timedelta(seconds=created))


def page(
    db: Database,
    *,
    archived: bool = True,
    task_id: str | None = None,
    since: float | None = None,
    offset: int = 0,
    limit: int = 50,
    cluster: str = "C",
    account: str | None = None,
) -> TaskPage:
    """A page as the store reads it for the cluster's owner (or for `account`, which must not see it)."""
    with db.read() as conn:
        owner = conn.execute(select(clusters.c.account_id).where(clusters.c.id == cluster)).scalar_one()
    with db.driver() as driver:
        scope, result = list_tasks(
            driver,
            account_id=account or owner,
            cluster_id=cluster,
            task_id=task_id,
            archived=archived,
            current_since=None if since is None else START + timedelta(seconds=since),
            offset=offset,
            limit=limit,
        )
    assert scope is not None
    assert scope.cluster_found == (account in (None, owner))
    return result


def indexes(result: TaskPage) -> list[int]:
    return [json.loads(task.request)["index"] for task in result.tasks]


def test_tasks_newest_first_ties_by_insertion(db: Database) -> None:
    """Newest created_at first; equal created_at in reverse insertion order; times come back in UTC."""
    add_tasks(db, (0, 2, None), (1, 0, None), (2, 2, None), (3, 1, None), (4, 0, None), (5, 2, None))
    result = page(db)
    assert indexes(result) == [5, 2, 0, 3, 4, 1]
    assert result.total == 6
    assert result.tasks[0].created_at == START + timedelta(seconds=2)
    assert result.tasks[0].created_at.utcoffset() == timedelta(0)


def test_tasks_paging(db: Database) -> None:
    """Pages are consecutive slices of the full order; TotalCount counts every match on every page."""
    add_tasks(db, *((i, i // 2, None) for i in range(7)))
    full = indexes(page(db))
    pages = [page(db, offset=offset, limit=3) for offset in (0, 3, 6, 9)]
    assert [indexes(p) for p in pages] == [full[0:3], full[3:6], full[6:7], []]
    assert {p.total for p in pages} == {7}


def test_tasks_every_page_of_a_long_history(db: Database) -> None:
    """Any page equals the slice of the full newest-first order (ties by insertion), whether it is read
    with the scope in one statement (near the start), or alone, from the start or from the end (deep),
    for the whole history and for the running tasks."""
    specs = [(i, i // 3, None if i % 4 == 0 else i) for i in range(520)]
    add_tasks(db, *specs)
    order = [i for i, _, _ in sorted(specs, key=lambda spec: (spec[1], spec[0]), reverse=True)]
    running = [i for i in order if i % 4 == 0]
    for offset, limit in ((0, 10), (5, 7), (95, 10), (100, 3), (101, 3), (250, 50), (509, 10), (515, 10)):
        assert indexes(page(db, offset=offset, limit=limit)) == order[offset : offset + limit]
        assert page(db, offset=offset, limit=limit).total == 520
    for offset in (0, 60, 100, 101, 120, 129, 130):
        current = page(db, archived=False, offset=offset, limit=10)
        assert (indexes(current), current.total) == (running[offset : offset + 10], 130)


def test_tasks_archived_and_current(db: Database) -> None:
    """Archived lists all; otherwise running tasks only, plus those that ended after current_since."""
    add_tasks(db, (0, 0, None), (1, 1, 10), (2, 2, 50), (3, 3, None), (4, 4, 30))
    assert indexes(page(db)) == [4, 3, 2, 1, 0]
    assert indexes(page(db, archived=False)) == [3, 0]
    assert indexes(page(db, archived=False, since=20)) == [4, 3, 2, 0]
    assert indexes(page(db, archived=False, since=30)) == [3, 2, 0]  # ended exactly at the cut: history
    assert page(db, archived=False, since=20).total == 4
    assert indexes(page(db, archived=True, since=100)) == [4, 3, 2, 1, 0]


def test_tasks_by_task_id_and_cluster(db: Database) -> None:
    """TaskId picks one task whatever its state; another cluster's tasks (here another account's) never
    show, not even by TaskId; each cluster counts its own rows."""
    add_tasks(db, (0, 0, 5), (1, 1, None))
    add_tasks(db, (7, 2, None), (8, 3, 4), account="B", cluster="D")
    assert indexes(page(db, task_id="A-0", archived=False)) == [0]
    assert page(db, task_id="A-0", archived=False).total == 1
    assert page(db, task_id="B-7").tasks == []
    assert page(db, task_id="nope").total == 0
    assert indexes(page(db)) == [1, 0]
    assert indexes(page(db, cluster="D")) == [8, 7]
    assert (page(db).total, page(db, cluster="D").total) == (2, 2)
    # Another account reads nothing of a cluster it does not own, near the start or deep in the order.
    for offset in (0, 1, 150):
        assert page(db, cluster="D", account="A", offset=offset).tasks == []


def _tenant(db: Database, box: SecretBox, clock: FakeClock, name: str) -> tuple[AccountService, Principal]:
    service = AccountService(db, box, clock)
    issued = service.create_account(name)
    return service, Principal(account=service.find(issued.account_id), access_key_id=issued.access_key_id)


def test_task_reader_checks_account_and_cluster(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """NotEnabled for a disabled account; ClusterNotFound for another account's or an unknown cluster."""
    service, alice = _tenant(db, box, clock, "alice")
    _, bob = _tenant(db, box, clock, "bob")
    cluster = seed_cluster(db, clock, account_id=alice.account.id, region="cn-hangzhou", name="c1")
    reader = TaskReader(db, clock)
    assert reader.list_tasks(alice, TaskQuery(cluster_id=cluster)).total == 0
    with pytest.raises(ClusterNotFound):
        reader.list_tasks(bob, TaskQuery(cluster_id=cluster))
    with pytest.raises(ClusterNotFound):
        reader.list_tasks(alice, TaskQuery(cluster_id="ehpc-hz-missing"))
    service.set_service("alice", False)
    with pytest.raises(NotEnabled):
        reader.list_tasks(alice, TaskQuery(cluster_id=cluster))  # the principal still says enabled


def test_task_reader_archive_delay_and_pages(db: Database, box: SecretBox, clock: FakeClock) -> None:
    """With archive_delay, a task that ended within the delay is still current; pages map to offsets."""
    _, alice = _tenant(db, box, clock, "alice")
    cluster = seed_cluster(db, clock, account_id=alice.account.id, region="cn-hangzhou", name="c1")
    ids = [
        record_task(
            db,
            clock,
            account_id=alice.account.id,
            cluster_id=cluster,
            task_type=TaskType.STOP_CLUSTER,
            total_steps=3,
            status=status,
            created_at=START - timedelta(seconds=ago),
        )
        for ago, status in ((90, TaskStatus.SUCCESS), (30, TaskStatus.FAILED), (10, TaskStatus.PROCESSING))
    ]
    delayed = TaskReader(db, clock, archive_delay=60)
    current = delayed.list_tasks(alice, TaskQuery(cluster_id=cluster))
    assert [t[0] for t in current.tasks] == [ids[2], ids[1]]
    assert [t[0] for t in TaskReader(db, clock).list_tasks(alice, TaskQuery(cluster)).tasks] == [ids[2]]
    second = delayed.list_tasks(alice, TaskQuery(cluster, page_number=2, page_size=1, archived=True))
    assert ([t[0] for t in second.tasks], second.total) == ([ids[1]], 3)
    clock.advance(40)  # the failed task ended 70 s ago now: history
    assert delayed.list_tasks(alice, TaskQuery(cluster_id=cluster)).total == 1


# --- store failures ---------------------------------------------------------------------------------


def test_unreachable_postgres_is_db_error() -> None:
    """Reads, writes and migrations against a PostgreSQL that refuses connections raise DbError."""
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/postgres", timeout=1.0, pool_size=1)
    try:
        for transaction in (db.read, db.write):
            with pytest.raises(DbError), transaction() as conn:
                conn.execute(select(1))
        with pytest.raises(DbError):
            migrate.upgrade(db)
    finally:
        db.dispose()


def test_sqlite_lock_is_db_error(tmp_path: Path) -> None:
    """A write while another connection holds the SQLite write lock fails with DbError after the timeout."""
    path = tmp_path / "locked.db"
    db = Database(f"sqlite:///{path}", timeout=0.3)
    migrate.upgrade(db)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(DbError), db.write() as conn:
            conn.execute(select(1))
        with db.read() as conn:  # WAL: readers are not blocked by the writer
            assert conn.execute(select(1)).scalar_one() == 1
    finally:
        holder.close()
        db.dispose()
