"""The connection to the store: engine creation per dialect, transactions, and store failures as DbError."""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from hpcplane.domain.errors import DbError
from hpcplane.store.deadline import Deadlines
from hpcplane.store.readers import Readers

# Failures of the store itself (unreachable, timed out, locked), as opposed to a bug in a query.
_STORE_FAILURES = (
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
    exc.DisconnectionError,
    # Raised by the few statements that go straight to the driver (BEGIN on SQLite, the engine's UPDATE).
    sqlite3.OperationalError,
    psycopg.OperationalError,
)


class DriverCursor(Protocol):
    """What sqlite3 and psycopg cursors have in common, as the hot statements use it."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Driver:
    """A bare DBAPI connection in autocommit mode, for the few statements run on every request.

    Building a SQLAlchemy statement and its result costs more than running these indexed statements, so
    they are plain SQL strings kept in the store's modules, written with `?` marks and run here in the
    driver's own parameter style; times are bound and read back as the UtcDateTime columns keep them.
    From `Database.driver()` each statement is its own transaction (no BEGIN/COMMIT round trips): use it
    only for statements that stand alone; `Driver.within(conn)` runs them in a `Database.write()`.
    """

    def __init__(
        self,
        connection: Any,
        is_sqlite: bool,
        deadlines: Deadlines | None = None,
        *,
        pipelines: bool = False,
    ) -> None:
        self._connection = connection
        self.is_sqlite = is_sqlite
        self._deadlines = deadlines
        # PostgreSQL, not behind a transaction pooler: statements may be sent without waiting (pipeline).
        self.pipelines = pipelines

    @classmethod
    def within(cls, conn: Connection) -> Driver:
        """The bare connection under a SQLAlchemy transaction: its statements join that transaction."""
        return cls(
            conn.connection.driver_connection,
            conn.dialect.name == "sqlite",
            _DEADLINES.get(conn.engine),
            pipelines=conn.engine in _PIPELINES,
        )

    def execute(self, sql: str, params: Sequence[Any] = ()) -> DriverCursor:
        if self._deadlines is not None:
            self._deadlines.touch()
        cursor: DriverCursor = self._connection.execute(self._sql(sql), self._bound(params))
        return cursor

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row of one statement, read at once (`execute(...).fetchall()`)."""
        cursor: DriverCursor = self._reader().execute(self._sql(sql), self._bound(params))
        return cursor.fetchall()

    def row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row of one statement, or None (`execute(...).fetchone()`)."""
        cursor: DriverCursor = self._reader().execute(self._sql(sql), self._bound(params))
        return cursor.fetchone()

    def _reader(self) -> Any:
        """What `rows` and `row` execute on: on PostgreSQL one cursor kept per connection (its rows are
        fetched before anything else runs on it; a new psycopg cursor a statement costs about 8 us of
        CPU, decision 0065); sqlite3's connection itself (its cursors cost nothing to speak of)."""
        if self._deadlines is not None:
            self._deadlines.touch()
        connection = self._connection
        if self.is_sqlite:
            return connection
        cursor = _CURSORS.get(connection)
        if cursor is None or cursor.closed:
            cursor = _CURSORS[connection] = connection.cursor()
        return cursor

    def _sql(self, sql: str) -> str:
        return sql if self.is_sqlite else _pyformat(sql)

    def _bound(self, params: Sequence[Any]) -> list[Any]:
        is_sqlite = self.is_sqlite
        return [_bind(v, is_sqlite) for v in params]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """On SQLite, the statements inside as one transaction (in a `Database.write()`, that one)."""
        if not self.is_sqlite or self._connection.in_transaction:
            yield
            return
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """The statements inside as one transaction of their own (on `Database.driver()`'s autocommit
        connection): SQLite's BEGIN IMMEDIATE ... COMMIT; on PostgreSQL sent in pipeline mode with their
        BEGIN and COMMIT, one round trip for all unless a statement's rows are read inside (that waits
        for what was sent so far). A cursor's rowcount is known once the block has ended."""
        if self.is_sqlite:
            with self.transaction():
                yield
            return
        if not self.pipelines:
            with self._connection.transaction():
                yield
            return
        with self._connection.pipeline(), self._connection.transaction():
            yield

    @contextmanager
    def pipeline(self) -> Iterator[Callable[[], None]]:
        """Inside a `Database.write()` on PostgreSQL: the statements sent without waiting for each answer
        (pipeline mode); the callable given waits for every answer so far (then each cursor's rowcount is
        known, and an error of any statement is raised). A read inside waits for what was sent before it.
        Elsewhere (SQLite, a transaction pooler) the statements run one by one and the callable does
        nothing. Only bare statements (this Driver's) may run inside: SQLAlchemy would read an answer that
        has not arrived yet as empty, so its statements are refused there (`_server_engine`)."""
        if not self.pipelines:
            yield _nothing
            return
        connection = self._connection
        with connection.pipeline() as pipeline:
            _PIPELINED.add(connection)
            try:
                yield pipeline.sync
            finally:
                _PIPELINED.discard(connection)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]], *, bound: bool = False) -> None:
        """One statement for many rows (inside a transaction: see `within`); `bound`: the rows' values
        are already as the driver takes them (datetimes through `bind`), so they go as given."""
        if self._deadlines is not None:
            self._deadlines.touch()
        cursor = self._connection.cursor()
        try:
            cursor.executemany(self._sql(sql), rows if bound else [self._bound(row) for row in rows])
        finally:
            cursor.close()

    def bind(self, value: Any) -> Any:
        """`value` as this driver's statements take it (see `_bind`)."""
        return _bind(value, self.is_sqlite)

    def script(self, sql: str, params: Sequence[Any] = ()) -> DriverCursor:
        """PostgreSQL, outside any transaction (`Database.driver()`): statements separated by `;`, their
        values bound by psycopg on the client side, sent as one simple query. The server runs them as one
        implicit transaction, committed when the last one ends and rolled back as a whole if one fails,
        in one round trip and never idle in between; each statement still takes its own snapshot. The
        cursor is left on the last statement's result."""
        connection = self._connection
        if self.is_sqlite or not connection.autocommit or connection.info.transaction_status != _IDLE:
            raise RuntimeError("Driver.script needs PostgreSQL outside a transaction")
        if self._deadlines is not None:
            self._deadlines.touch()
        cursor = psycopg.ClientCursor(connection)
        cursor.execute(_pyformat(sql), [_bind(v, False) for v in params])
        while cursor.nextset():
            pass
        return cursor

    @staticmethod
    def time(value: Any) -> datetime | None:
        """A time read from a UtcDateTime column, as an aware UTC datetime."""
        if value is None:
            return None
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        assert isinstance(moment, datetime)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


