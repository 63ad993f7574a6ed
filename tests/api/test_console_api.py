"""The console's HTTP side: sign-in, server-side sessions shared by API processes, CSRF, headers, audit."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hpcplane.store.tables import console_sessions
from tests.support.console import ConsoleClient, World, make_world
from tests.support.live import LiveServer


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, World]]:
    home = tmp_path_factory.mktemp("console-api")
    server = LiveServer(home, sim_step_seconds="0.05", sim_jitter="0").start()
    try:
        yield server, make_world(server, home)
    finally:
        server.stop()


def test_sign_in_checks_the_pair_and_sets_a_strict_httponly_cookie(site: tuple[LiveServer, World]) -> None:
    """Without the console header sign-in is refused (a cross-site form cannot send it); a wrong secret or
    an unknown key gets InvalidAccessKeyPair; the right pair gets an HttpOnly, SameSite=Strict cookie with
    an expiry, and the store keeps only the SHA-256 of the session id, never the secret."""
    server, world = site
    base = f"http://{server.endpoint}/console/api/session"
    pair = {"AccessKeyId": world.root["AccessKeyId"], "AccessKeySecret": world.root["AccessKeySecret"]}
    assert httpx.post(base, json=pair).json()["Code"] == "InvalidCsrfToken"
    console = ConsoleClient(server.endpoint)
    try:
        wrong = console.sign_in({**world.root, "AccessKeySecret": "x" * 30})
        assert (wrong.status_code, wrong.json()["Code"]) == (401, "InvalidAccessKeyPair")
        unknown = console.sign_in({**world.root, "AccessKeyId": "LTAInothere"})
        assert unknown.json()["Code"] == "InvalidAccessKeyPair"
        signed = console.sign_in(world.root)
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        for attribute in ("HttpOnly", "SameSite=strict", "Max-Age=28800", "Path=/"):
            assert attribute in cookie
        session_id = console.http.cookies["hpcplane_session"]
        with server.services.db.read() as conn:
            stored = list(conn.execute(select(console_sessions.c.id_hash, console_sessions.c.access_key_id)))
        assert (hashlib.sha256(session_id.encode()).hexdigest(), world.root["AccessKeyId"]) in stored
        files = [server.home / name for name in ("hpcplane.db", "hpcplane.db-wal")]
        raw = b"".join(path.read_bytes() for path in files if path.exists())
        assert session_id.encode() not in raw
        assert world.root["AccessKeySecret"].encode() not in raw
    finally:
        console.close()


def test_calls_need_the_csrf_token_and_are_audited(site: tuple[LiveServer, World]) -> None:
    """A call without the session's X-CSRF-Token is refused; with it, it runs through the API's pipeline
    and lands in the audit trail under the session's principal (a RAM user sees only its own records)."""
    server, world = site
    console = ConsoleClient(server.endpoint)
    user = ConsoleClient(server.endpoint)
    try:
        console.sign_in(world.root)
        forged = console.http.post("/console/api/call", json={"Action": "StopCluster", "Params": {}})
        assert (forged.status_code, forged.json()["Code"]) == (403, "InvalidCsrfToken")
        listed = console.call("ListNodes", ClusterId=world.mine)
        assert listed.status_code == 200
        request_id = listed.headers["x-acs-request-id"]
        assert listed.json()["RequestId"] == request_id
        user.sign_in(world.user)
        denied = user.call("DescribeCluster", ClusterId=world.other)
        assert (denied.status_code, denied.json()["Code"]) == (403, "NotAuthorized")

        def records(client: ConsoleClient) -> list[dict[str, str]]:
            found: list[dict[str, str]] = client.http.get("/console/api/audit").json()["Records"]
            return found

        def audited(
            client: ConsoleClient, found: Callable[[list[dict[str, str]]], bool]
        ) -> list[dict[str, str]]:
            """The client's view of the trail once `found` holds: the server writes audit records in
            batches, a moment after the call."""
            deadline = time.monotonic() + 30
            view = records(client)
            while not found(view) and time.monotonic() < deadline:
                time.sleep(0.1)
                view = records(client)
            return view

        root_view = audited(
            console,
            lambda v: any(r["RequestId"] == request_id and r["Action"] == "ehpc:ListNodes" for r in v),
        )
        assert any(r["RequestId"] == request_id and r["Action"] == "ehpc:ListNodes" for r in root_view)
        user_view = audited(user, lambda v: any(r["Decision"] == "Deny" for r in v))
        assert user_view
        assert {r["Principal"] for r in user_view} == {f"acs:ram::{world.root['AccountId']}:user/dana"}
        assert any(r["Decision"] == "Deny" and r["Action"] == "ehpc:DescribeCluster" for r in user_view)
    finally:
        console.close()
        user.close()


def test_sessions_are_shared_by_api_processes_and_end_with_sign_out_or_the_key(
    site: tuple[LiveServer, World], tmp_path: Path
) -> None:
    """A second API process on the same store honours the session; signing out on one ends it on both;
    a key disabled after sign-in ends its sessions at once."""
    server, world = site
    other = LiveServer(server.home, worker="false").start()
    console = ConsoleClient(server.endpoint)
    try:
        console.sign_in(world.root)
        cookie = {"hpcplane_session": console.http.cookies["hpcplane_session"]}
        headers = {"X-Hpcplane-Console": "1"}
        there = httpx.get(f"http://{other.endpoint}/console/api/session", cookies=cookie, headers=headers)
        assert there.status_code == 200
        assert there.json()["Csrf"] == console.csrf  # every process computes the same token
        assert (
            console.http.delete("/console/api/session", headers={"X-CSRF-Token": console.csrf}).status_code
            == 200
        )
        gone = httpx.get(f"http://{other.endpoint}/console/api/session", cookies=cookie, headers=headers)
        assert gone.json()["Code"] == "SessionRequired"

        key = json.loads(server.cli("keys", "create", "acme", "--json"))
        console.sign_in(key)
        assert console.call("ListClusters").status_code == 200
        server.cli("keys", "disable", key["AccessKeyId"])
        assert console.call("ListClusters").json()["Code"] == "SessionRequired"
    finally:
        console.close()
        other.stop()


def test_pages_carry_a_strict_content_security_policy(site: tuple[LiveServer, World]) -> None:
    """The page, its module and its styles are served with a CSP that allows only same-origin scripts and
    no inline code; the page itself holds no inline script; unknown static names are 404."""
    server, _ = site
    base = f"http://{server.endpoint}"
    page = httpx.get(f"{base}/console/")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text
    module = httpx.get(f"{base}/console/static/app.js")
    assert module.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in module.text
    assert httpx.get(f"{base}/console/static/../config.py").status_code == 404
    assert httpx.get(f"{base}/console", follow_redirects=False).headers["location"] == "/console/"
