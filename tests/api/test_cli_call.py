"""`hpcplane call` against a live server: every credential source, wire parameters, errors, pages, tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hpcplane.domain.tasks import TaskStatus, TaskType
from hpcplane.progress import EXIT_API_ERROR, EXIT_CLIENT, EXIT_USAGE
from hpcplane.services.tasks import record_task
from tests.support.clirun import demo, run_cli, user_env
from tests.support.live import LiveServer, free_port
from tests.support.policies import trust


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The embedded default (demo account, control API), steps instant."""
    server = LiveServer(tmp_path_factory.mktemp("call") / "home", sim_step_seconds="0").start()
    yield server
    server.stop()


@pytest.fixture
def nobody(tmp_path: Path) -> Path:
    """A user's HOME with no aliyun CLI configuration."""
    home = tmp_path / "user"
    home.mkdir()
    return home


def test_no_flags_uses_the_profile_serve_wrote(live: LiveServer, nobody: Path) -> None:
    """With only HPCPLANE_HOME, call finds serve's demo profile and endpoint; the demo cluster's first
    ListTasks shows its CreateCluster task, finished through the real operation."""
    _, _, cluster = demo(live)
    ran = run_cli(
        "call", "ListTasks", "--ClusterId", cluster, "--Archived", "true",
        env=user_env(nobody, HPCPLANE_HOME=str(live.home)),
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    tasks = ran.json()["Tasks"]
    assert [(t["TaskType"], t["Status"], t["CurrentStep"] == t["TotalSteps"]) for t in tasks] == [
        ("CreateCluster", "Success", True)
    ]


def test_flags_win_over_the_environment(live: LiveServer, nobody: Path) -> None:
    """--access-key-id/--access-key-secret are used even when the environment names another key."""
    key, secret, cluster = demo(live)
    env = user_env(
        nobody,
        HPCPLANE_ENDPOINT=live.endpoint,
        ALIBABA_CLOUD_ACCESS_KEY_ID="LTAInotakeyatall0000000",
        ALIBABA_CLOUD_ACCESS_KEY_SECRET="nope",
    )
    ran = run_cli("call", "ListClusters", "--access-key-id", key, "--access-key-secret", secret, env=env)
    assert ran.code == 0, ran.stderr
    assert cluster in ran.stdout
    refused = run_cli("call", "ListClusters", env=env)
    assert refused.code == EXIT_API_ERROR
    assert refused.stderr.startswith("InvalidAccessKeyId.NotFound: ")


def test_environment_credentials_and_endpoint(live: LiveServer, nobody: Path) -> None:
    """ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET and HPCPLANE_ENDPOINT are enough."""
    key, secret, cluster = demo(live)
    env = user_env(
        nobody,
        HPCPLANE_ENDPOINT=live.endpoint,
        ALIBABA_CLOUD_ACCESS_KEY_ID=key,
        ALIBABA_CLOUD_ACCESS_KEY_SECRET=secret,
    )
    ran = run_cli("call", "DescribeCluster", "--ClusterId", cluster, env=env)
    assert ran.code == 0, ran.stderr
    assert ran.json()["ClusterInfo"]["Id"] == cluster


def _aliyun_config(home: Path, *profiles: dict[str, str], current: str) -> None:
    (home / ".aliyun").mkdir(exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(
        json.dumps({"current": current, "profiles": list(profiles)})
    )


def test_aliyun_cli_profiles_in_ak_mode(live: LiveServer, nobody: Path) -> None:
    """The aliyun CLI's `current` profile is used; --profile picks another one of the same file."""
    key, secret, cluster = demo(live)
    good = {
        "name": "lab",
        "mode": "AK",
        "access_key_id": key,
        "access_key_secret": secret,
        "region_id": "cn-hangzhou",
    }
    bad = {
        "name": "stale",
        "mode": "AK",
        "access_key_id": "LTAIstale00000000000000",
        "access_key_secret": "x",
    }
    _aliyun_config(nobody, good, bad, current="lab")
    env = user_env(nobody, HPCPLANE_ENDPOINT=live.endpoint)
    ran = run_cli("call", "ListTasks", "--ClusterId", cluster, "--Archived", "true", env=env)
    assert ran.code == 0, ran.stderr
    assert ran.json()["TotalCount"] >= 1
    stale = run_cli("call", "ListTasks", "--ClusterId", cluster, "--profile", "stale", env=env)
    assert stale.code == EXIT_API_ERROR
    assert "InvalidAccessKeyId.NotFound" in stale.stderr
    missing = run_cli("call", "ListTasks", "--ClusterId", cluster, "--profile", "absent", env=env)
    assert missing.code == EXIT_CLIENT
    assert "no profile 'absent'" in missing.stderr


def test_aliyun_cli_profile_in_sts_token_mode(live: LiveServer, nobody: Path, tmp_path: Path) -> None:
    """A StsToken profile's AccessKey and token, from AssumeRole, are accepted (V3 and V1)."""
    account = live.new_account("sts-user")
    trusting = tmp_path / "trust.json"
    trusting.write_text(trust(f"acs:ram::{account['AccountId']}:root"))
    policy = tmp_path / "all.json"
    policy.write_text(
        json.dumps({"Version": "1", "Statement": [{"Effect": "Allow", "Action": "ehpc:*", "Resource": "*"}]})
    )
    live.cli("ram", "create-role", account["AccountId"], "ops", "--trust", str(trusting))
    live.cli("ram", "create-policy", account["AccountId"], "all", "--document", str(policy))
    live.cli("ram", "attach-policy", account["AccountId"], "all", "--role", "ops")
    issued = json.loads(live.cli("sts", "assume-role", f"acs:ram::{account['AccountId']}:role/ops", "--json"))
    profile = {
        "name": "ops",
        "mode": "StsToken",
        "access_key_id": issued["AccessKeyId"],
        "access_key_secret": issued["AccessKeySecret"],
        "sts_token": issued["SecurityToken"],
    }
    _aliyun_config(nobody, profile, current="ops")
    env = user_env(nobody, HPCPLANE_ENDPOINT=live.endpoint)
    for extra in ([], ["--signature-v1"]):
        ran = run_cli("call", "ListClusters", *extra, env=env)
        assert ran.code == 0, ran.stderr
        assert ran.json()["TotalCount"] == 0


def test_signature_v1_and_v3_are_both_accepted(live: LiveServer, nobody: Path) -> None:
    """The same call signed V3 (default) and V1 (--signature-v1) gets the same answer."""
    _, _, cluster = demo(live)
    env = user_env(nobody, HPCPLANE_HOME=str(live.home))
    bodies = [
        run_cli("call", "ListNodes", "--ClusterId", cluster, *extra, env=env)
        for extra in ([], ["--signature-v1"])
    ]
    assert [b.code for b in bodies] == [0, 0], [b.stderr for b in bodies]
    nodes = [sorted(n["Id"] for n in b.json()["Nodes"]["NodeInfo"]) for b in bodies]
    assert nodes[0] == nodes[1]
    assert len(nodes[0]) == 2  # the demo's manager and login


def test_nested_and_list_parameters(live: LiveServer, nobody: Path) -> None:
    """`--EcsOrder.Compute.Count 2` makes two computes; `--Instance.N.Id` deletes them (waiting for both)."""
    env = user_env(nobody, HPCPLANE_HOME=str(live.home))
    created = run_cli(
        "call", "CreateCluster", "--Name", "nested", "--Password", "Passw0rd!",
        "--EcsOrder.Compute.Count", "2", "--EcsOrder.Compute.InstanceType=ecs.c6.xlarge", "--wait",
        env=env,
    )  # fmt: skip
    assert created.code == 0, created.stderr
    cluster = created.json()["ClusterId"]
    nodes = run_cli("call", "ListNodes", "--ClusterId", cluster, "--Role", "Compute", env=env).json()
    computes = [n for n in nodes["Nodes"]["NodeInfo"] if "Compute" in n["Roles"]["Role"]]
    assert sorted(n["InstanceType"] for n in computes) == ["ecs.c6.xlarge", "ecs.c6.xlarge"]
    ids = [n["Id"] for n in computes]
    deleted = run_cli(
        "call", "DeleteNodes", "--ClusterId", cluster, "--Instance.1.Id", ids[0], "--Instance.2.Id", ids[1],
        "--wait", env=env,
    )  # fmt: skip
    assert deleted.code == 0, deleted.stderr
    left = run_cli("call", "ListNodes", "--ClusterId", cluster, env=env).json()
    assert not {n["Id"] for n in left["Nodes"]["NodeInfo"]} & set(ids)


def test_errors_and_exit_codes(live: LiveServer, nobody: Path) -> None:
    """API errors exit 1 with Code and Message on stderr; no credentials or no server exit 3; bad
    parameters exit 2; nothing goes to stdout on failure."""
    env = user_env(nobody, HPCPLANE_HOME=str(live.home))
    missing = run_cli("call", "ListTasks", "--ClusterId", "ehpc-hz-absent", env=env)
    assert (missing.code, missing.stdout) == (EXIT_API_ERROR, "")
    assert missing.stderr.startswith("ClusterNotFound: The specified cluster does not exist.")
    no_action = run_cli("call", "NoSuchAction", env=env)
    assert no_action.code == EXIT_API_ERROR
    assert no_action.stderr.startswith("InvalidAction.NotFound: ")
    unreachable = run_cli("call", "ListClusters", "--endpoint", f"127.0.0.1:{free_port()}", env=env)
    assert unreachable.code == EXIT_CLIENT
    assert "cannot reach" in unreachable.stderr
    anonymous = run_cli("call", "ListClusters", env=user_env(nobody, HPCPLANE_HOME=str(nobody / "none")))
    assert anonymous.code == EXIT_CLIENT
    assert anonymous.stderr.startswith("no credentials")
    dangling = run_cli("call", "ListTasks", "--ClusterId", env=env)
    assert dangling.code == EXIT_USAGE
    assert "--ClusterId needs a value" in dangling.stderr


def test_pager_merges_every_page(live: LiveServer, nobody: Path) -> None:
    """--pager fetches PageNumber 1, 2, ... until TotalCount, for a plain list and a wrapped one."""
    _, _, cluster = demo(live)
    account_id = live.services.accounts.list_accounts()[0].id
    for _ in range(6):
        record_task(
            live.services.db, live.services.clock, account_id=account_id, cluster_id=cluster,
            task_type=TaskType.START_COMPUTES, total_steps=3, status=TaskStatus.SUCCESS, current_step=3,
        )  # fmt: skip
    env = user_env(nobody, HPCPLANE_HOME=str(live.home))
    one_page = run_cli(
        "call", "ListTasks", "--ClusterId", cluster, "--Archived", "true", "--PageSize", "2", env=env
    )
    paged = run_cli(
        "call",
        "ListTasks",
        "--ClusterId",
        cluster,
        "--Archived",
        "true",
        "--PageSize",
        "2",
        "--pager",
        env=env,
    )
    assert paged.code == 0, paged.stderr
    total = paged.json()["TotalCount"]
    assert total >= 7
    assert len(one_page.json()["Tasks"]) == 2
    assert len({t["TaskId"] for t in paged.json()["Tasks"]}) == total
    nodes = run_cli("call", "ListNodes", "--ClusterId", cluster, "--PageSize", "1", "--pager", env=env).json()
    assert len(nodes["Nodes"]["NodeInfo"]) == nodes["TotalCount"] == 2


def test_output_table(live: LiveServer, nobody: Path) -> None:
    """--output cols=...,rows=... prints an aligned table of the chosen fields."""
    _, _, cluster = demo(live)
    env = user_env(nobody, HPCPLANE_HOME=str(live.home))
    ran = run_cli(
        "call", "ListNodes", "--ClusterId", cluster, "--output", "cols=HostName,Status,rows=Nodes.NodeInfo[]",
        env=env,
    )  # fmt: skip
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].split(" | ") == ["HostName", "Status"]
    assert sorted(line.split()[0] for line in lines[2:]) == ["login0", "manager0"]
