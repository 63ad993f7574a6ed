"""RAM authorization and the audit trail end to end through the official SDKs (issue 4).

The Done-when scenario driven through the documented CLI, a sample of the policy table, denials,
malformed documents, what the audit trail records and what it must never record, and where
acs:SourceIp comes from; STS credentials (the CLI, the AssumeRole API, the RamRoleArn provider over
HTTPS) and their errors. One module, so that the sibling servers are started once per backend.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import re
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from hpcplane.cli import main as cli_main
from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import audit_log
from hpcplane.testing import SignedRequest, sign_v1, sign_v3
from tests.support import sdkclients
from tests.support.live import LiveServer
from tests.support.policies import Doc, allow, deny, document, trust
from tests.support.sdkclients import SDK_KINDS, SdkError

NOT_AUTHORIZED = "You are not authorized by RAM for this request."
REGION = "cn-hangzhou"
ERROR_FIELDS = {"RequestId", "HostId", "Code", "Message", "Recommend"}
Creds = Mapping[str, str]


# ------------------------------------------------------------------------------------------ helpers


def sdk(endpoint: str, kind: str, creds: Creds, action: str, **params: object) -> dict[str, object]:
    """Call through SDK `kind` with an AccessKey pair, and the SecurityToken when the creds carry one."""
    return sdkclients.call(
        kind,
        endpoint,
        creds["AccessKeyId"],
        creds["AccessKeySecret"],
        action,
        params,
        security_token=creds.get("SecurityToken"),
    )


def refused(
    endpoint: str, kind: str, creds: Creds, action: str, status: int, code: str, **params: object
) -> SdkError:
    """The call must fail with this status and code; the error body carries nothing else."""
    with pytest.raises(SdkError) as caught:
        sdk(endpoint, kind, creds, action, **params)
    error = caught.value
    assert (error.status, error.code) == (status, code), error
    assert error.data is not None
    assert set(error.data) == ERROR_FIELDS, error.data
    return error


def denied(endpoint: str, kind: str, creds: Creds, action: str, **params: object) -> SdkError:
    """The call must get NotAuthorized 407 with the seed's message."""
    error = refused(endpoint, kind, creds, action, 407, "NotAuthorized", **params)
    assert error.message == NOT_AUTHORIZED
    return error


def audit_rows(server: LiveServer, *args: str) -> list[dict[str, Any]]:
    """`hpcplane audit ARGS --json`, one record per line."""
    return [json.loads(line) for line in server.cli("audit", *args, "--json").splitlines() if line.strip()]


def wait_audit(server: LiveServer, request_ids: Sequence[str], *args: str) -> dict[str, dict[str, Any]]:
    """Poll `hpcplane audit ARGS --json` until every request id is there (records are written in batches)."""
    deadline = time.monotonic() + 5
    while True:
        found = {row["RequestId"]: row for row in audit_rows(server, *args)}
        missing = [rid for rid in request_ids if rid not in found]
        if not missing or time.monotonic() > deadline:
            assert not missing, f"not in the audit trail ({' '.join(args)}): {missing}"
            return found
        time.sleep(0.1)


def wait_log(server: LiveServer, request_id: str, event: str) -> dict[str, Any]:
    """The server's log record `event` of one request (polled: the server writes it after answering)."""
    deadline = time.monotonic() + 5
    while True:
        for record in server.log_records():
            if record.get("request_id") == request_id and record.get("event") == event:
                return record
        assert time.monotonic() < deadline, f"no {event!r} log record for {request_id}"
        time.sleep(0.1)


def sibling(server: LiveServer, **settings: str) -> LiveServer:
    """Another server process on the same home and database, with other settings (not yet started)."""
    return LiveServer(server.home, server.env.get("HPCPLANE_DATABASE_URL"), worker="false", **settings)


_HTTP = httpx.Client(timeout=15, trust_env=False)


@pytest.fixture(scope="module", autouse=True)
def _close_http_client() -> Iterator[None]:
    """Close the module's HTTP client after its last test."""
    yield
    _HTTP.close()


def send(endpoint: str, req: SignedRequest, headers: Mapping[str, str] | None = None) -> httpx.Response:
    return _HTTP.request(
        req.method,
        f"http://{endpoint}{req.url_path}",
        headers={**req.headers, **(headers or {})},
        content=req.body,
    )


# ------------------------------------------------------------------------------------------ world


@dataclass
class World:
    """One account with two running clusters on a live server, and quick ways to make RAM entities."""

    server: LiveServer
    files: Path
    account_id: str
    root: dict[str, str]
    a: str
    b: str
    serial: Iterator[int] = field(default_factory=itertools.count)

    def arn(self, cluster: str) -> str:
        return f"acs:ehpc:{REGION}:{self.account_id}:cluster/{cluster}"

    def role_arn(self, role: str) -> str:
        return f"acs:ram::{self.account_id}:role/{role.lower()}"

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{next(self.serial)}"

    def write(self, text: str) -> Path:
        path = self.files / f"{self.unique('doc')}.json"
        path.write_text(text)
        return path

    # In-process, through the same RamService the CLI drives (a CLI command costs ~70 ms).

    def policy(self, *statements: Doc) -> str:
        name = self.unique("policy")
        self.server.services.ram.create_policy(self.account_id, name, document(*statements))
        return name

    def attach(self, policy: str, kind: str, name: str) -> None:
        assert self.server.services.ram.attach(self.account_id, policy, kind, name)

    def principal(self, user: Mapping[str, str]) -> str:
        return f"acs:ram::{self.account_id}:user/{user['UserName']}"

    def user(self, *statements: Doc, name: str | None = None) -> dict[str, str]:
        """A new RAM user with an AccessKey, and a policy of these statements attached (if any)."""
        name = name or self.unique("user")
        services = self.server.services
        services.accounts.create_user(self.account_id, name)
        issued = services.accounts.create_key(self.account_id, name)
        if statements:
            services.ram.attach(self.account_id, self.policy(*statements), "user", name)
        return {
            "AccessKeyId": issued.access_key_id,
            "AccessKeySecret": issued.access_key_secret,
            "UserName": name,
        }

    def group(self, *statements: Doc, members: Sequence[str] = ()) -> str:
        name = self.unique("group")
        ram = self.server.services.ram
        ram.create_group(self.account_id, name)
        if statements:
            ram.attach(self.account_id, self.policy(*statements), "group", name)
        for member in members:
            ram.add_user_to_group(self.account_id, member, name)
        return name

    def role(
        self, *statements: Doc, trusted: Sequence[str] | None = None, trust_doc: str | None = None
    ) -> str:
        """A new role with these statements, trusting `trusted` (default: the account) or `trust_doc`."""
        name = self.unique("role")
        ram = self.server.services.ram
        principals = [f"acs:ram::{self.account_id}:root"] if trusted is None else trusted
        ram.create_role(self.account_id, name, trust_doc or trust(*principals))
        if statements:
            ram.attach(self.account_id, self.policy(*statements), "role", name)
        return self.role_arn(name)

    def assume(self, role_arn: str, *session: Doc, duration: int = 900, name: str = "cli") -> dict[str, str]:
        """`hpcplane sts assume-role ROLE_ARN --duration N [--policy FILE] --json`."""
        args = ["sts", "assume-role", role_arn, "--duration", str(duration), "--session-name", name, "--json"]
        if session:
            args += ["--policy", str(self.write(document(*session)))]
        creds: dict[str, str] = json.loads(self.server.cli(*args))
        return creds


