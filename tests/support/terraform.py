"""What terraform-provider-alicloud does against E-HPC, replayed: its RpcGet and its state waits.

`RpcGet` signs V1 (HMAC-SHA1) and sends every parameter in the query of a GET, RegionId included; a
failure with a retryable code (ServiceUnavailable, Throttling*) is retried with the same parameters
(so CreateCluster's ClientToken makes the retry idempotent). `wait_for` is the provider's
StateChangeConf: poll a refresh function until a target state; a fail state ends the apply; a missing
resource (ClusterNotFound) is tolerated for 20 polls, or is the target when there is no target state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from hpcplane.testing import sign_v1

RETRYABLE = ("ServiceUnavailable", "Throttling")
NOT_FOUND_CHECKS = 20


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.code = str(body.get("Code"))
        self.body = body
        super().__init__(f"HTTP {status} {self.code}: {body.get('Message')}")


@dataclass
class Terraform:
    """One provider configuration: an endpoint and an AccessKey; `calls` records (Action, params)."""

    endpoint: str
    key: Mapping[str, str]
    poll_seconds: float = 0.05
    timeout: float = 60.0
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    retries: int = 0

    def rpc_get(self, action: str, request: Mapping[str, object]) -> dict[str, Any]:
        params = {"RegionId": "cn-hangzhou", **{k: _go_string(v) for k, v in request.items()}}
        deadline = time.monotonic() + self.timeout
        while True:
            signed = sign_v1(action, params, self.key["AccessKeyId"], self.key["AccessKeySecret"])
            assert signed.method == "GET"
            self.calls.append((action, params))
            response = httpx.get(f"http://{self.endpoint}{signed.url_path}", timeout=10)
            body: dict[str, Any] = response.json()
            if response.status_code == 200:
                return body
            error = ApiError(response.status_code, body)
            if error.code.startswith(RETRYABLE) and time.monotonic() < deadline:
                self.retries += 1
                time.sleep(self.poll_seconds)
                continue
            raise error

    def describe_cluster(self, cluster_id: str) -> dict[str, Any] | None:
        """DescribeEhpcCluster: the ClusterInfo, or None when the cluster is not found."""
        try:
            info: dict[str, Any] = self.rpc_get("DescribeCluster", {"ClusterId": cluster_id})["ClusterInfo"]
        except ApiError as error:
            if error.code == "ClusterNotFound":
                return None
            raise
        return info

    def wait_for(self, cluster_id: str, target: list[str], fail: list[str]) -> list[str]:
        """StateChangeConf on ClusterInfo.Status; returns the statuses seen ("" for not found)."""
        seen: list[str] = []
        not_found = 0
        deadline = time.monotonic() + self.timeout
        while True:
            info = self.describe_cluster(cluster_id)
            status = "" if info is None else str(info["Status"])
            seen.append(status)
            if info is None:
                if not target:
                    return seen
                not_found += 1
                if not_found > NOT_FOUND_CHECKS:
                    raise AssertionError(f"{cluster_id} not found {not_found} times: {seen}")
            else:
                not_found = 0
                if status in fail:
                    raise AssertionError(f"{cluster_id} reached fail state {status!r}: {seen}")
                if status in target:
                    return seen
            assert time.monotonic() < deadline, f"{cluster_id}: {target} not reached: {seen}"
            time.sleep(self.poll_seconds)


def _go_string(value: object) -> str:
    """How the provider's map[string]interface{} values reach the query: Go's fmt of ints and bools."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
