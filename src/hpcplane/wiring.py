"""Services built from settings: the one place where the store, the caches and the use cases are wired."""

from __future__ import annotations

from dataclasses import dataclass

from hpcplane.api.authn import Authenticator, NonceStore
from hpcplane.authz import AccountKeysOnly, Authorizer
from hpcplane.clock import Clock, SystemClock
from hpcplane.config import Settings
from hpcplane.services.accounts import AccountService, StoreKeyDirectory
from hpcplane.services.tasks import TaskReader
from hpcplane.store import accounts as account_store
from hpcplane.store import migrate
from hpcplane.store.db import Database
from hpcplane.store.nonces import RedisNonces, SqlNonces
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

    def close(self) -> None:
        if isinstance(self.nonces, RedisNonces):
            self.nonces.close()
        self.db.dispose()


def open_database(settings: Settings) -> Database:
    return Database(
        settings.effective_database_url, timeout=settings.db_timeout, pool_size=settings.db_pool_size
    )


def check_secret_key(db: Database, box: SecretBox) -> None:
    """Keep a sealed check value in the store; refuse to run with a key that cannot open it."""
    with db.write() as conn:
        token = account_store.get_meta(conn, "secret_key_check")
        if token is None:
            account_store.set_meta(conn, "secret_key_check", box.check_token())
        else:
            box.verify(token)


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
    nonces: NonceStore = (
        RedisNonces(settings.redis_url, settings.db_timeout) if settings.redis_url else SqlNonces(db)
    )
    authenticator = Authenticator(
        StoreKeyDirectory(db, box),
        nonces,
        clock,
        skew=settings.timestamp_skew,
        nonce_ttl=settings.nonce_ttl,
    )
    return Services(
        settings=settings,
        db=db,
        box=box,
        clock=clock,
        nonces=nonces,
        authenticator=authenticator,
        authorizer=AccountKeysOnly(),
        accounts=AccountService(db, box, clock),
        task_reader=TaskReader(db, clock, archive_delay=settings.archive_delay),
    )
