"""Call E-HPC (2018-04-12) actions on a local hpcplane server through the official, unmodified SDKs.

Kinds:
  * ``tea-v3``  alibabacloud_ehpc20180412 Client, default ACS3-HMAC-SHA256 (V3, Authorization header)
  * ``tea-sm3`` same, ``Config(signature_algorithm="ACS3-HMAC-SM3")``
  * ``tea-v1``  same, ``Config(signature_algorithm="v2")``: RPC HMAC-SHA1 (V1, query ``Signature``)
  * ``legacy``  aliyunsdkcore AcsClient + aliyunsdkehpc ``<Action>Request`` (V1, adds ``RegionId``)

Params use the wire (PascalCase) names; nested values are dicts/lists, e.g. ``{"Instance": [{"Id": "i-1"}]}``.
No SDK signs anything differently here: only endpoint, protocol, timeouts and retries are configured.
Errors carried by an HTTP error response become :class:`SdkError`; transport failures (timeouts,
refused connections) propagate as the SDK's own exception.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

SDK_KINDS = ("tea-v3", "tea-sm3", "tea-v1", "legacy")
API_VERSION = "2018-04-12"
REGION_ID = "cn-hangzhou"
_TEA_ALGORITHMS: dict[str, str | None] = {
    "tea-v3": None,  # SDK default: ACS3-HMAC-SHA256
    "tea-sm3": "ACS3-HMAC-SM3",
    "tea-v1": "v2",  # selects do_rpcrequest, i.e. V1 HMAC-SHA1 in the query string
}
# What the generated EHPC methods pass as Params (besides action/version); method is POST for a few.
_GENERIC_RPC = {"protocol": "HTTPS", "pathname": "/", "method": "GET", "auth_type": "AK", "style": "RPC"}
_GENERIC_RPC |= {"req_body_type": "formData", "body_type": "json"}


@dataclass(eq=False)
class SdkError(Exception):
    """An error response, normalized from the SDK's exception."""

    status: int
    code: str
    message: str  # the raw "Message" of the error body
    request_id: str | None
    data: dict[str, Any] | None = None  # the parsed error body, when it was JSON

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.code}: {self.message} (RequestId={self.request_id})"


def call(
    kind: str,
    endpoint: str,
    access_key_id: str,
    secret: str,
    action: str,
    params: Mapping[str, object],
    *,
    security_token: str | None = None,
    timeout_s: float = 10,
) -> dict[str, object]:
    """Call ``action`` on ``endpoint`` ("127.0.0.1:PORT", plain http) through SDK ``kind``.

    Returns the response body as a dict in wire names (Tea: ``resp.body.to_map()``, so fields unknown
    to the Tea model are dropped; legacy: the raw JSON). Raises :class:`SdkError` on an error response.
    """
    if kind in _TEA_ALGORITHMS:
        return _tea_call(kind, endpoint, access_key_id, secret, action, params, security_token, timeout_s)
    if kind == "legacy":
        return _legacy_call(endpoint, access_key_id, secret, action, params, security_token, timeout_s)
    raise ValueError(f"unknown SDK kind {kind!r}; expected one of {SDK_KINDS}")


def _as_dict(value: object) -> dict[str, Any] | None:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else None


