"""SubmitJob on the local provider without root: the SDK's parameters read by the API, carried in a
JobSubmission (stored as JSON until confirmed), mapped to sbatch or refused by name; Slurm's job states
as ours; API user names as machine accounts; LocalJobs' decisions over a scripted `scontrol`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from hpcplane.api.actions.jobs import read_submit
from hpcplane.api.params import Params
from hpcplane.domain.errors import InvalidParams, ProviderFailed
from hpcplane.providers.jobs import (
    FAILED,
    FINISHED,
    QUEUED,
    RUNNING,
    STOPPED,
    JobRecord,
    JobSubmission,
    submit_token,
)
from hpcplane.providers.local.commands import Completed
from hpcplane.providers.local.facade import LocalClusters
from hpcplane.providers.local.jobs_provider import LocalJobs, job_state, local_submission, local_user_name
from hpcplane.providers.local.records import USER_NAME, ClusterRecord, NodeRecord, Role
from hpcplane.providers.local.sbatch import build_sbatch
from hpcplane.providers.local.slurmstate import parse_jobs
from tests.support.runners import FakeRunner

BASE = {"ClusterId": "ehpc-a", "RunasUser": "alice.hpc", "CommandLine": "srun hostname"}


def _submission(**params: str) -> JobSubmission:
    spec = read_submit(Params({**BASE, **params}))
    return spec.submission("3.manager", "comp", default_queue=True)


def _options(**params: str) -> tuple[str, ...]:
    home = Path("/h/home/hpabc123-x")
    return build_sbatch(local_submission(_submission(**params)), home, "tok").options  # type: ignore[arg-type]


def test_every_sdk_parameter_reaches_sbatch() -> None:
    """Read from the wire as the SDK sends them, each mapped parameter becomes its sbatch option."""
    options = _options(
        Name="hello",
        Node="2",
        Task="2",
        Thread="3",
        Cpu="4",
        Mem="1.5GB",
        ClockTime="1:30",
        Priority="2",
        Variables='{"GREETING": "hi"}',
        StdoutRedirectPath="out/o.txt",
        StderrRedirectPath="out/e.txt",
        ArrayRequest="1-4:2",
        ReRunable="true",
    )
    for option in (
        "--job-name=hello",
        "--nodes=2",
        "--ntasks-per-node=2",
        "--cpus-per-task=3",
        "--mincpus=4",
        "--mem=1536M",
        "--time=00:01:30",
        "--nice=-200",
        "--array=1-4:2",
        "--requeue",
        "--output=/h/home/hpabc123-x/out/o.txt",
        "--error=/h/home/hpabc123-x/out/e.txt",
        "--wrap=srun hostname",
    ):
        assert option in options
    assert not any(o.startswith("--partition") for o in options)


def test_what_is_not_given_adds_no_option() -> None:
    """Task, Thread, Cpu and Name are passed only when the caller gave them (the command's first word
    is the display name, never Slurm's, so `./run.sh` is not refused as a Name)."""
    options = _options(CommandLine="./run.sh")
    assert not any(o.split("=")[0] in ("--ntasks-per-node", "--cpus-per-task", "--mincpus") for o in options)
    assert not any(o.startswith("--job-name") for o in options)
    assert "--nodes=1" in options
    assert "--no-requeue" in options


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"Gpu": "1"}, "Gpu"),
        ({"JobRetry.Count": "2"}, "JobRetry"),
        ({"JobRetry.Priority": "1"}, "JobRetry"),
        ({"JobRetry.OnExitCode": "3"}, "JobRetry"),
        ({"InputFileUrl": "oss://bucket/key"}, "InputFileUrl"),
        ({"UnzipCmd": "tar xf"}, "UnzipCmd"),
        ({"PostCmdLine": "echo done"}, "PostCmdLine"),
        ({"StdoutRedirectPath": "/etc/motd"}, "StdoutRedirectPath"),
        ({"PackagePath": "/opt"}, "PackagePath"),
        ({"Variables": '{"PATH": "/tmp"}'}, "Variables"),
    ],
)
def test_unmappable_parameters_are_refused_naming_them(params: dict[str, str], name: str) -> None:
    with pytest.raises(InvalidParams) as raised:
        _options(**params)
    assert raised.value.fields["name"] == name


