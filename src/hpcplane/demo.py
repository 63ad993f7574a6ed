"""The demo account of the embedded default: created on first start, printed on every start."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from hpcplane import ids
from hpcplane.api.actions.operations import read_create_cluster
from hpcplane.api.params import Params
from hpcplane.domain.accounts import Account, KeyStatus, Principal
from hpcplane.store import accounts as account_store
from hpcplane.store import control as control_store
from hpcplane.store import engine as engine_store
from hpcplane.wiring import Services

DEMO_NAME = "demo"
SDK = "alibabacloud-ehpc20180412==4.0.0"


@dataclass(frozen=True, slots=True)
class Demo:
    account_id: str
    access_key_id: str
    access_key_secret: str
    cluster_id: str


def ensure_demo(services: Services) -> Demo | None:
    """Create the demo account and cluster if the store has no account at all; return the demo, if any."""
    db = services.db
    with db.read() as conn:
        demo_id = account_store.get_meta(conn, "demo_account")
        empty = account_store.count_accounts(conn) == 0
    if demo_id is None and empty:
        issued = services.accounts.create_account(DEMO_NAME)
        demo_cluster = create_demo_cluster(
            services, Principal(Account(issued.account_id, DEMO_NAME, True), issued.access_key_id)
        )
        with db.write() as conn:
            account_store.set_meta(conn, "demo_account", issued.account_id)
            account_store.set_meta(conn, "demo_cluster", demo_cluster)
    with db.read() as conn:
        account_id = account_store.get_meta(conn, "demo_account")
        cluster_id = account_store.get_meta(conn, "demo_cluster")
    if account_id is None or cluster_id is None:
        return None
    keys = [
        k
        for k in services.accounts.list_keys(account_id)
        if k.status is KeyStatus.ACTIVE and k.user_id is None
    ]
    if not keys:
        return None
    return Demo(account_id, keys[0].id, keys[0].secret, cluster_id)


def create_demo_cluster(services: Services, who: Principal, timeout: float = 60.0) -> str:
    """CreateCluster through the real operation, its steps run at once (each made due in turn), so the
    first ListTasks shows a finished CreateCluster task and a new user does not wait for it."""
    raw = {"Name": "demo-cluster", "KeyPairName": "demo"}
    spec = read_create_cluster(Params(raw))
    accepted = services.operations.create_cluster(who, ids.request_id(), spec, raw)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with services.db.write() as conn:
            if engine_store.task_finished(conn, accepted.task_id):
                break
            control_store.make_due(conn, accepted.task_id, services.clock.now())
        for lease in services.engine.claim(1, task_id=accepted.task_id):
            services.engine.run(lease)
    return accepted.cluster_id


def banner(demo: Demo, host: str, port: int, region: str) -> str:
    """The key pair and a ListTasks call through the official SDK that runs as printed."""
    python = sys.executable
    hpcplane = f"{python} -m hpcplane"
    return f"""
Demo account {DEMO_NAME} (AccountId {demo.account_id}), cluster {demo.cluster_id}
  AccessKeyId:     {demo.access_key_id}
  AccessKeySecret: {demo.access_key_secret}

For the README's examples and the aliyun CLI:
export ALIBABA_CLOUD_ACCESS_KEY_ID={demo.access_key_id} \\
       ALIBABA_CLOUD_ACCESS_KEY_SECRET={demo.access_key_secret}

Call ListTasks with the official SDK (paste into a shell; the first line installs the SDK if missing):

{python} -m pip install --quiet --disable-pip-version-check {SDK} && {python} - <<'PY'
from alibabacloud_ehpc20180412.client import Client
from alibabacloud_ehpc20180412.models import ListTasksRequest
from alibabacloud_tea_openapi.models import Config

client = Client(Config(
    access_key_id="{demo.access_key_id}",
    access_key_secret="{demo.access_key_secret}",
    endpoint="{host}:{port}",
    protocol="http",
    region_id="{region}",
))
response = client.list_tasks(ListTasksRequest(cluster_id="{demo.cluster_id}", archived=True))
print(response.body.to_map())
PY

Console: http://{host}:{port}/console/  (sign in with the AccessKey pair above)
Task changes as they happen (Server-Sent Events):

curl -N "$(HPCPLANE_ACCESS_KEY_SECRET={demo.access_key_secret} {hpcplane} events-url {demo.cluster_id} \
  --access-key-id {demo.access_key_id} --endpoint {host}:{port})"
"""
