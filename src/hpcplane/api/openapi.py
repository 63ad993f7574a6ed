"""GET /openapi.json: an OpenAPI 3.1 description of the implemented actions, made from the action table.

Which actions exist comes from api/dispatch.py; each action's parameters (names, types, which are
required) come from the official SDK's request model, `alibabacloud_ehpc20180412.models.<Action>Request`
(its `<Action>ShrinkRequest` when there is one), flattened as the Tea SDK puts them on the wire:
`EcsOrder.Compute.Count`, `Instance.N.Id` (N = 1, 2, ...), JSON-string "shrink" parameters. Each success
body's top-level fields come from `<Action>ResponseBody`. So an action added to the table is described
without more work. RPC actions share the path `/`: each is keyed `/#Action=<Name>` (the fragment is
never sent), with Action and Version as required query parameters. See docs/protocol.md.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hpcplane import API_VERSION, __version__
from hpcplane.api.actions.sts import STS_VERSION
from hpcplane.api.dispatch import VERSIONS
from hpcplane.domain.errors import OpenApiUnavailable

SDK_MODELS = "alibabacloud_ehpc20180412.models"
_REQUIRED = re.compile(r"validate_required\(self\.(\w+),")
_MAX_NESTING = 5
_SCALARS: dict[Any, dict[str, object]] = {
    str: {"type": "string"},
    int: {"type": "integer", "format": "int64"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
}
_STRING: dict[str, object] = {"type": "string"}
# The common parameters of a V1 (query-signed) call; V3 carries them in headers instead.
COMMON_V1 = (
    "Format",
    "AccessKeyId",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "Timestamp",
    "Signature",
    "SecurityToken",
    "RegionId",
)
COMMON_V3_HEADERS = (
    "Authorization",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
    "x-acs-security-token",
    "x-acs-accesskey-id",
)
# STS AssumeRole is not in the E-HPC SDK: its parameters and reply as the RamRoleArn provider uses them.
_ASSUME_ROLE: tuple[list[tuple[str, dict[str, object], bool, bool]], list[str]] = (
    [
        ("RoleArn", {"type": "string"}, True, False),
        ("RoleSessionName", {"type": "string"}, True, False),
        ("DurationSeconds", {"type": "integer", "format": "int64"}, False, False),
        ("Policy", {"type": "string", "contentMediaType": "application/json"}, False, True),
    ],
    ["RequestId", "AssumedRoleUser", "Credentials"],
)


@dataclass(frozen=True, slots=True)
class Parameter:
    """One wire parameter: `Instance.N.Id` has `listed` (N = 1, 2, ...); a "shrink" one is `json`."""

    name: str
    schema: dict[str, object]
    required: bool = False
    json: bool = False

    @property
    def listed(self) -> bool:
        return ".N." in f".{self.name}."

    def as_openapi(self) -> dict[str, object]:
        item: dict[str, object] = {"name": self.name, "in": "query", "required": self.required}
        item["schema"] = self.schema
        if self.listed:
            item["x-hpcplane-list"] = True
        if self.json:
            item["x-hpcplane-json"] = True
        return item


def sdk_models(module: str = SDK_MODELS) -> ModuleType:
    """The SDK's models module, or OpenApiUnavailable when the `sdk` extra is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OpenApiUnavailable() from None


def _is_model(annotation: Any) -> bool:
    return inspect.isclass(annotation) and hasattr(annotation, "to_map") and annotation not in _SCALARS


def _sample(annotation: Any) -> object:
    origin = typing.get_origin(annotation)
    if origin is list:
        return [_sample(typing.get_args(annotation)[0])]
    if origin is dict:
        return {"k": "v"}
    if _is_model(annotation):
        return annotation()
    return {str: "x", int: 1, float: 1.5, bool: True}.get(annotation, "x")


def fields(model: Any) -> Iterator[tuple[str, str, Any]]:
    """(attribute, wire name, annotation) of each field of a Tea model, wire names read from to_map()."""
    base = model().to_map()
    for attr, param in list(inspect.signature(model.__init__).parameters.items())[1:]:
        changed = model(**{attr: _sample(param.annotation)}).to_map()
        wire = next((k for k in changed if changed[k] != base.get(k)), None)
        if wire is not None:
            yield attr, wire, param.annotation


def _required(model: Any) -> set[str]:
    try:
        return set(_REQUIRED.findall(inspect.getsource(model.validate)))
    except (OSError, TypeError):
        return set()