_PYFORMAT: dict[str, str] = {}
_IDLE = psycopg.pq.TransactionStatus.IDLE
# Each server engine's deadlines, for the statements run on its bare connections (Driver.within).
_DEADLINES: weakref.WeakKeyDictionary[Engine, Deadlines] = weakref.WeakKeyDictionary()
# The engines whose connections may pipeline (PostgreSQL not behind a transaction pooler), and the driver
# connections in pipeline mode now (Driver.pipeline), on which a SQLAlchemy statement is refused.
_PIPELINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_PIPELINED: weakref.WeakSet[Any] = weakref.WeakSet()
# Driver.rows/row: the cursor kept for each psycopg connection, gone with it.
_CURSORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def _nothing() -> None:
    return None


def _pyformat(sql: str) -> str:
    """`?` marks to psycopg's `%s` (the hot statements hold neither `%` nor a literal `?`)."""
    converted = _PYFORMAT.get(sql)
    if converted is None:
        converted = _PYFORMAT[sql] = sql.replace("?", "%s")
    return converted


def _bind(value: Any, is_sqlite: bool) -> Any:
    """Aware datetimes as UtcDateTime keeps them: naive UTC, and on SQLite the text SQLAlchemy writes."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a hot statement")
    naive = value.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(sep=" ", timespec="microseconds") if is_sqlite else naive


@dataclass(frozen=True)
class SessionLimits:
    """What bounds one PostgreSQL connection, from both sides (docs/operations.md, "Faults").

    The client's deadline (`timeout` plus DEADLINE_MARGIN) ends every call, even on a path that stopped
    answering; `idle_in_transaction` (below the engine's lease) makes the server end a session whose
    client left a transaction open (partitioned, frozen); keepalives and tcp_user_timeout make both ends
    notice a dead peer in seconds instead of the kernel's two hours. `transaction_pooling` (PgBouncer in
    transaction mode) sends no session options and prepares no statements; set the limits on the role."""

    idle_in_transaction: float = 10.0
    keepalive_idle: int = 5
    keepalive_interval: int = 1
    keepalive_count: int = 3
    tcp_user_timeout: float = 10.0
    transaction_pooling: bool = False
    application_name: str = "hpcplane"
    # A write transaction's bare statements sent in psycopg's pipeline mode (Driver.pipeline). Off: the
    # chaos suite's network cut caught a worker's session cut mid-pipeline that the server did not end
    # for the whole cut (idle_in_transaction_session_timeout never fired) and held its tasks' row locks,
    # so no other worker could take them over (docs/decisions/0052).
    pipeline: bool = False


# A call's deadline is HPCPLANE_DB_TIMEOUT plus this: the server's own statement_timeout and lock_timeout
# (HPCPLANE_DB_TIMEOUT) answer first when the server is alive; the client's deadline when it is not.
DEADLINE_MARGIN = 0.5


class Database:
    """An engine plus the two kinds of transaction the services use: read and write."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        pool_size: int = 10,
        engine_role: bool = False,
        max_overflow: int | None = None,
        limits: SessionLimits | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        readers: int | None = 0,
    ) -> None:
        """`engine_role`: a connection pool for the task engine's steps. On PostgreSQL its commits do not
        wait for the disk (synchronous_commit off): a database crash may forget the last steps, effects
        and progress together, and they run again; task creation, on the API's pool, stays synchronous.

        On a server database the process holds at most `pool_size + max_overflow` connections (default
        overflow: twice the pool); a call that finds them all in use waits until its deadline, then
        answers DbError. `monotonic`: the clock that says how long a pooled connection sat idle (tests
        move their own). `readers`: on PostgreSQL, up to that many of the pool's connections kept for
        `driver()`'s calls, reads and standalone writes, between calls (store/readers.py), within the
        same budget (None: as many as the budget)."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        self.timeout = timeout
        self.limits = limits or SessionLimits()
        self._writer = threading.Lock()
        overflow = pool_size * 2 if max_overflow is None else max_overflow
        self.budget = pool_size + overflow
        self.deadlines: Deadlines | None = None
        # SQLite: each thread's own connection for the bare statements (Database.driver), kept open.
        self._threads = _ThreadConnections(self.url.database, timeout) if self.is_sqlite else None
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, timeout)
        else:
            self.deadlines = Deadlines(self.budget, timeout + DEADLINE_MARGIN)
            self.engine = _server_engine(
                url,
                timeout,
                pool_size,
                overflow,
                self.limits,
                self.deadlines,
                relaxed=engine_role,
                monotonic=monotonic,
            )
        self._readers: Readers | None = None
        readers = self.budget if readers is None else min(readers, self.budget)
        if readers > 0 and self.deadlines is not None:
            deadlines, pipelines = self.deadlines, self.engine in _PIPELINES
            self._readers = Readers(
                self.engine,
                deadlines,
                readers,
                lambda connection: Driver(connection, False, deadlines, pipelines=pipelines),
                monotonic=monotonic,
            )

    @contextmanager
    def _deadline(self, deadline: float | None) -> Iterator[None]:
        """On a server database: a connection slot and the call's deadline (see store/deadline.py)."""
        if self.deadlines is None:
            yield
            return
        with self.deadlines.call(deadline):
            yield

    @contextmanager
    def write(self, *, deadline: float | None = None) -> Iterator[Connection]:
        """A transaction that will write: on SQLite it takes the write lock up front (BEGIN IMMEDIATE).

        `deadline` (time.monotonic() seconds) ends it sooner than HPCPLANE_DB_TIMEOUT on a server
        database: the engine passes the end of its lease, so a holder that can no longer renew gives up
        its transaction (and its row locks) before another worker takes the task over."""
        with self._single_writer(True), self._deadline(deadline), self._transaction("IMMEDIATE") as conn:
            yield conn

    @contextmanager
    def _single_writer(self, write: bool) -> Iterator[None]:
        """SQLite has one writer at a time; threads of this process queue on a lock instead of polling the
        file lock (SQLite's busy handler sleeps in growing steps, which starves busy writers)."""
        if not (write and self.is_sqlite):
            yield
            return
        if not self._writer.acquire(timeout=self.timeout):
            raise DbError() from TimeoutError("waited too long for this process's SQLite writer")
        try:
            yield
        finally:
            self._writer.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot)."""
        with self._deadline(None), self._transaction("DEFERRED") as conn:
            yield conn

    def driver(self, *, write: bool = False, deadline: float | None = None) -> AbstractContextManager[Driver]:
        """The bare connection in autocommit mode (see Driver); `write` queues on SQLite's single writer.

        A read on SQLite is this thread's own connection, through a plain context manager object: the
        generator-based one below costs more than the indexed read it wraps. On PostgreSQL a read or a
        write is a kept connection when the Database keeps them (`readers`): each statement stands alone
        on it as on a pooled one, without the pool's checkout and checkin."""
        if not write and self._threads is not None:
            own = self._threads.reader()
            if own is not None:
                return own
        if self._readers is not None:  # PostgreSQL: a kept connection, for a read or a standalone write
            kept = self._readers.use(deadline)
            if kept is not None:
                return kept
        return self._driver(write, deadline)

    @contextmanager
    def _driver(self, write: bool, deadline: float | None) -> Iterator[Driver]:
        with self._single_writer(write), self._deadline(deadline), self._autocommit() as driver:
            yield driver

    @contextmanager
    def _autocommit(self) -> Iterator[Driver]:
        own = self._threads.get() if self._threads is not None else None
        if own is not None:
            try:
                yield Driver(own, True)
            except sqlite3.OperationalError as error:
                raise DbError() from error
            return
        try:
            pooled = self.engine.raw_connection()
        except (*_STORE_FAILURES, exc.DBAPIError) as error:
            raise DbError() from error
        connection: Any = pooled.driver_connection
        try:
            # SQLite's connections are in autocommit mode already (isolation_level None, see below).
            if not self.is_sqlite:
                connection.autocommit = True
            yield Driver(connection, self.is_sqlite, self.deadlines, pipelines=self.engine in _PIPELINES)
        except _STORE_FAILURES as error:
            if not self.is_sqlite:
                pooled.invalidate(error)  # a broken server connection is not given back to the pool
            raise DbError() from error
        finally:
            if not self.is_sqlite and not connection.closed:
                connection.autocommit = False
            pooled.close()

    @contextmanager
    def _transaction(self, sqlite_mode: str) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                if self.is_sqlite:
                    conn = conn.execution_options(hpcplane_sqlite_begin=sqlite_mode)
                with conn.begin():
                    yield conn
        except _STORE_FAILURES as error:
            raise DbError() from error
        except exc.DBAPIError as error:
            if error.connection_invalidated:
                raise DbError() from error
            raise

    def dispose(self) -> None:
        """Close every pooled connection (and every thread's own SQLite connection)."""
        if self._readers is not None:
            self._readers.close()
        if self._threads is not None:
            self._threads.close()
        self.engine.dispose()


