"""The hostile requests of the robustness issue, signed V1 and V3, on SQLite and PostgreSQL: each is a
documented 4xx error in the JSON envelope, names the offending parameter, and changes no row."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from hpcplane.services.clusters import seed_cluster
from hpcplane.store.audit import search
from hpcplane.store.tables import nodes
from tests.support.live import LiveServer
from tests.support.rawcalls import Caller, Pairs, checksums, error_of

STS = "2015-04-01"
CREATE = {"Name": "hostile", "Password": "Abc-1234x", "EcsOrder.Compute.Count": "1"}
LONG = "x" * 200


@pytest.fixture(scope="module")
def caller(server: LiveServer) -> Iterator[Caller]:
    """An account with one cluster (two compute nodes), and a client signing with its AccessKey."""
    key = server.new_account("hostile")
    services = server.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="h", computes=2
    )
    with services.db.read() as conn:
        found = conn.execute(
            select(nodes.c.id)
            .where(nodes.c.cluster_id == cluster, nodes.c.role == "compute")
            .order_by(nodes.c.id)
        )
        first, second = (str(i) for i in found.scalars())
    with httpx.Client(trust_env=False) as client:
        yield Caller(server.endpoint, {**key, "ClusterId": cluster, "first": first, "second": second}, client)


def refused(
    server: LiveServer, caller: Caller, kind: str, action: str, params: Any, status: int, code: str, **kw: str
) -> dict[str, Any]:
    """Send the request; it must be `status`/`code` in the envelope and leave every table unchanged."""
    before = checksums(server.services.db)
    response = caller.call(kind, action, params, **kw)
    assert response.status_code == status, response.text
    body = error_of(response)
    assert body["Code"] == code, body
    assert checksums(server.services.db) == before
    return body


def invalid(
    server: LiveServer, caller: Caller, kind: str, action: str, params: Any, name: str | None = None
) -> None:
    """InvalidParams (400) naming `name`, when given."""
    body = refused(server, caller, kind, action, params, 400, "InvalidParams")
    if name is not None:
        assert body["Message"] == f"The specified parameter {name} is invalid."


KINDS = pytest.mark.parametrize("kind", ["v1", "v3"])


@KINDS
@pytest.mark.parametrize("duration", ["²", "٩٠٠", "1" * 5000])
def test_duration_seconds_in_other_digits_is_refused(
    server: LiveServer, caller: Caller, kind: str, duration: str
) -> None:
    """AssumeRole DurationSeconds in superscript or Arabic-Indic digits, or of 5,000 digits, is
    InvalidParameter.DurationSeconds (it was a 500, or read as 900)."""
    params = {"RoleArn": "acs:ram::1:role/r", "RoleSessionName": "s1", "DurationSeconds": duration}
    refused(server, caller, kind, "AssumeRole", params, 400, "InvalidParameter.DurationSeconds", version=STS)


@KINDS
@pytest.mark.parametrize(
    "name", ["Instance." + "1" * 5000 + ".Id", "Instance.01.Id", "Instance.١.Id", "Instance.1.Id\n"]
)
def test_non_canonical_list_index_is_refused(
    server: LiveServer, caller: Caller, kind: str, name: str
) -> None:
    """DeleteNodes/StopNodes with Instance.<5000 ones>.Id, Instance.01.Id, an Arabic-Indic index or a
    trailing newline is InvalidParams."""
    for action in ("DeleteNodes", "StopNodes"):
        invalid(
            server, caller, kind, action, {"ClusterId": caller.key["ClusterId"], name: caller.key["first"]}
        )


@KINDS
def test_aliases_of_one_index_do_not_bypass_the_limit(server: LiveServer, caller: Caller, kind: str) -> None:
    """150 spellings of Instance.1.Id naming 150 real nodes in one StopNodes (the limit is 100) are
    refused, and nothing is stopped."""
    services = server.services
    big = seed_cluster(
        services.db,
        services.clock,
        account_id=caller.key["AccountId"],
        region="cn-hangzhou",
        name=kind,
        computes=150,
    )
    with services.db.read() as conn:
        found = conn.execute(select(nodes.c.id).where(nodes.c.cluster_id == big, nodes.c.role == "compute"))
        instances = [str(i) for i in found.scalars()]
    params = {"ClusterId": big} | {f"Instance.{'0' * n}1.Id": instances[n] for n in range(150)}
    invalid(server, caller, kind, "StopNodes", params)


def test_repeated_parameter_is_refused(server: LiveServer, caller: Caller) -> None:
    """Instance.1.Id given twice (signed, V3) is InvalidParams naming it, not merged."""
    first, second = caller.key["first"], caller.key["second"]
    pairs = Pairs(
        [("ClusterId", caller.key["ClusterId"]), ("Instance.1.Id", first), ("Instance.1.Id", second)]
    )
    invalid(server, caller, "v3", "StopNodes", pairs, "Instance.1.Id")


@KINDS
def test_deep_json_filter_is_refused(server: LiveServer, caller: Caller, kind: str) -> None:
    """ListNodes Filter='{"a":' + '['*1015 is InvalidParams Filter (was a RecursionError, 500)."""
    params = {"ClusterId": caller.key["ClusterId"], "Filter": '{"a":' + "[" * 1015}
    invalid(server, caller, kind, "ListNodes", params, "Filter")


@KINDS
@pytest.mark.parametrize(
    ("action", "params", "name"),
    [
        ("ListTasks", {"ClusterId": "a\x00b"}, "ClusterId"),
        ("CreateCluster", {**CREATE, "Name": "a\x00b"}, "Name"),
        ("AddNodes", {"Count": "1", "InstanceType": "a\x00b"}, "InstanceType"),
        ("ListNodes", {"HostName": "a\x00b"}, "HostName"),
        ("CreateCluster", {**CREATE, "Plugin": "a\x00b"}, "Plugin"),
    ],
)
def test_nul_byte_is_refused_on_both_stores(
    server: LiveServer, caller: Caller, kind: str, action: str, params: dict[str, str], name: str
) -> None:
    """A NUL byte in any string parameter is InvalidParams naming it (PostgreSQL gave 500 DataError)."""
    invalid(server, caller, kind, action, {"ClusterId": caller.key["ClusterId"], **params}, name)


@KINDS
@pytest.mark.parametrize(
    "name", ["ImageId", "OsTag", "KeyPairName", "ZoneId", "VpcId", "SecurityGroupId", "ClientVersion"]
)
def test_value_beyond_its_column_is_refused(server: LiveServer, caller: Caller, kind: str, name: str) -> None:
    """CreateCluster with a value longer than its column is InvalidParams on both stores (PostgreSQL gave
    500 StringDataRightTruncation, SQLite stored it)."""
    invalid(server, caller, kind, "CreateCluster", {**CREATE, name: LONG}, name)


@KINDS
@pytest.mark.parametrize("size", [2_000, 20_000])
def test_unknown_parameter_cannot_store_much(
    server: LiveServer, caller: Caller, kind: str, size: int
) -> None:
    """CreateCluster with a large unknown parameter is InvalidParams naming it, and stores nothing (past
    the per-parameter and the per-call caps; a URL past HPCPLANE_MAX_URL_BYTES is the transport's 414,
    tested in test_transport.py)."""
    invalid(server, caller, kind, "CreateCluster", {**CREATE, "Junk": "j" * size}, "Junk")


def test_bad_signature_material_is_refused(server: LiveServer, caller: Caller) -> None:
    """A 200-character SignatureNonce is InvalidParams SignatureNonce (it would not fit its column); an
    AccessKeyId holding a NUL byte is InvalidAccessKeyId.NotFound (it never reaches SQL)."""
    req = caller.sign("v1", "ListTasks", {"ClusterId": "c", "SignatureNonce": "n" * 200})
    response = caller.send(req)
    assert response.status_code == 400
    assert error_of(response)["Message"] == "The specified parameter SignatureNonce is invalid."
    bad_key = Caller(caller.endpoint, {**caller.key, "AccessKeyId": "LTAI\x00x"}, caller.client)
    response = bad_key.call("v1", "ListTasks", {"ClusterId": "c"})
    assert response.status_code == 404
    assert error_of(response)["Code"] == "InvalidAccessKeyId.NotFound"


def test_hostile_action_name_does_not_stop_the_audit_trail(server: LiveServer, caller: Caller) -> None:
    """Action=a<NUL>b (and 5,000 characters) is InvalidAction.NotFound, and the audit trail still records
    the calls after it (a NUL in one record made every later batch fail on PostgreSQL)."""
    for action in ("a\x00b", "A" * 5000):
        response = caller.call("v1", action, {"ClusterId": "c"})
        assert response.status_code == 404
        assert error_of(response)["Code"] == "InvalidAction.NotFound"
    marker = caller.call("v1", "ListClusters", {})
    assert marker.status_code == 200, marker.text
    request_id = marker.json()["RequestId"]
    deadline = time.monotonic() + 20
    while True:
        with server.services.db.read() as conn:
            if any(r.request_id == request_id for r in search(conn, action="ehpc:ListClusters")):
                break
        assert time.monotonic() < deadline, "the audit trail stopped recording"
        time.sleep(0.2)