def test_a_queue_other_than_the_default_is_refused() -> None:
    """A local cluster has one partition, which is its scheduler's default queue."""
    submission = read_submit(Params({**BASE, "JobQueue": "other"})).submission("1.manager", "other", False)
    with pytest.raises(InvalidParams) as raised:
        local_submission(submission)
    assert raised.value.fields["name"] == "JobQueue"


def test_a_submission_survives_its_json() -> None:
    """What the store keeps until the provider confirms is the same submission."""
    submission = _submission(Mem="2GB", ArrayRequest="1-3", Gpu="2", Variables='{"A": "1"}')
    assert JobSubmission.from_json(submission.to_json()) == submission


def test_user_names_become_distinct_valid_accounts() -> None:
    """Kept when already a valid account name; any other gets a hash; none collide, all fit."""
    assert local_user_name("alice1") == "alice1"
    names = ["alice.hpc", "Alice.hpc", "alicehpc", "a" * 30, "A" * 30, "x.y.z.w.v.u.t.s.r.q"]
    mapped = [local_user_name(n) for n in names]
    assert len(set(mapped)) == len(names)
    assert all(USER_NAME.match(m) for m in mapped)
    assert mapped[0].startswith("alice_hpc-")
    assert mapped[2] == "alicehpc"


@pytest.mark.parametrize(
    ("states", "ours"),
    [
        (["PENDING"], QUEUED),
        (["RUNNING", "PENDING"], RUNNING),
        (["COMPLETED", "COMPLETED"], FINISHED),
        (["COMPLETED", "CANCELLED"], STOPPED),
        (["COMPLETED", "TIMEOUT"], FAILED),
        (["NODE_FAIL"], FAILED),
    ],
)
def test_slurm_states_as_ours(states: list[str], ours: str) -> None:
    tasks = parse_jobs(
        "\n".join(f"JobId={7 + i} ArrayJobId=7 JobState={s} ExitCode=1:0" for i, s in enumerate(states))
    )
    seen = job_state(tasks)
    assert seen is not None
    assert seen[0] == ours


def test_a_completing_job_is_left_as_it_was() -> None:
    """COMPLETING (ending, or on its way back to the queue after a requeue) changes nothing yet."""
    ending = parse_jobs("JobId=7 JobState=COMPLETING\nJobId=8 ArrayJobId=7 JobState=COMPLETED")
    assert job_state(ending) is None
    running = parse_jobs("JobId=7 JobState=COMPLETING\nJobId=8 ArrayJobId=7 JobState=RUNNING")
    assert job_state(running) == (RUNNING, "")


