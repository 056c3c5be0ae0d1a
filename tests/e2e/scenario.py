"""Set up and inspect an AWS end-to-end scenario in the emulator (tests/emulator).

    python scenario.py setup  --endpoint URL --repo ROOT --name NAME [--service] [--production]
        Creates an Aurora cluster NAME-db with a writer, migrates it with the
        fixture Alembic project to 0002_add_email and seeds it, creates the
        migration stack from infra/migration-stack.yaml (stack NAME-stack), and
        with --service an App Runner service whose DATABASE_URL points at the
        cluster (with --app --task-cwd DIR it runs tests/fixtures/alembic/serve.py,
        which migrates on start-up). With --production the cluster is set up
        like a production one: I/O-Optimized storage, PostgreSQL log exports,
        copy tags to snapshots, its own parameter groups, a writer
        db.r6g.large and a reader db.r6g.xlarge in two zones with CA
        rds-ca-rsa2048-g1, Performance Insights, enhanced monitoring every 60 s,
        promotion tiers 0/1 and auto minor version upgrade off. Last, renders
        infra/ferry-iam.yaml's managed policies for the scenario (AppName NAME,
        StackNamePattern and DatabaseNamePattern NAME-*, StateBucket/StatePrefix
        from --state-bucket/--state-prefix, the service's ARN or empty) and
        registers them with the emulator under a fresh access key: ferry runs
        with that key, as the shipped policy. Prints one JSON object: stack,
        name, stack, cluster, service_arn, service_name, image, endpoint, access_key,
        policy. The ferry.toml's `project` is NAME, so that the snapshots'
        default prefix `NAME-<env>-pre-deploy` is inside DatabaseNamePattern.

    python scenario.py policy --endpoint URL --repo ROOT --name NAME [--service-arn ARN] [...]
        Only the last step of setup: render, register, print {"access_key", "policy"}.

    python scenario.py push-image --endpoint URL --task-cwd DIR --image IMAGE --release JSON
        "Pushes" an image: what the emulator's App Runner deploys next for IMAGE.

    python scenario.py apprunner --endpoint URL --arn ARN --call start_deployment|pause_service|resume_service
        Makes one App Runner call, as another operator would.

    python scenario.py query  --endpoint URL --cluster ID --sql SQL
        Runs SQL on the real database behind cluster ID; prints the rows as JSON.

    python scenario.py clusters --endpoint URL
        Prints the emulator's cluster map as JSON.

    python scenario.py describe --endpoint URL --cluster ID
        Prints {"cluster": DescribeDBClusters[0], "instances": DescribeDBInstances
        of the cluster} as JSON.

    python scenario.py task-definition --endpoint URL --arn ARN
        Prints DescribeTaskDefinition of ARN (a name, family:revision or ARN),
        with its tags, as JSON.

Used by tests/integration/aws_e2e.rs; runs with the emulator's venv (boto3, psycopg, alembic).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

import boto3
import psycopg
from render_policy import render

REGION = "us-east-1"


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def clusters(endpoint):
    with urllib.request.urlopen(f"{endpoint}/_emulator/clusters", timeout=10) as r:
        return json.load(r)


def wait(what, check, limit=60):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if check():
            return
        time.sleep(0.2)
    sys.exit(f"scenario: {what} did not happen within {limit}s")


MONITORING_ROLE = "arn:aws:iam::123456789012:role/rds-monitoring-role"


def production_cluster(rds, cluster):
    """A cluster set up as production ones are; returns its instances' ids."""
    rds.create_db_cluster_parameter_group(
        DBClusterParameterGroupName=f"{cluster}-cpg", DBParameterGroupFamily="aurora-postgresql15", Description="prod"
    )
    rds.create_db_parameter_group(
        DBParameterGroupName=f"{cluster}-pg", DBParameterGroupFamily="aurora-postgresql15", Description="prod"
    )
    rds.create_db_cluster(
        DBClusterIdentifier=cluster,
        Engine="aurora-postgresql",
        EngineVersion="15.4",
        MasterUsername="app",
        MasterUserPassword="not-used-by-the-emulator",
        DatabaseName="app",
        DeletionProtection=True,
        StorageType="aurora-iopt1",
        EnableCloudwatchLogsExports=["postgresql"],
        CopyTagsToSnapshot=True,
        DBClusterParameterGroupName=f"{cluster}-cpg",
        BackupRetentionPeriod=14,
        PreferredBackupWindow="03:00-03:30",
        PreferredMaintenanceWindow="sun:05:00-sun:05:30",
        EngineLifecycleSupport="open-source-rds-extended-support-disabled",
        EnableIAMDatabaseAuthentication=True,
        Tags=[{"Key": "team", "Value": "e2e"}, {"Key": "cost-center", "Value": "42"}],
    )
    instances = [
        (f"{cluster}-writer", "db.r6g.large", 0, "us-east-1a"),
        (f"{cluster}-reader", "db.r6g.xlarge", 1, "us-east-1b"),
    ]
    for ident, klass, tier, zone in instances:
        rds.create_db_instance(
            DBInstanceIdentifier=ident,
            DBClusterIdentifier=cluster,
            DBInstanceClass=klass,
            Engine="aurora-postgresql",
            DBParameterGroupName=f"{cluster}-pg",
            CACertificateIdentifier="rds-ca-rsa2048-g1",
            EnablePerformanceInsights=True,
            PerformanceInsightsRetentionPeriod=7,
            MonitoringInterval=60,
            MonitoringRoleArn=MONITORING_ROLE,
            PromotionTier=tier,
            AvailabilityZone=zone,
            PubliclyAccessible=False,
            AutoMinorVersionUpgrade=False,
            PreferredMaintenanceWindow=f"{'mon' if tier == 0 else 'tue'}:06:00-{'mon' if tier == 0 else 'tue'}:06:30",
            Tags=[{"Key": "team", "Value": "e2e"}, {"Key": "role", "Value": "writer" if tier == 0 else "reader"}],
        )
    return [i[0] for i in instances]


