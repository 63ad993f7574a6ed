"""SetAutoScaleConfig, GetAutoScaleConfig and DescribeAutoScaleConfig, as the SDK models shape them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hpcplane.api.action import Action, Call
from hpcplane.api.actions.clusters_admin import CLUSTER_ARN, choice
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.services.autoscale import NUMBERS

_SPOT = ("NoSpot", "SpotWithPriceLimit", "SpotAsPriceGo")
_PRICE = re.compile(r"^[0-9]{1,6}(\.[0-9]{1,6})?$")
_QUEUE_FIELD = re.compile(r"^Queues\.(\d+)\.([A-Za-z]+)(\.\d+\.[A-Za-z]+)?$")


@dataclass(frozen=True, slots=True)
class AutoScaleChange:
    cluster_id: str
    changes: dict[str, Any]


def read_set(p: Params) -> AutoScaleChange:
    changes: dict[str, Any] = {}
    for name in ("EnableAutoGrow", "EnableAutoShrink", "ComputeEnableHt"):
        if p.text(name) is not None:
            changes[name] = p.bool(name, default=False)
    for name, (default, low, high) in NUMBERS.items():
        if p.text(name) is not None:
            changes[name] = p.int(name, default=default, minimum=low, maximum=high)
    spot = choice(p, "SpotStrategy", _SPOT)
    if spot is not None:
        changes["SpotStrategy"] = spot
    price = p.text("SpotPriceLimit", max_length=16)
    if price is not None:
        if not _PRICE.match(price):
            raise InvalidParams("SpotPriceLimit", "is not a price")
        changes["SpotPriceLimit"] = float(price)
    for name, width in (("ExcludeNodes", 4096), ("ImageId", 128), ("DnsConfig", 1024)):
        value = p.text(name, max_length=width)
        if value is not None:
            changes[name] = value
    queues: dict[int, dict[str, str]] = {}
    for key, value in p.raw().items():
        match = _QUEUE_FIELD.match(key)
        if match is None:
            continue
        number = int(match.group(1))
        if not 1 <= number <= 8 or len(value) > 256:
            raise InvalidParams(key, "N must be 1 to 8 and the value at most 256 characters")
        if match.group(3) is None:
            queues.setdefault(number, {})[match.group(2)] = value
    if queues:
        changes["Queues"] = [queues[n] for n in sorted(queues)]
    return AutoScaleChange(p.required_str("ClusterId", max_length=64), changes)


def set_config(call: Call, change: AutoScaleChange) -> dict[str, object]:
    call.services.autoscale.set_config(call.principal, change.cluster_id, change.changes)
    return {"RequestId": call.request_id}


def read_get(p: Params) -> str:
    return p.required_str("ClusterId", max_length=64)


def _common(call: Call, cluster_id: str) -> tuple[dict[str, object], dict[str, Any]]:
    scheduler, config = call.services.autoscale.get_config(call.principal, cluster_id)
    body: dict[str, object] = {
        "RequestId": call.request_id,
        "ClusterId": cluster_id,
        "ClusterType": scheduler,
        "Uid": call.principal.account.id,
        "EnableAutoGrow": bool(config["EnableAutoGrow"]),
        "EnableAutoShrink": bool(config["EnableAutoShrink"]),
        "ExcludeNodes": config["ExcludeNodes"],
        "SpotStrategy": config["SpotStrategy"],
        **{name: int(config[name]) for name in NUMBERS},
    }
    return body, config


def get_config(call: Call, cluster_id: str) -> dict[str, object]:
    body, config = _common(call, cluster_id)
    queues = [
        {
            "QueueName": q.get("QueueName", ""),
            "EnableAutoGrow": q.get("EnableAutoGrow", "false") == "true",
            "EnableAutoShrink": q.get("EnableAutoShrink", "false") == "true",
            "InstanceType": q.get("InstanceType", ""),
        }
        for q in config.get("Queues", [])
    ]
    return {
        **body,
        "SpotPriceLimit": float(config["SpotPriceLimit"]),
        "ImageId": config["ImageId"],
        "ComputeEnableHt": bool(config["ComputeEnableHt"]),
        "DnsConfig": config["DnsConfig"],
        "Queues": {"QueueInfo": queues},
    }


def describe_config(call: Call, cluster_id: str) -> dict[str, object]:
    body, config = _common(call, cluster_id)
    return {**body, "SpotPriceLimit": str(config["SpotPriceLimit"])}


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


SET_AUTO_SCALE_CONFIG = Action("SetAutoScaleConfig", _on_cluster("SetAutoScaleConfig"), read_set, set_config)
GET_AUTO_SCALE_CONFIG = Action("GetAutoScaleConfig", _on_cluster("GetAutoScaleConfig"), read_get, get_config)
DESCRIBE_AUTO_SCALE_CONFIG = Action(
    "DescribeAutoScaleConfig", _on_cluster("DescribeAutoScaleConfig"), read_get, describe_config
)