def _flatten(prefix: str, value: object) -> Iterator[tuple[str, str]]:
    """RPC flattening: lists get 1-based indexes, dicts dotted keys, None is omitted, scalars str()."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from _flatten(f"{prefix}.{key}", sub)
    elif isinstance(value, list | tuple):
        for index, sub in enumerate(value, start=1):
            yield from _flatten(f"{prefix}.{index}", sub)
    elif value is not None:
        yield prefix, str(value)


# ---------------------------------------------------------------------------------------------- Tea


@functools.cache
def _tea_methods() -> dict[str, str]:
    """Lower-cased action name -> ``<snake_case>_with_options`` method of the generated client."""
    from alibabacloud_ehpc20180412.client import Client

    suffix = "_with_options"
    return {
        name[: -len(suffix)].replace("_", ""): name
        for name in dir(Client)
        if name.endswith(suffix) and not name.startswith("_")
    }


def _tea_call(
    kind: str,
    endpoint: str,
    access_key_id: str,
    secret: str,
    action: str,
    params: Mapping[str, object],
    security_token: str | None,
    timeout_s: float,
) -> dict[str, object]:
    from alibabacloud_ehpc20180412 import models
    from alibabacloud_ehpc20180412.client import Client
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
    from alibabacloud_tea_openapi.models import Config, OpenApiRequest, Params
    from alibabacloud_tea_util.models import RuntimeOptions
    from darabonba.policy.retry import RetryOptions

    timeout_ms = max(1, int(timeout_s * 1000))  # Tea timeouts are integer milliseconds
    config = Config(
        access_key_id=access_key_id,
        access_key_secret=secret,
        security_token=security_token,
        endpoint=endpoint,
        protocol="http",  # overrides the generated Params(protocol='HTTPS')
        region_id=REGION_ID,
        read_timeout=timeout_ms,
        connect_timeout=timeout_ms,
        signature_algorithm=_TEA_ALGORITHMS[kind],
        retry_options=RetryOptions({"retryable": False}),  # the default (None) also makes one attempt
    )
    client = Client(config)
    runtime = RuntimeOptions(
        read_timeout=timeout_ms, connect_timeout=timeout_ms, autoretry=False, max_attempts=1
    )
    method = _tea_methods().get(action.lower())
    request_cls = getattr(models, f"{action}Request", None)
    try:
        if method is None:
            # Action unknown to the Tea SDK (legacy-only or bogus): the SDK's generic RPC call.
            api = Params(action=action, version=API_VERSION, **_GENERIC_RPC)
            query = dict(pair for name, value in params.items() for pair in _flatten(name, value))
            request = OpenApiRequest(query=query)
            body = _as_dict(client.call_api(api, request, runtime).get("body"))
            if body is None:
                raise TypeError(f"{action}: response body is not a JSON object")
            return body
        if request_cls is None:  # e.g. ListRegions: the generated method takes no request
            if params:
                raise ValueError(f"Tea {method} accepts no parameters, got {sorted(params)}")
            response = getattr(client, method)(runtime)
        else:
            model = request_cls().from_map(dict(params))
            unknown = {k for k, v in params.items() if v is not None} - set(model.to_map())
            if unknown:
                raise ValueError(f"Tea {action}Request has no field(s) {sorted(unknown)}")
            response = getattr(client, method)(model, runtime)
    except AlibabaCloudException as exc:
        if exc.status_code is None:  # raised locally by the SDK, not from a response
            raise
        data = _as_dict(exc.data)
        if data is not None:
            data.pop("statusCode", None)  # added by the SDK, not part of the body
        raw = (data or {}).get("Message", (data or {}).get("message"))
        rid = (data or {}).get("RequestId", (data or {}).get("requestId"))
        raise SdkError(
            status=int(exc.status_code),
            code=str(exc.code),
            message=str(raw) if raw is not None else str(exc.message),
            request_id=str(rid) if rid is not None else None,
            data=data,
        ) from exc
    result = _as_dict(response.body.to_map())
    assert result is not None
    return result


# ------------------------------------------------------------------------------------------- legacy


def _legacy_call(
    endpoint: str,
    access_key_id: str,
    secret: str,
    action: str,
    params: Mapping[str, object],
    security_token: str | None,
    timeout_s: float,
) -> dict[str, object]:
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    from aliyunsdkcore.auth.credentials import AccessKeyCredential, StsTokenCredential
    from aliyunsdkcore.client import AcsClient
    from aliyunsdkcore.request import CommonRequest

    credential = (
        StsTokenCredential(access_key_id, secret, security_token)
        if security_token
        else AccessKeyCredential(access_key_id, secret)
    )
    client = AcsClient(
        region_id=REGION_ID,
        credential=credential,
        auto_retry=False,
        max_retry_time=0,
        timeout=timeout_s,
        connect_timeout=timeout_s,  # seconds
    )
    bodies: list[bytes] = []  # observe (not alter) the raw error body so SdkError.data can be filled
    client.session.hooks["response"].append(lambda resp, *_a, **_k: bodies.append(resp.content))

    try:
        module = importlib.import_module(f"aliyunsdkehpc.request.v20180412.{action}Request")
        request: Any = getattr(module, f"{action}Request")()
    except ModuleNotFoundError:  # action unknown to the legacy SDK: its generic RPC request
        request = CommonRequest(domain=endpoint, version=API_VERSION, action_name=action, product="EHPC")
    request.set_endpoint(endpoint)  # skips endpoint resolution; the URL becomes http://<endpoint>/?...
    request.set_protocol_type("http")
    for name, value in params.items():
        if value is None:
            continue
        setter = getattr(request, f"set_{name}", None)
        if setter is None and isinstance(value, list):
            setter = getattr(request, f"set_{name}s", None)  # RepeatList: set_Instances for Instance.N.Id
        if setter is not None:
            setter(value)
        else:
            for key, text in _flatten(name, value):
                request.add_query_param(key, text)
    try:
        raw = client.do_action_with_exception(request)
    except ServerException as exc:
        data: dict[str, Any] | None = None
        if bodies:
            try:
                data = _as_dict(json.loads(bodies[-1]))
            except ValueError:
                data = None
        raise SdkError(
            status=int(exc.get_http_status()),
            code=str(exc.get_error_code()),
            message=str(exc.get_error_msg()),
            request_id=exc.get_request_id(),
            data=data,
        ) from exc
    finally:
        # AcsClient and its endpoint resolver refer to each other, so only the cyclic collector frees the
        # client, and its __del__ (which closes the session) may run after the pooled socket's finalizer:
        # an "unclosed socket" ResourceWarning that pytest raises in whichever test is running then, or at
        # the session's end. The session is closed here, when the call returns.
        client.session.close()
    result = _as_dict(json.loads(raw))
    if result is None:
        raise TypeError(f"{action}: response body is not a JSON object")
    return result
