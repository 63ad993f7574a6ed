"""ListQueues, AddQueue, UpdateQueueConfig, DeleteQueue and ListNodesByQueue, as the SDK models shape them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hpcplane.api.action import Action, Call
from hpcplane.api.actions import clusters
from hpcplane.api.actions.clusters_admin import CLUSTER_ARN, choice, page
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.services.queues import QueueSettings

_QUEUE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")
_TRAFFIC = ("Standard", "HighPerformance")


def _cluster(p: Params) -> str:
    p.bool("Async", default=False)
    return p.required_str("ClusterId", max_length=64)


def _queue_name(p: Params) -> str:
    name = p.required_str("QueueName", max_length=63)
    if not _QUEUE.match(name):
        raise InvalidParams("QueueName", "needs 1 to 63 letters, digits or '_', a letter first")
    return name


def read_add(p: Params) -> QueueSettings:
    use_ess = p.bool("UseEss", default=False) if p.text("UseEss") else None
    return QueueSettings(
        cluster_id=_cluster(p),
        name=_queue_name(p),
        deployment_set_id=p.text("DeploymentSetId", max_length=64),
        network_interface_traffic_mode=choice(p, "NetworkInterfaceTrafficMode", _TRAFFIC),
        use_ess=use_ess,
    )


def read_update(p: Params) -> QueueSettings:
    return QueueSettings(
        cluster_id=_cluster(p),
        name=_queue_name(p),
        compute_instance_type=p.text("ComputeInstanceType", max_length=256),
        deployment_set_id=p.text("DeploymentSetId", max_length=64),
        network_interface_traffic_mode=choice(p, "NetworkInterfaceTrafficMode", _TRAFFIC),
        resource_group_id=p.text("ResourceGroupId", max_length=64),
    )


@dataclass(frozen=True, slots=True)
class QueueRef:
    cluster_id: str
    name: str
    page_number: int = 1
    page_size: int = 10


def read_ref(p: Params) -> QueueRef:
    return QueueRef(_cluster(p), _queue_name(p))


def read_list(p: Params) -> str:
    return _cluster(p)


def read_nodes(p: Params) -> QueueRef:
    number, size = page(p, maximum=100)
    return QueueRef(_cluster(p), _queue_name(p), number, size)


def list_queues(call: Call, cluster_id: str) -> dict[str, object]:
    cluster, found = call.services.queues.list(call.principal, cluster_id)
    return {
        "RequestId": call.request_id,
        "Queues": {
            "QueueInfo": [
                {
                    "QueueName": queue["name"],
                    "Type": "Execution",
                    "ComputeInstanceType": {
                        "InstanceType": [t for t in str(queue["compute_instance_type"]).split(",") if t]
                    },
                    "DeploymentSetId": queue["deployment_set_id"],
                    "NetworkInterfaceTrafficMode": queue["network_interface_traffic_mode"],
                    "ResourceGroupId": queue["resource_group_id"],
                    "UseEss": bool(queue["use_ess"]),
                    "EnableAutoGrow": False,
                    "HostNamePrefix": "",
                    "HostNameSuffix": "",
                    "ImageId": cluster.image_id,
                    "SpotStrategy": "NoSpot",
                    "SpotInstanceTypes": {"Instance": []},
                }
                for queue in found
            ]
        },
    }


def add_queue(call: Call, settings: QueueSettings) -> dict[str, object]:
    call.services.queues.add(call.principal, settings)
    return {"RequestId": call.request_id}


def update_queue(call: Call, settings: QueueSettings) -> dict[str, object]:
    call.services.queues.update(call.principal, settings)
    return {"RequestId": call.request_id}


def delete_queue(call: Call, ref: QueueRef) -> dict[str, object]:
    call.services.queues.delete(call.principal, ref.cluster_id, ref.name)
    return {"RequestId": call.request_id}


def list_nodes_by_queue(call: Call, ref: QueueRef) -> dict[str, object]:
    found = call.services.queues.nodes(
        call.principal, ref.cluster_id, ref.name, page_number=ref.page_number, page_size=ref.page_size
    )
    return {
        "RequestId": call.request_id,
        "PageNumber": ref.page_number,
        "PageSize": ref.page_size,
        "TotalCount": found.total,
        "Nodes": {"NodeInfo": [clusters.node_info(node, found.cluster) for node in found.nodes]},
    }


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


LIST_QUEUES = Action("ListQueues", _on_cluster("ListQueues"), read_list, list_queues)
ADD_QUEUE = Action("AddQueue", _on_cluster("AddQueue"), read_add, add_queue)
UPDATE_QUEUE_CONFIG = Action("UpdateQueueConfig", _on_cluster("UpdateQueueConfig"), read_update, update_queue)
DELETE_QUEUE = Action("DeleteQueue", _on_cluster("DeleteQueue"), read_ref, delete_queue)
LIST_NODES_BY_QUEUE = Action(
    "ListNodesByQueue", _on_cluster("ListNodesByQueue"), read_nodes, list_nodes_by_queue
)
