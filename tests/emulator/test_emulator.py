"""Self-check of the emulator, end to end over HTTP with boto3, as pytest tests.

    "$py" -m pytest tests/emulator            # py=$(tests/emulator/setup.sh | tail -n 1)

One emulator (server.py as a subprocess) serves the whole module; its tests
drive RDS <-> PostgreSQL, ECS tasks that really run, App Runner,
CloudFormation, S3 (conditional writes, faults) and IAM (requests signed with
a registered key, evaluated against its policy) the way ferry does, in file
order: the later areas use what the earlier ones made (the RDS cluster, the
call log), and the last one stops the emulator and checks its clean-up.
FERRY_EMULATOR_PG_URL names the PostgreSQL server (a role that may create
databases); FERRY_EMULATOR_DELAY_SCALE scales the emulator's timings (0.5).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import boto3
import pytest
import psycopg
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
sys.path.insert(0, HERE)
import iam  # noqa: E402 - the IAM evaluation, checked directly as well as through the server
REGION = "us-east-1"


PG_URL = os.environ.get("FERRY_EMULATOR_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
DELAY_SCALE = float(os.environ.get("FERRY_EMULATOR_DELAY_SCALE", "0.5"))


def check(name: str, ok: Any, detail: Any = "") -> None:
    """One named expectation; a failure names it and shows `detail`."""
    assert ok, name + (f": {detail}" if detail != "" else "")


def error_code(name: str, fn: Callable[[], Any], code: str) -> None:
    """`fn` fails with the AWS error `code`."""
    with pytest.raises(ClientError) as raised:
        fn()
    got = raised.value.response.get("Error", {}).get("Code")
    check(name, got == code, f"expected {code}, got {got}")


def wait_until(what: str, fn: Callable[[], Any], timeout: float = 30, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


class Emulator:
    def __init__(self, pg_url: str, delay_scale: float, task_cwd: str) -> None:
        self.stderr = tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                SERVER,
                "--port",
                "0",
                "--pg-url",
                pg_url,
                "--delay-scale",
                str(delay_scale),
                "--task-cwd",
                task_cwd,
                "--exit-on-stdin-eof",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            # The checks expect full answers; check_sparse turns the switches on itself.
            env={k: v for k, v in os.environ.items() if k != "FERRY_EMULATOR_SPARSE"},
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(60)
        if not line or not line[0].startswith("READY "):
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}; stderr in {self.stderr.name}")
        self.url = line[0].split()[1]

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}),
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9


def query(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description is not None else []


def cluster_status(rds: Any, cluster_id: str) -> str | None:
    try:
        return rds.describe_db_clusters(DBClusterIdentifier=cluster_id)["DBClusters"][0]["Status"]
    except ClientError as e:
        if e.response["Error"]["Code"] == "DBClusterNotFoundFault":
            return None
        raise


# -- RDS <-> PostgreSQL -------------------------------------------------------------------------


def check_rds(emu: Emulator, net: dict[str, str]) -> dict[str, Any]:
    rds = emu.client("rds")
    rds.create_db_subnet_group(
        DBSubnetGroupName="app-subnets", DBSubnetGroupDescription="app", SubnetIds=[net["subnet"], net["subnet_b"]]
    )
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName="app-cpg", DBParameterGroupFamily="aurora-postgresql15", Description="app"
    )
    created = rds.create_db_cluster(
        DBClusterIdentifier="app-db",
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="app",
        MasterUserPassword="correct-horse",
        DBSubnetGroupName="app-subnets",
        VpcSecurityGroupIds=[net["sg"]],
        DBClusterParameterGroupName="app-cpg",
        KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/k1",
        StorageEncrypted=True,
        Port=5432,
        DeletionProtection=True,
        EnableIAMDatabaseAuthentication=True,
        ServerlessV2ScalingConfiguration={"MinCapacity": 0.5, "MaxCapacity": 8},
        Tags=[{"Key": "team", "Value": "payments"}],
    )["DBCluster"]
    check("CreateDBCluster reports creating", created["Status"] == "creating", created["Status"])
    check(
        "cluster Endpoint is <id>.cluster-emu.us-east-1.rds.amazonaws.com",
        created["Endpoint"] == "app-db.cluster-emu.us-east-1.rds.amazonaws.com",
        created["Endpoint"],
    )
    wait_until("app-db available", lambda: cluster_status(rds, "app-db") == "available")
    inst = rds.create_db_instance(
        DBInstanceIdentifier="app-db-w",
        DBClusterIdentifier="app-db",
        Engine="aurora-postgresql",
        DBInstanceClass="db.serverless",
    )["DBInstance"]
    check("CreateDBInstance reports creating", inst["DBInstanceStatus"] == "creating", inst["DBInstanceStatus"])
    wait_until(
        "instance available",
        lambda: (
            rds.describe_db_instances(DBInstanceIdentifier="app-db-w")["DBInstances"][0]["DBInstanceStatus"]
            == "available"
        ),
    )

    clusters = emu.get("/_emulator/clusters")
    check("debug endpoint lists app-db", "app-db" in clusters, clusters)
    original_db = clusters["app-db"]["database"]
    check("cluster database is named emu_<hex>", original_db.startswith("emu_"), original_db)
    url = clusters["app-db"]["url"]
    query(url, "CREATE TABLE items (id int PRIMARY KEY, name text)")
    query(url, "INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    check("cluster database is a real PostgreSQL database", query(url, "SELECT count(*) FROM items")[0][0] == 2)

    quota = {q["AccountQuotaName"]: q for q in rds.describe_account_attributes()["AccountQuotas"]}
    check(
        "DescribeAccountAttributes has ManualClusterSnapshots",
        quota.get("ManualClusterSnapshots", {}).get("Used") == 0 and quota["ManualClusterSnapshots"]["Max"] > 0,
        quota,
    )

    snap = rds.create_db_cluster_snapshot(
        DBClusterIdentifier="app-db",
        DBClusterSnapshotIdentifier="app-db-pre-deploy-1",
        Tags=[{"Key": "ferry:run-id", "Value": "r1"}, {"Key": "ferry:purpose", "Value": "pre-deploy"}],
    )["DBClusterSnapshot"]
    check("CreateDBClusterSnapshot reports creating", snap["Status"] == "creating", snap["Status"])
    check("snapshot keeps its tags", {t["Key"] for t in snap.get("TagList", [])} >= {"ferry:run-id"}, snap)
    seen: list[int] = []

    def snap_done() -> bool:
        s = rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="app-db-pre-deploy-1")["DBClusterSnapshots"][
            0
        ]
        seen.append(s["PercentProgress"])
        return s["Status"] == "available"

    wait_until("snapshot available", snap_done, interval=0.2)
    check("PercentProgress grows to 100", seen[-1] == 100 and any(0 < p < 100 for p in seen), seen)
    error_code(
        "duplicate snapshot id -> DBClusterSnapshotAlreadyExistsFault",
        lambda: rds.create_db_cluster_snapshot(
            DBClusterIdentifier="app-db", DBClusterSnapshotIdentifier="app-db-pre-deploy-1"
        ),
        "DBClusterSnapshotAlreadyExistsFault",
    )
    quota = {q["AccountQuotaName"]: q for q in rds.describe_account_attributes()["AccountQuotas"]}
    check("quota counts the manual snapshot", quota["ManualClusterSnapshots"]["Used"] == 1, quota)

    # The deploy breaks the data after the snapshot.
    query(url, "DELETE FROM items WHERE id = 1")
    query(url, "INSERT INTO items VALUES (3, 'three')")

    source = rds.describe_db_clusters(DBClusterIdentifier="app-db")["DBClusters"][0]
    restored = rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier="app-db-restored-1",
        SnapshotIdentifier="app-db-pre-deploy-1",
        Engine=source["Engine"],
        EngineVersion=source["EngineVersion"],
        DBSubnetGroupName=source["DBSubnetGroup"],
        VpcSecurityGroupIds=[g["VpcSecurityGroupId"] for g in source["VpcSecurityGroups"]],
        DBClusterParameterGroupName=source["DBClusterParameterGroup"],
        KmsKeyId=source["KmsKeyId"],
        Port=source["Port"],
        DeletionProtection=source["DeletionProtection"],
        EnableIAMDatabaseAuthentication=source["IAMDatabaseAuthenticationEnabled"],
        ServerlessV2ScalingConfiguration={
            "MinCapacity": source["ServerlessV2ScalingConfiguration"]["MinCapacity"],
            "MaxCapacity": source["ServerlessV2ScalingConfiguration"]["MaxCapacity"],
        },
        Tags=source["TagList"],
    )["DBCluster"]
    check("RestoreDBClusterFromSnapshot reports creating", restored["Status"] == "creating", restored["Status"])
    described = rds.describe_db_clusters(DBClusterIdentifier="app-db-restored-1")["DBClusters"][0]
    echoed = {
        "EngineVersion": "15.4",
        "DBSubnetGroup": "app-subnets",
        "DBClusterParameterGroup": "app-cpg",
        "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/k1",
        "Port": 5432,
        "DeletionProtection": True,
        "IAMDatabaseAuthenticationEnabled": True,
    }
    for key, want in echoed.items():
        check(f"restored cluster echoes {key}", described.get(key) == want, described.get(key))
    check(
        "restored cluster echoes VpcSecurityGroups",
        [g["VpcSecurityGroupId"] for g in described["VpcSecurityGroups"]] == [net["sg"]],
        described["VpcSecurityGroups"],
    )
    check(
        "restored cluster echoes ServerlessV2ScalingConfiguration",
        described.get("ServerlessV2ScalingConfiguration", {}).get("MaxCapacity") == 8.0,
        described.get("ServerlessV2ScalingConfiguration"),
    )
    check("restored cluster echoes Tags", described.get("TagList") == [{"Key": "team", "Value": "payments"}])
    error_code(
        "restore onto an existing id -> DBClusterAlreadyExistsFault",
        lambda: rds.restore_db_cluster_from_snapshot(
            DBClusterIdentifier="app-db-restored-1",
            SnapshotIdentifier="app-db-pre-deploy-1",
            Engine="aurora-postgresql",
        ),
        "DBClusterAlreadyExistsFault",
    )
    wait_until("restored cluster available", lambda: cluster_status(rds, "app-db-restored-1") == "available")
    rds.create_db_instance(
        DBInstanceIdentifier="app-db-restored-1-1",
        DBClusterIdentifier="app-db-restored-1",
        Engine="aurora-postgresql",
        DBInstanceClass="db.serverless",
    )
    wait_until(
        "restored instance available",
        lambda: all(
            i["DBInstanceStatus"] == "available"
            for i in rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["app-db-restored-1"]}])[
                "DBInstances"
            ]
        ),
    )

    # rename: source -> -failed, restored -> original id
    renamed = rds.modify_db_cluster(
        DBClusterIdentifier="app-db", NewDBClusterIdentifier="app-db-failed-1", ApplyImmediately=True
    )["DBCluster"]
    check("ModifyDBCluster rename answers with the new id", renamed["DBClusterIdentifier"] == "app-db-failed-1")
    check("renamed cluster is visible at once as renaming", cluster_status(rds, "app-db-failed-1") == "renaming")
    error_code(
        "old id is gone -> DBClusterNotFoundFault",
        lambda: rds.describe_db_clusters(DBClusterIdentifier="app-db"),
        "DBClusterNotFoundFault",
    )
    error_code(
        "renaming a cluster that is renaming -> InvalidDBClusterStateFault",
        lambda: rds.modify_db_cluster(
            DBClusterIdentifier="app-db-failed-1", NewDBClusterIdentifier="app-db-x", ApplyImmediately=True
        ),
        "InvalidDBClusterStateFault",
    )
    members = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["app-db-failed-1"]}])
    check("instances follow the rename", [i["DBInstanceIdentifier"] for i in members["DBInstances"]] == ["app-db-w"])
    wait_until("rename settles", lambda: cluster_status(rds, "app-db-failed-1") == "available")
    error_code(
        "renaming onto an existing id -> DBClusterAlreadyExistsFault",
        lambda: rds.modify_db_cluster(
            DBClusterIdentifier="app-db-restored-1", NewDBClusterIdentifier="app-db-failed-1", ApplyImmediately=True
        ),
        "DBClusterAlreadyExistsFault",
    )
    rds.modify_db_cluster(
        DBClusterIdentifier="app-db-restored-1", NewDBClusterIdentifier="app-db", ApplyImmediately=True
    )
    wait_until("second rename settles", lambda: cluster_status(rds, "app-db") == "available")
    final = rds.describe_db_clusters(DBClusterIdentifier="app-db")["DBClusters"][0]
    check(
        "the original endpoint name now leads to the restored cluster",
        final["Endpoint"] == "app-db.cluster-emu.us-east-1.rds.amazonaws.com",
        final["Endpoint"],
    )

    clusters = emu.get("/_emulator/clusters")
    check("debug view follows the renames", set(clusters) >= {"app-db", "app-db-failed-1"}, list(clusters))
    check("app-db-failed-1 keeps the original database", clusters["app-db-failed-1"]["database"] == original_db)
    rows = query(clusters["app-db"]["url"], "SELECT id, name FROM items ORDER BY id")
    check("app-db holds the pre-deploy rows", rows == [(1, "one"), (2, "two")], rows)
    rows = query(clusters["app-db-failed-1"]["url"], "SELECT id FROM items ORDER BY id")
    check("app-db-failed-1 holds the broken rows", rows == [(2,), (3,)], rows)

    # fault injection and deletes
    emu.post("/_emulator/config", {"fail_snapshot": True})
    rds.create_db_cluster_snapshot(DBClusterIdentifier="app-db", DBClusterSnapshotIdentifier="doomed")
    status = wait_until(
        "doomed snapshot settles",
        lambda: (
            (
                s := rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="doomed")["DBClusterSnapshots"][0][
                    "Status"
                ]
            )
            != "creating"
            and s
        ),
    )
    check("fail_snapshot: the next snapshot ends failed", status == "failed", status)
    check("fail_snapshot is one-shot", emu.get("/_emulator/config")["fail_snapshot"] is False)
    snap_db = emu.get("/_emulator/snapshots")["app-db-pre-deploy-1"]["database"]
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="app-db-pre-deploy-1")
    gone = query(
        emu.get("/_emulator/clusters")["app-db"]["url"], f"SELECT count(*) FROM pg_database WHERE datname = '{snap_db}'"
    )
    check("DeleteDBClusterSnapshot drops the snapshot's database", gone[0][0] == 0)
    return {"endpoint": final["Endpoint"], "db_url": clusters["app-db"]["url"]}


# -- ECS tasks that run ------------------------------------------------------------------------------


def check_ecs(emu: Emulator, net: dict[str, str], db: dict[str, Any]) -> None:
    ecs = emu.client("ecs")
    logs = emu.client("logs")
    ecs.create_cluster(clusterName="app-ecs")
    logs.create_log_group(logGroupName="/app/migrate")
    td = ecs.register_task_definition(
        family="app-migrate",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "migrate",
                "image": "example/app:1",
                "essential": True,
                "command": ["sh", "-c", "echo hello; echo oops >&2; exit 3"],
                "environment": [
                    {
                        "name": "DATABASE_URL",
                        "value": f"postgresql+psycopg://app@{db['endpoint']}:5432/app?sslmode=require",
                    },
                    {"name": "GREETING", "value": "from-task-definition"},
                ],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/app/migrate",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": "migrate",
                    },
                },
            }
        ],
    )["taskDefinition"]
    network = {
        "awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["sg"]], "assignPublicIp": "DISABLED"}
    }

    def run(token: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(
            cluster="app-ecs",
            taskDefinition=td["taskDefinitionArn"],
            launchType="FARGATE",
            count=1,
            networkConfiguration=network,
            startedBy="ferry",
            clientToken=token,
            tags=[{"key": "ferry:run-id", "value": token}],
        )
        if overrides:
            kwargs["overrides"] = overrides
        out = ecs.run_task(**kwargs)
        check(f"RunTask {token} has no failures", out["failures"] == [], out["failures"])
        return out["tasks"][0]

    def describe(arn: str) -> dict[str, Any]:
        return ecs.describe_tasks(cluster="app-ecs", tasks=[arn], include=["TAGS"])["tasks"][0]

    def stopped(arn: str) -> dict[str, Any]:
        return wait_until(f"{arn} STOPPED", lambda: (t := describe(arn))["lastStatus"] == "STOPPED" and t, timeout=30)

    # 1. a task that logs to both streams and exits 3
    task = run("run-exit3")
    arn = task["taskArn"]
    check("RunTask starts PROVISIONING", task["lastStatus"] == "PROVISIONING", task["lastStatus"])
    check("RunTask with awsvpc has an ENI attachment", task["attachments"][0]["type"] == "ElasticNetworkInterface")
    running = ecs.list_tasks(cluster="app-ecs", family="app-migrate", desiredStatus="RUNNING")["taskArns"]
    check("ListTasks desiredStatus RUNNING lists the pending task", arn in running, running)
    again = run("run-exit3")
    check("clientToken: a repeated token returns the same task", again["taskArn"] == arn)
    check(
        "clientToken: no second task was started",
        len(ecs.list_tasks(cluster="app-ecs", family="app-migrate")["taskArns"]) == 1,
    )
    t = stopped(arn)
    container = t["containers"][0]
    check("exitCode 3", container.get("exitCode") == 3, container)
    check("stopCode EssentialContainerExited", t.get("stopCode") == "EssentialContainerExited", t.get("stopCode"))
    check("stoppedReason", t.get("stoppedReason") == "Essential container in task exited", t.get("stoppedReason"))
    check("desiredStatus STOPPED", t["desiredStatus"] == "STOPPED")
    check("startedAt and stoppedAt set", "startedAt" in t and "stoppedAt" in t)
    check(
        "DescribeTasks include TAGS returns the tags",
        {"key": "ferry:run-id", "value": "run-exit3"} in t.get("tags", []),
    )
    stream = f"migrate/migrate/{arn.rsplit('/', 1)[-1]}"
    page = logs.get_log_events(logGroupName="/app/migrate", logStreamName=stream, startFromHead=True)
    messages = [e["message"] for e in page["events"]]
    check("logs hold stdout and stderr lines in order", messages == ["hello", "oops"], messages)
    stamps = [e["timestamp"] for e in page["events"]]
    check("log timestamps are real milliseconds", all(abs(s / 1000 - time.time()) < 120 for s in stamps), stamps)
    nxt = logs.get_log_events(
        logGroupName="/app/migrate", logStreamName=stream, startFromHead=True, nextToken=page["nextForwardToken"]
    )
    check("forward token: nothing new after the end", nxt["events"] == [], nxt["events"])
    stopped_list = ecs.list_tasks(cluster="app-ecs", family="app-migrate", desiredStatus="STOPPED")["taskArns"]
    check("ListTasks desiredStatus STOPPED lists it", arn in stopped_list)
    check(
        "ListTasks desiredStatus RUNNING no longer does",
        arn not in ecs.list_tasks(cluster="app-ecs", family="app-migrate", desiredStatus="RUNNING")["taskArns"],
    )
    missing = ecs.describe_tasks(cluster="app-ecs", tasks=["arn:aws:ecs:us-east-1:123456789012:task/app-ecs/nope"])
    check(
        "DescribeTasks of an unknown ARN -> failures MISSING", missing["failures"][0]["reason"] == "MISSING", missing
    )

    # 2. overrides, and DATABASE_URL reaching the real database
    probe = (
        "import os, psycopg; u = os.environ['DATABASE_URL']; print(u.split('://')[0]); "
        "print(os.environ['GREETING']); "
        "c = psycopg.connect(u.replace('postgresql+psycopg://', 'postgresql://')); "
        "print('rows', c.execute('SELECT count(*) FROM items').fetchone()[0])"
    )
    task = run(
        "run-override",
        {
            "containerOverrides": [
                {
                    "name": "migrate",
                    "command": [sys.executable, "-c", probe],
                    "environment": [{"name": "GREETING", "value": "from-override"}],
                }
            ]
        },
    )
    t = stopped(task["taskArn"])
    stream = f"migrate/migrate/{task['taskArn'].rsplit('/', 1)[-1]}"
    messages = [
        e["message"]
        for e in logs.get_log_events(logGroupName="/app/migrate", logStreamName=stream, startFromHead=True)["events"]
    ]
    check(
        "command override runs and exits 0", t["containers"][0].get("exitCode") == 0, (t["containers"][0], messages)
    )
    check("environment override wins over the task definition", "from-override" in messages, messages)
    check("DATABASE_URL keeps the scheme it was given", "postgresql+psycopg" in messages, messages)
    check("DATABASE_URL with the cluster endpoint reaches the cluster's database", "rows 2" in messages, messages)

    # 3. StopTask of a long task
    task = run("run-sleep", {"containerOverrides": [{"name": "migrate", "command": ["sleep", "60"]}]})
    wait_until("sleep RUNNING", lambda: describe(task["taskArn"])["lastStatus"] == "RUNNING")
    out = ecs.stop_task(cluster="app-ecs", task=task["taskArn"], reason="ferry: migration timed out")
    check("StopTask answers desiredStatus STOPPED", out["task"]["desiredStatus"] == "STOPPED")
    started = time.monotonic()
    t = stopped(task["taskArn"])
    check("StopTask stops it well before 60 s", time.monotonic() - started < 10)
    check("StopTask: stopCode UserInitiated", t.get("stopCode") == "UserInitiated", t.get("stopCode"))
    check("StopTask: stoppedReason is the request's", t.get("stoppedReason") == "ferry: migration timed out")
    check("StopTask: exit code of SIGTERM (143)", t["containers"][0].get("exitCode") == 143, t["containers"][0])

    # 4. a command that cannot start
    task = run("run-bad", {"containerOverrides": [{"name": "migrate", "command": ["definitely-not-a-command-x1"]}]})
    statuses = set()

    def bad_done() -> dict[str, Any] | None:
        t = describe(task["taskArn"])
        statuses.add(t["lastStatus"])
        return t if t["lastStatus"] == "STOPPED" else None

    t = wait_until("unstartable STOPPED", bad_done, interval=0.1)
    container = t["containers"][0]
    check("unstartable: never RUNNING", "RUNNING" not in statuses and "PENDING" in statuses, statuses)
    check("unstartable: no exitCode", "exitCode" not in container, container)
    check(
        "unstartable: container reason CannotStartContainerError",
        container.get("reason", "").startswith("CannotStartContainerError:"),
    )
    check(
        "unstartable: task stoppedReason CannotStartContainerError",
        t.get("stoppedReason", "").startswith("CannotStartContainerError:"),
    )
    check("unstartable: stopCode TaskFailedToStart", t.get("stopCode") == "TaskFailedToStart")
    check("unstartable: no startedAt", "startedAt" not in t)

    # 5. a new revision (as `--image` registers one): fields and tags kept, its own command runs
    second = dict(td["containerDefinitions"][0], image="example/app:2", command=["sh", "-c", "echo from-revision-2"])
    rev2 = ecs.register_task_definition(
        family="app-migrate",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        enableFaultInjection=False,
        containerDefinitions=[second],
        tags=[{"key": "ferry:run-id", "value": "run-rev2"}],
    )["taskDefinition"]
    described = ecs.describe_task_definition(taskDefinition="app-migrate", include=["TAGS"])
    latest = described["taskDefinition"]
    check("RegisterTaskDefinition: a new revision", latest["taskDefinitionArn"] == rev2["taskDefinitionArn"]
            and latest["revision"] == td["revision"] + 1, latest["taskDefinitionArn"])
    check("DescribeTaskDefinition include TAGS: the tags given", described.get("tags") == [
        {"key": "ferry:run-id", "value": "run-rev2"}], described.get("tags"))
    check("registeredAt, registeredBy and requiresAttributes set by registration",
            all(k in latest for k in ("registeredAt", "registeredBy", "requiresAttributes")), sorted(latest))
    check("enableFaultInjection kept", latest.get("enableFaultInjection") is False, latest.get("enableFaultInjection"))
    rev2_task = ecs.run_task(cluster="app-ecs", taskDefinition=rev2["taskDefinitionArn"], launchType="FARGATE",
                             networkConfiguration=network, clientToken="run-rev2")["tasks"][0]
    t = stopped(rev2_task["taskArn"])
    stream = f"migrate/migrate/{rev2_task['taskArn'].rsplit('/', 1)[-1]}"
    messages = [e["message"] for e in logs.get_log_events(logGroupName="/app/migrate", logStreamName=stream,
                                                        startFromHead=True)["events"]]
    check("the revision's own command runs", messages == ["from-revision-2"], messages)
    view = emu.get("/_emulator/tasks")[rev2_task["taskArn"]]
    check("/_emulator/tasks names the revision and the image", view["taskDefinitionArn"] == rev2["taskDefinitionArn"]
            and view["containers"]["migrate"]["image"] == "example/app:2", view)

    # 6. an image that cannot be pulled
    gone = dict(second, image="registry.example/app-does-not-exist:1")
    rev3 = ecs.register_task_definition(family="app-missing", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                        cpu="256", memory="512", containerDefinitions=[gone])["taskDefinition"]
    task = ecs.run_task(cluster="app-ecs", taskDefinition=rev3["taskDefinitionArn"], launchType="FARGATE",
                        networkConfiguration=network, clientToken="run-missing")["tasks"][0]
    t = stopped(task["taskArn"])
    container = t["containers"][0]
    check("unpullable: stopCode TaskFailedToStart", t.get("stopCode") == "TaskFailedToStart", t.get("stopCode"))
    check("unpullable: stoppedReason CannotPullContainerError naming the image",
            t.get("stoppedReason", "").startswith("CannotPullContainerError:")
            and "app-does-not-exist:1" in t.get("stoppedReason", ""), t.get("stoppedReason"))
    check("unpullable: container reason, no exitCode, no startedAt",
            container.get("reason", "").startswith("CannotPullContainerError:") and "exitCode" not in container
            and "startedAt" not in t, (container, t.get("startedAt")))


# -- App Runner -----------------------------------------------------------------------------------


def check_apprunner(emu: Emulator, db: dict[str, Any]) -> None:
    ar = emu.client("apprunner")

    def status(arn: str) -> str:
        return ar.describe_service(ServiceArn=arn)["Service"]["Status"]

    def settle(arn: str, want: str) -> None:
        wait_until(f"service {want}", lambda: status(arn) == want)

    out = ar.create_service(
        ServiceName="app-web",
        SourceConfiguration={
            "ImageRepository": {
                "ImageIdentifier": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "Port": "8080",
                    "RuntimeEnvironmentVariables": {"DATABASE_URL": f"postgresql://app@{db['endpoint']}:5432/app"},
                },
            },
            "AutoDeploymentsEnabled": False,
        },
    )
    arn = out["Service"]["ServiceArn"]
    check("CreateService returns an OperationId", bool(out.get("OperationId")))
    check("new service is OPERATION_IN_PROGRESS", out["Service"]["Status"] == "OPERATION_IN_PROGRESS")
    settle(arn, "RUNNING")
    paused = ar.pause_service(ServiceArn=arn)
    check("PauseService -> OPERATION_IN_PROGRESS", paused["Service"]["Status"] == "OPERATION_IN_PROGRESS")
    error_code(
        "mutating call while in progress -> InvalidStateException",
        lambda: ar.start_deployment(ServiceArn=arn),
        "InvalidStateException",
    )
    settle(arn, "PAUSED")
    error_code(
        "pausing a paused service -> InvalidStateException",
        lambda: ar.pause_service(ServiceArn=arn),
        "InvalidStateException",
    )
    ar.resume_service(ServiceArn=arn)
    settle(arn, "RUNNING")
    deploy = ar.start_deployment(ServiceArn=arn)["OperationId"]
    settle(arn, "RUNNING")
    new_url = db["endpoint"].replace("app-db.", "app-db-restored-2.")
    updated = ar.update_service(
        ServiceArn=arn,
        SourceConfiguration={
            "ImageRepository": {
                "ImageIdentifier": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "RuntimeEnvironmentVariables": {"DATABASE_URL": f"postgresql://app@{new_url}:5432/app"}
                },
            }
        },
    )
    env = updated["Service"]["SourceConfiguration"]["ImageRepository"]["ImageConfiguration"][
        "RuntimeEnvironmentVariables"
    ]
    check("UpdateService replaces RuntimeEnvironmentVariables", new_url in env["DATABASE_URL"], env)
    settle(arn, "RUNNING")
    ops = ar.list_operations(ServiceArn=arn)["OperationSummaryList"]
    types = [o["Type"] for o in ops]
    check(
        "ListOperations newest first",
        types == ["UPDATE_SERVICE", "START_DEPLOYMENT", "RESUME_SERVICE", "PAUSE_SERVICE", "CREATE_SERVICE"],
        types,
    )
    check("operations SUCCEEDED with EndedAt", all(o["Status"] == "SUCCEEDED" and "EndedAt" in o for o in ops), ops)
    check("StartDeployment's OperationId is listed", any(o["Id"] == deploy for o in ops))
    emu.post("/_emulator/config", {"fail_deployment": True})
    failing = ar.start_deployment(ServiceArn=arn)["OperationId"]
    settle(arn, "RUNNING")
    op = ar.list_operations(ServiceArn=arn, MaxResults=1)["OperationSummaryList"][0]
    check(
        "fail_deployment: the next deployment rolls back",
        op["Id"] == failing and op["Status"] == "ROLLBACK_SUCCEEDED",
        op,
    )
    error_code(
        "unknown service -> ResourceNotFoundException",
        lambda: ar.describe_service(ServiceArn="arn:aws:apprunner:us-east-1:123456789012:service/nope/0"),
        "ResourceNotFoundException",
    )
    events = emu.client("logs").get_log_events(
        logGroupName=f"/aws/apprunner/app-web/{arn.rsplit('/', 1)[-1]}/service",
        logStreamName="events",
        startFromHead=True,
    )["events"]
    check("service events go to the service log group", len(events) >= 10, len(events))

    # StartCommand runs for real; one that exits non-zero fails the deployment.
    def image(command: str) -> dict[str, Any]:
        return {
            "ImageRepository": {
                "ImageIdentifier": "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:2",
                "ImageRepositoryType": "ECR",
                "ImageConfiguration": {
                    "StartCommand": command,
                    "RuntimeEnvironmentVariables": {"DATABASE_URL": f"postgresql://app@{db['endpoint']}:5432/app"},
                },
            }
        }

    arn = ar.create_service(
        ServiceName="app-migrating", SourceConfiguration=image('echo "up on $DATABASE_URL"; exec python3 -m http.server "$PORT" --bind 127.0.0.1')
    )["Service"]["ServiceArn"]
    settle(arn, "RUNNING")
    group = f"/aws/apprunner/app-migrating/{arn.rsplit('/', 1)[-1]}/application"
    logs = emu.client("logs")
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    lines = [
        e["message"]
        for e in logs.get_log_events(logGroupName=group, logStreamName=streams[0]["logStreamName"], startFromHead=True)[
            "events"
        ]
    ]
    check(
        "StartCommand runs with DATABASE_URL pointed at the cluster's database",
        lines and lines[0].startswith("up on postgresql://") and "/emu_" in lines[0],
        lines,
    )
    ar.update_service(ServiceArn=arn, SourceConfiguration=image("echo migration failed; exit 1"))
    settle(arn, "RUNNING")
    op = ar.list_operations(ServiceArn=arn)["OperationSummaryList"][0]
    check(
        "a StartCommand that exits 1 fails the deployment",
        op["Type"] == "UPDATE_SERVICE" and op["Status"] == "ROLLBACK_SUCCEEDED",
        op,
    )
    command = ar.describe_service(ServiceArn=arn)["Service"]["SourceConfiguration"]["ImageRepository"][
        "ImageConfiguration"
    ]["StartCommand"]
    check("a failed UpdateService rolls the configuration back", "http.server" in command, command)


# -- CloudFormation ---------------------------------------------------------------------------------


def check_cloudformation(emu: Emulator) -> None:
    cfn = emu.client("cloudformation")
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
            "SubnetA": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.1.0/24"},
            },
            "SubnetB": {
                "Type": "AWS::EC2::Subnet",
                "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.2.0/24"},
            },
            "MigrationSg": {
                "Type": "AWS::EC2::SecurityGroup",
                "Properties": {"GroupDescription": "m", "VpcId": {"Ref": "Vpc"}},
            },
            "Logs": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": "/wumbo/migrate", "RetentionInDays": 7},
            },
            "ExecRole": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "AssumeRolePolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                                "Action": "sts:AssumeRole",
                            }
                        ],
                    }
                },
            },
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "wumbo-ecs"}},
            "TaskDef": {
                "Type": "AWS::ECS::TaskDefinition",
                "Properties": {
                    "Family": "wumbo-migrate",
                    "NetworkMode": "awsvpc",
                    "RequiresCompatibilities": ["FARGATE"],
                    "Cpu": "256",
                    "Memory": "512",
                    "ExecutionRoleArn": {"Fn::GetAtt": ["ExecRole", "Arn"]},
                    "ContainerDefinitions": [
                        {
                            "Name": "migrate",
                            "Image": "example/app:1",
                            "Command": ["sh", "-c", "echo from-cfn"],
                            "LogConfiguration": {
                                "LogDriver": "awslogs",
                                "Options": {
                                    "awslogs-group": {"Ref": "Logs"},
                                    "awslogs-region": {"Ref": "AWS::Region"},
                                    "awslogs-stream-prefix": "migrate",
                                },
                            },
                        }
                    ],
                },
            },
        },
        "Outputs": {
            "ClusterName": {"Value": {"Ref": "Cluster"}},
            "MigrationTaskDefinitionArn": {"Value": {"Ref": "TaskDef"}},
            "PrivateSubnetIds": {"Value": {"Fn::Join": [",", [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]]}},
            "MigrationSecurityGroupId": {"Value": {"Fn::GetAtt": ["MigrationSg", "GroupId"]}},
            "LogGroupArn": {"Value": {"Fn::GetAtt": ["Logs", "Arn"]}},
            "ExecRoleArn": {"Value": {"Fn::GetAtt": ["ExecRole", "Arn"]}},
        },
    }
    cfn.create_stack(
        StackName="production-ComputeStack", TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"]
    )
    stack = wait_until(
        "stack created",
        lambda: (
            (s := cfn.describe_stacks(StackName="production-ComputeStack")["Stacks"][0])["StackStatus"].endswith(
                "COMPLETE"
            )
            and s
        ),
    )
    check("CreateStack -> CREATE_COMPLETE", stack["StackStatus"] == "CREATE_COMPLETE", stack["StackStatus"])
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    check("Output Ref of AWS::ECS::Cluster", outputs.get("ClusterName") == "wumbo-ecs", outputs)
    check(
        "Output Ref of AWS::ECS::TaskDefinition",
        outputs.get("MigrationTaskDefinitionArn", "").endswith(":task-definition/wumbo-migrate:1"),
    )
    subnets = outputs.get("PrivateSubnetIds", "").split(",")
    check("Output Fn::Join of subnets", len(subnets) == 2 and all(s.startswith("subnet-") for s in subnets), subnets)
    check("Output GetAtt GroupId", outputs.get("MigrationSecurityGroupId", "").startswith("sg-"))
    check("Output GetAtt LogGroup Arn", outputs.get("LogGroupArn", "").startswith("arn:aws:logs:"))
    check("Output GetAtt Role Arn", outputs.get("ExecRoleArn", "").startswith("arn:aws:iam::"))
    td = emu.client("ecs").describe_task_definition(taskDefinition=outputs["MigrationTaskDefinitionArn"])[
        "taskDefinition"
    ]
    check("stack task definition keeps NetworkMode awsvpc", td.get("networkMode") == "awsvpc", td.get("networkMode"))
    options = td["containerDefinitions"][0]["logConfiguration"]["options"]
    check(
        "stack task definition resolves the awslogs group", options.get("awslogs-group") == "/wumbo/migrate", options
    )
    # a task from the stack's definition runs too
    ecs = emu.client("ecs")
    task = ecs.run_task(
        cluster=outputs["ClusterName"],
        taskDefinition=outputs["MigrationTaskDefinitionArn"],
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": subnets, "securityGroups": [outputs["MigrationSecurityGroupId"]]}
        },
    )["tasks"][0]
    t = wait_until(
        "cfn task STOPPED",
        lambda: (
            (x := ecs.describe_tasks(cluster="wumbo-ecs", tasks=[task["taskArn"]])["tasks"][0])["lastStatus"]
            == "STOPPED"
            and x
        ),
    )
    check("task from the stack's task definition runs", t["containers"][0].get("exitCode") == 0, t["containers"][0])


# -- shutdown ------------------------------------------------------------------------------------------


def running_task_pids(emu: Emulator, net: dict[str, str]) -> list[int]:
    """Leave a task running for the shutdown check; returns its process ids."""
    ecs = emu.client("ecs")
    td = ecs.register_task_definition(
        family="long",
        containerDefinitions=[{"name": "main", "image": "x", "memory": 64, "command": ["sleep", "120"]}],
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
    )["taskDefinition"]
    arn = ecs.run_task(
        cluster="app-ecs",
        taskDefinition=td["taskDefinitionArn"],
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [net["subnet"]]}},
    )["tasks"][0]["taskArn"]
    wait_until(
        "long task RUNNING",
        lambda: ecs.describe_tasks(cluster="app-ecs", tasks=[arn])["tasks"][0]["lastStatus"] == "RUNNING",
    )
    pids = [c["pid"] for c in emu.get("/_emulator/tasks")[arn]["containers"].values() if c["pid"]]
    check("debug endpoint shows the running task's pid", len(pids) == 1 and alive(pids[0]), pids)
    return pids


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def check_bench_views(emu: Emulator) -> None:
    """What scripts/bench reads: the call log and the ground-truth timestamps."""
    calls = emu.get("/_emulator/calls")["calls"]
    ops = {(x[2], x[3]) for x in calls}
    check("call log names service and operation (Query protocol)", ("rds", "CreateDBClusterSnapshot") in ops, ops)
    check("call log names service and operation (JSON protocol)", ("ecs", "RunTask") in ops, ops)
    check("call log keeps the caller's agent", all(x[4].startswith("Boto3/") for x in calls), {x[4] for x in calls})
    check("call log has no /_emulator requests", not any(x[3].startswith("GET /_emulator") for x in calls))
    later = emu.get(f"/_emulator/calls?since={calls[-1][0]}")["calls"]
    check("call log ?since= drops earlier calls", 1 <= len(later) < len(calls), len(later))
    rds = emu.client("rds")
    rds.create_db_cluster_snapshot(DBClusterIdentifier="app-db", DBClusterSnapshotIdentifier="app-db-bench-view")
    asked = time.time()
    snap = emu.get("/_emulator/snapshots")["app-db-bench-view"]
    check("a creating snapshot shows when it will be available", snap["status"] == "creating"
            and isinstance(snap.get("ready_at"), float) and snap["ready_at"] > asked, snap)
    wait_until("the snapshot to be available", lambda: rds.describe_db_cluster_snapshots(
        DBClusterSnapshotIdentifier="app-db-bench-view")["DBClusterSnapshots"][0]["Status"] == "available")
    check("a snapshot is reported available from ready_at on", time.time() >= snap["ready_at"])
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="app-db-bench-view")
    stopped = [t for t in emu.get("/_emulator/tasks").values() if t["lastStatus"] == "STOPPED" and t["startedAt"]]
    check("a stopped task shows when it started and stopped",
            bool(stopped) and all(t["stoppedAt"] >= t["startedAt"] for t in stopped), stopped[:1])


# -- S3: conditional writes and faults ---------------------------------------------------------------

STATE_BUCKET = "ferry-state"


def s3_status(fn: Callable[[], Any]) -> tuple[int, str]:
    """(HTTP status, error code or "") of one S3 call."""
    try:
        return fn()["ResponseMetadata"]["HTTPStatusCode"], ""
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]


def race(calls: list[Callable[[], Any]]) -> list[tuple[int, str]]:
    """Run the calls at the same instant, one thread each; their (status, code)s in order."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[int, str]] = [(0, "")] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = s3_status(calls[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def raw_s3(emu: Emulator, method: str, host: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    """One S3 request with a chosen Host header (virtual-host style without DNS)."""
    port = int(emu.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = "AWS4-HMAC-SHA256 Credential=testing/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=0"
    headers = {"Host": f"{host}:{port}", "Authorization": auth, "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp.read()


def check_s3(emu: Emulator) -> None:
    s3 = emu.client("s3")
    b = STATE_BUCKET
    s3.create_bucket(Bucket=b)
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    check_s3_addressing(emu, s3)
    check_s3_if_none_match(emu, s3)
    check_s3_if_match(emu, s3)
    check_s3_faults(emu, s3)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=b, Prefix="st/locks/")["Contents"]]
    check("ListObjectsV2 with a prefix lists the state's keys", "st/locks/app-db.json" in keys, keys)
    ops = {(x[2], x[3]) for x in emu.get("/_emulator/calls")["calls"]}
    check("call log names S3 operations", {("s3", "PutObject"), ("s3", "DeleteObject"), ("s3", "ListObjectsV2")}
            <= ops, sorted(o for o in ops if o[0] == "s3"))


def check_s3_addressing(emu: Emulator, s3: Any) -> None:
    s3.put_object(Bucket=STATE_BUCKET, Key="st/hello.json", Body=b'{"hello": 1}')
    got = s3.get_object(Bucket=STATE_BUCKET, Key="st/hello.json")["Body"].read()
    check("S3 path-style put and get reach moto's S3", got == b'{"hello": 1}', got)
    head = s3.head_object(Bucket=STATE_BUCKET, Key="st/hello.json")
    check("HeadObject keeps the object's Content-Length", head["ContentLength"] == 12, head["ContentLength"])
    put = raw_s3(emu, "PUT", f"{STATE_BUCKET}.localhost", "/st/virtual.json", b"v")
    got = s3.get_object(Bucket=STATE_BUCKET, Key="st/virtual.json")["Body"].read()
    check("S3 virtual-host-style requests reach the same bucket", put[0] == 200 and got == b"v", (put, got))
    got_raw = raw_s3(emu, "GET", f"{STATE_BUCKET}.localhost", "/st/hello.json")
    check("S3 virtual-host-style get", got_raw == (200, b'{"hello": 1}'), got_raw)


def check_s3_if_none_match(emu: Emulator, s3: Any) -> None:
    b, key = STATE_BUCKET, "st/locks/app-db.json"
    first = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"holder-1", IfNoneMatch="*"))
    check("PutObject If-None-Match: * creates a new key", first == (200, ""), first)
    again = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"holder-2", IfNoneMatch="*"))
    body = s3.get_object(Bucket=b, Key=key)["Body"].read()
    check("PutObject If-None-Match: * on an existing key: 412 PreconditionFailed, nothing written",
            again == (412, "PreconditionFailed") and body == b"holder-1", (again, body))

    clients = [emu.client("s3") for _ in range(16)]
    race_key = "st/locks/raced.json"
    results = race([lambda cl=cl, i=i: cl.put_object(Bucket=b, Key=race_key, Body=f"holder-{i}".encode(),
                                                     IfNoneMatch="*") for i, cl in enumerate(clients)])
    winners = [i for i, r in enumerate(results) if r == (200, "")]
    losers = [r for r in results if r == (412, "PreconditionFailed")]
    body = s3.get_object(Bucket=b, Key=race_key)["Body"].read()
    check("16 simultaneous PutObject If-None-Match: * of one key: exactly one 200, 15 x 412",
            len(winners) == 1 and len(losers) == 15, results)
    check("the stored lock is the winner's", winners and body == f"holder-{winners[0]}".encode(), (winners, body))

    etag = s3.head_object(Bucket=b, Key=race_key)["ETag"]
    gone = s3_status(lambda: s3.delete_object(Bucket=b, Key=race_key, IfMatch=etag))
    again = s3_status(lambda: s3.put_object(Bucket=b, Key=race_key, Body=b"next", IfNoneMatch="*"))
    check("after a delete (a delete marker in a versioned bucket) If-None-Match: * creates the key again",
            gone == (204, "") and again == (200, ""), (gone, again))


def check_s3_if_match(emu: Emulator, s3: Any) -> None:
    b, key = STATE_BUCKET, "st/locks/app-db.json"
    etag = s3.head_object(Bucket=b, Key=key)["ETag"]
    wrong = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"thief", IfMatch='"0123456789abcdef"'))
    check("PutObject If-Match with another ETag: 412, nothing written",
            wrong == (412, "PreconditionFailed") and s3.get_object(Bucket=b, Key=key)["Body"].read() == b"holder-1",
            wrong)
    right = s3.put_object(Bucket=b, Key=key, Body=b"holder-1 refreshed", IfMatch=etag)
    check("PutObject If-Match with the current ETag replaces the object, with a new ETag",
            right["ETag"] != etag and s3.get_object(Bucket=b, Key=key)["Body"].read() == b"holder-1 refreshed",
            right["ETag"])
    stale = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"stale", IfMatch=etag))
    check("PutObject If-Match with the old ETag after a refresh: 412", stale == (412, "PreconditionFailed"), stale)
    missing = s3_status(lambda: s3.put_object(Bucket=b, Key="st/locks/none.json", Body=b"x", IfMatch=etag))
    check("PutObject If-Match on a missing key: 404 NoSuchKey", missing == (404, "NoSuchKey"), missing)

    etag = right["ETag"]
    clients = [emu.client("s3") for _ in range(16)]
    results = race([lambda cl=cl, i=i: cl.put_object(Bucket=b, Key=key, Body=f"refresh-{i}".encode(), IfMatch=etag)
                    for i, cl in enumerate(clients)])
    check("16 simultaneous PutObject If-Match of one ETag: exactly one 200",
            sum(r == (200, "") for r in results) == 1 and sum(r == (412, "PreconditionFailed") for r in results) == 15,
            results)

    etag = s3.head_object(Bucket=b, Key=key)["ETag"]
    wrong = s3_status(lambda: s3.delete_object(Bucket=b, Key=key, IfMatch='"0123456789abcdef"'))
    check("DeleteObject If-Match with another ETag: 412, the object stays",
            wrong == (412, "PreconditionFailed") and s3_status(lambda: s3.head_object(Bucket=b, Key=key))[0] == 200,
            wrong)
    right = s3_status(lambda: s3.delete_object(Bucket=b, Key=key, IfMatch=etag))
    check("DeleteObject If-Match with the current ETag: 204, the object is gone",
            right == (204, "") and s3_status(lambda: s3.head_object(Bucket=b, Key=key))[0] == 404, right)
    missing = s3_status(lambda: s3.delete_object(Bucket=b, Key=key, IfMatch=etag))
    check("DeleteObject If-Match on a missing key: 404 NoSuchKey", missing == (404, "NoSuchKey"), missing)

    s3.put_object(Bucket=b, Key=key, Body=b"holder-3", IfNoneMatch="*")
    star = s3_status(lambda: s3.delete_object(Bucket=b, Key="st/hello.json", IfMatch="*"))
    star_missing = s3_status(lambda: s3.delete_object(Bucket=b, Key="st/hello.json", IfMatch="*"))
    check("DeleteObject If-Match: * deletes an existing object; a missing one: 404 NoSuchKey",
            star == (204, "") and star_missing == (404, "NoSuchKey"), (star, star_missing))


def check_s3_faults(emu: Emulator, s3: Any) -> None:
    b, key = STATE_BUCKET, "st/locks/conflict.json"
    emu.post("/_emulator/config", {"s3_conflicts": 1})
    plain = s3_status(lambda: s3.put_object(Bucket=b, Key="st/runs/r1.json", Body=b"{}"))
    conflict = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"x", IfNoneMatch="*"))
    absent = s3_status(lambda: s3.head_object(Bucket=b, Key=key))
    check("s3_conflicts: the next conditional write answers 409 ConditionalRequestConflict, writes nothing, "
            "and unconditional writes do not use it up",
            plain == (200, "") and conflict == (409, "ConditionalRequestConflict") and absent[0] == 404,
            (plain, conflict, absent))
    retry = s3_status(lambda: s3.put_object(Bucket=b, Key=key, Body=b"x", IfNoneMatch="*"))
    check("s3_conflicts counts down: the retry succeeds", retry == (200, "")
            and emu.get("/_emulator/config")["s3_conflicts"] == 0, retry)
    emu.post("/_emulator/config", {"s3_conflicts": 1})
    etag = s3.head_object(Bucket=b, Key=key)["ETag"]
    deleted = s3_status(lambda: s3.delete_object(Bucket=b, Key=key, IfMatch=etag))
    check("s3_conflicts applies to DeleteObject If-Match too", deleted == (409, "ConditionalRequestConflict")
            and s3_status(lambda: s3.head_object(Bucket=b, Key=key))[0] == 200, deleted)

    emu.post("/_emulator/config", {"s3_fault": "503"})
    down = s3_status(lambda: s3.get_object(Bucket=b, Key=key))
    rds_ok = s3_status(lambda: emu.client("rds").describe_db_clusters())
    check("s3_fault = 503: S3 answers 503 ServiceUnavailable, other services are served",
            down == (503, "ServiceUnavailable") and rds_ok == (200, ""), (down, rds_ok))
    emu.post("/_emulator/config", {"s3_fault": "reset"})
    try:
        s3.put_object(Bucket=b, Key="st/runs/r2.json", Body=b"{}")
        reset: Any = "answered"
    except (ConnectionClosedError, EndpointConnectionError) as e:
        reset = type(e).__name__
    emu.post("/_emulator/config", {"s3_fault": "none"})
    written = s3_status(lambda: s3.head_object(Bucket=b, Key="st/runs/r2.json"))
    check("s3_fault = reset: the connection drops without an answer, nothing written",
            reset == "ConnectionClosedError" and written[0] == 404, (reset, written))
    check("s3_fault = none serves S3 again", s3_status(lambda: s3.get_object(Bucket=b, Key=key)) == (200, ""))
    try:
        emu.post("/_emulator/config", {"s3_fault": "down"})
        bad: Any = "accepted"
    except urllib.error.HTTPError as e:
        bad = e.code
    check("an unknown s3_fault answers 400", bad == 400, bad)
SPARSE_ON = {
    "sparse_no_started_at": True,
    "sparse_desired_running": True,
    "sparse_no_account_attributes": True,
    "late_operation_seconds": 2,
}


def check_sparse(emu: Emulator, net: dict[str, str]) -> None:
    """The sparse-answer switches (settings.py): answers as a plain moto and an
    eventually consistent App Runner give them."""
    ecs, rds, ar = emu.client("ecs"), emu.client("rds"), emu.client("apprunner")
    config = emu.post("/_emulator/config", SPARSE_ON)
    check("sparse switches are settings", all(config[k] == v for k, v in SPARSE_ON.items()), config)
    try:
        ecs.create_cluster(clusterName="sparse-ecs")
        td = ecs.register_task_definition(
            family="sparse",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "migrate", "image": "x", "essential": True, "command": ["sh", "-c", "exit 1"]}],
        )["taskDefinition"]["taskDefinitionArn"]
        network = {"awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["sg"]]}}
        arn = ecs.run_task(
            cluster="sparse-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network
        )["tasks"][0]["taskArn"]

        def describe() -> dict[str, Any]:
            return ecs.describe_tasks(cluster="sparse-ecs", tasks=[arn])["tasks"][0]

        t = wait_until("the sparse task to stop", lambda: (t := describe())["lastStatus"] == "STOPPED" and t)
        check("sparse: a task that ran has no startedAt", "startedAt" not in t, t)
        check("sparse: its container's exit code is still there", t["containers"][0].get("exitCode") == 1, t)
        check("sparse: it keeps desiredStatus RUNNING", t["desiredStatus"] == "RUNNING", t["desiredStatus"])
        listed = ecs.list_tasks(cluster="sparse-ecs", family="sparse", desiredStatus="RUNNING")["taskArns"]
        check("sparse: ListTasks RUNNING lists the stopped task", arn in listed, listed)
        error_code(
            "sparse: DescribeAccountAttributes is not implemented",
            lambda: rds.describe_account_attributes(),
            "InvalidAction",
        )
        out = ar.create_service(
            ServiceName="sparse-web",
            SourceConfiguration={"ImageRepository": {"ImageIdentifier": "public.ecr.aws/emulator/x:1", "ImageRepositoryType": "ECR_PUBLIC"}},
        )
        svc = out["Service"]["ServiceArn"]
        ops = ar.list_operations(ServiceArn=svc)["OperationSummaryList"]
        check("sparse: a new App Runner operation is not listed at once", ops == [], ops)
        listed_ops = wait_until(
            "the operation to be listed", lambda: ar.list_operations(ServiceArn=svc)["OperationSummaryList"], timeout=10
        )
        check("sparse: ... and is listed later", listed_ops[0]["Id"] == out["OperationId"], listed_ops)
    finally:
        off = {k: (0 if k == "late_operation_seconds" else False) for k in SPARSE_ON}
        emu.post("/_emulator/config", off)
    full = ecs.describe_tasks(cluster="sparse-ecs", tasks=[arn])["tasks"][0]
    check("sparse off: startedAt is back", "startedAt" in full, full)
    check("sparse off: desiredStatus is STOPPED again", full["desiredStatus"] == "STOPPED", full["desiredStatus"])


def check_rds_settings(emu: Emulator) -> None:
    """A restore takes from the snapshot only what a snapshot holds; settings moto drops are kept."""
    rds = emu.client("rds")
    rds.create_db_parameter_group(
        DBParameterGroupName="twin-pg", DBParameterGroupFamily="aurora-postgresql15", Description="t"
    )
    rds.create_db_cluster(
        DBClusterIdentifier="twin",
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="app",
        MasterUserPassword="correct-horse",
        DatabaseName="app",
        StorageType="aurora-iopt1",
        EnableCloudwatchLogsExports=["postgresql"],
        CopyTagsToSnapshot=True,
        EnablePerformanceInsights=True,
        PerformanceInsightsRetentionPeriod=7,
        EngineLifecycleSupport="open-source-rds-extended-support-disabled",
    )
    described = rds.describe_db_clusters(DBClusterIdentifier="twin")["DBClusters"][0]
    for key, want in {
        "StorageType": "aurora-iopt1",
        "EnabledCloudwatchLogsExports": ["postgresql"],
        "PerformanceInsightsEnabled": True,
        "EngineLifecycleSupport": "open-source-rds-extended-support-disabled",
        "DatabaseInsightsMode": "standard",
        "HostedZoneId": "Z2R2ITUGPM61AM",
    }.items():
        check(f"an Aurora cluster keeps {key}", described.get(key) == want, described.get(key))
    wait_until("twin available", lambda: cluster_status(rds, "twin") == "available")
    rds.create_db_instance(
        DBInstanceIdentifier="twin-a",
        DBClusterIdentifier="twin",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
        DBParameterGroupName="twin-pg",
        CACertificateIdentifier="rds-ca-rsa2048-g1",
        EnablePerformanceInsights=True,
        PerformanceInsightsRetentionPeriod=7,
        MonitoringInterval=60,
        MonitoringRoleArn="arn:aws:iam::123456789012:role/rds-monitoring-role",
        PromotionTier=0,
        AutoMinorVersionUpgrade=False,
    )
    inst = rds.describe_db_instances(DBInstanceIdentifier="twin-a")["DBInstances"][0]
    for key, want in {
        "CACertificateIdentifier": "rds-ca-rsa2048-g1",
        "PerformanceInsightsEnabled": True,
        "MonitoringInterval": 60,
        "PromotionTier": 0,
        "AutoMinorVersionUpgrade": False,
    }.items():
        check(f"an Aurora instance keeps {key}", inst.get(key) == want, inst.get(key))

    rds.create_db_cluster_snapshot(DBClusterIdentifier="twin", DBClusterSnapshotIdentifier="twin-snap")
    wait_until(
        "twin snapshot available",
        lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="twin-snap")["DBClusterSnapshots"][0][
            "Status"
        ]
        == "available",
    )
    rds.restore_db_cluster_from_snapshot(
        DBClusterIdentifier="twin-bare", SnapshotIdentifier="twin-snap", Engine="aurora-postgresql"
    )
    bare = rds.describe_db_clusters(DBClusterIdentifier="twin-bare")["DBClusters"][0]
    for key, want in {
        "StorageType": "aurora",
        "EnabledCloudwatchLogsExports": [],
        "CopyTagsToSnapshot": False,
        "PerformanceInsightsEnabled": False,
        "EngineLifecycleSupport": "open-source-rds-extended-support",
        "MasterUsername": "app",
        "DatabaseName": "app",
    }.items():
        check(f"a restore given nothing gets the API's {key}", bare.get(key) == want, bare.get(key))
    wait_until("twin-bare available", lambda: cluster_status(rds, "twin-bare") == "available")
    rds.modify_db_cluster(
        DBClusterIdentifier="twin-bare",
        ApplyImmediately=True,
        PreferredMaintenanceWindow="sun:05:00-sun:05:30",
        DatabaseInsightsMode="advanced",
        EnablePerformanceInsights=True,
        PerformanceInsightsRetentionPeriod=465,
    )
    check("ModifyDBCluster reports modifying", cluster_status(rds, "twin-bare") == "modifying")
    wait_until("twin-bare available again", lambda: cluster_status(rds, "twin-bare") == "available")
    modified = rds.describe_db_clusters(DBClusterIdentifier="twin-bare")["DBClusters"][0]
    for key, want in {
        "PreferredMaintenanceWindow": "sun:05:00-sun:05:30",
        "DatabaseInsightsMode": "advanced",
        "PerformanceInsightsRetentionPeriod": 465,
    }.items():
        check(f"ModifyDBCluster keeps {key}", modified.get(key) == want, modified.get(key))


def check_rds_clone(emu: Emulator) -> None:
    """RestoreDBClusterToPointInTime (copy-on-write): a copy of the source's data
    now, reachable at its Endpoint and Port as they are; deleted with its database."""
    rds = emu.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="cow",
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="app",
        MasterUserPassword="correct-horse",
        DatabaseName="app",
        StorageEncrypted=True,
        KmsKeyId="arn:aws:kms:us-east-1:123456789012:key/cow",
        DeletionProtection=True,
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    wait_until("cow available", lambda: cluster_status(rds, "cow") == "available")
    source_url = emu.get("/_emulator/clusters")["cow"]["url"]
    query(source_url, "CREATE TABLE t (n int); INSERT INTO t VALUES (1), (2)")

    def clone(target: str, **extra: Any) -> Any:
        return rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier=target,
            SourceDBClusterIdentifier="cow",
            RestoreType="copy-on-write",
            UseLatestRestorableTime=True,
            **extra,
        )

    made = clone(
        "cow-rehearsal-1",
        DeletionProtection=False,
        EnableIAMDatabaseAuthentication=True,
        Tags=[{"Key": "ferry:purpose", "Value": "rehearsal"}],
    )["DBCluster"]
    check("a clone is creating at first", made["Status"] == "creating", made["Status"])
    query(source_url, "INSERT INTO t VALUES (3)")
    described = rds.describe_db_clusters(DBClusterIdentifier="cow-rehearsal-1")["DBClusters"][0]
    for key, want in {
        "Engine": "aurora-postgresql",
        "EngineVersion": "15.4",
        "MasterUsername": "app",
        "DatabaseName": "app",
        "StorageEncrypted": True,
        "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/cow",
        "DeletionProtection": False,
        "IAMDatabaseAuthenticationEnabled": True,
        "TagList": [{"Key": "ferry:purpose", "Value": "rehearsal"}],
        "Endpoint": "127.0.0.1",
    }.items():
        check(f"a clone's {key} is as AWS gives it", described.get(key) == want, described.get(key))
    check("a clone has a port of its own", described.get("Port") not in (None, 5432), described.get("Port"))
    wait_until("the clone available", lambda: cluster_status(rds, "cow-rehearsal-1") == "available")
    # Reached through its Endpoint and Port, with any user and database name: the proxy leads to the clone.
    url = f"postgresql://app@{described['Endpoint']}:{described['Port']}/app"
    rows = query(url, "SELECT n FROM t ORDER BY n")
    check("the clone holds the source's data when it was made", rows == [(1,), (2,)], rows)
    query(url, "INSERT INTO t VALUES (99)")
    check("writes to the clone stay on the clone", query(source_url, "SELECT max(n) FROM t") == [(3,)])
    error_code("a clone onto an existing id -> DBClusterAlreadyExistsFault",
                 lambda: clone("cow-rehearsal-1"), "DBClusterAlreadyExistsFault")
    error_code(
        "a clone of a missing cluster -> DBClusterNotFoundFault",
        lambda: rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier="x-1", SourceDBClusterIdentifier="nope", RestoreType="copy-on-write",
            UseLatestRestorableTime=True,
        ),
        "DBClusterNotFoundFault",
    )
    rds.create_db_instance(
        DBInstanceIdentifier="cow-rehearsal-1-1",
        DBClusterIdentifier="cow-rehearsal-1",
        Engine="aurora-postgresql",
        DBInstanceClass="db.r6g.large",
    )
    error_code("a clone with an instance cannot be deleted",
                 lambda: rds.delete_db_cluster(DBClusterIdentifier="cow-rehearsal-1", SkipFinalSnapshot=True),
                 "InvalidDBClusterStateFault")
    database = emu.get("/_emulator/clusters")["cow-rehearsal-1"]["database"]
    rds.delete_db_instance(DBInstanceIdentifier="cow-rehearsal-1-1", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="cow-rehearsal-1", SkipFinalSnapshot=True)
    check("a deleted clone is gone", cluster_status(rds, "cow-rehearsal-1") is None)
    left = query(emu.get("/_emulator/clusters")["cow"]["url"], f"SELECT count(*) FROM pg_database WHERE datname = '{database}'")
    check("a deleted clone's database is dropped", left == [(0,)], left)
    try:
        query(url, "SELECT 1")
        check("a deleted clone's port is closed", False)
    except psycopg.OperationalError:
        check("a deleted clone's port is closed", True)


# -- network --------------------------------------------------------------------------------------------


def network(emu: Emulator) -> dict[str, str]:
    ec2 = emu.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    subnet_b = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.2.0/24", AvailabilityZone="us-east-1b")["Subnet"][
        "SubnetId"
    ]
    sg = ec2.create_security_group(GroupName="migrations", Description="m", VpcId=vpc)["GroupId"]
    return {"vpc": vpc, "subnet": subnet, "subnet_b": subnet_b, "sg": sg}


# -- the tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Any:
    emulator = Emulator(PG_URL, DELAY_SCALE, str(tmp_path_factory.mktemp("emulator-tasks")))
    print(f"emulator at {emulator.url} (stderr: {emulator.stderr.name})")
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def net(emu: Emulator) -> dict[str, str]:
    return network(emu)


@pytest.fixture(scope="module")
def db(emu: Emulator, net: dict[str, str]) -> dict[str, Any]:
    """The RDS checks; what they leave (cluster app-db, restored) the ECS and App Runner checks use."""
    return check_rds(emu, net)


def test_rds_clusters_snapshots_restore_and_renames(db: dict[str, Any]) -> None:
    check("app-db ends as the restored cluster", query(db["db_url"], "SELECT count(*) FROM items")[0][0] == 2)


def test_ecs_tasks_run_as_processes(emu: Emulator, net: dict[str, str], db: dict[str, Any]) -> None:
    check_ecs(emu, net, db)


def test_apprunner(emu: Emulator, db: dict[str, Any]) -> None:
    check_apprunner(emu, db)


def test_cloudformation(emu: Emulator) -> None:
    check_cloudformation(emu)


def test_rds_settings(emu: Emulator) -> None:
    check_rds_settings(emu)


def test_rds_clone(emu: Emulator) -> None:
    check_rds_clone(emu)


def test_rds_point_in_time_from_backup_points_and_stop(emu: Emulator) -> None:
    """RestoreToTime restores the newest backup point at or before the time;
    a time before every backup point is InvalidRestoreFault; a stopped cluster
    is reached at none of its addresses; StopDBCluster is Aurora's only."""
    import datetime

    rds = emu.client("rds")
    rds.create_db_cluster(
        DBClusterIdentifier="pit", Engine="aurora-postgresql", MasterUsername="app",
        MasterUserPassword="correct-horse", DatabaseName="app",
    )
    wait_until("pit available", lambda: cluster_status(rds, "pit") == "available")
    url = emu.get("/_emulator/clusters")["pit"]["url"]
    query(url, "CREATE TABLE t (n int); INSERT INTO t VALUES (1)")
    before_any = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    emu.post("/_emulator/backup", {"cluster": "pit"})
    between = datetime.datetime.now(datetime.timezone.utc)
    time.sleep(1.1)
    query(url, "INSERT INTO t VALUES (2)")
    emu.post("/_emulator/backup", {"cluster": "pit"})
    restored = rds.restore_db_cluster_to_point_in_time(
        DBClusterIdentifier="pit-restored-1", SourceDBClusterIdentifier="pit", RestoreType="full-copy",
        RestoreToTime=between,
    )["DBCluster"]
    check("a point-in-time restore is creating", restored["Status"] == "creating", restored["Status"])
    wait_until("pit-restored-1 available", lambda: cluster_status(rds, "pit-restored-1") == "available")
    rows = query(emu.get("/_emulator/clusters")["pit-restored-1"]["url"], "SELECT n FROM t ORDER BY n")
    check("RestoreToTime gets the data of the backup point before it", rows == [(1,)], rows)
    error_code(
        "a time before every backup point -> InvalidRestoreFault",
        lambda: rds.restore_db_cluster_to_point_in_time(
            DBClusterIdentifier="pit-restored-2", SourceDBClusterIdentifier="pit", RestoreType="full-copy",
            RestoreToTime=before_any,
        ),
        "InvalidRestoreFault",
    )
    described = rds.describe_db_clusters(DBClusterIdentifier="pit")["DBClusters"][0]
    check("the restorable window is described", "EarliestRestorableTime" in described
          and "LatestRestorableTime" in described, sorted(described))
    rds.stop_db_cluster(DBClusterIdentifier="pit")
    check("stopped", cluster_status(rds, "pit") == "stopped")
    check("a stopped cluster's endpoint reaches nothing",
          described["Endpoint"].lower() not in emu.get("/_emulator/endpoints"), described["Endpoint"])
    error_code("a stopped cluster cannot be stopped again",
               lambda: rds.stop_db_cluster(DBClusterIdentifier="pit"), "InvalidDBClusterStateFault")


