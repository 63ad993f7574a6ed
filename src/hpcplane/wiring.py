"""Services built from settings: where the store, the caches, the engine and the use cases are wired."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field

from hpcplane.api.authn import Authenticator, NonceStore
from hpcplane.api.throttle import LocalBuckets, RateLimiter, Unlimited, parse_quotas
from hpcplane.authz import Authorizer
from hpcplane.authz.ram import RamAuthorizer
from hpcplane.clock import Clock, SystemClock
from hpcplane.config import Settings
from hpcplane.engine.reconciler import Reconciler
from hpcplane.engine.runner import Engine
from hpcplane.engine.ticker import Ticker
from hpcplane.engine.worker import Worker
from hpcplane.providers.base import Provider
from hpcplane.providers.faults import parse_faults
from hpcplane.providers.simulated import SimulatedCloud
from hpcplane.services.accounts import AccountService, StoreKeyDirectory
from hpcplane.services.audit import AuditSink
from hpcplane.services.autoscale import AutoscaleService
from hpcplane.services.clusters_admin import ClusterAdmin
from hpcplane.services.clusters_read import ClusterReader
from hpcplane.services.control import Control, Defaults
from hpcplane.services.jobs import JobService
from hpcplane.services.operations import Operations
from hpcplane.services.queues import QueueService
from hpcplane.services.ram import RamService
from hpcplane.services.tasks import TaskReader
from hpcplane.services.templates import TemplateService
from hpcplane.services.users import UserService
from hpcplane.services.webhooks import Deliverer
from hpcplane.store import accounts as account_store
from hpcplane.store import migrate
from hpcplane.store.db import Database, SessionLimits
from hpcplane.store.nonces import BatchedNonces, RedisNonces
from hpcplane.store.ratelimits import RedisBuckets
from hpcplane.store.secrets import SecretBox, load_or_create_key


@dataclass
class Services:
    """Everything a request, a worker or a CLI command needs."""

    settings: Settings
    db: Database
    box: SecretBox
    clock: Clock
    nonces: NonceStore
    authenticator: Authenticator
    authorizer: Authorizer
    accounts: AccountService
    task_reader: TaskReader
    operations: Operations
    cluster_reader: ClusterReader
    ram: RamService
    audit: AuditSink
    engine: Engine
    cluster_admin: ClusterAdmin
    templates: TemplateService
    users: UserService
    queues: QueueService
    jobs: JobService
    autoscale: AutoscaleService
    workers: list[Worker] = field(default_factory=list)
    limiter: RateLimiter = field(default_factory=Unlimited)
    deliverers: list[Deliverer] = field(default_factory=list)
    control: Control | None = None  # the emulator control API, when enabled
    tickers: list[Ticker] = field(default_factory=list)

    def wake(self) -> None:
        """Tell this process's workers a task was created (other processes hear PostgreSQL's NOTIFY)."""
        for worker in self.workers:
            worker.wake.set()

    def drive(self, task_id: str) -> bool:
        """Run a task to its end in the calling thread (AddNodes Sync=true)."""
        return self.engine.drive(task_id, self.settings.sync_timeout)

    def start_worker(self) -> Worker:
        """Start a worker in this process, on this process's engine."""
        worker = Worker(
            self.engine,
            concurrency=self.settings.worker_concurrency,
            poll_interval=self.settings.poll_interval,
            listen_dsn=listen_dsn(self.db),
            listen_args=listen_args(self.db),
            retention=self.settings.task_retention,
        )
        worker.start()
        self.workers.append(worker)
        deliverer = Deliverer(
            self.db,
            self.box,
            self.clock,
            owner=self.engine.owner,
            backoff=self.settings.webhook_backoff,
            backoff_max=self.settings.webhook_backoff_max,
            timeout=self.settings.webhook_timeout,
            poll_interval=max(self.settings.poll_interval, 0.5),
        )
        deliverer.start()  # webhooks go out from the worker processes (docs/webhooks.md)
        self.deliverers.append(deliverer)
        rounds = [("jobs", self.jobs.advance), ("autoscale", self.autoscale.advance)]
        ticker = Ticker(self.settings.job_tick_seconds, rounds)
        ticker.start()
        self.tickers.append(ticker)
        provider = self.engine.provider
        if provider.owner_host is not None:  # its clusters are on this machine: observe and recover them
            reconciler = Reconciler(
                self.engine.db, self.clock, provider, host=provider.owner_host, owner=self.engine.owner
            )
            observing = Ticker(self.settings.reconcile_seconds, [("reconcile", reconciler.round)])
            observing.start()
            self.tickers.append(observing)
        return worker

    def close(self) -> None:
        for ticker in self.tickers:
            ticker.stop()
        self.tickers.clear()
        for worker in self.workers:
            worker.stop()
        self.workers.clear()
        for deliverer in self.deliverers:
            deliverer.stop()
        self.deliverers.clear()
        self.audit.close()
        if self.engine.db is not self.db:
            self.engine.db.dispose()
        if isinstance(self.nonces, RedisNonces):
            self.nonces.close()
        if isinstance(self.limiter, RedisBuckets):
            self.limiter.close()
        self.db.dispose()