@pytest.fixture(scope="module")
def world(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Account `ramco` with clusters A and B (ids differing before their last character)."""
    root = server.new_account("ramco")
    account_id = root["AccountId"]
    services = server.services

    def cluster(name: str) -> str:
        return seed_cluster(services.db, services.clock, account_id=account_id, region=REGION, name=name)

    a = cluster("alpha")
    b = cluster("beta")
    while b[:-1] == a[:-1]:
        b = cluster("beta")
    return World(server, tmp_path_factory.mktemp("ram-docs"), account_id, root, a, b)


# ------------------------------------------------------------------------------------------ Done-when


@dataclass
class Expected:
    """What one call must have left in the audit trail."""

    request_id: str
    action: str
    decision: str
    code: str | None
    principal_suffix: str | None  # None: refused before the signer was known
    resource: str | None


def test_done_when_as_a_new_user_would(server: LiveServer, world: World, later: LiveServer) -> None:
    """The issue's Done-when, literally, through the CLI and all four SDK kinds, ending in the audit trail."""
    acct, a, b = world.account_id, world.a, world.b
    cli = server.cli
    expected: list[Expected] = []

    def resource(action: str, cluster: object) -> str:
        return "*" if action == "ListTasks" else world.arn(str(cluster))

    def ok(kind: str, creds: Creds, action: str, who: str, **params: object) -> dict[str, object]:
        body = sdk(server.endpoint, kind, creds, action, **params)
        where = resource(action, params["ClusterId"])
        expected.append(Expected(str(body["RequestId"]), f"ehpc:{action}", "Allow", None, who, where))
        return body

    def no(kind: str, creds: Creds, action: str, who: str, **params: object) -> None:
        error = denied(server.endpoint, kind, creds, action, **params)
        assert error.request_id is not None
        where = resource(action, params["ClusterId"])
        expected.append(Expected(error.request_id, f"ehpc:{action}", "Deny", "NotAuthorized", who, where))

    # A RAM user allowed ehpc:Describe* on cluster A's ARN.
    assert cli("ram", "create-user", acct, "dana").startswith("UserId: ")
    dana: dict[str, str] = json.loads(cli("keys", "create", "ramco", "--user", "dana", "--json"))
    assert dana["UserName"] == "dana"
    assert dana["AccountId"] == acct
    describe_a = world.write(document(allow(Action="ehpc:Describe*", Resource=world.arn(a))))
    assert cli("ram", "create-policy", acct, "describe-a", "--document", str(describe_a)).startswith(
        "PolicyId: "
    )
    assert "attached to user dana" in cli("ram", "attach-policy", acct, "describe-a", "--user", "dana")
    user = ":user/dana"
    for kind in SDK_KINDS:
        body = ok(kind, dana, "DescribeCluster", user, ClusterId=a)
        assert isinstance(body["ClusterInfo"], dict)
        assert body["ClusterInfo"]["Id"] == a
        no(kind, dana, "DescribeCluster", user, ClusterId=b)
        no(kind, dana, "ListTasks", user, ClusterId=a)

    # ehpc:List* on cluster A's ARN only does not grant ListTasks (an "All Resources" action) ...
    list_on_a = world.write(document(allow(Action="ehpc:List*", Resource=world.arn(a))))
    cli("ram", "create-policy", "ramco", "list-on-a", "--document", str(list_on_a))
    cli("ram", "attach-policy", "ramco", "list-on-a", "--user", "dana")
    for kind in SDK_KINDS:
        no(kind, dana, "ListTasks", user, ClusterId=a)

    # ... ehpc:List* on "*" does.
    list_all = world.write(document(allow(Action="ehpc:List*", Resource="*")))
    cli("ram", "create-policy", acct, "list-all", "--document", str(list_all))
    cli("ram", "attach-policy", acct, "list-all", "--user", "dana")
    for kind in SDK_KINDS:
        body = ok(kind, dana, "ListTasks", user, ClusterId=a)
        assert body["TotalCount"] == 0

    # A Deny on requests from 127.0.0.1, attached through a group, blocks it.
    deny_local = world.write(
        document(deny(Action="ehpc:*", Condition={"IpAddress": {"acs:SourceIp": "127.0.0.1"}}))
    )
    cli("ram", "create-policy", acct, "deny-local", "--document", str(deny_local))
    assert cli("ram", "create-group", acct, "lockdown").startswith("GroupId: ")
    cli("ram", "attach-policy", acct, "deny-local", "--group", "lockdown")
    assert "dana added to lockdown" in cli("ram", "add-user-to-group", acct, "dana", "lockdown")
    for kind in SDK_KINDS:
        no(kind, dana, "ListTasks", user, ClusterId=a)
        no(kind, dana, "DescribeCluster", user, ClusterId=a)
    assert "detached from group lockdown" in cli(
        "ram", "detach-policy", acct, "deny-local", "--group", "lockdown"
    )
    ok("tea-v3", dana, "ListTasks", user, ClusterId=a)

    # An STS credential made from a role works through both SDKs until it expires.
    trust_file = world.write(trust(f"acs:ram::{acct}:root"))
    assert cli("ram", "create-role", acct, "CiReader", "--trust", str(trust_file)).strip() == (
        f"Arn: acs:ram::{acct}:role/cireader"
    )
    reader = world.write(
        document(
            allow(Action="ehpc:Describe*", Resource=world.arn(a)),
            allow(Action="ehpc:List*", Resource="*"),
        )
    )
    cli("ram", "create-policy", acct, "reader", "--document", str(reader))
    assert "attached to role CiReader" in cli("ram", "attach-policy", acct, "reader", "--role", "CiReader")
    before = datetime.now(UTC).replace(microsecond=0)
    out = cli("sts", "assume-role", f"acs:ram::{acct}:role/cireader", "--duration", "900",
              "--session-name", "done-when", "--json")  # fmt: skip
    session: dict[str, str] = json.loads(out)
    assert set(session) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    expires = datetime.strptime(session["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 890 <= (expires - before).total_seconds() <= 910
    role_who = ":assumed-role/CiReader/done-when"
    for kind in SDK_KINDS:
        body = ok(kind, session, "DescribeCluster", role_who, ClusterId=a)
        assert isinstance(body["ClusterInfo"], dict)
        assert body["ClusterInfo"]["Id"] == a
        ok(kind, session, "ListTasks", role_who, ClusterId=a)
        no(kind, session, "DescribeCluster", role_who, ClusterId=b)
    # Past its expiry (a server whose clock is 1000 s ahead, on the same store) it is refused.
    for kind in SDK_KINDS:
        error = refused(
            later.endpoint, kind, session, "ListTasks", 400, "InvalidSecurityToken.Expired", ClusterId=a
        )
        assert error.message == "Specified SecurityToken is expired."
        assert error.request_id is not None
        expired = Expected(
            error.request_id, "ehpc:ListTasks", "Refused", "InvalidSecurityToken.Expired", None, None
        )
        expected.append(expired)

    # The audit trail shows each of those calls, with its decision and error code.
    rows = wait_audit(server, [e.request_id for e in expected], "search", "--since", "1h", "--limit", "1000")
    for item in expected:
        row = rows[item.request_id]
        assert (row["Action"], row["Decision"], row["ErrorCode"]) == (item.action, item.decision, item.code)
        assert row["SourceIp"] == "127.0.0.1"
        assert row["Resource"] == item.resource
        if item.principal_suffix is None:  # refused before it was known who signed
            assert (row["Principal"], row["AccountId"]) == (None, None)
        else:
            assert row["Principal"] == f"acs:ram::{acct}{item.principal_suffix}"
            assert row["AccountId"] == acct
    # search filters: dana's DescribeCluster calls, allowed and denied, and nothing else.
    dana_describe = audit_rows(server, "search", "--principal", "dana", "--action", "ehpc:DescribeCluster")
    mine = {
        e.request_id for e in expected if e.principal_suffix == user and e.action == "ehpc:DescribeCluster"
    }
    assert {row["RequestId"] for row in dana_describe} == mine
    assert {row["Decision"] for row in dana_describe} == {"Allow", "Deny"}
    text = server.cli("audit", "search", "--action", "ehpc:ListTasks", "--since", "1h", "-n", "1000")
    for item in expected:
        if item.code == "InvalidSecurityToken.Expired":
            line = next(line for line in text.splitlines() if item.request_id in line)
            assert "Refused" in line
            assert "InvalidSecurityToken.Expired" in line
    # tail: the newest calls, oldest first.
    last = ok("tea-v1", dana, "ListTasks", user, ClusterId=a)
    deadline = time.monotonic() + 5
    while (tail := audit_rows(server, "tail", "-n", "3"))[-1]["RequestId"] != last["RequestId"]:
        assert time.monotonic() < deadline, tail
        time.sleep(0.1)
    assert len(tail) == 3
    newest = server.cli("audit", "tail", "-n", "1")
    assert str(last["RequestId"]) in newest
    assert " Allow " in newest


# ------------------------------------------------------------------------------------------ siblings


@dataclass(frozen=True)
class Tls:
    """A private CA and a certificate it signed for 127.0.0.1 (PEM files)."""

    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path) -> Tls:
    """A CA and a server certificate for IP 127.0.0.1, made with `cryptography`."""

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hpcplane test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    tls = Tls(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    tls.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    tls.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tls.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tls


class HttpsServer(LiveServer):
    """A LiveServer serving HTTPS (HPCPLANE_SSL_CERTFILE and _KEYFILE); ready once /healthz answers."""

    def __init__(self, base: LiveServer, tls: Tls) -> None:
        super().__init__(
            base.home,
            base.env.get("HPCPLANE_DATABASE_URL"),
            worker="false",
            ssl_certfile=str(tls.cert),
            ssl_keyfile=str(tls.key),
        )
        self.tls = tls

    def start(self, timeout: float = 30.0) -> HttpsServer:

        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hpcplane", "serve"],
                env={**env, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = httpx.get(f"https://{self.endpoint}/healthz", verify=context, timeout=1)
                if response.status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")


@dataclass
class Siblings:
    """Servers sharing the module server's store, each with one setting changed."""

    later: LiveServer  # clock 1000 s ahead (skew widened to 3600 s), and 127.0.0.1 a trusted proxy
    https: HttpsServer  # TLS with a private CA


@pytest.fixture(scope="module")
def siblings(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Siblings]:
    """Start (and stop) the sibling servers at once: each start costs seconds of imports.

    One server serves both the clock jump and the trusted proxy: neither setting affects the other's
    tests (permanent keys pass the widened skew; the STS calls carry no X-Forwarded-For).
    """
    tls = make_tls(tmp_path_factory.mktemp("tls"))
    made = Siblings(
        later=sibling(server, clock_offset="1000", timestamp_skew="3600", trusted_proxies="127.0.0.1"),
        https=HttpsServer(server, tls),
    )
    servers: list[LiveServer] = [made.later, made.https]
    with ThreadPoolExecutor(len(servers)) as pool:
        try:
            for future in [pool.submit(live.start) for live in servers]:
                future.result()
            yield made
        finally:
            for stopping in [pool.submit(live.stop) for live in servers]:
                stopping.result()


@pytest.fixture(scope="module")
def later(siblings: Siblings) -> LiveServer:
    """A server on the same store whose clock is 1000 s ahead (signing skew widened to 3600 s to match)."""
    return siblings.later


# ------------------------------------------------------------------------------------------ the policy table


D, L = "DescribeCluster", "ListTasks"
A_ARN = "acs:ehpc:cn-hangzhou:{acct}:cluster/{a}"


@dataclass(frozen=True)
class Case:
    """A policy-table case checked end to end: the statements, who holds them, the calls they decide."""

    statements: tuple[Doc, ...]
    checks: tuple[tuple[str, str, bool], ...]  # (API, cluster "a" | "b", allowed)
    via: str = "user"  # user | group (a group the user is in) | role (an STS session of the role)
    group: tuple[Doc, ...] = ()  # via user: statements of a group the user is also in
    session: tuple[Doc, ...] = ()  # via role: the session policy of `sts assume-role --policy`


def _if(operator: str, key: str, value: object) -> Doc:
    return allow(Condition={operator: {key: value}})


CASES: dict[str, Case] = {
    "action-question-wildcard": Case(
        (allow(Action="ehpc:Describe?luster"),), ((D, "a", True), (L, "a", False))
    ),
    "action-case-insensitive": Case(
        (allow(Action="EHPC:describecluster", Resource=A_ARN),), ((D, "a", True), (D, "b", False))
    ),
    "resource-segment-wildcards": Case(
        (allow(Action="ehpc:*", Resource="acs:ehpc:*:{acct}:cluster/*"),),
        ((D, "a", True), (D, "b", True), (L, "a", False)),
    ),
    "resource-question-wildcard": Case(
        (allow(Action="ehpc:DescribeCluster", Resource="acs:ehpc:cn-hangzhou:{acct}:cluster/{a?}"),),
        ((D, "a", True), (D, "b", False)),
    ),
    "resource-other-account": Case(
        (allow(Resource="acs:ehpc:cn-hangzhou:1111111111111111:cluster/{a}"),), ((D, "a", False),)
    ),
    "resource-other-region": Case(
        (allow(Resource="acs:ehpc:cn-beijing:{acct}:cluster/{a}"),), ((D, "a", False),)
    ),
    "notaction": Case(
        ({"Effect": "Allow", "NotAction": "ehpc:Describe*", "Resource": "*"},),
        ((D, "a", False), (L, "a", True)),
    ),
    "notresource": Case(
        ({"Effect": "Allow", "Action": "ehpc:*", "NotResource": A_ARN},),
        ((D, "a", False), (D, "b", True), (L, "a", True)),
    ),
    "stringlike-sourceip": Case((_if("StringLike", "acs:SourceIp", "127.0.0.*"),), ((L, "a", True),)),
    "stringlike-sourceip-miss": Case((_if("StringLike", "acs:SourceIp", "10.*"),), ((L, "a", False),)),
    "stringnotlike-sourceip": Case(
        (_if("StringNotLike", "acs:SourceIp", ["10.*", "127.?.0.1"]),), ((L, "a", False),)
    ),
    "stringequals-securetransport-as-text": Case(
        (_if("StringEquals", "acs:SecureTransport", "false"),), ((L, "a", True),)
    ),
    "condition-key-case-insensitive": Case(
        (_if("StringNotEquals", "ACS:sourceip", "127.0.0.1"),), ((L, "a", False),)
    ),
    "date-less-than-past": Case(
        (_if("DateLessThan", "acs:CurrentTime", "2020-01-01T00:00:00Z"),), ((L, "a", False),)
    ),
    "date-less-than-future-zoned": Case(
        (_if("DateLessThan", "acs:CurrentTime", "2999-12-31T23:59:59+08:00"),), ((L, "a", True),)
    ),
    "date-greater-than-equals": Case(
        (_if("DateGreaterThanEquals", "acs:CurrentTime", "2019-08-12T17:00:00+08:00"),), ((D, "a", True),)
    ),
    "bool-securetransport-true-over-http": Case(
        (_if("Bool", "acs:SecureTransport", "true"),), ((L, "a", False),)
    ),
    "bool-securetransport-false-over-http": Case(
        (_if("Bool", "acs:SecureTransport", False),), ((L, "a", True),)
    ),
    "bool-mfa-not-present": Case((_if("Bool", "acs:MFAPresent", "true"),), ((L, "a", False),)),
    "ipaddress-cidr": Case((_if("IpAddress", "acs:SourceIp", "127.0.0.0/8"),), ((L, "a", True),)),
    "notipaddress-elsewhere": Case(
        (_if("NotIpAddress", "acs:SourceIp", ["10.0.0.0/8", "192.168.0.0/16"]),), ((L, "a", True),)
    ),
    "notipaddress-local": Case(
        (_if("NotIpAddress", "acs:SourceIp", ["10.0.0.0/8", "127.0.0.1"]),), ((L, "a", False),)
    ),
    "ifexists-missing-key": Case((_if("StringEqualsIfExists", "acs:SourceVpc", "vpc-1"),), ((L, "a", True),)),
    "ifexists-present-key-checked": Case(
        (_if("IpAddressIfExists", "acs:SourceIp", "10.0.0.0/8"),), ((L, "a", False),)
    ),
    "missing-key-positive-operator": Case(
        (_if("StringEquals", "acs:SourceVpc", "vpc-1"),), ((L, "a", False),)
    ),
    "missing-key-negated-operator": Case(
        (_if("StringNotEquals", "acs:SourceVpc", "vpc-1"),), ((L, "a", True),)
    ),
    "numeric-ifexists-missing-key": Case(
        (_if("NumericLessThanIfExists", "acs:Level", 5),), ((L, "a", True),)
    ),
    "operators-anded": Case(
        (
            allow(
                Condition={
                    "IpAddress": {"acs:SourceIp": "127.0.0.1"},
                    "Bool": {"acs:SecureTransport": "true"},
                }
            ),
        ),
        ((L, "a", False),),
    ),
    "values-ored": Case((_if("StringEquals", "acs:SourceIp", ["10.1.1.1", "127.0.0.1"]),), ((L, "a", True),)),
    "deny-over-allow": Case((allow(), deny(Action="ehpc:ListTasks")), ((L, "a", False), (D, "a", True))),
    "deny-condition-not-met": Case(
        (allow(), deny(Condition={"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}})), ((L, "a", True),)
    ),
    "deny-notaction": Case(
        (allow(), {"Effect": "Deny", "NotAction": "ehpc:List*", "Resource": "*"}),
        ((D, "a", False), (L, "a", True)),
    ),
    "no-statement-implicit-deny": Case((), ((L, "a", False), (D, "a", False))),
    "group-policy": Case(
        (allow(Action="ehpc:Describe*", Resource=A_ARN),), ((D, "a", True), (D, "b", False)), via="group"
    ),
    "group-deny-beats-user-allow": Case(
        (allow(),), ((L, "a", False), (D, "a", True)), group=(deny(Action="ehpc:ListTasks"),)
    ),
    "role-policy": Case(
        (allow(Action="ehpc:Describe*", Resource=A_ARN),),
        ((D, "a", True), (D, "b", False), (L, "a", False)),
        via="role",
    ),
    "role-session-policy-narrows": Case(
        (allow(Action="ehpc:*"),),
        ((D, "a", False), (L, "a", True)),
        via="role",
        session=(allow(Action="ehpc:ListTasks"),),
    ),
    "role-session-policy-cannot-widen": Case(
        (allow(Action="ehpc:ListTasks"),), ((D, "a", False), (L, "a", True)), via="role", session=(allow(),)
    ),
    "role-session-policy-deny": Case(
        (allow(Action="ehpc:*"),),
        ((D, "a", False), (L, "a", True)),
        via="role",
        session=(allow(), deny(Action="ehpc:Describe*")),
    ),
}


def _fill(world: World, statements: tuple[Doc, ...]) -> list[Doc]:
    text = json.dumps(list(statements))
    for name, value in (
        ("{a?}", world.a[:-1] + "?"),
        ("{a}", world.a),
        ("{b}", world.b),
        ("{acct}", world.account_id),
    ):
        text = text.replace(name, value)
    filled: list[Doc] = json.loads(text)
    return filled


@pytest.mark.parametrize("name", list(CASES))
def test_policy_table_end_to_end(server: LiveServer, world: World, name: str) -> None:
    """A case of the policy table, decided by the live server for calls through an official SDK."""
    case = CASES[name]
    kind = SDK_KINDS[list(CASES).index(name) % len(SDK_KINDS)]
    statements = _fill(world, case.statements)
    outsider: dict[str, str] | None = None
    if case.via == "role":
        creds: Creds = world.assume(world.role(*statements), *_fill(world, case.session))
    elif case.via == "group":
        member = world.user()
        world.group(*statements, members=[member["UserName"]])
        creds, outsider = member, world.user()
    else:
        user = world.user(*statements)
        if case.group:
            world.group(*_fill(world, case.group), members=[user["UserName"]])
        creds = user
    for action, target, allowed in case.checks:
        cluster = world.a if target == "a" else world.b
        if allowed:
            body = sdk(server.endpoint, kind, creds, action, ClusterId=cluster)
            assert body["RequestId"]
            if outsider is not None:  # the group's policy is not the user's own
                denied(server.endpoint, kind, outsider, action, ClusterId=cluster)
        else:
            denied(server.endpoint, kind, creds, action, ClusterId=cluster)


def test_account_keys_are_always_allowed(server: LiveServer, world: World) -> None:
    """The account's own AccessKey needs no policy, whatever Deny statements exist for its users."""
    world.group(deny())  # a Deny-everything group; the account is nobody's member
    for kind in SDK_KINDS:
        assert sdk(server.endpoint, kind, world.root, "ListTasks", ClusterId=world.a)["TotalCount"] == 0
        body = sdk(server.endpoint, kind, world.root, "DescribeCluster", ClusterId=world.b)
        assert isinstance(body["ClusterInfo"], dict)
        assert body["ClusterInfo"]["Id"] == world.b


def test_denied_call_changes_nothing_and_the_log_names_the_statement(
    server: LiveServer, world: World
) -> None:
    """A denied StopCluster changes nothing; the log names the deciding Deny, or says no statement allowed."""
    user = world.user(allow(Action="ehpc:Describe*"))
    deny_stop = world.policy(
        allow(Action="ehpc:ListNodes"), deny(Action="ehpc:Stop*", Resource=world.arn(world.a))
    )
    group = world.group(members=[user["UserName"]])
    server.services.ram.attach(world.account_id, deny_stop, "group", group)
    user_arn = f"acs:ram::{world.account_id}:user/{user['UserName']}"

    error = denied(server.endpoint, "tea-v3", user, "StopCluster", ClusterId=world.a)
    assert error.request_id is not None
    record = wait_log(server, error.request_id, "denied")
    assert record["reason"] == f"ExplicitDeny: {deny_stop} Statement[1]"
    assert (record["principal"], record["ram_action"], record["resource"]) == (
        user_arn,
        "ehpc:StopCluster",
        world.arn(world.a),
    )
    error = denied(server.endpoint, "legacy", user, "ListTasks", ClusterId=world.a)
    assert error.request_id is not None
    record = wait_log(server, error.request_id, "denied")
    assert record["reason"] == "ImplicitDeny: no statement allows it"
    assert (record["ram_action"], record["resource"]) == ("ehpc:ListTasks", "*")

    # Nothing changed: the cluster still runs and no task was created.
    body = sdk(server.endpoint, "tea-v3", world.root, "DescribeCluster", ClusterId=world.a)
    assert isinstance(body["ClusterInfo"], dict)
    assert body["ClusterInfo"]["Status"] == "running"
    assert sdk(server.endpoint, "tea-v3", world.root, "ListTasks", ClusterId=world.a)["TotalCount"] == 0


# -------------------------------------------------------------------------------------- malformed documents

_GOOD = {"Effect": "Allow", "Action": "ehpc:ListTasks", "Resource": "*"}
MALFORMED: dict[str, tuple[str, str]] = {
    "json-syntax": (
        '{"Version": "1",\n "Statement": [\n  {"Effect": "Allow" "Action": "*", "Resource": "*"}]}',
        "at line 3, column 22: invalid JSON",
    ),
    "version": (json.dumps({"Version": "2012-10-17", "Statement": [_GOOD]}), "at Version:"),
    "effect": (
        json.dumps({"Version": "1", "Statement": [_GOOD, {**_GOOD, "Effect": "Permit"}]}),
        "at Statement[1].Effect:",
    ),
    "action-and-notaction": (
        json.dumps({"Version": "1", "Statement": [{**_GOOD, "NotAction": "ehpc:Stop*"}]}),
        "at Statement[0].NotAction:",
    ),
    "action-without-service": (
        json.dumps({"Version": "1", "Statement": [{**_GOOD, "Action": ["ehpc:ListTasks", "ListTasks"]}]}),
        "at Statement[0].Action[1]:",
    ),
    "unknown-element": (
        json.dumps({"Version": "1", "Statement": [{**_GOOD, "Resources": "*"}]}),
        "at Statement[0].Resources:",
    ),
    "unknown-operator": (
        json.dumps(
            {"Version": "1", "Statement": [{**_GOOD, "Condition": {"StringEqualz": {"acs:SourceIp": "x"}}}]}
        ),
        "at Statement[0].Condition.StringEqualz:",
    ),
    "bad-address-in-list": (
        json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {**_GOOD, "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.1", "300.1.1.1"]}}}
                ],
            }
        ),
        "at Statement[0].Condition.IpAddress.acs:SourceIp[1]:",
    ),
    "bad-date": (
        json.dumps(
            {
                "Version": "1",
                "Statement": [{**_GOOD, "Condition": {"DateLessThan": {"acs:CurrentTime": "soon"}}}],
            }
        ),
        "at Statement[0].Condition.DateLessThan.acs:CurrentTime:",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_create_policy_refuses_a_malformed_document(server: LiveServer, world: World, case: str) -> None:
    """`hpcplane ram create-policy` refuses a malformed document with its position, and creates nothing."""

    text, position = MALFORMED[case]
    name = world.unique("malformed")
    path = world.write(text)
    result = CliRunner().invoke(
        cli_main, ["ram", "create-policy", world.account_id, name, "--document", str(path)], env=server.env
    )
    assert result.exit_code == 1, result.output
    assert f"Error: policy {name!r} is malformed {position}" in result.output
    user = world.user()
    refused_attach = CliRunner().invoke(
        cli_main, ["ram", "attach-policy", world.account_id, name, "--user", user["UserName"]], env=server.env
    )
    assert refused_attach.exit_code == 1
    assert f"has no policy {name!r}" in refused_attach.output


def test_create_policy_process_exits_nonzero_with_the_position(tmp_path: Path) -> None:
    """The real `python -m hpcplane ram create-policy` process: exit 1, the position on stderr."""

    env = {k: v for k, v in os.environ.items() if not k.startswith("HPCPLANE_")}
    env["HPCPLANE_HOME"] = str(tmp_path / "home")
    made = CliRunner().invoke(
        cli_main, ["accounts", "create", "solo"], env={"HPCPLANE_HOME": env["HPCPLANE_HOME"]}
    )
    assert made.exit_code == 0, made.output
    cases = {name: MALFORMED[name] for name in ("json-syntax", "bad-address-in-list")}
    processes = {}
    for name, (text, _) in cases.items():
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", "hpcplane", "ram", "create-policy", "solo", name, "--document", str(path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        assert process.returncode == 1, (out, err)
        assert out == ""
        assert "Traceback" not in err
        assert err.startswith(f"Error: policy {name!r} is malformed {cases[name][1]}"), err


# ------------------------------------------------------------------------------------------ the audit trail


def test_audit_trail_never_records_secrets_signatures_or_tokens(server: LiveServer, world: World) -> None:
    """After allowed, denied and refused calls, no audit_log row holds a secret, a Signature or a token."""

    user = world.user(allow(Action="ehpc:List*"))
    session = world.assume(world.role(allow(Action="ehpc:List*")))
    token = session["SecurityToken"]
    params = {"ClusterId": world.a}
    signatures: list[str] = []
    request_ids: list[str] = []

    def v1(key: Creds, secret: str, extra: Mapping[str, str], status: int) -> None:
        req = sign_v1("ListTasks", {**params, **extra}, key["AccessKeyId"], secret)
        signatures.append(dict(parse_qsl(urlsplit(req.url_path).query))["Signature"])
        response = send(server.endpoint, req)
        assert response.status_code == status, response.text
        request_ids.append(response.headers["x-acs-request-id"])

    def v3(key: Creds, extra: Mapping[str, str], action: str, status: int) -> None:
        req = sign_v3(
            action,
            params,
            key["AccessKeyId"],
            key["AccessKeySecret"],
            host=server.endpoint,
            extra_headers=extra,
        )
        signatures.append(req.headers["authorization"].rsplit("Signature=", 1)[1])
        response = send(server.endpoint, req)
        assert response.status_code == status, response.text
        request_ids.append(response.headers["x-acs-request-id"])

    v1(user, user["AccessKeySecret"], {}, 200)  # allowed
    v3(user, {}, "DescribeCluster", 407)  # denied
    v1(user, "not-the-secret", {}, 400)  # SignatureDoesNotMatch
    v1(session, session["AccessKeySecret"], {"SecurityToken": token}, 200)  # STS, V1
    v3(session, {"x-acs-security-token": token}, "ListTasks", 200)  # STS, V3
    v3(session, {"x-acs-security-token": token}, "DescribeCluster", 407)  # STS, denied
    v1(session, session["AccessKeySecret"], {}, 400)  # MissingSecurityToken
    for kind in SDK_KINDS:
        body = sdk(server.endpoint, kind, session, "ListTasks", ClusterId=world.a)
        request_ids.append(str(body["RequestId"]))

    wait_audit(server, request_ids, "tail", "-n", "200")
    with server.services.db.read() as conn:
        rows = [tuple(row) for row in conn.execute(select(audit_log))]
    blob = "\n".join(repr(row) for row in rows)
    assert user["AccessKeyId"] in blob  # the trail does name the keys
    assert session["AccessKeyId"] in blob
    hidden = {
        "the user's AccessKeySecret": user["AccessKeySecret"],
        "the STS AccessKeySecret": session["AccessKeySecret"],
        "the SecurityToken": token,
        "the SecurityToken's random part": token.rsplit(".", 1)[1],
        **{f"signature {n}": signature for n, signature in enumerate(signatures)},
        **{
            f"signature {n}, URL-encoded": quote(signature, safe="") for n, signature in enumerate(signatures)
        },
    }
    for what, value in hidden.items():
        assert value not in blob, f"{what} is in the audit trail"
    log = server.log()
    for what in ("the user's AccessKeySecret", "the STS AccessKeySecret"):
        assert hidden[what] not in log, f"{what} is in the server log"


# ------------------------------------------------------------------------------------------ acs:SourceIp


def _source_ip_calls(
    server: LiveServer, world: World, calls: Sequence[tuple[LiveServer, str | None, int, str]]
) -> None:
    """Each (server, X-Forwarded-For, status, acs:SourceIp): a user denied from 127.0.0.1 by its group."""
    user = world.user(allow(Action="ehpc:ListTasks"))
    world.group(deny(Condition={"IpAddress": {"acs:SourceIp": "127.0.0.1"}}), members=[user["UserName"]])
    expected: dict[str, tuple[str, str]] = {}
    for live, forwarded, status, source in calls:
        req = sign_v1("ListTasks", {"ClusterId": world.a}, user["AccessKeyId"], user["AccessKeySecret"])
        response = send(live.endpoint, req, {"X-Forwarded-For": forwarded} if forwarded else None)
        assert response.status_code == status, (live.endpoint, forwarded, response.text)
        if status == 407:
            assert response.json()["Code"] == "NotAuthorized"
        expected[response.headers["x-acs-request-id"]] = (source, "Allow" if status == 200 else "Deny")
    rows = wait_audit(server, list(expected), "search", "--principal", user["UserName"])
    for request_id, (source, decision) in expected.items():
        assert (rows[request_id]["SourceIp"], rows[request_id]["Decision"]) == (source, decision)


def test_source_ip_is_the_tcp_peer_not_x_forwarded_for(server: LiveServer, world: World) -> None:
    """With no trusted proxy, X-Forwarded-For is ignored: the IpAddress 127.0.0.1 Deny still applies."""
    _source_ip_calls(
        server,
        world,
        [
            (server, "10.9.9.9", 407, "127.0.0.1"),
            (server, "10.9.9.9, 10.8.8.8", 407, "127.0.0.1"),
            (server, None, 407, "127.0.0.1"),
        ],
    )


def test_source_ip_behind_a_trusted_proxy_is_the_forwarded_address(
    server: LiveServer, world: World, siblings: Siblings
) -> None:
    """With HPCPLANE_TRUSTED_PROXIES=127.0.0.1 the nearest untrusted X-Forwarded-For hop is acs:SourceIp."""
    proxied = siblings.later
    _source_ip_calls(
        server,
        world,
        [
            (proxied, "10.9.9.9", 200, "10.9.9.9"),
            (proxied, "10.9.9.9, 127.0.0.1", 200, "10.9.9.9"),  # 127.0.0.1 is a proxy hop: skipped
            (proxied, None, 407, "127.0.0.1"),  # no header: the peer itself
        ],
    )


# ------------------------------------------------------------------------------------------ STS


def test_security_token_errors_through_every_sdk(server: LiveServer, world: World, later: LiveServer) -> None:
    """No token, a malformed one, another credential's, a token on a permanent key, an expired one."""
    role = world.role(allow(Action="ehpc:List*"))
    first, second = world.assume(role), world.assume(role)
    user = world.user(allow(Action="ehpc:List*"))
    no_token = {k: v for k, v in first.items() if k != "SecurityToken"}
    cases = [
        (no_token, "MissingSecurityToken", "SecurityToken is mandatory for this action."),
        ({**first, "SecurityToken": "not-a-token"}, "InvalidSecurityToken.Malformed", None),
        (
            {**first, "SecurityToken": second["SecurityToken"]},
            "InvalidSecurityToken.MismatchWithAccessKey",
            None,
        ),
        (
            {**user, "SecurityToken": first["SecurityToken"]},
            "InvalidSecurityToken.MismatchWithAccessKey",
            None,
        ),
    ]
    for kind in SDK_KINDS:
        for creds, code, message in cases:
            error = refused(server.endpoint, kind, creds, "ListTasks", 400, code, ClusterId=world.a)
            if message is not None:
                assert error.message == message
        # the genuine pairs still work, until they expire
        for creds in (first, second):
            assert sdk(server.endpoint, kind, creds, "ListTasks", ClusterId=world.a)["TotalCount"] == 0
            refused(
                later.endpoint,
                kind,
                creds,
                "ListTasks",
                400,
                "InvalidSecurityToken.Expired",
                ClusterId=world.a,
            )


@dataclass(frozen=True)
class StsWorld:
    """Callers and roles for AssumeRole through the API."""

    assumer: dict[str, str]  # allowed sts:AssumeRole, trusted by `role`
    plain: dict[str, str]  # no sts:AssumeRole permission, trusted by `role`
    role: str  # trusts assumer and plain; may ListTasks
    aloof: str  # trusts another user only
    denying: str  # trusts the account, but denies assumer explicitly


@pytest.fixture(scope="module")
def sts_world(world: World) -> StsWorld:
    """Two RAM users, a role trusting them, and two roles whose trust policies do not admit them."""
    assumer = world.user(allow(Action="sts:AssumeRole"))
    plain = world.user(allow(Action="ehpc:*"))
    role = world.role(allow(Action="ehpc:List*"), trusted=[world.principal(assumer), world.principal(plain)])
    aloof = world.role(allow(), trusted=[f"acs:ram::{world.account_id}:user/somebody-else"])
    statement = {"Action": "sts:AssumeRole", "Principal": {"RAM": [f"acs:ram::{world.account_id}:root"]}}
    denial = {**statement, "Principal": {"RAM": [world.principal(assumer)]}}
    denying_trust = json.dumps(
        {"Version": "1", "Statement": [{"Effect": "Allow", **statement}, {"Effect": "Deny", **denial}]}
    )
    denying = world.role(allow(), trust_doc=denying_trust)
    return StsWorld(assumer, plain, role, aloof, denying)


def assume_request(key: Creds, **params: str | None) -> SignedRequest:
    """A signed V1 GET AssumeRole (Version 2015-04-01), as the RamRoleArn provider sends it."""
    given = {k: v for k, v in params.items() if v is not None}
    return sign_v1("AssumeRole", given, key["AccessKeyId"], key["AccessKeySecret"], version="2015-04-01")


def test_assume_role_api_returns_the_documented_shape(
    server: LiveServer, world: World, sts_world: StsWorld
) -> None:
    """AssumeRole answers 200 with RequestId and Credentials (AccessKeyId, secret, token, Expiration)."""
    before = datetime.now(UTC).replace(microsecond=0)
    req = assume_request(
        sts_world.assumer, RoleArn=sts_world.role, RoleSessionName="raw-session", DurationSeconds="900"
    )
    response = send(server.endpoint, req)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"RequestId", "AssumedRoleUser", "Credentials"}
    assert response.headers["x-acs-request-id"] == body["RequestId"]
    creds = body["Credentials"]
    assert set(creds) == {"AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration"}
    assert all(isinstance(value, str) and value for value in creds.values())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", creds["Expiration"])
    expires = datetime.strptime(creds["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 890 <= (expires - before).total_seconds() <= 910
    assert body["AssumedRoleUser"]["Arn"] == f"{sts_world.role}/raw-session"
    assert creds["AccessKeyId"] != sts_world.assumer["AccessKeyId"]

    # The default duration is an hour.
    default = send(
        server.endpoint, assume_request(sts_world.assumer, RoleArn=sts_world.role, RoleSessionName="s2")
    )
    assert default.status_code == 200, default.text
    expires = datetime.strptime(default.json()["Credentials"]["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    assert 3590 <= (expires.replace(tzinfo=UTC) - before).total_seconds() <= 3610

    # The credentials act as the role: List* yes, anything else no.
    for kind in SDK_KINDS:
        assert sdk(server.endpoint, kind, creds, "ListTasks", ClusterId=world.a)["TotalCount"] == 0
        denied(server.endpoint, kind, creds, "DescribeCluster", ClusterId=world.a)
    rows = wait_audit(server, [body["RequestId"]], "search", "--action", "sts:AssumeRole")
    row = rows[body["RequestId"]]
    assert (row["Decision"], row["ErrorCode"]) == ("Allow", None)
    assert (row["Principal"], row["Resource"]) == (world.principal(sts_world.assumer), sts_world.role)


_POLICY_BAD_EFFECT = json.dumps(
    {"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class StsError:
    """An AssumeRole refusal: who calls with which parameters, and what the API and the audit trail say."""

    params: dict[str, str | None]  # over RoleArn=role, RoleSessionName=err-session; None removes one
    status: int
    code: str
    message_part: str | None = None
    decision: str = "Allow"  # RAM allowed sts:AssumeRole; the call failed afterwards
    caller: str = "assumer"


STS_ERRORS: dict[str, StsError] = {
    "unknown-role": StsError({"RoleArn": "acs:ram::{acct}:role/no-such-role"}, 404, "EntityNotExist.Role"),
    "role-of-another-account": StsError(
        {"RoleArn": "acs:ram::1111111111111111:role/ci"}, 404, "EntityNotExist.Role"
    ),
    "trust-policy-excludes-the-user": StsError({"RoleArn": "{aloof}"}, 403, "NoPermission"),
    "trust-policy-denies-the-user": StsError({"RoleArn": "{denying}"}, 403, "NoPermission"),
    "duration-below-900": StsError({"DurationSeconds": "899"}, 400, "InvalidParameter.DurationSeconds"),
    "duration-above-role-maximum": StsError(
        {"DurationSeconds": "3601"}, 400, "InvalidParameter.DurationSeconds", "3600"
    ),
    "duration-not-a-number": StsError(
        {"DurationSeconds": "15m"}, 400, "InvalidParameter.DurationSeconds", decision="Refused"
    ),
    "session-policy-grammar": StsError(
        {"Policy": _POLICY_BAD_EFFECT}, 400, "InvalidParameter.PolicyGrammar", "Statement[0].Effect"
    ),
    "session-policy-not-json": StsError(
        {"Policy": "{not json"}, 400, "InvalidParameter.PolicyGrammar", "line 1, column 2"
    ),
    "no-sts-assumerole-permission": StsError({}, 407, "NotAuthorized", NOT_AUTHORIZED, "Deny", "plain"),
    "malformed-role-arn": StsError({"RoleArn": "role/ci"}, 400, "InvalidParameter.RoleArn"),
    "malformed-session-name": StsError({"RoleSessionName": "x"}, 400, "InvalidParameter.RoleSessionName"),
    "missing-session-name": StsError(
        {"RoleSessionName": None}, 400, "MissingParameter", "RoleSessionName", decision="Refused"
    ),
}


@pytest.mark.parametrize("case", list(STS_ERRORS))
def test_assume_role_api_errors(server: LiveServer, world: World, sts_world: StsWorld, case: str) -> None:
    """AssumeRole refusals: unknown role, untrusting role, duration, session policy grammar, RAM denial."""
    error = STS_ERRORS[case]
    params: dict[str, str | None] = {
        "RoleArn": sts_world.role,
        "RoleSessionName": "err-session",
        **error.params,
    }
    for name, value in params.items():
        if value is not None:
            for placeholder, actual in (
                ("{acct}", world.account_id),
                ("{aloof}", sts_world.aloof),
                ("{denying}", sts_world.denying),
            ):
                value = value.replace(placeholder, actual)
            params[name] = value
    key = sts_world.assumer if error.caller == "assumer" else sts_world.plain
    response = send(server.endpoint, assume_request(key, **params))
    assert response.status_code == error.status, response.text
    body = response.json()
    assert set(body) == ERROR_FIELDS
    assert body["Code"] == error.code
    if error.message_part is not None:
        assert error.message_part in body["Message"]
    row = wait_audit(server, [body["RequestId"]], "search", "--action", "sts:AssumeRole")[body["RequestId"]]
    assert (row["Decision"], row["ErrorCode"]) == (error.decision, error.code)
    assert row["Principal"] == world.principal(key)


# ------------------------------------------------------------------------------------------ HTTPS


# Run in a fresh interpreter: the Tea core caches one HTTP session (and its trust store) per endpoint.
PROVIDER_SCRIPT = """
import json, sys
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_ehpc20180412 import models
from alibabacloud_ehpc20180412.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

args = json.loads(sys.argv[1])
credential = CredentialClient(CredentialConfig(
    type="ram_role_arn",
    access_key_id=args["AccessKeyId"],
    access_key_secret=args["AccessKeySecret"],
    role_arn=args["RoleArn"],
    role_session_name=args["Session"],
    policy=args.get("Policy"),
    sts_endpoint=args["Endpoint"],
))
issued = credential.get_credential()
client = Client(Config(
    credential=credential, endpoint=args["Endpoint"], protocol="https", region_id="cn-hangzhou"
))
response = client.list_tasks_with_options(
    models.ListTasksRequest(cluster_id=args["ClusterId"]), RuntimeOptions(autoretry=False, max_attempts=1)
)
print(json.dumps({
    "AccessKeyId": issued.access_key_id,
    "AccessKeySecret": issued.access_key_secret,
    "SecurityToken": issued.security_token,
    "ProviderName": issued.provider_name,
    "ListTasks": response.body.to_map(),
}))
"""


def start_provider(args: Mapping[str, str], ca: Path | None) -> subprocess.Popen[str]:
    """PROVIDER_SCRIPT in a subprocess, trusting `ca` through SSL_CERT_FILE (or only the default CAs)."""
    names = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if k not in names and "proxy" not in k.lower()}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    return subprocess.Popen(
        [sys.executable, "-c", PROVIDER_SCRIPT, json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def send_https(
    server: HttpsServer, req: SignedRequest, headers: Mapping[str, str] | None = None
) -> httpx.Response:
    """A raw request over TLS, on a client closed afterwards (an idle TLS connection delays a stop)."""
    context = ssl.create_default_context(cafile=str(server.tls.ca))
    with httpx.Client(verify=context, trust_env=False, timeout=15) as client:
        return client.request(
            req.method,
            f"https://{server.endpoint}{req.url_path}",
            headers={**req.headers, **(headers or {})},
            content=req.body,
        )


@dataclass(frozen=True)
class ProviderRun:
    """One run of PROVIDER_SCRIPT: exit status, output and error output."""

    returncode: int
    out: str
    err: str


@pytest.fixture(scope="module")
def provider_runs(world: World, siblings: Siblings) -> dict[str, ProviderRun]:
    """PROVIDER_SCRIPT against the HTTPS sibling, three ways at once (each interpreter costs seconds).

    The role may List* over HTTPS only, and Describe* cluster A; the deployer user may assume it.
    """
    https = siblings.https
    deployer = world.user()
    role = world.role(
        _if("Bool", "acs:SecureTransport", "true") | {"Action": "ehpc:List*"},
        allow(Action="ehpc:Describe*", Resource=world.arn(world.a)),
        trusted=[world.principal(deployer)],
    )
    world.attach(world.policy(allow(Action="sts:AssumeRole", Resource=role)), "user", deployer["UserName"])
    args = {
        "Endpoint": https.endpoint,
        "AccessKeyId": deployer["AccessKeyId"],
        "AccessKeySecret": deployer["AccessKeySecret"],
        "RoleArn": role,
        "Session": "ci-job",
        "ClusterId": world.a,
    }
    # json.dumps puts spaces after ':' and ','; the provider's signer encodes them as '+'.
    narrowing = json.dumps(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "ehpc:ListTasks", "Resource": "*"}]}
    )
    processes = {
        "trusted": start_provider(args, https.tls.ca),
        "untrusted": start_provider(args, None),
        "session-policy": start_provider({**args, "Session": "ci-narrow", "Policy": narrowing}, https.tls.ca),
    }
    runs = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=60)
        runs[name] = ProviderRun(process.returncode, out, err)
    return runs


def test_ram_role_arn_provider_over_https(
    server: LiveServer, world: World, provider_runs: dict[str, ProviderRun]
) -> None:
    """The RamRoleArn provider gets STS credentials over HTTPS; the Tea client lists tasks with them."""
    run = provider_runs["trusted"]
    assert run.returncode == 0, run.err[-3000:]
    issued = json.loads(run.out)
    assert issued["AccessKeyId"].startswith("STS.")
    assert issued["ProviderName"] == "ram_role_arn/static_ak"
    assert issued["ListTasks"]["TotalCount"] == 0  # allowed: over HTTPS acs:SecureTransport is true
    # The same credentials over plain HTTP, through every SDK: the role's policy applies, and
    # acs:SecureTransport is now false.
    for kind in SDK_KINDS:
        body = sdk(server.endpoint, kind, issued, "DescribeCluster", ClusterId=world.a)
        assert isinstance(body["ClusterInfo"], dict)
        denied(server.endpoint, kind, issued, "DescribeCluster", ClusterId=world.b)
        denied(server.endpoint, kind, issued, "ListTasks", ClusterId=world.a)
    deadline = time.monotonic() + 5
    while (
        len(rows := audit_rows(server, "search", "--principal", "ci-job", "--action", "ehpc:ListTasks")) < 5
    ):
        assert time.monotonic() < deadline, rows
        time.sleep(0.1)
    assert sorted(row["Decision"] for row in rows) == ["Allow"] + ["Deny"] * 4
    session_rows = audit_rows(server, "search", "--principal", "ci-job")  # the session's own calls
    assert {row["Action"] for row in session_rows} == {"ehpc:ListTasks", "ehpc:DescribeCluster"}

    # Without the CA the provider refuses the server's certificate: the test really runs TLS.
    untrusted = provider_runs["untrusted"]
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.err, untrusted.err[-2000:]


def test_ram_role_arn_provider_with_a_session_policy(
    server: LiveServer, world: World, provider_runs: dict[str, ProviderRun]
) -> None:
    """The provider's `policy` (JSON with spaces, signed '+'-encoded per protocol.md 4) narrows the role."""
    run = provider_runs["session-policy"]
    assert run.returncode == 0, run.err[-3000:]
    narrowed = json.loads(run.out)
    assert narrowed["ListTasks"]["TotalCount"] == 0
    denied(server.endpoint, "tea-v3", narrowed, "DescribeCluster", ClusterId=world.a)


def _https_user_request(world: World, endpoint: str, user: Creds) -> SignedRequest:
    return sign_v3(
        "ListTasks", {"ClusterId": world.a}, user["AccessKeyId"], user["AccessKeySecret"], host=endpoint
    )


def test_secure_transport_is_true_over_https_only(
    server: LiveServer, world: World, siblings: Siblings
) -> None:
    """Bool acs:SecureTransport: a policy needing TLS allows HTTPS only, one refusing TLS HTTP only."""
    https = siblings.https
    needs_tls = world.user(_if("Bool", "acs:SecureTransport", "true"))
    refuses_tls = world.user(_if("Bool", "acs:SecureTransport", "false"))
    assert send_https(https, _https_user_request(world, https.endpoint, needs_tls)).status_code == 200
    response = send_https(https, _https_user_request(world, https.endpoint, refuses_tls))
    assert response.status_code == 407, response.text
    assert response.json()["Code"] == "NotAuthorized"
    denied(server.endpoint, "tea-v3", needs_tls, "ListTasks", ClusterId=world.a)
    assert sdk(server.endpoint, "tea-v3", refuses_tls, "ListTasks", ClusterId=world.a)["TotalCount"] == 0


def test_x_forwarded_proto_does_not_make_http_secure(server: LiveServer, world: World) -> None:
    """Plain HTTP with X-Forwarded-Proto: https (no trusted proxy) still has acs:SecureTransport false."""
    needs_tls = world.user(_if("Bool", "acs:SecureTransport", "true"))
    req = sign_v1("ListTasks", {"ClusterId": world.a}, needs_tls["AccessKeyId"], needs_tls["AccessKeySecret"])
    response = send(server.endpoint, req, {"X-Forwarded-Proto": "https"})
    assert response.status_code == 407, response.text
    assert response.json()["Code"] == "NotAuthorized"
