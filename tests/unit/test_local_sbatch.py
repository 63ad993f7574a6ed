"""SubmitJob's parameters mapped to sbatch options; what cannot be mapped is refused by name."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pytest

from hpcplane.domain.errors import InvalidParams
from hpcplane.providers.jobs import JobSubmission
from hpcplane.providers.local.sbatch import build_sbatch, clock_seconds, memory_mb

HOME = PurePosixPath("/h/local/c/home/hpabc123-alice")


def _job(command_line: str = "srun hostname", queue: str | None = None, **fields: Any) -> JobSubmission:
    """A submission in the default queue, or in `queue` when named."""
    default = queue is None
    return JobSubmission("ehpc-a", "1.manager", command_line, "alice", queue or "comp", default, **fields)


def _options(**fields: Any) -> tuple[str, ...]:
    return build_sbatch(_job(**fields), HOME, "T-1:2").options


def _refused(**fields: Any) -> str:
    with pytest.raises(InvalidParams) as raised:
        _options(**fields)
    return raised.value.fields["name"]


def test_every_mapped_parameter_becomes_its_option() -> None:
    """Node, Task, Thread, Cpu, Mem, ClockTime, JobQueue, Priority, redirects, array, rerun."""
    options = _options(
        name="job1",
        node=2,
        task=4,
        thread=2,
        cpu=3,
        mem="2GB",
        clock_time="01:30:00",
        queue="comp",
        priority=5,
        stdout_redirect_path="out/%j.log",
        stderr_redirect_path=f"{HOME}/err.log",
        array_request="2-7:2",
        re_runable=False,
    )
    assert options == (
        "--parsable",
        "--comment=hpcplane:T-1:2",
        "--job-name=job1",
        f"--chdir={HOME}",
        "--nodes=2",
        "--ntasks-per-node=4",
        "--cpus-per-task=2",
        "--mincpus=3",
        "--mem=2048M",
        "--time=01:30:00",
        "--partition=comp",
        "--nice=-500",
        "--array=2-7:2",
        f"--output={HOME}/out/%j.log",
        f"--error={HOME}/err.log",
        "--no-requeue",
        "--export=ALL",
        "--wrap=srun hostname",
    )


def test_a_bare_request_runs_in_the_users_home() -> None:
    """Nothing but the command: the job runs in the user's home with Slurm's defaults."""
    assert _options() == (
        "--parsable",
        "--comment=hpcplane:T-1:2",
        f"--chdir={HOME}",
        "--export=ALL",
        "--wrap=srun hostname",
    )


@pytest.mark.parametrize(
    ("text", "mb"), [("2GB", 2048), ("512mb", 512), ("1500KB", 2), ("100", 100), ("1 g", 1024)]
)
def test_mem_units_are_case_insensitive_and_round_up(text: str, mb: int) -> None:
    """GB, MB and KB in any case; KB rounds up to whole MB; a bare number is MB."""
    assert memory_mb(text) == mb


@pytest.mark.parametrize(("text", "seconds"), [("12:00:00", 43200), ("05:30", 330), ("45", 45)])
def test_clock_time_formats(text: str, seconds: int) -> None:
    """hh:mm:ss, mm:ss and ss, as the SDK documents them (ss is seconds, not sbatch's minutes)."""
    assert clock_seconds(text) == seconds


def test_seconds_only_clock_time_is_not_minutes_to_sbatch() -> None:
    """ClockTime=90 is 90 seconds, passed as 00:01:30."""
    assert "--time=00:01:30" in _options(clock_time="90")


def test_variables_become_the_jobs_environment() -> None:
    """Variables is a JSON object; its values reach the job through sbatch's exported environment."""
    request = _job("env", variables='{"ALPHA": "1", "BETA": 2}')
    assert build_sbatch(request, HOME, "t").environment == {"ALPHA": "1", "BETA": "2"}


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"gpu": 1}, "Gpu"),
        ({"job_retry_count": 2}, "JobRetry"),
        ({"job_retry_priority": 1}, "JobRetry"),
        ({"job_retry_on_exit_code": 3}, "JobRetry"),
        ({"input_file_url": "oss://b/k"}, "InputFileUrl"),
        ({"unzip_cmd": "tar xf"}, "UnzipCmd"),
        ({"post_cmd_line": "echo"}, "PostCmdLine"),
        ({"node": 0}, "Node"),
        ({"task": -1}, "Task"),
        ({"mem": "2TB"}, "Mem"),
        ({"clock_time": "1:99"}, "ClockTime"),
        ({"clock_time": "0"}, "ClockTime"),
        ({"priority": 10}, "Priority"),
        ({"array_request": "7-2"}, "ArrayRequest"),
        ({"array_request": "1,2,3"}, "ArrayRequest"),
        ({"variables": "[1]"}, "Variables"),
        ({"variables": '{"PATH": "/tmp"}'}, "Variables"),
        ({"variables": '{"SLURM_CONF": "x"}'}, "Variables"),
        ({"variables": '{"A": {"b": 1}}'}, "Variables"),
        ({"stdout_redirect_path": "/etc/passwd"}, "StdoutRedirectPath"),
        ({"stderr_redirect_path": "../../x"}, "StderrRedirectPath"),
        ({"package_path": "/opt"}, "PackagePath"),
        ({"queue": "a queue"}, "JobQueue"),
        ({"name": "1job"}, "Name"),
    ],
)
def test_what_cannot_be_mapped_is_refused_naming_the_parameter(fields: dict[str, object], name: str) -> None:
    """Never ignored: each unmappable value is InvalidParams with the SDK's parameter name."""
    assert _refused(**fields) == name


def test_an_empty_command_is_refused() -> None:
    """CommandLine is what the job runs: it must say something."""
    with pytest.raises(InvalidParams) as raised:
        build_sbatch(_job("  "), HOME, "t")
    assert raised.value.fields["name"] == "CommandLine"
