"""Nothing of a signature envelope or a credential is stored: after every action, signed V1 and V3 with a
permanent AccessKey and with an STS token, every table of the store (SQLite and PostgreSQL) is dumped and
searched for the call's Signature, SignatureNonce, Timestamp, SecurityToken, secrets and AccessKeyId."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from hpcplane.testing import SignedRequest, sign_v1, sign_v3
from tests.support.live import LiveServer
from tests.support.policies import trust
from tests.support.rawcalls import rows

# Where an AccessKeyId belongs by design: the key's own record, the replay cache (with the nonce) and
# the audit trail (who called, as ActionTrail records it). Nowhere else.
KEY_ID_HOMES = {"access_keys", "sts_credentials", "nonces", "audit_log"}
NONCE_HOMES = {"nonces"}
ALLOW_ALL = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


class Envelope:
    """What one call sent that must not be stored, as (kind, value) pairs."""

    def __init__(self) -> None:
        self.values: list[tuple[str, str]] = []

    def add(self, kind: str, value: str | None) -> None:
        if value:
            self.values.append((kind, value))

    def of_request(self, req: SignedRequest) -> None:
        query = dict(parse_qsl(urlsplit(req.url_path).query, keep_blank_values=True))
        for name in ("Signature", "SignatureNonce", "Timestamp", "SecurityToken"):
            self.add(name, query.get(name))
        auth = req.headers.get("authorization", "")
        if "Signature=" in auth:
            self.add("Signature", auth.rsplit("Signature=", 1)[1])
        self.add("SignatureNonce", req.headers.get("x-acs-signature-nonce"))
        self.add("Timestamp", req.headers.get("x-acs-date"))
        self.add("SecurityToken", req.headers.get("x-acs-security-token"))


def leaks(server: LiveServer, secrets: Envelope, key_ids: list[str]) -> list[str]:
    """Every (table, kind) where a value of the envelope, a secret or an AccessKeyId was found."""
    found = []
    for table, table_rows in rows(server.services.db).items():
        text = "\n".join(repr(row) for row in table_rows)
        for kind, value in secrets.values:
            if kind == "SignatureNonce" and table in NONCE_HOMES:
                continue
            if value in text:
                found.append(f"{table}: {kind}")
        if table not in KEY_ID_HOMES:
            found.extend(f"{table}: AccessKeyId" for key_id in key_ids if key_id in text)
    return found


class Session:
    """Signs raw calls with one credential, recording what each carried."""

    def __init__(self, server: LiveServer, client: httpx.Client, key: dict[str, str], token: str | None):
        self.server, self.client, self.key, self.token = server, client, key, token
        self.envelope = Envelope()
        self.envelope.add("secret", key["AccessKeySecret"])
        self.envelope.add("SecurityToken", token)
        # A time a few minutes past, so it cannot coincide with a time the server writes itself.
        self.when = datetime.now(UTC) - timedelta(minutes=3)

    def call(
        self, kind: str, action: str, params: dict[str, str], version: str = "2018-04-12", *, ok: bool = True
    ) -> dict[str, object]:
        """Send the call; it must succeed when `ok`, and may be refused (never a 5xx) otherwise."""
        key_id, secret = self.key["AccessKeyId"], self.key["AccessKeySecret"]
        if kind == "v1":
            extra = {"SecurityToken": self.token} if self.token else {}
            req = sign_v1(action, {**params, **extra}, key_id, secret, when=self.when, version=version)
        else:
            headers = {"x-acs-security-token": self.token, "x-acs-accesskey-id": key_id} if self.token else {}
            req = sign_v3(
                action,
                params,
                key_id,
                secret,
                host=self.server.endpoint,
                when=self.when,
                version=version,
                extra_headers=headers,
            )
        self.envelope.of_request(req)
        response = self.client.request(
            req.method, f"http://{self.server.endpoint}{req.url_path}", headers=req.headers, content=req.body
        )
        assert response.status_code == 200 if ok else response.status_code < 500, response.text
        body: dict[str, object] = response.json()
        return body


@pytest.fixture(scope="module")
def world(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """An account with a role it may assume, allowed everything."""
    key = server.new_account("vault")
    folder: Path = tmp_path_factory.mktemp("vault")
    trusting = folder / "trust.json"
    acct = key["AccountId"]
    trusting.write_text(trust(f"acs:ram::{acct}:root"))
    policy = folder / "all.json"
    policy.write_text(json.dumps(ALLOW_ALL))
    arn = server.cli("ram", "create-role", acct, "runner", "--trust", str(trusting)).split("Arn: ")[1].strip()
    server.cli("ram", "create-policy", acct, "everything", "--document", str(policy))
    server.cli("ram", "attach-policy", acct, "everything", "--role", "runner")
    return key, arn


def every_action(session: Session, kind: str, done: list[str], key_ids: list[str]) -> None:
    """Run each implemented action once, dumping the store after each."""

    def step(action: str, params: dict[str, str], *, ok: bool = True) -> dict[str, object]:
        body = session.call(kind, action, params, ok=ok)
        found = leaks(session.server, session.envelope, key_ids)
        assert not found, f"after {action} ({kind}): {found}"
        done.append(action)
        return body

    created = step(
        "CreateCluster",
        {"Name": f"vault-{kind}", "Password": "Vault-pass1", "EcsOrder.Compute.Count": "1", "Plugin": "p"},
    )
    cluster = str(created["ClusterId"])
    step("ListClusters", {})
    step("DescribeCluster", {"ClusterId": cluster})
    step("ListNodes", {"ClusterId": cluster})
    step("ListTasks", {"ClusterId": cluster, "Archived": "true"})
    # The cluster is still being created: these may be refused (a state conflict); nothing leaks either way.
    step("AddNodes", {"ClusterId": cluster, "Count": "1"}, ok=False)
    for action in ("StartNodes", "StopNodes", "ResetNodes", "DeleteNodes"):
        step(action, {"ClusterId": cluster, "Instance.1.Id": "i-none"}, ok=False)
    for action in ("StopCluster", "StartCluster", "DeleteCluster"):
        step(action, {"ClusterId": cluster}, ok=False)


@pytest.mark.parametrize("kind", ["v1", "v3"])
def test_nothing_of_the_envelope_is_stored(
    server: LiveServer, world: tuple[dict[str, str], str], kind: str
) -> None:
    """After every action, signed with a permanent key and then with an STS token, no table holds the
    call's Signature, SignatureNonce (but the nonce cache), Timestamp, SecurityToken or secret, nor the
    AccessKeyId outside the key's record, the nonce cache and the audit trail."""
    key, arn = world
    done: list[str] = []
    with httpx.Client(trust_env=False, timeout=15) as client:
        permanent = Session(server, client, key, None)
        issued = permanent.call(
            "v1", "AssumeRole", {"RoleArn": arn, "RoleSessionName": f"s-{kind}"}, version="2015-04-01"
        )
        creds = issued["Credentials"]
        assert isinstance(creds, dict)
        sts_key = {"AccessKeyId": creds["AccessKeyId"], "AccessKeySecret": creds["AccessKeySecret"]}
        key_ids = [key["AccessKeyId"], sts_key["AccessKeyId"]]
        every_action(permanent, kind, done, key_ids)
        temporary = Session(server, client, sts_key, creds["SecurityToken"])
        temporary.envelope.values.extend(permanent.envelope.values)
        every_action(temporary, kind, done, key_ids)
    assert "CreateCluster" in done
    assert "ListTasks" in done