class _ThreadConnections:
    """One sqlite3 connection per thread, opened on first use and kept: a pool checkout through
    SQLAlchemy (checkout events, the connection fairy, reset on return) costs more than the indexed
    statements run on it. Autocommit (isolation_level None), with the pragmas of the pooled connections.
    None for an in-memory database, whose connections would each see a database of their own."""

    def __init__(self, path: str | None, timeout: float) -> None:
        self._path = path if path and path != ":memory:" and not path.startswith("file:") else None
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[sqlite3.Connection] = []

    def get(self) -> sqlite3.Connection | None:
        if self._path is None:
            return None
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = _sqlite_connect(self._path, self._timeout)
            except sqlite3.Error as error:
                raise DbError() from error
            self._local.conn = conn
            self._local.reader = _OwnReader(Driver(conn, True))
            with self._lock:
                self._open.append(conn)
        return conn

    def reader(self) -> _OwnReader | None:
        """This thread's connection as a context manager giving its Driver (None: in-memory database)."""
        found: _OwnReader | None = getattr(self._local, "reader", None)
        if found is None and self.get() is not None:
            found = self._local.reader
        return found

    def close(self) -> None:
        with self._lock:
            opened, self._open = self._open, []
            self._local = threading.local()
        for conn in opened:
            conn.close()


