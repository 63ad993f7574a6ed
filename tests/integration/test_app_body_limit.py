"""The application bounds the body itself, under any ASGI server (`serve`'s connection guard refuses
earlier still; tests/api/test_transport.py): driven in-process through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hpcplane.app import create_app
from hpcplane.config import Settings
from hpcplane.wiring import Services, build_services

LIMIT = 1000


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings(home=tmp_path, max_body_bytes=LIMIT, worker=False, demo=False))
    yield built
    built.close()


def post(services: Services, content: bytes | AsyncIterator[bytes]) -> httpx.Response:
    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(
                "/", content=content, headers={"content-type": "application/x-www-form-urlencoded"}
            )

    return asyncio.run(run())


def test_a_body_over_the_limit_is_refused_by_the_app(services: Services) -> None:
    """Content-Length past HPCPLANE_MAX_BODY_BYTES: 413 RequestEntityTooLarge, connection: close."""
    response = post(services, b"A=" + b"b" * LIMIT)
    assert response.status_code == 413
    assert response.json()["Code"] == "RequestEntityTooLarge"
    assert response.headers["connection"] == "close"


def test_a_chunked_body_is_counted_while_it_streams(services: Services) -> None:
    """Without Content-Length the app stops reading once the chunks pass the limit (it never asks for
    the rest of an endless body)."""
    asked = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal asked
        while asked < 10_000:
            asked += 1
            yield b"x" * 100

    response = post(services, endless())
    assert response.status_code == 413
    assert response.json()["Code"] == "RequestEntityTooLarge"
    assert asked < 10_000


def test_a_body_within_the_limit_reaches_the_pipeline(services: Services) -> None:
    """A body at the limit is read and judged: unsigned, so IncompleteSignature."""
    response = post(services, b"A=" + b"b" * (LIMIT - 2))
    assert response.status_code == 400
    assert response.json()["Code"] == "IncompleteSignature"


def test_an_absurd_content_length_is_refused_not_parsed(services: Services) -> None:
    """A 5,000-digit Content-Length (past Python's int() digit limit) is too large, not a crash."""

    async def run() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            request = client.build_request("POST", "/", content=b"A=b")
            request.headers["content-length"] = "9" * 5000
            return await client.send(request)

    response = asyncio.run(run())
    assert response.status_code == 413
    assert response.json()["Code"] == "RequestEntityTooLarge"
