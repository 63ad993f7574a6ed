"""A JobSubmission as an sbatch command line: a pure mapping that refuses what it cannot map."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import PurePosixPath

from hpcplane.domain.errors import InvalidParams
from hpcplane.providers.jobs import JobSubmission

_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*(GB|MB|KB|G|M|K)?$", re.IGNORECASE)
_CLOCK = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+)$")
_ARRAY = re.compile(r"^(\d+)-(\d+)(?::(\d+))?$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
_RESERVED = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL"})
_PRIORITY_STEP = 100  # nice units per E-HPC priority step (0-9, default 0, larger runs first)


@dataclass(frozen=True, slots=True)
class Sbatch:
    """The sbatch options (without the user, set by the caller) and the job's own environment."""

    options: tuple[str, ...]
    environment: dict[str, str]


def _positive(name: str, value: int | None, *, maximum: int = 100_000) -> int | None:
    if value is None:
        return None
    if not 1 <= value <= maximum:
        raise InvalidParams(name, f"{value} is not between 1 and {maximum}")
    return value


def memory_mb(text: str) -> int:
    """`Mem` (GB, MB or KB, case-insensitive, decimals allowed as the API's format has them; a bare number
    is MB) in whole MB, rounded up."""
    match = _MEM.match(text.strip())
    if not match:
        raise InvalidParams("Mem", f"{text!r}: a number with GB, MB or KB")
    amount, unit = Fraction(match.group(1)), (match.group(2) or "MB").upper()[0]
    kb = math.ceil(amount * {"G": 1024 * 1024, "M": 1024, "K": 1}[unit])
    if kb <= 0:
        raise InvalidParams("Mem", "must be more than zero")
    return -(-kb // 1024)


def clock_seconds(text: str) -> int:
    """`ClockTime` in hh:mm:ss, mm:ss or ss, as seconds."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise InvalidParams("ClockTime", f"{text!r}: hh:mm:ss, mm:ss or ss")
    parts = [int(p) for p in match.groups() if p is not None]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    if len(parts) > 1 and any(p >= 60 for p in parts[1:]):
        raise InvalidParams("ClockTime", f"{text!r}: minutes and seconds below 60")
    if seconds <= 0:
        raise InvalidParams("ClockTime", "must be more than zero")
    return seconds


def slurm_time(seconds: int) -> str:
    """Seconds as Slurm's `hh:mm:ss` (a bare number would be minutes to sbatch)."""
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def job_environment(text: str) -> dict[str, str]:
    """`Variables`: a JSON object of names to string values, passed to the job as its environment."""
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidParams("Variables", "not a JSON object") from None
    if not isinstance(value, dict):
        raise InvalidParams("Variables", "not a JSON object")
    environment: dict[str, str] = {}
    for key, item in value.items():
        if not _VARIABLE.match(key) or key in _RESERVED or key.startswith("SLURM"):
            raise InvalidParams("Variables", f"{key!r} cannot be set")
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise InvalidParams("Variables", f"{key!r}: values are strings or numbers")
        environment[key] = str(item)
    return environment


def output_path(name: str, text: str, home: PurePosixPath) -> str:
    """A redirect path, relative to the user's home or absolute inside it (GetJobLog reads it there)."""
    path = PurePosixPath(text)
    resolved = path if path.is_absolute() else home / path
    if ".." in resolved.parts or not resolved.is_relative_to(home) or resolved == home:
        raise InvalidParams(name, f"{text!r} is not a file inside the user's home")
    return str(resolved)


def _refuse_unmappable(job: JobSubmission) -> None:
    if job.job_retry_priority is not None or job.job_retry_on_exit_code is not None:
        raise InvalidParams("JobRetry", "applies to PBS clusters only")
    if job.gpu:
        raise InvalidParams("Gpu", "the local provider's nodes have no GPUs")
    if job.job_retry_count is not None:
        raise InvalidParams("JobRetry", "applies to PBS clusters only")
    for name, value in (
        ("InputFileUrl", job.input_file_url),
        ("UnzipCmd", job.unzip_cmd),
        ("PostCmdLine", job.post_cmd_line),
    ):
        if value:
            raise InvalidParams(name, "not supported by the local provider")


def build_sbatch(job: JobSubmission, home: PurePosixPath, token: str) -> Sbatch:
    """The sbatch options for a submission; `home` is the RunasUser's home on the machine. The default
    queue is the partition slurm.conf marks Default=YES: only another queue is named."""
    _refuse_unmappable(job)
    if not job.command_line.strip():
        raise InvalidParams("CommandLine", "must not be empty")
    options: list[str] = ["--parsable", f"--comment=hpcplane:{token}"]
    if job.name is not None:
        if not _NAME.match(job.name):
            raise InvalidParams("Name", f"{job.name!r}: a letter, then letters, digits, . _ -")
        options.append(f"--job-name={job.name}")
    workdir = home
    if job.package_path:
        workdir = PurePosixPath(output_path("PackagePath", job.package_path, home))
    options.append(f"--chdir={workdir}")
    if (nodes := _positive("Node", job.node)) is not None:
        options.append(f"--nodes={nodes}")
    if (tasks := _positive("Task", job.task)) is not None:
        options.append(f"--ntasks-per-node={tasks}")
    if (threads := _positive("Thread", job.thread)) is not None:
        options.append(f"--cpus-per-task={threads}")
    if (cpus := _positive("Cpu", job.cpu)) is not None:
        options.append(f"--mincpus={cpus}")
    if job.mem is not None:
        options.append(f"--mem={memory_mb(job.mem)}M")
    if job.clock_time is not None:
        options.append(f"--time={slurm_time(clock_seconds(job.clock_time))}")
    if not job.default_queue:
        if not _NAME.match(job.queue):
            raise InvalidParams("JobQueue", f"{job.queue!r} is not a queue name")
        options.append(f"--partition={job.queue}")
    if job.priority is not None:
        if not 0 <= job.priority <= 9:
            raise InvalidParams("Priority", f"{job.priority} is not between 0 and 9")
        if job.priority:
            # A negative nice raises a job above the default 0; sbatch allows it to root, who submits.
            options.append(f"--nice=-{job.priority * _PRIORITY_STEP}")
    if job.array_request is not None:
        options.append(f"--array={_array(job.array_request)}")
    if job.stdout_redirect_path:
        options.append(f"--output={output_path('StdoutRedirectPath', job.stdout_redirect_path, home)}")
    if job.stderr_redirect_path:
        options.append(f"--error={output_path('StderrRedirectPath', job.stderr_redirect_path, home)}")
    if job.re_runable is not None:
        options.append("--requeue" if job.re_runable else "--no-requeue")
    environment = job_environment(job.variables) if job.variables else {}
    options += ["--export=ALL", f"--wrap={job.command_line}"]
    return Sbatch(tuple(options), environment)


def _array(text: str) -> str:
    match = _ARRAY.match(text.strip())
    if not match:
        raise InvalidParams("ArrayRequest", f"{text!r}: X-Y:Z")
    first, last, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
    if last < first or step < 1:
        raise InvalidParams("ArrayRequest", f"{text!r}: X <= Y and Z >= 1")
    return f"{first}-{last}:{step}"
