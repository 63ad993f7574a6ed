"""Terraform's alicloud_ehpc_cluster and alicloud_ehpc_job_template sequences, replayed end to end.

Every call is what the provider sends (V1-signed GET, values formatted as Go formats them) and every
wait is its StateChangeConf (tests/support/terraform.py): create, read, update, destroy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.families import BACKENDS, account, start_server
from tests.support.live import LiveServer
from tests.support.terraform import ApiError, Terraform

# The order a cluster's status may move in while Terraform waits for `running`.
CREATE_PATH = ["", "uninit", "creating", "init", "running"]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(request, tmp_path_factory, "terraform", sim_step_seconds="0.01", sim_jitter="0")
    yield live
    live.stop()


def in_order(seen: list[str], path: list[str]) -> bool:
    positions = [path.index(status) for status in seen]
    return positions == sorted(positions)


def test_cluster_create_update_destroy(server: LiveServer) -> None:
    """resource_alicloud_ehpc_cluster: CreateCluster (ClientToken, retried), wait running, read,
    ModifyClusterAttributes, wait running, read, DeleteCluster, wait until ClusterNotFound."""
    tf = Terraform(server.endpoint, account(server))
    request: dict[str, object] = {
        "Name": "tf-cluster",
        "Description": "made by terraform",
        "EcsOrder.Compute.Count": 2,
        "EcsOrder.Compute.InstanceType": "ecs.c6.xlarge",
        "EcsOrder.Login.Count": 1,
        "EcsOrder.Login.InstanceType": "ecs.g6.large",
        "EcsOrder.Manager.InstanceType": "ecs.g6.large",
        "OsTag": "CentOS_7.6_64",
        "Password": "Tf-plane-123",
        "HaEnable": False,
        "ClientToken": f"tf-{uuid.uuid4().hex}",
    }
    created = tf.rpc_get("CreateCluster", request)
    cluster_id = str(created["ClusterId"])
    # The provider's retry of CreateCluster (same parameters, same ClientToken) is the same cluster.
    assert tf.rpc_get("CreateCluster", request)["ClusterId"] == cluster_id
    seen = tf.wait_for(cluster_id, ["running"], ["exception"])
    assert seen[-1] == "running"
    assert in_order(seen, CREATE_PATH), seen

    info = tf.describe_cluster(cluster_id)
    assert info is not None
    ecs = info["EcsInfo"]
    assert (ecs["Compute"]["Count"], ecs["Compute"]["InstanceType"]) == (2, "ecs.c6.xlarge")
    assert (ecs["Login"]["Count"], ecs["Login"]["InstanceType"]) == (1, "ecs.g6.large")
    assert (ecs["Manager"]["Count"], ecs["Manager"]["InstanceType"]) == (1, "ecs.g6.large")
    assert (info["Name"], info["Description"], info["OsTag"]) == (
        "tf-cluster",
        "made by terraform",
        "CentOS_7.6_64",
    )
    assert info["HaEnable"] is False

    update = {
        "ClusterId": cluster_id,
        "Name": "tf-renamed",
        "ImageId": "m-tf-image",
        "ImageOwnerAlias": "self",
    }
    assert set(tf.rpc_get("ModifyClusterAttributes", update)) == {"RequestId"}
    assert tf.wait_for(cluster_id, ["running"], ["exception"]) == ["running"]
    info = tf.describe_cluster(cluster_id)
    assert info is not None
    assert (info["Name"], info["ImageId"], info["ImageOwnerAlias"]) == ("tf-renamed", "m-tf-image", "self")
    assert info["Description"] == "made by terraform"

    tf.rpc_get("DeleteCluster", {"ClusterId": cluster_id, "ReleaseInstance": "true"})
    seen = tf.wait_for(cluster_id, [], ["exception"])
    assert seen[-1] == ""
    assert set(seen[:-1]) <= {"running", "releasing"}, seen
    # A second destroy is ClusterNotFound, which the provider takes as done.
    with pytest.raises(ApiError) as gone:
        tf.rpc_get("DeleteCluster", {"ClusterId": cluster_id})
    assert (gone.value.status, gone.value.code) == (404, "ClusterNotFound")
    assert {action for action, _ in tf.calls} == {
        "CreateCluster",
        "DescribeCluster",
        "ModifyClusterAttributes",
        "DeleteCluster",
    }
    assert tf.retries == 0


def describe_template(tf: Terraform, template_id: str) -> dict[str, object] | None:
    """DescribeEhpcJobTemplate: ListJobTemplates with PageSize=50, page after page, matching on Id."""
    number = 1
    while True:
        body = tf.rpc_get("ListJobTemplates", {"PageNumber": number, "PageSize": 50})
        for template in body["Templates"]["JobTemplates"]:
            if template["Id"] == template_id:
                found: dict[str, object] = template
                return found
        if number * 50 >= int(body["TotalCount"]):
            return None
        number += 1


def test_job_template_create_read_update_delete(server: LiveServer) -> None:
    """resource_alicloud_ehpc_job_template: CreateJobTemplate (TemplateId), read by scanning
    ListJobTemplates (ReRunable parsed as a string), EditJobTemplate, DeleteJobTemplates with
    Templates='[{"Id":"..."}]'."""
    tf = Terraform(server.endpoint, account(server))
    for i in range(55):  # more than one page of 50, so the scan has to turn a page
        tf.rpc_get("CreateJobTemplate", {"Name": f"filler{i}", "CommandLine": "true"})
    request = {"Name": "tf-template", "CommandLine": "./run.sh", "Node": 2, "Priority": 3, "ReRunable": True}
    template_id = str(tf.rpc_get("CreateJobTemplate", request)["TemplateId"])
    template = describe_template(tf, template_id)
    assert template is not None
    assert template["ReRunable"] in ("true", "false")  # strconv.ParseBool(v.(string))
    assert template["ReRunable"] == "true"
    assert (template["Name"], template["CommandLine"], template["Node"], template["Priority"]) == (
        "tf-template",
        "./run.sh",
        2,
        3,
    )
    assert template["Gpu"] == template["Task"] == template["Thread"] == 0  # read as "not set"

    update = {
        "TemplateId": template_id,
        "Name": "tf-template",
        "CommandLine": "./run2.sh",
        "ReRunable": False,
    }
    assert tf.rpc_get("EditJobTemplate", update)["TemplateId"] == template_id
    template = describe_template(tf, template_id)
    assert template is not None
    assert (template["CommandLine"], template["ReRunable"], template["Node"]) == ("./run2.sh", "false", 0)

    tf.rpc_get("DeleteJobTemplates", {"Templates": f'[{{"Id":"{template_id}"}}]'})
    assert describe_template(tf, template_id) is None
