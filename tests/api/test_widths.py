"""Every string parameter of every action, at the longest value its reader accepts and one beyond, on
SQLite and PostgreSQL: never a 5xx at the limit, InvalidParams naming it beyond (a column too narrow for
its reader, on any action added later, shows up here as PostgreSQL's StringDataRightTruncation)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select

from hpcplane.api.dispatch import VERSIONS
from hpcplane.api.openapi import action_parameters
from hpcplane.config import Settings
from hpcplane.services.clusters import seed_cluster
from hpcplane.store.tables import nodes
from tests.support.live import LiveServer
from tests.support.probing import longest_accepted
from tests.support.rawcalls import Caller, error_of


def base(action: str, params: set[str], cluster: str, instance: str) -> dict[str, str]:
    """Parameters that let the action's reader accept a call, for those the action has."""
    values = {
        "ClusterId": cluster,
        "Name": f"w-{action[:8].lower()}",
        "Password": "Abc-1234x",
        "Count": "1",
        "Instance.1.Id": instance,
        "RoleArn": "acs:ram::1:role/none",
        "RoleSessionName": "s1",
        "QueueName": "workq",
        "User.1.Name": "widths1",
        "User.1.Group": "users",
        "User.1.Password": "Abc-1234x",
        "Content": "ZWNobyBoaQ==",
        "CommandLine": "echo hi",
        "RunasUser": "widths1",
        "Jobs": '[{"Id": "1.manager"}]',
        "JobId": "1.manager",
        "TemplateId": "t-none",
        "Application": "GROMACS_2020.4",
        "TargetFile": "job.sh",
    }
    return {k: v for k, v in values.items() if k in params}


def cases() -> Iterator[tuple[str, str, str]]:
    for version, table in VERSIONS.items():
        for action in sorted(table):
            for param in action_parameters(action, version):
                if param.schema.get("type") == "string" and not param.json:
                    yield version, action, param.name.replace(".N.", ".1.").removesuffix(".N")


@pytest.fixture(scope="module")
def caller(server: LiveServer) -> Iterator[tuple[Caller, str, str]]:
    key = server.new_account("widths")
    services = server.services
    cluster = seed_cluster(
        services.db, services.clock, account_id=key["AccountId"], region="cn-hangzhou", name="w", computes=1
    )
    with services.db.read() as conn:
        instance = str(
            conn.execute(select(nodes.c.id).where(nodes.c.cluster_id == cluster)).scalars().first()
        )
    with httpx.Client(trust_env=False) as client:
        yield Caller(server.endpoint, key, client), cluster, instance


# HPCPLANE_MAX_URL_BYTES' default less room for the other parameters of a signed GET.
URL_ROOM = Settings.model_fields["max_url_bytes"].default - 4096


def test_every_string_parameter_at_its_limit(server: LiveServer, caller: tuple[Caller, str, str]) -> None:
    """At the reader's longest value no call is a 5xx; one character more is InvalidParams naming the
    parameter, on both stores alike."""
    client, cluster, instance = caller
    tried = 0
    for version, action, name in cases():
        spec = VERSIONS[version][action]
        names = {p.name.replace(".N.", ".1.").removesuffix(".N") for p in action_parameters(action, version)}
        params = base(action, names, cluster, instance)
        longest = longest_accepted(spec.read, params, name)
        if longest == 0:
            continue
        at_limit = client.call("v1", action, {**params, name: "a" * longest}, version=version)
        assert at_limit.status_code < 500, (action, name, longest, at_limit.text)
        beyond = client.call("v1", action, {**params, name: "a" * (longest + 1)}, version=version)
        if longest + 1 > URL_ROOM:
            # A value this long cannot travel in a URL: the transport's documented 414 answers first.
            assert (beyond.status_code, error_of(beyond)["Code"]) == (414, "RequestURITooLong"), (
                action,
                name,
            )
        else:
            assert beyond.status_code == 400, (action, name, longest, beyond.text)
            assert error_of(beyond)["Code"] in ("InvalidParams", "InvalidParameter.RoleArn"), (action, name)
        tried += 1
    assert tried > 100
