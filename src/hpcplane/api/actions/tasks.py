"""ListTasks."""

from __future__ import annotations

from hpcplane.api.action import Action, Call
from hpcplane.api.params import Params
from hpcplane.authz import ALL_RESOURCES, Permission
from hpcplane.services.tasks import TaskQuery


def read_list_tasks(p: Params) -> TaskQuery:
    return TaskQuery(
        cluster_id=p.required_str("ClusterId", max_length=64),
        page_number=p.int("PageNumber", default=1, minimum=1, maximum=999),
        page_size=p.int("PageSize", default=10, minimum=1, maximum=50),
        task_id=p.text("TaskId", max_length=64),
        archived=p.bool("Archived", default=False),
    )


def list_tasks(call: Call, query: TaskQuery) -> dict[str, object]:
    page = call.services.task_reader.list_tasks(call.principal, query)
    return {
        "RequestId": call.request_id,
        "PageNumber": query.page_number,
        "PageSize": query.page_size,
        "TotalCount": page.total,
        "Tasks": [
            {
                "ClusterId": cluster_id,
                "TaskId": task_id,
                "TaskType": task_type,
                "Status": status,
                "CurrentStep": current_step,
                "TotalSteps": total_steps,
                "Result": result,
                "Errors": errors,
                "Request": request,
            }
            for (
                task_id,
                cluster_id,
                task_type,
                status,
                current_step,
                total_steps,
                result,
                errors,
                request,
            ) in page.tasks
        ],
    }


LIST_TASKS = Action(
    name="ListTasks",
    permission=Permission("ehpc:ListTasks", ALL_RESOURCES),
    read=read_list_tasks,
    handle=list_tasks,
)
