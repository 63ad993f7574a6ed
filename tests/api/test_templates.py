"""Job templates through both official SDKs: the fields as the model has them, paging, errors, tenancy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.families import BACKENDS, KINDS, account, ram_user, refused, start_server
from tests.support.live import LiveServer
from tests.support.policies import allow

FULL = {
    "Name": "full-template",
    "CommandLine": "mpirun -np 4 ./app",
    "ArrayRequest": "1-7:2",
    "ClockTime": "12:00:00",
    "Mem": "4GB",
    "Node": 2,
    "Task": 4,
    "Thread": 2,
    "Gpu": 1,
    "Priority": 9,
    "Queue": "workq",
    "RunasUser": "alice",
    "PackagePath": "/home/alice/app",
    "StdoutRedirectPath": "/home/alice/out",
    "StderrRedirectPath": "/home/alice/err",
    "Variables": json.dumps([{"Name": "OMP", "Value": "4"}]),
    "InputFileUrl": "https://bucket.oss-cn-hangzhou.aliyuncs.com/in.tgz",
    "UnzipCmd": "tar xzf",
    "WithUnzipCmd": True,
    "ReRunable": True,
}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(request, tmp_path_factory, "templates")
    yield live
    live.stop()


def listed(server: LiveServer, kind: str, key: dict[str, str], **params: object) -> dict[str, Any]:
    return server.call(kind, key, "ListJobTemplates", **params)


@pytest.mark.parametrize("kind", KINDS)
def test_create_list_edit_delete(server: LiveServer, kind: str) -> None:
    """Every field comes back as given (ReRunable as the string "true"); Edit replaces; Delete removes."""
    key = account(server)
    created = server.call(kind, key, "CreateJobTemplate", **FULL)
    assert set(created) == {"RequestId", "TemplateId"}
    template_id = created["TemplateId"]
    body = listed(server, kind, key)
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (1, 1, 10)
    (template,) = body["Templates"]["JobTemplates"]
    expected = {k: v for k, v in FULL.items() if k != "ReRunable"}
    assert {k: template[k] for k in expected} == expected
    assert template["ReRunable"] == "true"
    assert template["Id"] == template_id

    edited = server.call(
        kind,
        key,
        "EditJobTemplate",
        TemplateId=template_id,
        Name="edited",
        CommandLine="echo hi",
        ReRunable=False,
    )
    assert edited["TemplateId"] == template_id
    (template,) = listed(server, kind, key, Name="edited")["Templates"]["JobTemplates"]
    assert (template["CommandLine"], template["ReRunable"], template["Node"], template["Queue"]) == (
        "echo hi",
        "false",
        0,
        "",
    )
    assert listed(server, kind, key, Name="full-template")["TotalCount"] == 0

    server.call(kind, key, "DeleteJobTemplates", Templates=json.dumps([{"Id": template_id}]))
    assert listed(server, kind, key)["TotalCount"] == 0
    # A repeated delete (Terraform retrying) succeeds.
    server.call(kind, key, "DeleteJobTemplates", Templates=json.dumps([{"Id": template_id}]))


def test_paging(server: LiveServer) -> None:
    """Templates are listed oldest first; pages are disjoint; PageSize is 1 to 50."""
    key = account(server)
    made = [
        server.call("tea-v3", key, "CreateJobTemplate", Name=f"t{i}", CommandLine="x")["TemplateId"]
        for i in range(5)
    ]
    pages = [listed(server, "tea-v3", key, PageSize=2, PageNumber=n) for n in (1, 2, 3)]
    assert [t["Id"] for page in pages for t in page["Templates"]["JobTemplates"]] == made
    assert {page["TotalCount"] for page in pages} == {5}
    assert refused(server, "tea-v3", key, "ListJobTemplates", PageSize=51).code == "InvalidParams"


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"CommandLine": "x"}, "Name"),
        ({"Name": "ok-name"}, "CommandLine"),
        ({"Name": "1starts-with-digit", "CommandLine": "x"}, "Name"),
        ({"Name": "n", "CommandLine": "x"}, "Name"),
        ({"Name": "ok", "CommandLine": "x" * 2049}, "CommandLine"),
        ({"Name": "ok", "CommandLine": "x", "Node": 501}, "Node"),
        ({"Name": "ok", "CommandLine": "x", "Priority": 10}, "Priority"),
        ({"Name": "ok", "CommandLine": "x", "Gpu": 9}, "Gpu"),
        ({"Name": "ok", "CommandLine": "x", "Mem": "4 parsecs"}, "Mem"),
        ({"Name": "ok", "CommandLine": "x", "ClockTime": "noon"}, "ClockTime"),
        ({"Name": "ok", "CommandLine": "x", "UnzipCmd": "rm -rf"}, "UnzipCmd"),
    ],
)
def test_create_refusals(server: LiveServer, params: dict[str, object], name: str) -> None:
    """Each malformed field is InvalidParams naming it, through the legacy SDK."""
    key = account(server)
    error = refused(server, "legacy", key, "CreateJobTemplate", **params)
    assert (error.status, error.code, error.message) == (
        400,
        "InvalidParams",
        f"The specified parameter {name} is invalid.",
    )


def test_templates_parameter_and_tenancy(server: LiveServer) -> None:
    """Templates must be a JSON list of {"Id"} (at most 20, bounded nesting); another account's template
    is not found by Edit and untouched by Delete; a RAM user needs the action."""
    key, other = account(server), account(server)
    template_id = server.call("tea-v3", key, "CreateJobTemplate", Name="mine", CommandLine="x")["TemplateId"]
    for bad in (
        "not json",
        "{}",
        "[]",
        '[{"Id": 1}]',
        json.dumps([{"Id": f"t{i}"} for i in range(21)]),
        "[" * 40 + "]" * 40,
    ):
        error = refused(server, "tea-v3", key, "DeleteJobTemplates", Templates=bad)
        assert (error.code, error.message) == (
            "InvalidParams",
            "The specified parameter Templates is invalid.",
        )
    missing = refused(
        server, "tea-v3", other, "EditJobTemplate", TemplateId=template_id, Name="theirs", CommandLine="y"
    )
    assert (missing.status, missing.code) == (404, "JobTemplateNotFound")
    server.call("legacy", other, "DeleteJobTemplates", Templates=json.dumps([{"Id": template_id}]))
    assert listed(server, "tea-v3", key)["TotalCount"] == 1
    assert listed(server, "tea-v3", other)["TotalCount"] == 0
    nobody = ram_user(server, key)
    assert refused(server, "tea-v3", nobody, "ListJobTemplates").code == "NotAuthorized"
    reader = ram_user(server, key, allow(Action="ehpc:ListJobTemplates"))
    assert listed(server, "legacy", reader)["TotalCount"] == 1
    keep = json.dumps([{"Id": template_id}])
    assert refused(server, "legacy", reader, "DeleteJobTemplates", Templates=keep).code == "NotAuthorized"
    assert listed(server, "tea-v3", key)["TotalCount"] == 1