def test_bench_views(emu: Emulator, db: dict[str, Any]) -> None:
    check_bench_views(emu)


def test_s3(emu: Emulator) -> None:
    check_s3(emu)


def test_sparse_answers(emu: Emulator, net: dict[str, str]) -> None:
    check_sparse(emu, net)


# -- strict mode: service models, the rule catalogue, lax mode, capacity and log delay knobs -------


def raw_call(
    emu: Emulator,
    service: str,
    body: bytes,
    target: str | None = None,
    content_type: str = "application/x-amz-json-1.1",
    method: str = "POST",
    path: str = "/",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """One request as an SDK would send it, but with a body no SDK would build
    (unknown members, wrong types); SigV4's scope names the service."""
    port = int(emu.url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    auth = f"AWS4-HMAC-SHA256 Credential=testing/20250101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
    h = {"Authorization": auth, "Content-Type": content_type, **(headers or {})}
    if target:
        h["X-Amz-Target"] = target
    conn.request(method, path, body=body, headers=h)
    resp = conn.getresponse()
    return resp.status, resp.read()


def json_error(status_body: tuple[int, bytes]) -> tuple[int, str, dict[str, Any]]:
    status, body = status_body
    payload = json.loads(body or b"{}")
    return status, payload.get("__type", ""), payload


def query_error(status_body: tuple[int, bytes]) -> tuple[int, str]:
    status, body = status_body
    text = body.decode()
    code = text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else ""
    return status, code


def unvalidated(emu: Emulator, service: str) -> Any:
    """A boto3 client without botocore's own parameter validation, so the server sees the bad request."""
    return boto3.client(
        service,
        endpoint_url=emu.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, parameter_validation=False),
    )


def set_lax(emu: Emulator, on: bool) -> None:
    emu.post("/_emulator/config", {"lax": on})


def check_model_validation(emu: Emulator) -> None:
    ecs, logs, rds, ar = (unvalidated(emu, s) for s in ("ecs", "logs", "rds", "apprunner"))
    cfn = unvalidated(emu, "cloudformation")
    # a missing required member
    error_code("model: RunTask without taskDefinition", lambda: ecs.run_task(cluster="app-ecs"), "InvalidParameterException")
    error_code(
        "model: CreateDBClusterSnapshot without its identifier",
        lambda: rds.create_db_cluster_snapshot(DBClusterIdentifier="app-db"),
        "MissingParameter",
    )
    error_code("model: CreateStack without StackName", lambda: cfn.create_stack(TemplateBody="{}"), "ValidationError")
    # a value outside the enum
    error_code(
        "model: ListTasks desiredStatus outside the enum",
        lambda: ecs.list_tasks(cluster="app-ecs", desiredStatus="SLEEPING"),
        "InvalidParameterException",
    )
    # too long, out of range
    error_code(
        "model: a log group name over 512 characters",
        lambda: logs.get_log_events(logGroupName="g" * 513, logStreamName="s"),
        "InvalidParameterException",
    )
    error_code(
        "model: GetLogEvents limit over 10000",
        lambda: logs.get_log_events(logGroupName="/app/migrate", logStreamName="s", limit=10001),
        "InvalidParameterException",
    )
    error_code(
        "model: App Runner ListOperations MaxResults over 20",
        lambda: ar.list_operations(ServiceArn="arn:aws:apprunner:us-east-1:123456789012:service/x/0123", MaxResults=21),
        "InvalidRequestException",
    )
    # an unknown member, a wrong type (raw requests: no SDK sends them)
    status, code = query_error(
        raw_call(
            emu,
            "rds",
            b"Action=RestoreDBClusterToPointInTime&Version=2014-10-31&DBClusterIdentifier=pitr-x"
            b"&SourceDBClusterIdentifier=app-db&UseLatestRestorableTime=true&EngineVersion=15.4",
            content_type="application/x-www-form-urlencoded",
        )
    )
    check("model: RestoreDBClusterToPointInTime has no EngineVersion member", (status, code) == (400, "InvalidParameterValue"), code)
    status, code = query_error(
        raw_call(
            emu,
            "rds",
            b"Action=CreateDBCluster&Version=2014-10-31&DBClusterIdentifier=typed&Engine=aurora-postgresql&Port=five",
            content_type="application/x-www-form-urlencoded",
        )
    )
    check("model: a Query integer that is not a number", (status, code) == (400, "InvalidParameterValue"), code)
    status, code, payload = json_error(
        raw_call(emu, "ecs", json.dumps({"cluster": "app-ecs", "maxResults": "ten"}).encode(), "AmazonEC2ContainerServiceV20141113.ListTasks")
    )
    check("model: a JSON member of the wrong type", (status, code) == (400, "SerializationException"), payload)
    status, code, payload = json_error(
        raw_call(emu, "ecs", json.dumps({"cluster": "app-ecs", "colour": "red"}).encode(), "AmazonEC2ContainerServiceV20141113.ListTasks")
    )
    check("model: an unknown JSON member", (status, code) == (400, "InvalidParameterException"), payload)
    status, body = raw_call(emu, "s3", b"", method="GET", path="/strict-bucket?list-type=2&encoding-type=rot13", content_type="")
    check("model: S3 ListObjectsV2 encoding-type outside the enum", status == 400 and b"InvalidArgument" in body, body)
    # lax mode lets them through to moto
    set_lax(emu, True)
    try:
        status, code, payload = json_error(
            raw_call(emu, "ecs", json.dumps({"cluster": "app-ecs", "colour": "red"}).encode(), "AmazonEC2ContainerServiceV20141113.ListTasks")
        )
        check("lax: an unknown JSON member passes", status == 200, payload)
        status, body = raw_call(emu, "s3", b"", method="GET", path="/strict-bucket?list-type=2&encoding-type=rot13", content_type="")
        check("lax: S3 passes the bad enum to moto", b"InvalidArgument" not in body, body)
        out = ecs.list_tasks(cluster="app-ecs", desiredStatus="SLEEPING")
        check("lax: moto answers a bad enum", "taskArns" in out, out)
    finally:
        set_lax(emu, False)


def check_ecs_rules(emu: Emulator, net: dict[str, str]) -> None:
    ecs = unvalidated(emu, "ecs")
    ecs.create_cluster(clusterName="strict-ecs")
    td = ecs.register_task_definition(
        family="strict-task",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "main", "image": "example/app:1", "essential": True, "command": ["sleep", "30"]}],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["sg"]]}}

    def run(**extra: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict(cluster="strict-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network)
        kwargs.update(extra)
        return ecs.run_task(**kwargs)

    # ListTasks: startedBy alone
    for other in ({"family": "strict-task"}, {"desiredStatus": "RUNNING"}, {"launchType": "FARGATE"}, {"serviceName": "s"}):
        with pytest.raises(ClientError) as raised:
            ecs.list_tasks(cluster="strict-ecs", startedBy="ferry", **other)
        err = raised.value.response["Error"]
        check(
            f"rule: ListTasks startedBy with {list(other)[0]}",
            err["Code"] == "InvalidParameterException" and err["Message"] == "cannot specify startedBy with other arguments",
            err,
        )
    check("rule: ListTasks startedBy alone passes", "taskArns" in ecs.list_tasks(cluster="strict-ecs", startedBy="ferry"))
    error_code("rule: ListTasks maxResults 101", lambda: ecs.list_tasks(cluster="strict-ecs", maxResults=101), "InvalidParameterException")
    check("rule: ListTasks maxResults 100 passes", "taskArns" in ecs.list_tasks(cluster="strict-ecs", maxResults=100))
    # RunTask
    error_code("rule: clientToken of 65 characters", lambda: run(clientToken="t" * 65), "InvalidParameterException")
    error_code("rule: clientToken with a space", lambda: run(clientToken="a b"), "InvalidParameterException")
    error_code("rule: count 11", lambda: run(count=11), "InvalidParameterException")
    error_code("rule: startedBy with '!'", lambda: run(startedBy="ferry!"), "InvalidParameterException")
    error_code(
        "rule: launchType with capacityProviderStrategy",
        lambda: run(capacityProviderStrategy=[{"capacityProvider": "FARGATE"}]),
        "InvalidParameterException",
    )
    error_code("rule: a tag key with aws:", lambda: run(tags=[{"key": "aws:x", "value": "1"}]), "InvalidParameterException")
    first = run(clientToken="t" * 64, startedBy="ferry/strict_1", tags=[{"key": "ferry:run", "value": "1"}])
    check("rule: a 64-character clientToken passes", len(first["tasks"]) == 1, first)
    arn = first["tasks"][0]["taskArn"]
    same = run(clientToken="t" * 64, startedBy="ferry/strict_1", tags=[{"key": "ferry:run", "value": "1"}])
    check("rule: the same token and parameters return the first task", same["tasks"][0]["taskArn"] == arn, same)
    with pytest.raises(ClientError) as raised:
        run(clientToken="t" * 64, startedBy="ferry/strict_2")
    err = raised.value.response
    check("rule: the token with other parameters is a ConflictException", err["Error"]["Code"] == "ConflictException", err)
    check("rule: ... naming the task already started", arn in err["Error"]["Message"] and err.get("resourceIds") == [arn], err)
    # StopTask, DescribeTasks, RegisterTaskDefinition
    error_code("rule: StopTask reason of 256", lambda: ecs.stop_task(cluster="strict-ecs", task=arn, reason="r" * 256), "InvalidParameterException")
    error_code(
        "rule: DescribeTasks with 101 tasks",
        lambda: ecs.describe_tasks(cluster="strict-ecs", tasks=[arn] * 101),
        "InvalidParameterException",
    )
    error_code(
        "rule: a family with a space",
        lambda: ecs.register_task_definition(family="bad family", containerDefinitions=[{"name": "a", "image": "b"}]),
        "ClientException",
    )
    stopped = ecs.stop_task(cluster="strict-ecs", task=arn, reason="r" * 255)["task"]
    check("rule: a StopTask reason of 255 passes", stopped["desiredStatus"] == "STOPPED", stopped)
    # lax: the startedBy combination passes
    set_lax(emu, True)
    try:
        out = ecs.list_tasks(cluster="strict-ecs", startedBy="ferry/strict_1", desiredStatus="STOPPED")
        check("lax: ListTasks startedBy with desiredStatus passes", arn in out["taskArns"], out)
    finally:
        set_lax(emu, False)


def check_capacity_knob(emu: Emulator, net: dict[str, str]) -> None:
    ecs = emu.client("ecs")
    td = "strict-task"
    network = {"awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["sg"]]}}
    emu.post("/_emulator/config", {"capacity_failures": 2})
    out = ecs.run_task(cluster="strict-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network)
    check("capacity: nothing starts", out["tasks"] == [], out)
    check(
        "capacity: Fargate's reason",
        out["failures"]
        == [{"reason": "Capacity is unavailable at this time. Please try again later or in a different availability zone"}],
        out["failures"],
    )
    emu.post("/_emulator/config", {"capacity_reason": "RESOURCE:ENI"})
    out = ecs.run_task(cluster="strict-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network)
    check("capacity: a chosen reason", out["failures"] == [{"reason": "RESOURCE:ENI"}], out["failures"])
    check("capacity: all used up", emu.get("/_emulator/config")["capacity_failures"] == 0)
    out = ecs.run_task(cluster="strict-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network)
    check("capacity: the next RunTask starts a task", len(out["tasks"]) == 1 and out["failures"] == [], out)
    ecs.stop_task(cluster="strict-ecs", task=out["tasks"][0]["taskArn"])


def check_logs_rules_and_delay(emu: Emulator, net: dict[str, str]) -> None:
    ecs, logs = emu.client("ecs"), unvalidated(emu, "logs")
    error_code(
        "rule: GetLogEvents without a log group",
        lambda: logs.get_log_events(logStreamName="s"),
        "InvalidParameterException",
    )
    error_code(
        "rule: GetLogEvents with both logGroupName and logGroupIdentifier",
        lambda: logs.get_log_events(logGroupName="/app/migrate", logGroupIdentifier="/app/migrate", logStreamName="s"),
        "InvalidParameterException",
    )
    error_code(
        "rule: FilterLogEvents with logStreamNamePrefix and logStreamNames",
        lambda: logs.filter_log_events(logGroupName="/app/migrate", logStreamNamePrefix="a", logStreamNames=["b"]),
        "InvalidParameterException",
    )
    logs.create_log_group(logGroupName="/strict/delay")
    td = ecs.register_task_definition(
        family="strict-log",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "main",
                "image": "example/app:1",
                "essential": True,
                "command": ["sh", "-c", "echo first; echo last"],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/strict/delay", "awslogs-region": REGION, "awslogs-stream-prefix": "p"},
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": [net["subnet"]], "securityGroups": [net["sg"]]}}
    emu.post("/_emulator/config", {"log_ingest_delay_seconds": 3})
    try:
        arn = ecs.run_task(cluster="strict-ecs", taskDefinition=td, launchType="FARGATE", networkConfiguration=network)[
            "tasks"
        ][0]["taskArn"]
        wait_until(
            "the task to stop",
            lambda: ecs.describe_tasks(cluster="strict-ecs", tasks=[arn])["tasks"][0]["lastStatus"] == "STOPPED",
        )
        stream = f"p/main/{arn.rsplit('/', 1)[1]}"
        first = logs.get_log_events(logGroupName="/strict/delay", logStreamName=stream, startFromHead=True)
        check("delay: nothing visible when the task has just stopped", first["events"] == [], first["events"])
        token = first["nextForwardToken"]
        events = wait_until(
            "the lines to be ingested",
            lambda: logs.get_log_events(
                logGroupName="/strict/delay", logStreamName=stream, startFromHead=True, nextToken=token
            )["events"],
            timeout=15,
        )
        check("delay: the lines show later, in order", [e["message"] for e in events] == ["first", "last"], events)
        page = logs.get_log_events(logGroupName="/strict/delay", logStreamName=stream, startFromHead=True)
        end = logs.get_log_events(
            logGroupName="/strict/delay", logStreamName=stream, startFromHead=True, nextToken=page["nextForwardToken"]
        )
        check(
            "GetLogEvents at the end of the stream returns the token it was given",
            end["events"] == [] and end["nextForwardToken"] == page["nextForwardToken"],
            (page["nextForwardToken"], end["nextForwardToken"]),
        )
    finally:
        emu.post("/_emulator/config", {"log_ingest_delay_seconds": 0})


def check_rds_rules(emu: Emulator) -> None:
    import datetime as dt

    rds = unvalidated(emu, "rds")

    def create(ident: str) -> Any:
        return rds.create_db_cluster(
            DBClusterIdentifier=ident, Engine="aurora-postgresql", MasterUsername="app", MasterUserPassword="correct-horse"
        )

    for bad in ("1cluster", "two--hyphens", "trailing-", "c" * 64, "under_score"):
        error_code(f"rule: cluster identifier {bad[:20]!r}", lambda b=bad: create(b), "InvalidParameterValue")
    created = create("strict-src")["DBCluster"]
    check("rule: a valid identifier passes", created["DBClusterIdentifier"] == "strict-src", created)
    wait_until("strict-src available", lambda: cluster_status(rds, "strict-src") == "available")
    described = rds.describe_db_clusters(DBClusterIdentifier="strict-src")["DBClusters"][0]
    check(
        "clusters have a restorable window",
        "EarliestRestorableTime" in described and "LatestRestorableTime" in described,
        sorted(described),
    )
    error_code(
        "rule: a tag prefixed aws:",
        lambda: rds.add_tags_to_resource(ResourceName=created["DBClusterArn"], Tags=[{"Key": "aws:x", "Value": "1"}]),
        "InvalidParameterValue",
    )
    # ModifyDBCluster EnableHttpEndpoint (Serverless v1 only) and the EnableHttpEndpoint action
    error_code(
        "rule: ModifyDBCluster EnableHttpEndpoint on a provisioned cluster",
        lambda: rds.modify_db_cluster(DBClusterIdentifier="strict-src", EnableHttpEndpoint=True, ApplyImmediately=True),
        "InvalidParameterCombination",
    )
    out = rds.enable_http_endpoint(ResourceArn=created["DBClusterArn"])
    check("EnableHttpEndpoint answers enabled", out["HttpEndpointEnabled"] is True, out)
    on = rds.describe_db_clusters(DBClusterIdentifier="strict-src")["DBClusters"][0].get("HttpEndpointEnabled")
    check("EnableHttpEndpoint: DescribeDBClusters shows it", on is True, on)
    rds.disable_http_endpoint(ResourceArn=created["DBClusterArn"])
    off = rds.describe_db_clusters(DBClusterIdentifier="strict-src")["DBClusters"][0].get("HttpEndpointEnabled")
    check("DisableHttpEndpoint: off again", off is False, off)
    error_code(
        "EnableHttpEndpoint: an unknown ARN",
        lambda: rds.enable_http_endpoint(ResourceArn="arn:aws:rds:us-east-1:123456789012:cluster:nope"),
        "ResourceNotFoundFault",
    )
    # RestoreDBClusterToPointInTime
    earliest = described["EarliestRestorableTime"]

    def pitr(ident: str, **kw: Any) -> Any:
        return rds.restore_db_cluster_to_point_in_time(DBClusterIdentifier=ident, SourceDBClusterIdentifier="strict-src", **kw)

    error_code("rule: PITR with neither time", lambda: pitr("pitr-a"), "InvalidParameterCombination")
    error_code(
        "rule: PITR with both times",
        lambda: pitr("pitr-a", RestoreToTime=earliest, UseLatestRestorableTime=True),
        "InvalidParameterCombination",
    )
    error_code(
        "rule: PITR RestoreToTime with copy-on-write",
        lambda: pitr("pitr-a", RestoreToTime=earliest, RestoreType="copy-on-write"),
        "InvalidParameterCombination",
    )
    error_code(
        "rule: PITR before EarliestRestorableTime",
        lambda: pitr("pitr-a", RestoreToTime=earliest - dt.timedelta(hours=1)),
        "InvalidRestoreFault",
    )
    error_code(
        "rule: PITR after LatestRestorableTime",
        lambda: pitr("pitr-a", RestoreToTime=dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)),
        "InvalidRestoreFault",
    )
    inside = pitr("pitr-a", RestoreToTime=earliest + dt.timedelta(milliseconds=1), RestoreType="full-copy")["DBCluster"]
    check("rule: a RestoreToTime inside the window passes", inside["DBClusterIdentifier"] == "pitr-a", inside)
    wait_until("pitr-a available", lambda: cluster_status(rds, "pitr-a") == "available")
    # snapshots: identifiers and references
    error_code(
        "rule: a snapshot identifier ending in a hyphen",
        lambda: rds.create_db_cluster_snapshot(DBClusterIdentifier="strict-src", DBClusterSnapshotIdentifier="snap-"),
        "InvalidParameterValue",
    )
    error_code(
        "rule: DescribeDBClusterSnapshots with both identifiers",
        lambda: rds.describe_db_cluster_snapshots(DBClusterIdentifier="strict-src", DBClusterSnapshotIdentifier="s1"),
        "InvalidParameterCombination",
    )
    error_code(
        "rule: an automated snapshot's identifier without SnapshotType",
        lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier="rds:strict-src-2026-01-01-00-00"),
        "InvalidParameterCombination",
    )
    error_code(
        "rule: ... with SnapshotType passes the rule (then: no such snapshot)",
        lambda: rds.describe_db_cluster_snapshots(
            DBClusterSnapshotIdentifier="rds:strict-src-2026-01-01-00-00", SnapshotType="automated"
        ),
        "DBClusterSnapshotNotFoundFault",
    )
    error_code(
        "rule: RestoreDBClusterFromSnapshot from a malformed snapshot name",
        lambda: rds.restore_db_cluster_from_snapshot(
            DBClusterIdentifier="from-bad", SnapshotIdentifier="bad--snap", Engine="aurora-postgresql"
        ),
        "InvalidParameterValue",
    )
    error_code(
        "rule: ... from a snapshot ARN (accepted; then not found)",
        lambda: rds.restore_db_cluster_from_snapshot(
            DBClusterIdentifier="from-arn",
            SnapshotIdentifier="arn:aws:rds:us-east-1:210987654321:cluster-snapshot:shared-snap",
            Engine="aurora-postgresql",
        ),
        "DBClusterSnapshotNotFoundFault",
    )
    # DeleteDBCluster: a final snapshot or SkipFinalSnapshot, not both
    error_code(
        "rule: DeleteDBCluster with neither a final snapshot nor SkipFinalSnapshot",
        lambda: rds.delete_db_cluster(DBClusterIdentifier="pitr-a"),
        "InvalidParameterCombination",
    )
    error_code(
        "rule: DeleteDBCluster with both",
        lambda: rds.delete_db_cluster(DBClusterIdentifier="pitr-a", SkipFinalSnapshot=True, FinalDBSnapshotIdentifier="f"),
        "InvalidParameterCombination",
    )
    rds.delete_db_cluster(DBClusterIdentifier="pitr-a", SkipFinalSnapshot=True)
    rds.delete_db_cluster(DBClusterIdentifier="strict-src", SkipFinalSnapshot=True)


def check_s3_rules(emu: Emulator) -> None:
    s3 = unvalidated(emu, "s3")
    s3.create_bucket(Bucket="strict-bucket")
    with pytest.raises(ClientError) as raised:
        s3.put_object(Bucket="strict-bucket", Key="k", Body=b"x", IfNoneMatch='"abc"')
    err = raised.value.response
    check("rule: PutObject If-None-Match other than '*'", err["ResponseMetadata"]["HTTPStatusCode"] == 501, err)
    s3.put_object(Bucket="strict-bucket", Key="k", Body=b"x", IfNoneMatch="*")


def test_lax_mode_switches() -> None:
    sys.path.insert(0, HERE)
    import rules
    import server
    import strict

    check("--lax parses", server.parse_args(["--pg-url", "postgres://x", "--lax"]).lax is True)
    check("strict by default", server.parse_args(["--pg-url", "postgres://x"]).lax is False)
    check("FERRY_EMULATOR_LAX=1 is lax", strict.lax_from_environment({"FERRY_EMULATOR_LAX": "1"}))
    check("no FERRY_EMULATOR_LAX is strict", not strict.lax_from_environment({}))
    for rule in rules.CATALOGUE:
        check(f"catalogue entry {rule.operations} cites its source", "API Reference" in rule.source and "'" in rule.source, rule)
    # snapshot references the RDS references allow
    for ok in ("my-snap", "rds:app-db-2026-01-01-00-00", "arn:aws:rds:us-east-1:210987654321:cluster-snapshot:shared"):
        check(f"snapshot reference {ok}", rules._snapshot_reference_ok(ok))
    for bad in ("1snap", "a--b", "snap-", "arn:aws:s3:::bucket"):
        check(f"not a snapshot reference: {bad}", not rules._snapshot_reference_ok(bad))


def test_strict_apprunner_rules(emu: Emulator) -> None:
    ar = emu.client("apprunner")
    arn = ar.create_service(
        ServiceName="strict-web",
        SourceConfiguration={
            "ImageRepository": {"ImageIdentifier": "public.ecr.aws/emulator/web:1", "ImageRepositoryType": "ECR_PUBLIC"}
        },
    )["Service"]["ServiceArn"]
    wait_until("strict-web running", lambda: ar.describe_service(ServiceArn=arn)["Service"]["Status"] == "RUNNING")
    error_code(
        "rule: UpdateService from image to code",
        lambda: ar.update_service(
            ServiceArn=arn,
            SourceConfiguration={
                "CodeRepository": {
                    "RepositoryUrl": "https://git.example.invalid/app",
                    "SourceCodeVersion": {"Type": "BRANCH", "Value": "main"},
                }
            },
        ),
        "InvalidRequestException",
    )
    out = ar.update_service(
        ServiceArn=arn,
        SourceConfiguration={
            "ImageRepository": {"ImageIdentifier": "public.ecr.aws/emulator/web:2", "ImageRepositoryType": "ECR_PUBLIC"}
        },
    )
    check("rule: UpdateService with the same kind passes", out["OperationId"], out)


def test_strict_model_validation(emu: Emulator, db: dict[str, Any]) -> None:
    check_model_validation(emu)


def test_strict_ecs_rules(emu: Emulator, net: dict[str, str]) -> None:
    check_ecs_rules(emu, net)


def test_capacity_failures(emu: Emulator, net: dict[str, str]) -> None:
    check_capacity_knob(emu, net)


def test_strict_logs_rules_and_ingest_delay(emu: Emulator, net: dict[str, str]) -> None:
    check_logs_rules_and_delay(emu, net)


def test_strict_rds_rules(emu: Emulator) -> None:
    check_rds_rules(emu)


def test_strict_s3_rules(emu: Emulator) -> None:
    check_s3_rules(emu)


# -- IAM ---------------------------------------------------------------------------------------------

ARN = "arn:aws:rds:us-east-1:123456789012"


def as_key(emu: Emulator, service: str, key: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=emu.url,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key="not-checked",
        config=Config(retries={"max_attempts": 1}),
    )


def denial(fn: Callable[[], Any]) -> tuple[int, str, str]:
    """(HTTP status, error code, message) of a call that must fail."""
    with pytest.raises(ClientError) as raised:
        fn()
    r = raised.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"].get("Code", ""), r["Error"].get("Message", "")


def test_iam_conditions_as_iam_documents_them() -> None:
    ctx = {"aws:RequestTag/ferry:purpose": ["rehearsal"], "aws:TagKeys": ["ferry:purpose", "ferry:run-id"]}
    holds = iam.condition_holds
    check("StringEquals on a present key", holds("StringEquals", "aws:RequestTag/ferry:purpose", "rehearsal", ctx))
    check("StringEquals on an absent key is false", not holds("StringEquals", "aws:ResourceTag/x", "y", ctx))
    check("StringNotEquals on an absent key is true", holds("StringNotEquals", "aws:ResourceTag/x", "y", ctx))
    check("StringEqualsIfExists on an absent key is true", holds("StringEqualsIfExists", "aws:ResourceTag/x", "y", ctx))
    check("StringLike with wildcards", holds("StringLike", "aws:RequestTag/ferry:purpose", ["x", "re*al"], ctx))
    check("StringNotLike", not holds("StringNotLike", "aws:RequestTag/ferry:purpose", "re?earsal", ctx))
    check("Null true on an absent key", holds("Null", "aws:RequestTag/ferry:run-id", "true", ctx))
    check("Null false on a present key", holds("Null", "aws:TagKeys", "false", ctx))
    check("ForAnyValue: one of the keys", holds("ForAnyValue:StringEquals", "aws:TagKeys", "ferry:run-id", ctx))
    check("ForAnyValue: on an absent key is false", not holds("ForAnyValue:StringEquals", "aws:Nope", "a", ctx))
    check("ForAllValues: every key in the list",
          holds("ForAllValues:StringEquals", "aws:TagKeys", ["ferry:purpose", "ferry:run-id", "x"], ctx))
    check("ForAllValues: one key outside", not holds("ForAllValues:StringEquals", "aws:TagKeys", ["ferry:purpose"], ctx))
    check("ForAllValues: on an absent key is true", holds("ForAllValues:StringEquals", "aws:Nope", "a", ctx))
    check("ArnEquals", holds("ArnEquals", "ecs:cluster", "arn:aws:ecs:*:123456789012:cluster/app-migrations",
                             {"ecs:cluster": ["arn:aws:ecs:us-east-1:123456789012:cluster/app-migrations"]}))
    check("ArnLike mismatch", not holds("ArnLike", "ecs:cluster", "arn:aws:ecs:*:*:cluster/other",
                                        {"ecs:cluster": ["arn:aws:ecs:us-east-1:123456789012:cluster/app"]}))
    check("Bool", holds("Bool", "aws:SecureTransport", False, {"aws:SecureTransport": ["false"]}))
    check("condition key names are case-insensitive", holds("StringEquals", "AWS:TAGKEYS", "ferry:run-id", ctx))
    with pytest.raises(iam.UnknownOperator):
        holds("DateGreaterThan", "aws:CurrentTime", "2020-01-01T00:00:00Z", ctx)


def test_iam_evaluation_deny_wins_and_wildcards() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Action": "rds:describe*", "Resource": f"{ARN}:cluster:app-*"},
        {"Effect": "Deny", "Action": "rds:DescribeDBClusters", "Resource": f"{ARN}:cluster:app-secret?"},
        {"Effect": "Allow", "NotAction": "rds:*", "NotResource": "arn:aws:s3:::private/*"},
    ]}
    ev = iam.evaluate
    check("Allow: action case-insensitive", ev(policy, "rds:DescribeDBClusters", f"{ARN}:cluster:app-db", {}) == "allow")
    check("resources are case-sensitive", ev(policy, "rds:DescribeDBClusters", f"{ARN}:cluster:APP-db", {}) == "implicit")
    check("explicit Deny wins over Allow", ev(policy, "rds:DescribeDBClusters", f"{ARN}:cluster:app-secret1", {})
          == "explicit")
    check("? is one character", ev(policy, "rds:DescribeDBClusters", f"{ARN}:cluster:app-secret12", {}) == "allow")
    check("NotAction / NotResource", ev(policy, "s3:GetObject", "arn:aws:s3:::public/x", {}) == "allow")
    check("NotResource excludes", ev(policy, "s3:GetObject", "arn:aws:s3:::private/x", {}) == "implicit")
    check("identifier-less Describe: the type's wildcard ARN",
          iam.arn_of("rds", "cluster", "us-east-1") == f"{ARN}:cluster:*" and iam.arn_of("rds", "db", "us-east-1")
          == f"{ARN}:db:*")
    check("the context keeps only keys the action supports", iam.supported_context(
        "rds:DescribeDBClusters", "cluster", {"aws:RequestTag/a": ["b"], "aws:username": ["u"]}) == {"aws:username": ["u"]})


def check_iam(emu: Emulator) -> None:
    admin = emu.client("rds")
    key, other = "AKIAIAMSELFCHECK1", "AKIAIAMSELFCHECK2"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Sid": "Describe", "Effect": "Allow", "Action": ["rds:DescribeDBClusters", "rds:DescribeDBInstances"],
         "Resource": [f"{ARN}:cluster:iam-*", f"{ARN}:db:iam-*"]},
        {"Sid": "NoSecrets", "Effect": "Deny", "Action": "rds:Describe*", "Resource": f"{ARN}:cluster:iam-secret*"},
        {"Sid": "Snapshot", "Effect": "Allow", "Action": "rds:CreateDBClusterSnapshot",
         "Resource": [f"{ARN}:cluster:iam-*", f"{ARN}:cluster-snapshot:iam-*"],
         "Condition": {"StringEquals": {"aws:RequestTag/purpose": "check"}}},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "rds:AddTagsToResource",
         "Resource": f"{ARN}:cluster-snapshot:iam-*"},
        {"Sid": "DeleteTagged", "Effect": "Allow", "Action": "rds:DeleteDBClusterSnapshot",
         "Resource": f"{ARN}:cluster-snapshot:iam-*", "Condition": {"StringEquals": {"aws:ResourceTag/purpose": "check"}}},
        {"Sid": "State", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::iam-bucket/state/*"},
    ]}
    registered = emu.post("/_emulator/iam", {"access_key": key, "policy": policy, "user": "selfcheck"})
    check("registration names the user", registered["user"] == "arn:aws:iam::123456789012:user/selfcheck", registered)
    wide = {"Statement": [{"Effect": "Allow", "Action": "rds:Describe*", "Resource": [f"{ARN}:cluster:*", f"{ARN}:db:*"]},
                          {"Effect": "Allow", "Action": "rds:CreateDBClusterSnapshot", "Resource": "*"}]}
    emu.post("/_emulator/iam", {"access_key": other, "policy": wide})
    rds, rds2 = as_key(emu, "rds", key), as_key(emu, "rds", other)
    before = len(emu.get("/_emulator/iam/denied")["denied"])

    admin.create_db_cluster(DBClusterIdentifier="iam-db", Engine="aurora-postgresql", MasterUsername="app",
                            MasterUserPassword="not-used-by-the-emulator")
    wait_until("iam-db available", lambda: cluster_status(admin, "iam-db") == "available")

    # Allow: the call reaches the service.
    got = rds.describe_db_clusters(DBClusterIdentifier="iam-db")["DBClusters"]
    check("allowed: DescribeDBClusters of a cluster the policy names", got[0]["DBClusterIdentifier"] == "iam-db", got)
    error_code("allowed calls get the service's own errors",
               lambda: rds.describe_db_clusters(DBClusterIdentifier="iam-none"), "DBClusterNotFoundFault")
    # Implicit deny.
    status, code, message = denial(lambda: rds.describe_db_clusters(DBClusterIdentifier="app-db"))
    check("implicit deny: 403 AccessDenied (Query protocol)", (status, code) == (403, "AccessDenied"), (status, code))
    check("implicit deny names user, action, resource and why", message == (
        "User: arn:aws:iam::123456789012:user/selfcheck is not authorized to perform: rds:DescribeDBClusters on "
        f"resource: {ARN}:cluster:app-db because no identity-based policy allows the rds:DescribeDBClusters action"),
        message)
    # Explicit deny.
    _, _, message = denial(lambda: rds.describe_db_clusters(DBClusterIdentifier="iam-secret"))
    check("explicit deny", message.endswith("with an explicit deny in an identity-based policy"), message)
    # Identifier-less Describes: the resource type's wildcard ARN.
    _, _, message = denial(lambda: rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["iam-db"]}]))
    check("DescribeDBInstances by filter is authorized on db:*", f"resource: {ARN}:db:* " in message, message)
    _, _, message = denial(lambda: rds.describe_db_clusters())
    check("DescribeDBClusters listing is authorized on cluster:*", f"resource: {ARN}:cluster:* " in message, message)
    check("a policy with cluster:* allows the listing",
          any(c["DBClusterIdentifier"] == "iam-db" for c in rds2.describe_db_clusters()["DBClusters"]))
    rds2.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": ["iam-db"]}])

    # Tag conditions on create: aws:RequestTag, and the tags as AddTagsToResource on the new snapshot.
    _, _, message = denial(lambda: rds.create_db_cluster_snapshot(
        DBClusterIdentifier="iam-db", DBClusterSnapshotIdentifier="iam-snap-untagged"))
    check("a create without the required request tag is denied", "rds:CreateDBClusterSnapshot on resource" in message,
          message)
    rds.create_db_cluster_snapshot(DBClusterIdentifier="iam-db", DBClusterSnapshotIdentifier="iam-snap",
                                   Tags=[{"Key": "purpose", "Value": "check"}])
    _, _, message = denial(lambda: rds2.create_db_cluster_snapshot(
        DBClusterIdentifier="iam-db", DBClusterSnapshotIdentifier="iam-snap-2", Tags=[{"Key": "purpose", "Value": "x"}]))
    check("a create with tags also needs rds:AddTagsToResource on the new resource",
          f"rds:AddTagsToResource on resource: {ARN}:cluster-snapshot:iam-snap-2 " in message, message)
    admin.create_db_cluster_snapshot(DBClusterIdentifier="iam-db", DBClusterSnapshotIdentifier="iam-plain")
    for snap in ("iam-snap", "iam-plain"):
        wait_until(f"{snap} available", lambda s=snap: emu.get("/_emulator/snapshots")[s]["status"] == "available")
    # aws:ResourceTag from the emulated resource's tags.
    _, _, message = denial(lambda: rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="iam-plain"))
    check("aws:ResourceTag: an untagged snapshot's delete is denied", "rds:DeleteDBClusterSnapshot" in message, message)
    rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier="iam-snap")
    check("aws:ResourceTag: the tagged snapshot is deleted", "iam-snap" not in emu.get("/_emulator/snapshots"))

    # An operation the emulator does not know how to authorize: denied, loudly.
    _, code, message = denial(lambda: rds.describe_db_subnet_groups())
    check("unknown operation denied", code == "AccessDenied" and "does not know how to authorize" in message, message)
    status, code, message = denial(lambda: as_key(emu, "ecs", key).list_clusters())
    check("JSON protocols: 400 AccessDeniedException", (status, code) == (400, "AccessDeniedException"), (status, code))
    status, code, _ = denial(lambda: as_key(emu, "s3", key).put_object(Bucket="iam-bucket", Key="state/x", Body=b"x"))
    check("S3: 403 AccessDenied", (status, code) == (403, "AccessDenied"), (status, code))
    emu.client("s3").create_bucket(Bucket="iam-bucket")
    status, code, _ = denial(lambda: as_key(emu, "s3", key).get_object(Bucket="iam-bucket", Key="state/missing"))
    check("S3: a missing key is 403 without s3:ListBucket", (status, code) == (403, "AccessDenied"), (status, code))
    error_code("the admin key is unrestricted", lambda: emu.client("s3").get_object(Bucket="iam-bucket", Key="state/m"),
               "NoSuchKey")

    denied = emu.get("/_emulator/iam/denied")["denied"][before:]
    actions = [d["action"] for d in denied]
    check("every denial is listed", len(denied) == 10 and "rds:AddTagsToResource" in actions, actions)
    check("denials carry resource and message", all(d["resource"] and d["message"] for d in denied), denied)
    calls = emu.get("/_emulator/calls")["calls"]
    check("the call log marks denied calls", sum(1 for c in calls if c[7]) >= len(denied), calls[-3:])
    bad = urllib.request.Request(emu.url + "/_emulator/iam", data=json.dumps({"access_key": "x", "policy": {
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
                       "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}}).encode())
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(bad, timeout=10)
    check("a policy with an operator the emulator cannot evaluate is refused", raised.value.code == 400)


def test_iam(emu: Emulator) -> None:
    check_iam(emu)


def test_sigterm_stops_the_emulator_and_cleans_up(emu: Emulator, net: dict[str, str]) -> None:
    databases = [v["database"] for v in emu.get("/_emulator/clusters").values()]
    databases += [v["database"] for v in emu.get("/_emulator/snapshots").values() if v["database"]]
    pids = running_task_pids(emu, net)
    code = emu.stop()
    check("SIGTERM stops the emulator cleanly", code == 0, code)
    check("shutdown ends the task processes still running", not any(alive(p) for p in pids), pids)
    left = {r[0] for r in query(PG_URL, "SELECT datname FROM pg_database WHERE datname LIKE 'emu\\_%'")}
    check("shutdown drops every database it created", not (set(databases) & left), set(databases) & left)