def flatten(model: Any, prefix: str = "", depth: int = 0) -> Iterator[Parameter]:
    """The wire parameters of a request model, as the Tea SDK flattens it."""
    required = _required(model) if depth == 0 else set()
    for attr, wire, annotation in fields(model):
        name = f"{prefix}{wire}"
        origin = typing.get_origin(annotation)
        if origin is list:
            item = typing.get_args(annotation)[0]
            if _is_model(item) and depth < _MAX_NESTING:
                yield from flatten(item, f"{name}.N.", depth + 1)
            else:
                yield Parameter(f"{name}.N", _SCALARS.get(item, _STRING))
        elif _is_model(annotation) and depth < _MAX_NESTING:
            yield from flatten(annotation, f"{name}.", depth + 1)
        elif attr.endswith("_shrink") or origin is dict:
            schema: dict[str, object] = {"type": "string", "contentMediaType": "application/json"}
            yield Parameter(name, schema, attr in required, json=True)
        else:
            yield Parameter(name, _SCALARS.get(annotation, _STRING), attr in required)


def action_parameters(action: str, version: str = API_VERSION) -> list[Parameter]:
    """The parameters of one implemented action (without the common ones)."""
    if version == STS_VERSION and action == "AssumeRole":
        return [Parameter(n, s, r, j) for n, s, r, j in _ASSUME_ROLE[0]]
    models = sdk_models()
    model = getattr(models, f"{action}ShrinkRequest", None) or getattr(models, f"{action}Request", None)
    return list(flatten(model)) if model is not None else []


def response_fields(action: str, version: str = API_VERSION) -> list[str]:
    """The top-level fields of the action's success body."""
    if version == STS_VERSION and action == "AssumeRole":
        return list(_ASSUME_ROLE[1])
    model = getattr(sdk_models(), f"{action}ResponseBody", None)
    return [wire for _, wire, _ in fields(model)] if model is not None else ["RequestId"]


def _operation(action: str, version: str) -> dict[str, object]:
    params = [
        {"name": "Action", "in": "query", "required": True, "schema": {"const": action}},
        {"name": "Version", "in": "query", "required": True, "schema": {"const": version}},
        *({"$ref": f"#/components/parameters/{name}"} for name in COMMON_V1),
        # A model field that is also a common parameter (RegionId of some actions) is described once.
        *(p.as_openapi() for p in action_parameters(action, version) if p.name not in COMMON_V1),
    ]
    success = {"type": "object", "required": ["RequestId"], "additionalProperties": False}
    success["properties"] = {name: {} for name in response_fields(action, version)}
    error = {"$ref": "#/components/responses/Error"}
    return {
        "operationId": action if version == API_VERSION else f"{action}_{version}",
        "tags": [version],
        "parameters": params,
        "responses": {
            "200": {"description": "Success", "content": {"application/json": {"schema": success}}},
            "4XX": error,
            "5XX": error,
        },
    }


def _components() -> dict[str, object]:
    parameters = {
        name: {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in COMMON_V1
    }
    envelope = {
        "type": "object",
        "required": ["RequestId", "HostId", "Code", "Message", "Recommend"],
        "additionalProperties": False,
        "properties": {
            k: {"type": "string"} for k in ("RequestId", "HostId", "Code", "Message", "Recommend")
        },
    }
    return {
        "parameters": parameters,
        "schemas": {"ErrorEnvelope": envelope},
        "responses": {
            "Error": {
                "description": "The error envelope (docs/protocol.md section 5)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
            }
        },
        "securitySchemes": {
            "AcsV3": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "ACS3-HMAC-SHA256 / ACS3-HMAC-SM3, with " + ", ".join(COMMON_V3_HEADERS[1:]),
            },
            "AcsV1": {"type": "apiKey", "in": "query", "name": "Signature", "description": "HMAC-SHA1"},
        },
    }


@functools.cache
def document() -> dict[str, object]:
    """The whole description (made once per process)."""
    paths: dict[str, object] = {}
    for version, table in VERSIONS.items():
        for name in sorted(table):
            key = f"/#Action={name}" if version == API_VERSION else f"/#Action={name}&Version={version}"
            operation = _operation(name, version)
            paths[key] = {
                "get": operation,
                "post": {**operation, "operationId": f"{operation['operationId']}_post"},
            }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hpcplane: the E-HPC 2018-04-12 API",
            "version": __version__,
            "description": "RPC style: every call is GET or POST /, named by its Action parameter.",
        },
        "servers": [{"url": "/"}],
        "security": [{"AcsV3": []}, {"AcsV1": []}],
        "paths": paths,
        "components": _components(),
    }
