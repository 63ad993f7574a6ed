"""SubmitJob, ListJobs, DescribeJob, GetJobLog, StopJobs, DeleteJobs and RerunJobs.

`RunasUserPassword` is accepted and dropped (never stored); `Async` is accepted, the call acts at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


def read_submit(p: Params) -> JobSpec:
    command = p.required_str("CommandLine", max_length=2048)
    name = p.text("Name", max_length=64) or command.split()[0][:64]
    for formatted, width in (("ClockTime", 16), ("Mem", 16), ("UnzipCmd", 16)):
        _formatted(p, formatted, width)
    p.int("Gpu", default=0, minimum=1, maximum=8)
    task = p.int("Task", default=1, minimum=1, maximum=1000)
    thread = p.int("Thread", default=1, minimum=1, maximum=1000)
    return JobSpec(
        cluster_id=_cluster(p),
        name=name,
        command_line=command,
        owner=p.required_str("RunasUser", max_length=30),
        queue=p.text("JobQueue", max_length=63),
        nodes=p.int("Node", default=1, minimum=1, maximum=500),
        cpus=p.int("Cpu", default=task * thread, minimum=1, maximum=1000),
        priority=p.int("Priority", default=0, minimum=0, maximum=9),
        re_runable=p.bool("ReRunable", default=False),
        stdout_path=p.text("StdoutRedirectPath", max_length=512) or "",
        stderr_path=p.text("StderrRedirectPath", max_length=512) or "",
        package_path=p.text("PackagePath", max_length=512) or "",
        variables=p.text("Variables", max_length=2048) or "",
        array_request=_formatted(p, "ArrayRequest", 64),
    )


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


SUBMIT_JOB = Action("SubmitJob", _on_cluster("SubmitJob"), read_submit, submit)
LIST_JOBS = Action("ListJobs", _on_cluster("ListJobs"), read_list, list_jobs)
DESCRIBE_JOB = Action("DescribeJob", _on_cluster("DescribeJob"), read_ref, describe)
GET_JOB_LOG = Action("GetJobLog", _on_cluster("GetJobLog"), read_log, get_log)
STOP_JOBS = Action("StopJobs", _on_cluster("StopJobs"), read_jobs, stop)
DELETE_JOBS = Action("DeleteJobs", _on_cluster("DeleteJobs"), read_jobs, delete)
RERUN_JOBS = Action("RerunJobs", _on_cluster("RerunJobs"), read_jobs, rerun)