def setup(args):
    rds = client("rds", args.endpoint)
    cluster = f"{args.name}-db"
    if args.production:
        instance_ids = production_cluster(rds, cluster)
    else:
        rds.create_db_cluster(
            DBClusterIdentifier=cluster,
            Engine="aurora-postgresql",
            EngineVersion="15.4",
            MasterUsername="app",
            MasterUserPassword="not-used-by-the-emulator",
            DatabaseName="app",
            DeletionProtection=True,
            Tags=[{"Key": "team", "Value": "e2e"}],
        )
        rds.create_db_instance(
            DBInstanceIdentifier=f"{cluster}-1",
            DBClusterIdentifier=cluster,
            DBInstanceClass="db.r6g.large",
            Engine="aurora-postgresql",
        )
        instance_ids = [f"{cluster}-1"]

    def available():
        c = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        return c["Status"] == "available" and all(
            rds.describe_db_instances(DBInstanceIdentifier=i)["DBInstances"][0]["DBInstanceStatus"] == "available"
            for i in instance_ids
        )

    wait("the cluster to become available", available)
    endpoint = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]["Endpoint"]

    # The database at schema 0002 with the seed rows, through the real Alembic project.
    url = clusters(args.endpoint)[cluster]["url"]
    fixture = os.path.join(args.repo, "tests", "fixtures", "alembic")
    alembic = os.path.join(os.path.dirname(sys.executable), "alembic")
    env = dict(os.environ, DATABASE_URL=url)
    env.pop("FERRY_FIXTURE_FAIL", None)
    for target in ["0001_init"]:
        subprocess.run([alembic, "-c", os.path.join(fixture, "alembic.ini"), "upgrade", target], env=env, check=True,
                       stdout=sys.stderr)
    with psycopg.connect(url, autocommit=True) as conn:
        with open(os.path.join(fixture, "seed.sql")) as f:
            conn.execute(f.read())
    subprocess.run([alembic, "-c", os.path.join(fixture, "alembic.ini"), "upgrade", "0002_add_email"], env=env,
                   check=True, stdout=sys.stderr)

    # The migration stack, exactly as users deploy it.
    cfn = client("cloudformation", args.endpoint)
    stack = f"{args.name}-stack"
    with open(os.path.join(args.repo, "infra", "migration-stack.yaml")) as f:
        template = f.read()
    cfn.create_stack(
        StackName=stack,
        TemplateBody=template,
        Capabilities=["CAPABILITY_NAMED_IAM"],
        Parameters=[
            {"ParameterKey": "AppName", "ParameterValue": args.name},
            {"ParameterKey": "ImageUri", "ParameterValue": "app-migrations:latest"},
            {"ParameterKey": "DatabaseUrl", "ParameterValue": f"postgresql://app@{endpoint}:5432/app"},
            # moto does not split a CommaDelimitedList default: pass it.
            {"ParameterKey": "MigrationCommand", "ParameterValue": "alembic,upgrade,head"},
        ],
    )
    wait("the stack to be created",
         lambda: cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE")

    service_arn = None
    image = f"public.ecr.aws/app/{args.name}-web:latest"
    if args.service:
        apprunner = client("apprunner", args.endpoint)
        config = {
            "Port": "8080",
            "RuntimeEnvironmentVariables": {
                "DATABASE_URL": f"postgresql://app@{endpoint}:5432/app",
                "APP_MODE": "web",
            },
        }
        if args.app:
            # The app migrates on start-up (tests/fixtures/alembic/serve.py); the
            # image it starts from is already at the database's revision.
            config["StartCommand"] = f"{sys.executable} {os.path.join(fixture, 'serve.py')}"
            push_image(args.task_cwd, image, {"revision": "0002_add_email"})
        out = apprunner.create_service(
            ServiceName=f"{args.name}-web",
            SourceConfiguration={
                "ImageRepository": {
                    "ImageIdentifier": image,
                    "ImageRepositoryType": "ECR_PUBLIC",
                    "ImageConfiguration": config,
                },
                "AutoDeploymentsEnabled": False,
            },
            InstanceConfiguration={"Cpu": "256", "Memory": "512"},
        )
        service_arn = out["Service"]["ServiceArn"]
        wait("the service to run", lambda: apprunner.describe_service(ServiceArn=service_arn)["Service"]["Status"]
             == "RUNNING")

    registered = register_policy(args, service_arn)
    print(json.dumps({"name": args.name, "stack": stack, "cluster": cluster, "service_arn": service_arn, "endpoint": endpoint,
                      "image": image if args.service else None,
                      "service_name": f"{args.name}-web" if args.service else None, **registered}))


def register_policy(args, service_arn):
    """infra/ferry-iam.yaml's policy for this scenario, registered under a fresh access key."""
    params = {
        "AppName": args.name,
        "StackNamePattern": f"{args.name}-*",
        "DatabaseNamePattern": f"{args.name}-*",
        "StateBucket": args.state_bucket,
        "StatePrefix": args.state_prefix,
        "MonitoringRoleName": MONITORING_ROLE.rsplit("/", 1)[-1],
        "AppRunnerServiceArn": service_arn or "",
        "GitHubRepository": "acme/app",
        "AWS::Region": REGION,
    }
    policy = render(os.path.join(args.repo, "infra", "ferry-iam.yaml"), params)
    key = "AKIAFERRY" + uuid.uuid4().hex[:11].upper()
    body = json.dumps({"access_key": key, "policy": policy, "user": f"ferry-{args.name}"}).encode()
    req = urllib.request.Request(f"{args.endpoint}/_emulator/iam", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
    return {"access_key": key, "policy": policy}


def push_image(task_cwd, image, release):
    """Write what the emulator's App Runner pulls for the image tag (see tests/emulator/apprunner.py)."""
    folder = os.path.join(task_cwd, "images")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, image.replace("/", "_").replace(":", "_")), "w") as f:
        json.dump(release, f)