class _OwnReader:
    """`with` gives the thread's Driver; a store failure inside becomes DbError."""

    __slots__ = ("_driver",)

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    def __enter__(self) -> Driver:
        return self._driver

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> None:
        if isinstance(error, sqlite3.OperationalError):
            raise DbError() from error


def _sqlite_connect(path: str, timeout: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False, isolation_level=None)
    _sqlite_pragmas(conn, timeout)
    # 256 KiB of page cache each (SQLite's default: 2 MiB): up to 32 API threads hold one, beside the pool's;
    # the indexed reads they serve touch a few pages, and the OS caches the file anyway.
    conn.execute("PRAGMA cache_size=-256")
    return conn


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, timeout: float) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    cursor.close()


def _sqlite_engine(url: str, timeout: float) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"timeout": timeout, "check_same_thread": False},
        pool_size=8,
        max_overflow=24,
        pool_timeout=timeout,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how a transaction starts.
        dbapi_connection.isolation_level = None
        _sqlite_pragmas(dbapi_connection, timeout)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("hpcplane_sqlite_begin", "DEFERRED")
        # Straight to the driver: this runs for every transaction, and SQLAlchemy's execution path
        # would double its cost.
        conn.connection.driver_connection.execute(f"BEGIN {mode}")  # type: ignore[union-attr]

    return engine