class ScriptedRunner(FakeRunner):
    """A Runner whose `scontrol show job -o` prints `jobs`; any other command is recorded and succeeds."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = ""
        self.down = False

    def answer(self, argv: tuple[str, ...]) -> Completed:
        if "show" in argv and "job" in argv:
            if self.down:
                return Completed(argv, 1, "", "Unable to contact slurm controller")
            wanted = argv[-1] if argv[-1].isdigit() else None
            lines = [line for line in self.jobs.splitlines() if wanted is None or f"JobId={wanted} " in line]
            return Completed(argv, 0, "\n".join(lines), "")
        return Completed(argv, 0, "", "")


@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalJobs, ScriptedRunner]:
    runner = ScriptedRunner()
    clusters = LocalClusters(tmp_path, runner=runner, prefix="hx")
    record = ClusterRecord("ehpc-a", "hx", "abc123", "10.249.0.0/24", "hxbabc123")
    roles: tuple[Role, ...] = ("manager", "login")
    for slot, role in enumerate(roles, start=1):
        record.nodes.append(NodeRecord(role, role, f"10.249.0.{slot}", slot, f"hx-abc123-{role}", f"v{slot}"))
    record.tokens[submit_token("ehpc-a", "1.manager")] = {"op": "submit_job", "result": "41"}
    with clusters.store.locked("ehpc-a"):
        clusters.store.save(record)
    return LocalJobs(clusters), runner


def _record(state: str, node_list: tuple[str, ...] = ()) -> JobRecord:
    return JobRecord("ehpc-a", "1.manager", "j", "alice.hpc", "comp", "x", 2, 1, 0, True, state, node_list)


NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_observation_maps_our_job_to_slurms_through_its_token(
    local: tuple[LocalJobs, ScriptedRunner],
) -> None:
    """Our 1.manager is Slurm's 41 (the submit token's memo); a job sbatch never took is not reported."""
    jobs, runner = local
    runner.jobs = "JobId=41 JobName=j JobState=RUNNING NodeList=compute[0-1] Reason=None"
    pending = JobRecord("ehpc-a", "2.manager", "k", "alice.hpc", "comp", "x", 1, 1, 0, False, QUEUED)
    updates = jobs.observe_jobs([_record(QUEUED), pending], [], NOW)
    assert [(u.job_id, u.state, u.node_list, u.started_at) for u in updates] == [
        ("1.manager", RUNNING, ("compute0", "compute1"), NOW)
    ]
    assert jobs.observe_jobs([_record(RUNNING, ("compute0", "compute1"))], [], NOW) == []
    runner.jobs = "JobId=41 JobName=j JobState=COMPLETED NodeList=compute[0-1] ExitCode=0:0"
    (done,) = jobs.observe_jobs([_record(RUNNING, ("compute0", "compute1"))], [], NOW)
    assert (done.state, done.finished_at) == (FINISHED, NOW)
    runner.jobs = ""
    (lost,) = jobs.observe_jobs([_record(RUNNING, ("compute0",))], [], NOW)
    assert (lost.state, lost.comment) == (FAILED, "Slurm no longer knows the job")
    runner.down = True  # slurmctld does not answer (the cluster stopped): nothing is concluded
    assert jobs.observe_jobs([_record(RUNNING, ("compute0",))], [], NOW) == []
    runner.down = False
    jobs.clusters.store.paths("ehpc-a").record.unlink()  # no record any more (deleted): nor here
    assert jobs.observe_jobs([_record(RUNNING, ("compute0",))], [], NOW) == []


def test_cancel_and_requeue_act_only_where_slurm_has_the_job(local: tuple[LocalJobs, ScriptedRunner]) -> None:
    """Cancel: nothing for a job never taken or forgotten; requeue: nothing for a pending job, an error
    for a forgotten one; otherwise scancel / scontrol requeue of Slurm's id, once per token."""
    jobs, runner = local
    jobs.cancel_job("c1", "ehpc-a", "9.manager")
    jobs.cancel_job("c2", "ehpc-a", "1.manager")
    jobs.requeue_job("r0", "ehpc-a", "9.manager")
    assert not any("scancel" in c for c in runner.commands)
    with pytest.raises(ProviderFailed, match="no longer knows"):
        jobs.requeue_job("r1", "ehpc-a", "1.manager")
    runner.jobs = "JobId=41 JobName=j JobState=PENDING Reason=Resources"
    jobs.requeue_job("r2", "ehpc-a", "1.manager")
    assert not any("requeue" in c for c in runner.commands)
    runner.jobs = "JobId=41 JobName=j JobState=RUNNING NodeList=compute0"
    jobs.requeue_job("r3", "ehpc-a", "1.manager")
    jobs.requeue_job("r3", "ehpc-a", "1.manager")
    jobs.cancel_job("c3", "ehpc-a", "1.manager")
    acted = [c[-3:] for c in runner.commands if "requeue" in c or "scancel" in c]
    assert acted == [("scontrol", "requeue", "41"), ("--", "scancel", "41")]
    # An sbatch that answered too late to be recorded: found by its comment, and cancelled.
    runner.jobs = "JobId=52 JobName=j JobState=RUNNING Comment=hpcplane:ehpc-a/9.manager/submit"
    assert jobs.slurm_id("ehpc-a", "9.manager") == "52"
    jobs.cancel_job("c4", "ehpc-a", "9.manager")
    assert runner.commands[-1][-2:] == ("scancel", "52")


def test_a_job_file_outside_the_home_and_a_user_without_account_are_refused(
    local: tuple[LocalJobs, ScriptedRunner],
) -> None:
    jobs, _ = local
    with pytest.raises(InvalidParams) as raised:
        jobs.write_job_file("t", "ehpc-a", "alice.hpc", "a.sh", b"x")
    assert raised.value.fields["name"] == "RunasUser"
    record = jobs.clusters.store.load("ehpc-a")
    record.users[local_user_name("alice.hpc")] = "hxabc123-alice_hpc"
    with jobs.clusters.store.locked("ehpc-a"):
        jobs.clusters.store.save(record)
    with pytest.raises(InvalidParams) as raised:
        jobs.write_job_file("t", "ehpc-a", "alice.hpc", "/etc/passwd", b"x")
    assert raised.value.fields["name"] == "TargetFile"
