"""`hpcplane control ...`: the emulator control API of a running server (reset, tuning, clock, step)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from hpcplane.client import DEFAULT_ENDPOINT, normalize_endpoint, profile_endpoint, read_token

F = TypeVar("F", bound=Callable[..., Any])


def control_options(func: F) -> F:
    options = [
        click.option(
            "--endpoint", default=None, help=f"HOST:PORT or URL [HPCPLANE_ENDPOINT; {DEFAULT_ENDPOINT}]"
        ),
        click.option(
            "--token", default=None, help="[HPCPLANE_CONTROL_TOKEN; else HPCPLANE_HOME/control-token]"
        ),
        click.option("--home", type=click.Path(path_type=Path), default=None, help="[HPCPLANE_HOME]"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _send(options: dict[str, Any], method: str, path: str, body: dict[str, Any] | None = None) -> None:
    home = options.get("home") or Path(os.environ.get("HPCPLANE_HOME") or ".hpcplane")
    token = options.get("token") or os.environ.get("HPCPLANE_CONTROL_TOKEN") or read_token(home)
    if not token:
        click.echo(
            "no control token: give --token, set HPCPLANE_CONTROL_TOKEN, or --home of the server", err=True
        )
        sys.exit(3)
    endpoint = normalize_endpoint(
        options.get("endpoint")
        or os.environ.get("HPCPLANE_ENDPOINT")
        or profile_endpoint(home)
        or DEFAULT_ENDPOINT
    )
    try:
        response = httpx.request(
            method,
            f"{endpoint}/_hpcplane{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
        )
    except httpx.HTTPError as error:
        click.echo(f"cannot reach {endpoint}: {error}", err=True)
        sys.exit(3)
    if response.status_code == 404 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        click.echo(f"{endpoint} has no control API (HPCPLANE_CONTROL=true enables it)", err=True)
        sys.exit(3)
    try:
        answer = response.json()
    except ValueError:
        click.echo(f"{endpoint} answered HTTP {response.status_code}, not JSON", err=True)
        sys.exit(3)
    if response.is_error:
        click.echo(f"{answer.get('Code')}: {answer.get('Message')}", err=True)
        sys.exit(1)
    click.echo(json.dumps(answer, indent=2 if sys.stdout.isatty() else None))


@click.group()
def control() -> None:
    """The emulator control API of a running server (HPCPLANE_CONTROL; on for the embedded default)."""


@control.command("reset")
@click.option("--account", default=None, help="only this account's resources (AccountId or name)")
@click.option("--everything", is_flag=True, help="accounts, keys and RAM too (not only resources)")
@control_options
def reset(account: str | None, everything: bool, **options: Any) -> None:
    """Delete every cluster, node and task (of one account); the tuning returns to the settings."""
    body: dict[str, Any] = {"Everything": everything}
    if account:
        body["AccountId"] = account
    _send(options, "POST", "/reset", body)


@control.command("faults")
@click.argument("spec")
@control_options
def faults(spec: str, **options: Any) -> None:
    """Set the fault rules, as HPCPLANE_SIM_FAULTS ('' clears them, 'default' restores the setting)."""
    _send(options, "POST", "/tuning", {"Faults": None if spec == "default" else spec})


@control.command("timing")
@click.option("--step-seconds", type=float, default=None, help="mean step duration")
@click.option("--jitter", type=float, default=None, help="+/- fraction of a step's duration")
@click.option("--scale", type=float, default=None, help="multiplies step durations (0.01: 100x faster)")
@click.option("--manual/--no-manual", default=None, help="steps wait for `control step` or `control advance`")
@click.option("--default", "restore", is_flag=True, help="back to the server's settings")
@control_options
def timing(
    step_seconds: float | None,
    jitter: float | None,
    scale: float | None,
    manual: bool | None,
    restore: bool,
    **options: Any,
) -> None:
    """Change step timing at runtime (every API and worker process applies it at its next claim)."""
    body: dict[str, Any] = {}
    if restore:
        body = {"StepSeconds": None, "Jitter": None, "StepScale": None, "Manual": None}
    for name, value in (
        ("StepSeconds", step_seconds),
        ("Jitter", jitter),
        ("StepScale", scale),
        ("Manual", manual),
    ):
        if value is not None:
            body[name] = value
    _send(options, "POST", "/tuning", body)


@control.command("show")
@control_options
def show(**options: Any) -> None:
    """The tuning in force: faults, step seconds, jitter, scale, manual."""
    _send(options, "GET", "/tuning")


@control.command("advance")
@click.argument("seconds", type=float)
@control_options
def advance(seconds: float, **options: Any) -> None:
    """Advance the simulated clock: every waiting step comes SECONDS closer."""
    _send(options, "POST", "/clock/advance", {"Seconds": seconds})


@control.command("step")
@click.argument("task_id")
@control_options
def step(task_id: str, **options: Any) -> None:
    """Run the next step of TASK_ID now."""
    _send(options, "POST", f"/tasks/{task_id}/step")