def apprunner_call(args):
    """Start an App Runner call outside ferry (another operator, say); prints its answer."""
    out = getattr(client("apprunner", args.endpoint), args.call)(ServiceArn=args.arn)
    out.pop("ResponseMetadata", None)
    print(json.dumps(out, default=str))


def task_definition(args):
    out = client("ecs", args.endpoint).describe_task_definition(taskDefinition=args.arn, include=["TAGS"])
    out.pop("ResponseMetadata", None)
    print(json.dumps(out, default=str))


def query(args):
    url = clusters(args.endpoint)[args.cluster]["url"]
    with psycopg.connect(url) as conn:
        cur = conn.execute(args.sql)
        rows = cur.fetchall() if cur.description else []
    print(json.dumps([list(r) for r in rows], default=str))


def describe(args):
    rds = client("rds", args.endpoint)
    cluster = rds.describe_db_clusters(DBClusterIdentifier=args.cluster)["DBClusters"][0]
    instances = rds.describe_db_instances(Filters=[{"Name": "db-cluster-id", "Values": [args.cluster]}])["DBInstances"]
    print(json.dumps({"cluster": cluster, "instances": instances}, default=str))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--repo", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--service", action="store_true")
    s.add_argument("--app", action="store_true", help="the service runs serve.py, which migrates on start-up")
    s.add_argument("--task-cwd", help="the emulator's --task-cwd (where its image files are)")
    s.add_argument("--production", action="store_true", help="a cluster set up like a production one")
    pol = sub.add_parser("policy")
    pol.add_argument("--endpoint", required=True)
    pol.add_argument("--repo", required=True)
    pol.add_argument("--name", required=True)
    pol.add_argument("--service-arn")
    for parser in (s, pol):
        # The bucket and prefix the S3 state tests use (tests/integration/s3_state.rs).
        parser.add_argument("--state-bucket", default="acme-ferry-state")
        parser.add_argument("--state-prefix", default="ferry/team")
    i = sub.add_parser("push-image")
    i.add_argument("--endpoint", required=True)
    i.add_argument("--task-cwd", required=True)
    i.add_argument("--image", required=True)
    i.add_argument("--release", required=True, help="JSON for serve.py")
    a = sub.add_parser("apprunner")
    a.add_argument("--endpoint", required=True)
    a.add_argument("--arn", required=True)
    a.add_argument("--call", required=True, choices=["start_deployment", "pause_service", "resume_service"])
    q = sub.add_parser("query")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--cluster", required=True)
    q.add_argument("--sql", required=True)
    c = sub.add_parser("clusters")
    c.add_argument("--endpoint", required=True)
    d = sub.add_parser("describe")
    d.add_argument("--endpoint", required=True)
    d.add_argument("--cluster", required=True)
    t = sub.add_parser("task-definition")
    t.add_argument("--endpoint", required=True)
    t.add_argument("--arn", required=True)
    args = p.parse_args()
    if args.cmd == "setup":
        setup(args)
    elif args.cmd == "policy":
        print(json.dumps(register_policy(args, args.service_arn)))
    elif args.cmd == "push-image":
        push_image(args.task_cwd, args.image, json.loads(args.release))
    elif args.cmd == "apprunner":
        apprunner_call(args)
    elif args.cmd == "query":
        query(args)
    elif args.cmd == "describe":
        describe(args)
    elif args.cmd == "task-definition":
        task_definition(args)
    else:
        print(json.dumps(clusters(args.endpoint)))


if __name__ == "__main__":
    main()
