"""Set up and inspect an AWS end-to-end scenario in the emulator (tests/emulator).

    python scenario.py setup  --endpoint URL --repo ROOT --name NAME [--service]
        Creates an Aurora cluster NAME-db with a writer, migrates it with the
        fixture Alembic project to 0002_add_email and seeds it, creates the
        migration stack from infra/migration-stack.yaml (stack NAME-stack), and
        with --service an App Runner service whose DATABASE_URL points at the
        cluster. Prints one JSON object: stack, cluster, service_arn, endpoint.

    python scenario.py query  --endpoint URL --cluster ID --sql SQL
        Runs SQL on the real database behind cluster ID; prints the rows as JSON.

    python scenario.py clusters --endpoint URL
        Prints the emulator's cluster map as JSON.

Used by tests/aws_e2e.rs; runs with the emulator's venv (boto3, psycopg, alembic).
"""

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request

import boto3
import psycopg

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


def setup(args):
    rds = client("rds", args.endpoint)
    cluster = f"{args.name}-db"
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

    def available():
        c = rds.describe_db_clusters(DBClusterIdentifier=cluster)["DBClusters"][0]
        inst = rds.describe_db_instances(DBInstanceIdentifier=f"{cluster}-1")["DBInstances"][0]
        return c["Status"] == "available" and inst["DBInstanceStatus"] == "available"

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
    if args.service:
        apprunner = client("apprunner", args.endpoint)
        out = apprunner.create_service(
            ServiceName=f"{args.name}-web",
            SourceConfiguration={
                "ImageRepository": {
                    "ImageIdentifier": "public.ecr.aws/app/web:latest",
                    "ImageRepositoryType": "ECR_PUBLIC",
                    "ImageConfiguration": {
                        "Port": "8080",
                        "RuntimeEnvironmentVariables": {"DATABASE_URL": f"postgresql://app@{endpoint}:5432/app"},
                    },
                },
                "AutoDeploymentsEnabled": False,
            },
        )
        service_arn = out["Service"]["ServiceArn"]
        wait("the service to run", lambda: apprunner.describe_service(ServiceArn=service_arn)["Service"]["Status"]
             == "RUNNING")

    print(json.dumps({"stack": stack, "cluster": cluster, "service_arn": service_arn, "endpoint": endpoint}))


def query(args):
    url = clusters(args.endpoint)[args.cluster]["url"]
    with psycopg.connect(url) as conn:
        rows = conn.execute(args.sql).fetchall()
    print(json.dumps([list(r) for r in rows], default=str))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("setup")
    s.add_argument("--endpoint", required=True)
    s.add_argument("--repo", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--service", action="store_true")
    q = sub.add_parser("query")
    q.add_argument("--endpoint", required=True)
    q.add_argument("--cluster", required=True)
    q.add_argument("--sql", required=True)
    c = sub.add_parser("clusters")
    c.add_argument("--endpoint", required=True)
    args = p.parse_args()
    if args.cmd == "setup":
        setup(args)
    elif args.cmd == "query":
        query(args)
    else:
        print(json.dumps(clusters(args.endpoint)))


if __name__ == "__main__":
    main()
