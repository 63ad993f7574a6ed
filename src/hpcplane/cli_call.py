"""`hpcplane call ACTION --Param value ...` and `hpcplane task wait|watch`: the aliyun-CLI-style client."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from hpcplane import cli_output, progress
from hpcplane.client import (
    DEFAULT_ENDPOINT,
    ApiError,
    Client,
    ClientError,
    profile_endpoint,
    resolve_credentials,
)

F = TypeVar("F", bound=Callable[..., Any])


def client_options(func: F) -> F:
    """Where to send and as whom: endpoint, profile, region, the AccessKey flags and the signature."""
    options = [
        click.option(
            "--endpoint", default=None, help=f"HOST:PORT or URL [HPCPLANE_ENDPOINT; {DEFAULT_ENDPOINT}]"
        ),
        click.option(
            "--profile", default=None, help="a profile of ~/.aliyun/config.json (or hpcplane's own)"
        ),
        click.option("--region", default=None, help="RegionId (default: the profile's, or cn-hangzhou)"),
        click.option("--access-key-id", default=None, help="[ALIBABA_CLOUD_ACCESS_KEY_ID]"),
        click.option("--access-key-secret", default=None, help="[ALIBABA_CLOUD_ACCESS_KEY_SECRET]"),
        click.option("--security-token", default=None, help="STS token [ALIBABA_CLOUD_SECURITY_TOKEN]"),
        click.option("--signature-v1", is_flag=True, help="sign with V1 HMAC-SHA1 instead of V3 ACS3"),
        click.option("--home", type=click.Path(path_type=Path), default=None, help="[HPCPLANE_HOME]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def open_client(options: dict[str, Any]) -> Client:
    home = options.get("home") or Path(os.environ.get("HPCPLANE_HOME") or ".hpcplane")
    try:
        creds = resolve_credentials(
            access_key_id=options.get("access_key_id"),
            access_key_secret=options.get("access_key_secret"),
            security_token=options.get("security_token"),
            profile=options.get("profile"),
            hpcplane_home=home,
        )
    except ClientError as error:
        fail(str(error), progress.EXIT_CLIENT)
    endpoint = (
        options.get("endpoint")
        or os.environ.get("HPCPLANE_ENDPOINT")
        or creds.endpoint
        or profile_endpoint(home)
        or DEFAULT_ENDPOINT
    )
    region = (
        options.get("region")
        or creds.region
        or os.environ.get("ALIBABA_CLOUD_REGION_ID")
        or os.environ.get("HPCPLANE_REGION")
        or "cn-hangzhou"
    )
    return Client(endpoint, creds, region=region, signature_v1=bool(options.get("signature_v1")))


def fail(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


def send(client: Client, action: str, params: dict[str, str]) -> dict[str, Any]:
    """One call; an error prints Code and Message on stderr and exits with the documented code."""
    try:
        return client.call(action, params)
    except ApiError as error:
        request_id = error.body.get("RequestId")
        fail(
            f"{error.code}: {error.message}" + (f" (RequestId {request_id})" if request_id else ""),
            progress.EXIT_API_ERROR,
        )
    except ClientError as error:
        fail(str(error), progress.EXIT_CLIENT)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("action")
@click.argument("params", nargs=-1, type=click.UNPROCESSED)
@client_options
@click.option("--output", "output", default=None, help="a table: cols=A,B[,rows=Path.To.List]")
@click.option("--pager", is_flag=True, help="merge every page of a List* action (PageNumber/PageSize)")
@click.option("--wait", is_flag=True, help="when the answer has a TaskId, wait for the task to end")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds --wait waits")
def call(
    action: str,
    params: tuple[str, ...],
    output: str | None,
    pager: bool,
    wait: bool,
    timeout: float,
    **options: Any,
) -> None:
    """Call any ACTION, parameters named as on the wire: --ClusterId c, --EcsOrder.Compute.Count 2."""
    wire = cli_output.wire_params(params)
    columns = cli_output.parse_output(output) if output else None
    with open_client(options) as client:
        if pager:
            body = cli_output.merge_pages(lambda page: send(client, action, page), wire)
        else:
            body = send(client, action, wire)
        if columns is not None:
            cols, rows = columns
            click.echo(cli_output.table(cli_output.rows_at(body, rows, cols), cols))
        else:
            click.echo(cli_output.render_json(body, sys.stdout.isatty()))
        task_id = body.get("TaskId")
        cluster_id = body.get("ClusterId") or wire.get("ClusterId")
        if wait and isinstance(task_id, str) and task_id != "Not Available" and cluster_id:
            sys.exit(_wait(client, task_id, str(cluster_id), timeout)[1])


def _fetch_task(client: Client, task_id: str, cluster_id: str) -> dict[str, Any]:
    tasks = send(client, "ListTasks", {"ClusterId": cluster_id, "TaskId": task_id}).get("Tasks") or []
    if not tasks:
        fail(f"no task {task_id} in cluster {cluster_id}", progress.EXIT_CLIENT)
    found: dict[str, Any] = tasks[0]
    return found


def _wait(client: Client, task_id: str, cluster_id: str, timeout: float) -> tuple[dict[str, Any], int]:
    task, code = progress.wait_task(
        lambda: _fetch_task(client, task_id, cluster_id), progress.display_for(sys.stderr), timeout=timeout
    )
    if code == progress.EXIT_TIMEOUT:
        click.echo(
            f"{task_id} still {task.get('Status')} at step "
            f"{task.get('CurrentStep')}/{task.get('TotalSteps')} after {timeout:g}s",
            err=True,
        )
    elif code != progress.EXIT_OK or progress.error_count(task):
        click.echo(f"{task_id} ended {task.get('Status')}; Errors: {task.get('Errors')}", err=True)
    return task, code


@click.group()
def task() -> None:
    """Wait for a task, or watch a cluster's tasks."""


@task.command("wait")
@click.argument("task_id")
@click.option("--cluster", "cluster_id", required=True, help="the task's ClusterId")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds to wait")
@client_options
def task_wait(task_id: str, cluster_id: str, timeout: float, **options: Any) -> None:
    """Wait for TASK_ID to end: exit 0 on Success, 4 Failed, 5 PartialFail, 6 timeout (docs/cli.md)."""
    with open_client(options) as client:
        last, code = _wait(client, task_id, cluster_id, timeout)
        click.echo(cli_output.render_json(last, sys.stdout.isatty()))
    sys.exit(code)


@task.command("watch")
@click.argument("cluster_id")
@client_options
def task_watch(cluster_id: str, **options: Any) -> None:
    """A live table of CLUSTER_ID's tasks, until none is Processing."""
    with open_client(options) as client:

        def fetch() -> list[dict[str, Any]]:
            body = send(client, "ListTasks", {"ClusterId": cluster_id, "Archived": "true", "PageSize": "50"})
            return list(body.get("Tasks") or [])

        if not progress.watch_tasks(fetch, sys.stdout):
            click.echo(f"no task of {cluster_id} is Processing")
