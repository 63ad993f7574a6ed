"""The local provider's commands: doctor (what the machine lacks) and node-shell (a shell in a node)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from hpcplane.cli_common import settings_from
from hpcplane.config import Settings
from hpcplane.domain.errors import HpcplaneError

_home = click.option("--home", type=click.Path(path_type=Path), default=None, help="[HPCPLANE_HOME]")


@click.command()
@_home
@click.option("--local-network", default=None, help="the range to check [HPCPLANE_LOCAL_NETWORK]")
def doctor(**options: Any) -> None:
    """Check what the local provider needs; print the commands that fix what is missing (exit 1)."""
    from hpcplane.providers.local import doctor as checks

    settings = settings_from(**options)
    results = checks.checks(checks.Probe(), settings.local_network, settings.home)
    click.echo(checks.render(results))
    if not all(check.ok for check in results):
        sys.exit(1)


def require_provider(settings: Settings) -> None:
    """`--provider local` starts only on a machine that has what it needs: else doctor's report, exit 1."""
    if settings.provider != "local":
        return
    from hpcplane.providers.local import doctor as checks

    results = checks.checks(checks.Probe(), settings.local_network, settings.home)
    if not all(check.ok for check in results):
        click.echo(checks.render(results), err=True)
        click.echo(
            "hpcplane: --provider local needs what is MISSING above; fix it and start again.", err=True
        )
        sys.exit(1)


@click.command("node-shell", context_settings={"ignore_unknown_options": True})
@_home
@click.argument("cluster")
@click.argument("hostname")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def node_shell(cluster: str, hostname: str, command: tuple[str, ...], **options: Any) -> None:
    """Open a shell (or run COMMAND) in node HOSTNAME of local cluster CLUSTER, with its Slurm config."""
    from hpcplane.providers.local import commands
    from hpcplane.providers.local.records import RecordStore

    settings = settings_from(**options)
    store = RecordStore(settings.home.resolve() / "local")
    try:
        record = store.load(cluster)
        node = record.node(hostname)
    except HpcplaneError as error:
        reason = getattr(error, "reason", "")
        raise click.ClickException(f"{error.message} {reason}".strip()) from None
    paths = store.paths(cluster)
    argv = commands.in_node(paths, node, list(command) or [os.environ.get("SHELL", "/bin/sh")])
    env = {**os.environ, **commands.slurm_env(paths)}
    os.execvpe(argv[0], argv, env)  # noqa: S606 - replaces this process with the operator's shell