def listen_dsn(db: Database) -> str | None:
    """A libpq connection string for LISTEN, on PostgreSQL only (not through PgBouncer's transaction
    mode, where a session's LISTEN does not survive its transaction: workers poll instead)."""
    if not db.is_postgres or db.limits.transaction_pooling:
        return None
    return db.url.set(drivername="postgresql").render_as_string(hide_password=False)


def session_limits(settings: Settings, role: str) -> SessionLimits:
    """How each PostgreSQL connection of this process is bounded (store/db.py SessionLimits)."""
    timeout = settings.db_timeout
    return SessionLimits(
        idle_in_transaction=settings.idle_in_transaction,
        keepalive_idle=max(1, int(timeout)),
        keepalive_interval=1,
        keepalive_count=3,
        tcp_user_timeout=timeout + 1.0,
        transaction_pooling=settings.db_transaction_pooling,
        application_name=f"hpcplane {role} {os.getpid()}",
    )


def listen_args(db: Database) -> dict[str, object]:
    """The LISTEN connection's bounds: keepalives, like every other connection of the process."""
    limits = db.limits
    return {
        "application_name": limits.application_name.replace(" api ", " listen "),
        "keepalives": 1,
        "keepalives_idle": limits.keepalive_idle,
        "keepalives_interval": limits.keepalive_interval,
        "keepalives_count": limits.keepalive_count,
        "tcp_user_timeout": int(limits.tcp_user_timeout * 1000),
    }


def open_database(settings: Settings) -> Database:
    return Database(
        settings.effective_database_url,
        timeout=settings.db_timeout,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        limits=session_limits(settings, "api"),
        readers=None,  # as many as the budget (store/readers.py)
    )


