"""The gateway's hot path in-process: load shedding when the writer's backlog is full."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcplane.api.gateway import Gateway
from hpcplane.api.protocol import RpcRequest, build_request
from hpcplane.config import Settings
from hpcplane.services.accounts import IssuedKey
from hpcplane.services.audit import AuditSink
from hpcplane.testing import sign_v1
from hpcplane.wiring import Services, build_services
from tests.integration.conftest import database_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Services]:
    url = database_url(request, request.param, tmp_path)
    built = build_services(Settings(home=tmp_path, database_url=url, worker=False, demo=False))
    yield built
    built.close()


def signed(key: IssuedKey, action: str, params: dict[str, str]) -> RpcRequest:
    path, _, query = sign_v1(action, params, key.access_key_id, key.access_key_secret).url_path.partition("?")
    return build_request(
        method="GET",
        path=path,
        raw_query=query.encode(),
        raw_headers=[(b"host", b"127.0.0.1")],
        body=b"",
        client_ip="127.0.0.1",
    )


def test_full_writer_backlog_sheds_calls_with_service_unavailable(services: Services) -> None:
    """With the audit writer's backlog full, a call is refused with ServiceUnavailable (503) before any
    work, and the refusal is still recorded; once the backlog drains, calls are answered again."""
    key = services.accounts.create_account("shed")
    services.audit.close()
    services.audit = AuditSink(services.db, clock=services.clock, max_backlog=0, interval=3600.0)
    gateway = Gateway(services)
    status, body, _ = gateway.handle(signed(key, "ListClusters", {}), "req-shed")
    assert (status, body["Code"]) == (503, "ServiceUnavailable")
    assert services.audit.backlog == 1
    services.audit.close()
    services.audit = AuditSink(services.db, clock=services.clock, interval=3600.0)
    status, body, _ = Gateway(services).handle(signed(key, "ListClusters", {}), "req-ok")
    assert status == 200, body
