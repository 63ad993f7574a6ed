"""Apply the Alembic migrations to a database, from `serve` at start and from `hpcplane migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc, text

from hpcplane.domain.errors import DbError
from hpcplane.store.db import Database

_MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    """The Alembic configuration, pointing at the migrations shipped in the package."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


# Any constant: processes migrating the same PostgreSQL database at once take turns on this lock.
_ADVISORY_LOCK = 0x68706370  # "hpcp"


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest); safe when several processes start at once."""
    config = alembic_config()
    try:
        with db.engine.connect() as conn:
            if db.is_sqlite:
                conn = conn.execution_options(hpcplane_sqlite_begin="IMMEDIATE")
            with conn.begin():
                if db.is_postgres:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
    except (exc.OperationalError, exc.InterfaceError) as error:
        raise DbError() from error


def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None when it has never been migrated."""
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of hpcplane."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
