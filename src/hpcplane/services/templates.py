"""Job templates: an account's named job descriptions (CreateJobTemplate ... DeleteJobTemplates)."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Any

from hpcplane.clock import Clock
from hpcplane.domain.accounts import Principal
from hpcplane.domain.errors import TemplateNotFound
from hpcplane.services.clusters_admin import enabled
from hpcplane.store import templates as store
from hpcplane.store.db import Database

_ID_ALPHABET = string.ascii_lowercase + string.digits


def template_id() -> str:
    """A TemplateId in E-HPC's shape: <n>.sched<suffix>."""
    return "0.sched" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


@dataclass(frozen=True, slots=True)
class TemplatePage:
    templates: list[dict[str, Any]]
    total: int


class TemplateService:
    """Creates, overwrites, deletes and lists the caller's account's job templates."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def create(self, who: Principal, fields: dict[str, Any]) -> str:
        new_id = template_id()
        now = self._clock.now()
        with self._db.write() as conn:
            enabled(conn, who)
            store.insert_template(
                conn,
                {**fields, "id": new_id, "account_id": who.account.id, "created_at": now, "updated_at": now},
            )
        return new_id

    def edit(self, who: Principal, ident: str, fields: dict[str, Any]) -> None:
        """EditJobTemplate replaces every field (one not given takes its default), as a new template would."""
        with self._db.write() as conn:
            enabled(conn, who)
            if not store.update_template(
                conn, who.account.id, ident, {**fields, "updated_at": self._clock.now()}
            ):
                raise TemplateNotFound()

    def delete(self, who: Principal, idents: list[str]) -> None:
        """Templates that do not exist (any more) are skipped, so a repeated delete succeeds."""
        with self._db.write() as conn:
            enabled(conn, who)
            store.delete_templates(conn, who.account.id, idents)

    def list(self, who: Principal, *, name: str | None, page_number: int, page_size: int) -> TemplatePage:
        with self._db.read() as conn:
            enabled(conn, who)
            rows, total = store.page(
                conn, who.account.id, name=name, offset=(page_number - 1) * page_size, limit=page_size
            )
        return TemplatePage(rows, total)