def check_secret_key(db: Database, box: SecretBox) -> None:
    """Keep a sealed check value in the store; refuse to run with a key that cannot open it."""
    with db.write() as conn:
        token = account_store.get_meta(conn, "secret_key_check")
        if token is None:
            account_store.set_meta(conn, "secret_key_check", box.check_token())
        else:
            box.verify(token)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_services(
    settings: Settings, *, clock: Clock | None = None, run_migrations: bool = True
) -> Services:
    """Open the store (migrating it unless told not to), check the secret key, and wire the services."""
    clock = clock or SystemClock(settings.clock_offset)
    db = open_database(settings)
    if run_migrations:
        migrate.upgrade(db)
    box = SecretBox(load_or_create_key(settings.secret_key, settings.home))
    check_secret_key(db, box)
    # Without Redis, nonces are checked in memory and in the store and recorded by the audit writer's
    # batches (store/nonces.py BatchedNonces; the window is in docs/robustness.md, "Nonces").
    batched: BatchedNonces | None = None
    nonces: NonceStore
    if settings.redis_url:
        nonces = RedisNonces(settings.redis_url, settings.db_timeout)
    else:
        nonces = batched = BatchedNonces(db)
    authenticator = Authenticator(
        StoreKeyDirectory(db, box),
        nonces,
        clock,
        skew=settings.timestamp_skew,
        nonce_ttl=settings.nonce_ttl,
    )
    engine_db = (
        Database(
            settings.effective_database_url,
            timeout=settings.db_timeout,
            # Each worker thread holds one connection at a time, plus the heartbeat and housekeeping.
            pool_size=settings.worker_concurrency + 2,
            max_overflow=0,
            engine_role=True,
            limits=session_limits(settings, "engine"),
            readers=None,  # the steps' standalone statements on kept connections (store/readers.py)
        )
        if db.is_postgres
        else db
    )
    provider = build_provider(settings, clock, engine_db)
    engine = Engine(
        engine_db,
        provider,
        clock,
        owner=worker_name(),
        lease_seconds=settings.lease_seconds,
        max_attempts=settings.max_attempts,
        max_step_seconds=settings.max_step_seconds,
        host=provider.owner_host,  # None (simulated): only tasks bound to no host
    )
    services = Services(
        settings=settings,
        db=db,
        box=box,
        clock=clock,
        nonces=nonces,
        authenticator=authenticator,
        authorizer=RamAuthorizer(db),
        accounts=AccountService(db, box, clock),
        task_reader=TaskReader(
            db,
            clock,
            archive_delay=settings.archive_delay,
            deleted_cluster_grace=settings.deleted_cluster_grace,
        ),
        operations=Operations(
            db,
            clock,
            provider,
            region=settings.region,
            wake=lambda: services.wake(),
            hash_key=box.derive(b"idem"),
        ),
        cluster_reader=ClusterReader(db, clock),
        ram=RamService(db, box, clock),
        audit=AuditSink(db, nonces=batched, clock=clock),
        engine=engine,
        limiter=build_limiter(settings),
        cluster_admin=ClusterAdmin(db, clock),
        templates=TemplateService(db, clock),
        users=UserService(db, clock, provider),
        queues=QueueService(db, clock),
        jobs=JobService(db, clock, provider),
        autoscale=AutoscaleService(
            db, clock, minute_seconds=settings.sim_minute_seconds, operations=lambda: services.operations
        ),
    )
    if settings.control_enabled and isinstance(provider, SimulatedCloud):
        services.control = Control(
            db,
            clock,
            engine,
            provider,
            Defaults(settings.sim_faults, settings.sim_step_seconds, settings.sim_jitter),
            wake=lambda: services.wake(),
        )
        engine.before_run = services.control.refresh
        services.control.refresh()
    return services


def build_provider(settings: Settings, clock: Clock, db: Database) -> Provider:
    """The provider this process acts through (HPCPLANE_PROVIDER): the simulated cloud, or `local`."""
    if settings.provider == "local":
        from hpcplane.providers.local.provider import LocalProvider

        return LocalProvider.at(settings.home, settings.local_network, settings.local_prefix)
    return SimulatedCloud(
        clock,
        db=db,
        step_seconds=settings.sim_step_seconds,
        jitter=settings.sim_jitter,
        capacity=settings.sim_capacity,
        seed=settings.sim_seed,
        faults=parse_faults(settings.sim_faults),
        job_seconds=settings.sim_job_seconds,
        job_fail_rate=settings.sim_job_fail_rate,
    )


def build_limiter(settings: Settings) -> RateLimiter:
    """Token buckets in Redis when one is configured (shared by every API process), else in-process."""
    quotas = parse_quotas(settings.rate_limit, settings.rate_burst, settings.action_rate_limits)
    if quotas.unlimited:
        return Unlimited()
    if settings.redis_url:
        return RedisBuckets(settings.redis_url, settings.db_timeout, quotas)
    return LocalBuckets(quotas)