def _server_engine(
    url: str,
    timeout: float,
    pool_size: int,
    max_overflow: int,
    limits: SessionLimits,
    deadlines: Deadlines,
    *,
    relaxed: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> Engine:
    connect_args: dict[str, Any] = {}
    if make_url(url).get_backend_name() == "postgresql":
        connect_args = _pg_connect_args(timeout, limits, relaxed=relaxed)
    engine = create_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # The budget (deadlines) admits no more calls than the pool holds, so this wait is a backstop.
        pool_timeout=timeout,
    )

    # Registered before the idle ping below, so the ping runs under the call's deadline too.
    @event.listens_for(engine, "checkout")
    def _attach(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        deadlines.attach(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _statement_starts(_conn: Any, cursor: Any, *_args: Any) -> None:
        deadlines.touch()
        if _PIPELINED and getattr(cursor, "connection", None) in _PIPELINED:
            raise RuntimeError("a SQLAlchemy statement in a pipelined batch (Driver.pipeline): bare SQL only")

    @event.listens_for(engine, "commit")
    def _commit_starts(_conn: Any) -> None:
        deadlines.touch()

    _DEADLINES[engine] = deadlines
    if (
        make_url(url).get_backend_name() == "postgresql"
        and limits.pipeline
        and not limits.transaction_pooling
    ):
        _PIPELINES.add(engine)

    @event.listens_for(engine, "do_connect")
    def _connect_within_deadline(_dialect: Any, _record: Any, _cargs: Any, cparams: dict[str, Any]) -> None:
        if "connect_timeout" in cparams:
            cparams["connect_timeout"] = deadlines.connect_timeout()

    if not relaxed:
        # The API checks a connection that sat idle before using it (a restarted database costs no
        # failed call); one in use within the last second is not checked, which saves a round trip on
        # almost every checkout under load. The engine's steps retry on a store failure anyway.
        _ping_when_idle(engine, seconds=1.0, monotonic=monotonic)
    return engine


def _pg_connect_args(timeout: float, limits: SessionLimits, *, relaxed: bool) -> dict[str, Any]:
    """libpq parameters and session settings that bound a PostgreSQL connection (see SessionLimits)."""
    args: dict[str, Any] = {
        "connect_timeout": max(2, int(timeout)),
        "application_name": limits.application_name,
        "keepalives": 1,
        "keepalives_idle": limits.keepalive_idle,
        "keepalives_interval": limits.keepalive_interval,
        "keepalives_count": limits.keepalive_count,
        "tcp_user_timeout": int(limits.tcp_user_timeout * 1000),
    }
    if limits.transaction_pooling:
        # PgBouncer's transaction mode shares server sessions: no startup options (it refuses them) and
        # no prepared statements (the next transaction may run on a session that never prepared them).
        args["prepare_threshold"] = None
        return args
    ms = int(timeout * 1000)
    options: dict[str, object] = {
        "statement_timeout": ms,
        "lock_timeout": ms,
        "idle_in_transaction_session_timeout": int(limits.idle_in_transaction * 1000),
        "tcp_keepalives_idle": limits.keepalive_idle,
        "tcp_keepalives_interval": limits.keepalive_interval,
        "tcp_keepalives_count": limits.keepalive_count,
        "tcp_user_timeout": int(limits.tcp_user_timeout * 1000),
    }
    if relaxed:
        options["synchronous_commit"] = "off"
    args["options"] = " ".join(f"-c {name}={value}" for name, value in options.items())
    return args


def _ping_when_idle(engine: Engine, seconds: float, monotonic: Callable[[], float]) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["hpcplane_checked_in"] = monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("hpcplane_checked_in")
        if since is None or monotonic() - since < seconds:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError() from error  # the pool replaces it and tries again
        if not alive:
            raise exc.DisconnectionError()
