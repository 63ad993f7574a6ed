"""SubmitJob, ListJobs, ListJobsWithFilters, DescribeJob, GetJobLog, StopJobs, DeleteJobs and RerunJobs.

`RunasUserPassword` is accepted and dropped (never stored); `Async` is accepted, the call acts at once.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hpcplane.api.action import Action, Call
from hpcplane.api.actions.clusters_admin import CLUSTER_ARN, api_time, choice, page
from hpcplane.api.actions.jsonparam import id_list
from hpcplane.api.actions.templates import FORMATS
from hpcplane.api.params import Params
from hpcplane.authz import Permission
from hpcplane.domain.errors import InvalidParams
from hpcplane.services.jobs import JobSpec, job_info

_STATES = ("all", "finished", "notfinish")


def _cluster(p: Params) -> str:
    p.bool("Async", default=False)
    return p.required_str("ClusterId", max_length=64)


def _formatted(p: Params, name: str, width: int) -> str:
    value = p.text(name, max_length=width) or ""
    if value and not FORMATS[name].match(value):
        raise InvalidParams(name, "is not in the documented format")
    return value


def _given(p: Params, name: str, minimum: int, maximum: int) -> int | None:
    """An integer parameter as given, or None when it was not (so a provider maps only what was asked)."""
    if p.text(name) is None:
        return None
    return p.int(name, default=0, minimum=minimum, maximum=maximum)


def read_submit(p: Params) -> JobSpec:
    """Every SubmitJob parameter of the SDK is read: checked here as the model documents it, then mapped
    or refused by the provider (Provider.check_job), never dropped unseen."""
    command = p.required_str("CommandLine", max_length=2048)
    given_name = p.text("Name", max_length=64)
    name = given_name or (command.split() or ["job"])[0][:64]
    mem = _formatted(p, "Mem", 16) or None
    unzip = _formatted(p, "UnzipCmd", 16) or None
    gpu = _given(p, "Gpu", 1, 8)
    task = _given(p, "Task", 1, 1000)
    thread = _given(p, "Thread", 1, 1000)
    cpu = _given(p, "Cpu", 1, 1000)
    return JobSpec(
        cluster_id=_cluster(p),
        name=name,
        command_line=command,
        owner=p.required_str("RunasUser", max_length=30),
        queue=p.text("JobQueue", max_length=63),
        nodes=p.int("Node", default=1, minimum=1, maximum=500),
        cpus=cpu if cpu is not None else (task or 1) * (thread or 1),
        priority=p.int("Priority", default=0, minimum=0, maximum=9),
        re_runable=p.bool("ReRunable", default=False),
        stdout_path=p.text("StdoutRedirectPath", max_length=512) or "",
        stderr_path=p.text("StderrRedirectPath", max_length=512) or "",
        package_path=p.text("PackagePath", max_length=512) or "",
        variables=p.text("Variables", max_length=2048) or "",
        array_request=_formatted(p, "ArrayRequest", 64),
        clock_time=_formatted(p, "ClockTime", 16),
        given_name=given_name,
        task=task,
        thread=thread,
        cpu=cpu,
        mem=mem,
        gpu=gpu,
        input_file_url=p.text("InputFileUrl", max_length=1024),
        unzip_cmd=unzip,
        post_cmd_line=p.text("PostCmdLine", max_length=2048),
        job_retry_count=_given(p, "JobRetry.Count", 0, 1000),
        job_retry_priority=_given(p, "JobRetry.Priority", 0, 9),
        job_retry_on_exit_code=_given(p, "JobRetry.OnExitCode", -(2**31), 2**31 - 1),
    )


@dataclass(frozen=True, slots=True)
class JobFile:
    cluster_id: str
    owner: str
    path: str
    content: bytes


def read_job_file(p: Params) -> JobFile:
    """Content is Base64 (at most 64 KiB as sent); TargetFile a path without `..` or NUL."""
    encoded = p.required_str("Content", max_length=64 * 1024)
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParams("Content", "is not Base64") from None
    path = p.required_str("TargetFile", max_length=512)
    if "\0" in path or ".." in path.split("/"):
        raise InvalidParams("TargetFile", "must not contain '..' or NUL")
    p.text("RunasUserPassword", max_length=64)
    return JobFile(_cluster(p), p.required_str("RunasUser", max_length=30), path, content)


def create_job_file(call: Call, job_file: JobFile) -> dict[str, object]:
    call.services.jobs.create_file(
        call.principal, job_file.cluster_id, job_file.owner, job_file.path, job_file.content
    )
    return {"RequestId": call.request_id}


def submit(call: Call, spec: JobSpec) -> dict[str, object]:
    return {"RequestId": call.request_id, "JobId": call.services.jobs.submit(call.principal, spec)}


# --- ListJobs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobQuery:
    cluster_id: str
    state: str
    owner: str | None
    rerunable: bool | None
    page_number: int
    page_size: int


def read_list(p: Params) -> JobQuery:
    number, size = page(p, maximum=50)
    return JobQuery(
        cluster_id=_cluster(p),
        state=choice(p, "State", _STATES) or "all",
        owner=p.text("Owner", max_length=30),
        rerunable=p.bool("Rerunable", default=False) if p.text("Rerunable") else None,
        page_number=number,
        page_size=size,
    )


def _when(moment: datetime | None) -> str:
    return api_time(moment) if moment is not None else ""


def render(job: dict[str, Any]) -> dict[str, object]:
    return {
        "Id": job["id"],
        "Name": job["name"],
        "Owner": job["owner"],
        "State": job["state"],
        "NodeList": job["node_list"],
        "Priority": str(job["priority"]),
        "Resources": {"Nodes": job["nodes"], "Cores": job["nodes"] * job["cpus"]},
        "ShellPath": job["package_path"],
        "Stdout": job["stdout_path"],
        "Stderr": job["stderr_path"],
        "ArrayRequest": job["array_request"],
        "Comment": job["comment"],
        "SubmitTime": _when(job["submitted_at"]),
        "StartTime": _when(job["started_at"]),
        "LastModifyTime": _when(job["updated_at"]),
    }


def list_jobs(call: Call, q: JobQuery) -> dict[str, object]:
    found = call.services.jobs.list_jobs(
        call.principal,
        q.cluster_id,
        state=q.state,
        owner=q.owner,
        rerunable=q.rerunable,
        page_number=q.page_number,
        page_size=q.page_size,
    )
    return {
        "RequestId": call.request_id,
        "PageNumber": q.page_number,
        "PageSize": q.page_size,
        "TotalCount": found.total,
        "Jobs": {"JobInfo": [render(job) for job in found.jobs]},
    }


# --- DescribeJob / GetJobLog ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRef:
    cluster_id: str
    job_id: str
    offset: int = 0
    size: int = 1024


def read_ref(p: Params) -> JobRef:
    return JobRef(_cluster(p), p.required_str("JobId", max_length=32))


def read_log(p: Params) -> JobRef:
    p.text("ExecHost", max_length=128)
    return JobRef(
        _cluster(p),
        p.required_str("JobId", max_length=32),
        p.int("Offset", default=0, minimum=0, maximum=2**31 - 1),
        p.int("Size", default=1024, minimum=1, maximum=2**20),
    )


def describe(call: Call, ref: JobRef) -> dict[str, object]:
    job = call.services.jobs.get(call.principal, ref.cluster_id, ref.job_id)
    return {"RequestId": call.request_id, "Message": {"JobInfo": job_info(job)}}


def get_log(call: Call, ref: JobRef) -> dict[str, object]:
    stdout, stderr = call.services.jobs.log(call.principal, ref.cluster_id, ref.job_id)
    end = ref.offset + ref.size
    return {
        "RequestId": call.request_id,
        "JobId": ref.job_id,
        "OutputLog": stdout[ref.offset : end],
        "ErrorLog": stderr[ref.offset : end],
    }


# --- StopJobs / DeleteJobs / RerunJobs ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobsRef:
    cluster_id: str
    job_ids: list[str]


def read_jobs(p: Params) -> JobsRef:
    """Jobs: a JSON string [{"Id": "1.manager"}, ...], at most 100."""
    return JobsRef(_cluster(p), id_list(p, "Jobs", maximum=100))


def stop(call: Call, ref: JobsRef) -> dict[str, object]:
    call.services.jobs.stop(call.principal, ref.cluster_id, ref.job_ids)
    return {"RequestId": call.request_id}


def delete(call: Call, ref: JobsRef) -> dict[str, object]:
    call.services.jobs.stop(call.principal, ref.cluster_id, ref.job_ids, delete=True)
    return {"RequestId": call.request_id}


def rerun(call: Call, ref: JobsRef) -> dict[str, object]:
    call.services.jobs.rerun(call.principal, ref.cluster_id, ref.job_ids)
    return {"RequestId": call.request_id}


def _on_cluster(name: str) -> Permission:
    return Permission(f"ehpc:{name}", CLUSTER_ARN)


CREATE_JOB_FILE = Action("CreateJobFile", _on_cluster("CreateJobFile"), read_job_file, create_job_file)
SUBMIT_JOB = Action("SubmitJob", _on_cluster("SubmitJob"), read_submit, submit)
LIST_JOBS = Action("ListJobs", _on_cluster("ListJobs"), read_list, list_jobs)
DESCRIBE_JOB = Action("DescribeJob", _on_cluster("DescribeJob"), read_ref, describe)
GET_JOB_LOG = Action("GetJobLog", _on_cluster("GetJobLog"), read_log, get_log)
STOP_JOBS = Action("StopJobs", _on_cluster("StopJobs"), read_jobs, stop)
DELETE_JOBS = Action("DeleteJobs", _on_cluster("DeleteJobs"), read_jobs, delete)
RERUN_JOBS = Action("RerunJobs", _on_cluster("RerunJobs"), read_jobs, rerun)


# --- ListJobsWithFilters -------------------------------------------------------------------------

_ORDERS = ("asc", "desc")
_LIST_ITEM = re.compile(r"^(Users|Queues|Nodes)\.(\d+)$")


@dataclass(frozen=True, slots=True)
class JobFilters:
    cluster_id: str
    status: str
    name: str | None
    users: frozenset[str]
    queues: frozenset[str]
    nodes: frozenset[str]
    start: datetime | None
    end: datetime | None
    order: tuple[str, bool]  # (column, descending)
    page_number: int
    page_size: int


def _epoch(p: Params, name: str) -> datetime | None:
    text = p.text(name, max_length=16)
    if text is None:
        return None
    if not text.isdigit():
        raise InvalidParams(name, "is not a UNIX timestamp in seconds")
    return datetime.fromtimestamp(int(text), tz=UTC)


def read_filters(p: Params) -> JobFilters:
    number, size = page(p, maximum=50)
    lists: dict[str, set[str]] = {"Users": set(), "Queues": set(), "Nodes": set()}
    for key, value in p.raw().items():
        match = _LIST_ITEM.match(key)
        if match is None:
            continue
        if not 1 <= int(match.group(2)) <= 100 or not value or len(value) > 128:
            raise InvalidParams(key, "N must be 1 to 100 and the value 1 to 128 characters")
        lists[match.group(1)].add(value)
    order = ("seq", True)
    for name, column in (
        ("SubmitOrder", "submitted_at"),
        ("ExecuteOrder", "started_at"),
        ("PendOrder", "submitted_at"),
    ):
        chosen = choice(p, name, _ORDERS)
        if chosen is not None:
            order = (column, chosen == "desc")
    p.text("RegionId", max_length=32)
    return JobFilters(
        cluster_id=_cluster(p),
        status=choice(p, "JobStatus", _STATES) or "all",
        name=p.text("JobName", max_length=64),
        users=frozenset(lists["Users"]),
        queues=frozenset(lists["Queues"]),
        nodes=frozenset(lists["Nodes"]),
        start=_epoch(p, "CreateTimeStart"),
        end=_epoch(p, "CreateTimeEnd"),
        order=order,
        page_number=number,
        page_size=size,
    )


def _matches(job: dict[str, Any], f: JobFilters) -> bool:
    hosts = {h for h in str(job["node_list"]).split(",") if h}
    return (
        (f.name is None or f.name.lower() in str(job["name"]).lower())
        and (not f.users or job["owner"] in f.users)
        and (not f.queues or job["queue"] in f.queues)
        and (not f.nodes or bool(hosts & f.nodes))
        and (f.start is None or job["submitted_at"] >= f.start)
        and (f.end is None or job["submitted_at"] <= f.end)
    )


def list_with_filters(call: Call, f: JobFilters) -> dict[str, object]:
    every = call.services.jobs.list_jobs(
        call.principal,
        f.cluster_id,
        state=f.status,
        owner=None,
        rerunable=None,
        page_number=1,
        page_size=10_000,
    ).jobs
    column, descending = f.order
    found = [job for job in every if _matches(job, f)]
    found.sort(key=lambda job: (job[column] is not None, job[column] or 0, job["seq"]), reverse=descending)
    start = (f.page_number - 1) * f.page_size
    return {
        "RequestId": call.request_id,
        "Success": True,
        "PageNumber": f.page_number,
        "PageSize": f.page_size,
        "TotalCount": len(found),
        "Jobs": [
            {
                **render(job),
                "Queue": job["queue"],
                "Rerunable": bool(job["re_runable"]),
                "VariableList": job["variables"],
            }
            for job in found[start : start + f.page_size]
        ],
    }


LIST_JOBS_WITH_FILTERS = Action(
    "ListJobsWithFilters", _on_cluster("ListJobsWithFilters"), read_filters, list_with_filters
)
