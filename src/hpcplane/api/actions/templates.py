"""CreateJobTemplate, EditJobTemplate, DeleteJobTemplates and ListJobTemplates, as the SDK models shape them.

ReRunable is answered as the string "true"/"false": Terraform's alicloud_ehpc_job_template reads it with
strconv.ParseBool(v.(string)), and the Tea model takes the value as it comes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hpcplane.api.action import Action, Call
from hpcplane.api.actions.clusters_admin import page
from hpcplane.api.actions.jsonparam import id_list
from hpcplane.api.params import Params
from hpcplane.authz import ALL_RESOURCES, Permission
from hpcplane.domain.errors import InvalidParams

# Wire name -> (column, width): every width is the column's String(n) in store/tables.py.
TEXT_FIELDS: dict[str, tuple[str, int]] = {
    "Name": ("name", 64),
    "CommandLine": ("command_line", 2048),
    "ArrayRequest": ("array_request", 64),
    "ClockTime": ("clock_time", 16),
    "InputFileUrl": ("input_file_url", 1024),
    "Mem": ("mem", 16),
    "PackagePath": ("package_path", 512),
    "Queue": ("queue", 64),
    "RunasUser": ("runas_user", 32),
    "StderrRedirectPath": ("stderr_redirect_path", 512),
    "StdoutRedirectPath": ("stdout_redirect_path", 512),
    "UnzipCmd": ("unzip_cmd", 16),
    "Variables": ("variables", 2048),
}
# Wire name -> (column, minimum, maximum), as the model documents them; 0 means "not set".
INT_FIELDS: dict[str, tuple[str, int, int]] = {
    "Gpu": ("gpu", 1, 8),
    "Node": ("node", 1, 500),
    "Priority": ("priority", 0, 9),
    "Task": ("task", 1, 1000),
    "Thread": ("thread", 1, 1000),
}
BOOL_FIELDS: dict[str, str] = {"ReRunable": "re_runable", "WithUnzipCmd": "with_unzip_cmd"}
FORMATS: dict[str, re.Pattern[str]] = {
    "Name": re.compile(r"^[A-Za-z][A-Za-z0-9_-]{1,63}$"),
    "ArrayRequest": re.compile(r"^\d+-\d+(:\d+)?$"),
    "ClockTime": re.compile(r"^\d+(:\d{1,2}){0,2}$"),
    "Mem": re.compile(r"^\d+(\.\d+)?(gb|mb|kb)$", re.IGNORECASE),
    "UnzipCmd": re.compile(r"^(tar xzf|tar xf|unzip)$"),
}


def read_fields(p: Params) -> dict[str, Any]:
    """Every field of a template; Name and CommandLine are required."""
    values: dict[str, Any] = {}
    for wire, (column, width) in TEXT_FIELDS.items():
        value = p.text(wire, required=wire in ("Name", "CommandLine"), max_length=width)
        pattern = FORMATS.get(wire)
        if value is not None and pattern is not None and not pattern.match(value):
            raise InvalidParams(wire, "is not in the documented format")
        values[column] = value or ""
    for wire, (column, low, high) in INT_FIELDS.items():
        values[column] = p.int(wire, default=0, minimum=low, maximum=high)
    for wire, column in BOOL_FIELDS.items():
        values[column] = p.bool(wire, default=False)
    return values


def render(row: dict[str, Any]) -> dict[str, object]:
    body: dict[str, object] = {"Id": row["id"]}
    body.update({wire: row[column] for wire, (column, _) in TEXT_FIELDS.items()})
    body.update({wire: row[column] for wire, (column, _, _) in INT_FIELDS.items()})
    body["ReRunable"] = "true" if row["re_runable"] else "false"
    body["WithUnzipCmd"] = bool(row["with_unzip_cmd"])
    return body


# --- CreateJobTemplate / EditJobTemplate ---------------------------------------------------------


def create(call: Call, fields: dict[str, Any]) -> dict[str, object]:
    return {
        "RequestId": call.request_id,
        "TemplateId": call.services.templates.create(call.principal, fields),
    }


@dataclass(frozen=True, slots=True)
class Edit:
    template_id: str
    fields: dict[str, Any]


def read_edit(p: Params) -> Edit:
    return Edit(p.required_str("TemplateId", max_length=64), read_fields(p))


def edit(call: Call, change: Edit) -> dict[str, object]:
    call.services.templates.edit(call.principal, change.template_id, change.fields)
    return {"RequestId": call.request_id, "TemplateId": change.template_id}


# --- DeleteJobTemplates --------------------------------------------------------------------------


def read_delete(p: Params) -> list[str]:
    """Templates: a JSON string, [{"Id": "..."}, ...], at most 20."""
    return id_list(p, "Templates", maximum=20)


def delete(call: Call, idents: list[str]) -> dict[str, object]:
    call.services.templates.delete(call.principal, idents)
    return {"RequestId": call.request_id}


# --- ListJobTemplates ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateQuery:
    name: str | None
    page_number: int
    page_size: int


def read_list(p: Params) -> TemplateQuery:
    number, size = page(p, maximum=50)
    return TemplateQuery(p.text("Name", max_length=64), number, size)


def list_templates(call: Call, query: TemplateQuery) -> dict[str, object]:
    found = call.services.templates.list(
        call.principal, name=query.name, page_number=query.page_number, page_size=query.page_size
    )
    return {
        "RequestId": call.request_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": found.total,
        "Templates": {"JobTemplates": [render(row) for row in found.templates]},
    }


def _any(name: str) -> Permission:
    return Permission(f"ehpc:{name}", ALL_RESOURCES)


CREATE_JOB_TEMPLATE = Action("CreateJobTemplate", _any("CreateJobTemplate"), read_fields, create)
EDIT_JOB_TEMPLATE = Action("EditJobTemplate", _any("EditJobTemplate"), read_edit, edit)
DELETE_JOB_TEMPLATES = Action("DeleteJobTemplates", _any("DeleteJobTemplates"), read_delete, delete)
LIST_JOB_TEMPLATES = Action("ListJobTemplates", _any("ListJobTemplates"), read_list, list_templates)
