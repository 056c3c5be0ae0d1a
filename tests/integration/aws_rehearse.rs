//! `ferry rehearse` and `rehearse.when = "always"` on provider = "aws",
//! through the real executable against the emulator: the clone is an Aurora
//! copy-on-write clone (a PostgreSQL template copy behind its own endpoint and
//! port), the migration is the Alembic fixture run as an ECS task pointed at
//! the clone by `rehearse.database_env`, its locks are sampled through
//! `database.url` with the clone's host and port. The real cluster never
//! changes on a failed rehearsal, and the clone (cluster and instance) is gone
//! in every case ferry can act on; a clone without this run's tags is never
//! deleted.
//!
//! Needs FERRY_EMULATOR_PYTHON and FERRY_TEST_PG_URL (skipped without them
//! unless FERRY_TEST_REQUIRE_EMULATOR=1).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::common::emulator::{Emulator, Project, strs};
use crate::common::eventually;
use serde_json::json;

/// The rehearsal's DATABASE_URL: the task definition's, with the clone's endpoint and port.
const TO_THE_CLONE: &str = "database_env = { DATABASE_URL = \"postgresql://app@${clone.endpoint}:${clone.port}/app\" }";

/// A project on the scenario's cluster running the Alembic fixture, with
/// `database.url` (only ever used with the clone's host and port here: the
/// emulator's cluster endpoints do not resolve), `rehearse` keys and the
/// migration's extra variables.
fn project(emu: &Emulator, s: &serde_json::Value, rehearse: &str, vars: &str) -> Project {
    let cmd = emu.alembic();
    let p = emu.project(s, &strs(&cmd), &format!("rehearse = {{ {TO_THE_CLONE}{rehearse} }}"));
    let toml = p.path().join("ferry.toml");
    let cluster = s["cluster"].as_str().unwrap();
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        &format!("database = {{ cluster = \"{cluster}\" }}"),
        &format!(
            "database = {{ cluster = \"{cluster}\", url = \"postgres://app@127.0.0.1:5432/app?sslmode=prefer\" }}"
        ),
    ) + &format!("env = {{ {vars} }}\n");
    std::fs::write(toml, text).unwrap();
    p
}

/// Clusters and instances whose id says they are a rehearsal's, as RDS lists them.
fn rehearsal_resources(emu: &Emulator) -> Vec<String> {
    let out = std::process::Command::new(&emu.python)
        .args([
            "-c",
            "import boto3, json, sys\n\
             rds = boto3.client('rds', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             ids = [c['DBClusterIdentifier'] for c in rds.describe_db_clusters()['DBClusters']]\n\
             ids += [i['DBInstanceIdentifier'] for i in rds.describe_db_instances()['DBInstances']]\n\
             print(json.dumps(ids))",
        ])
        .arg(&emu.endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ids: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    ids.into_iter().filter(|id| id.contains("-rehearsal-")).collect()
}

fn version(emu: &Emulator, cluster: &str) -> serde_json::Value {
    emu.query(cluster, "SELECT version_num FROM alembic_version")
}

fn only_record(p: &Project) -> serde_json::Value {
    let dir = p.path().join(".ferry/runs");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).filter(|f| f.extension().is_some_and(|x| x == "json")))
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap()
}

fn try_record(dir: &Path) -> Option<serde_json::Value> {
    let file = std::fs::read_dir(dir.join(".ferry/runs")).ok()?.filter_map(Result::ok).next()?.path();
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

#[test]
fn an_access_exclusive_lock_on_the_clone_is_reported_and_gates_the_deploy() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cluster = s["cluster"].as_str().unwrap();
    let p = project(&emu, &s, "", "FERRY_FIXTURE_LOCK_SECONDS = \"3\"");
    let plan = p.ferry(&["plan", "stage"]);
    assert_eq!(plan.code, 0, "{plan:?}");

    let r = p.ferry(&["rehearse", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    let reh = &rec["rehearsal"];
    assert_eq!(reh["verdict"], "passed", "{reh}");
    assert_eq!(reh["locks_observed"], true, "{reh}");
    let orders = reh["locks"].as_array().unwrap().iter().find(|l| l["relation"] == "public.orders").unwrap();
    assert_eq!(orders["mode"], "ACCESS EXCLUSIVE", "{reh}");
    let held = orders["held_for_ms"].as_u64().unwrap();
    assert!((2500..=3500).contains(&held), "held for {held} ms, the truth is about 3000: {reh}");
    assert!(
        r.stderr.contains("held ACCESS EXCLUSIVE on public.orders for ")
            && r.stderr.contains("in production every read and write of public.orders would wait that long"),
        "{r:?}"
    );
    assert!(r.stderr.contains("holding ACCESS EXCLUSIVE on orders"), "the task's logs are streamed: {r:?}");
    assert_eq!(reh["clone_fate"], "deleted");
    assert!(reh["clone"].as_str().unwrap().starts_with(&format!("{cluster}-rehearsal-")), "{reh}");
    assert_eq!(version(&emu, cluster), json!([["0002_add_email"]]), "the real cluster is untouched");
    assert!(rec["snapshot"].is_null(), "{rec}");
    assert!(rehearsal_resources(&emu).is_empty(), "{:?}", rehearsal_resources(&emu));

    // With max_exclusive_lock below it, deploy refuses before any change.
    let p = project(&emu, &s, ", when = \"always\", max_exclusive_lock = \"1s\"", "FERRY_FIXTURE_LOCK_SECONDS = \"3\"");
    let manual = || {
        let all = emu.get("/_emulator/snapshots");
        all.as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v["type"] == "manual")
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    let snapshots_before = manual();
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    let error = rec["error"].as_str().unwrap();
    assert!(
        error.contains("held ACCESS EXCLUSIVE on public.orders for")
            && error.contains("more than rehearse.max_exclusive_lock = 1s"),
        "{error}"
    );
    assert!(rec["snapshot"].is_null() && rec["task"].is_null(), "{rec}");
    assert_eq!(manual(), snapshots_before, "no snapshot taken");
    assert_eq!(version(&emu, cluster), json!([["0002_add_email"]]));
    assert_eq!(emu.query(cluster, "SELECT count(*) FROM orders"), json!([[7]]));
    assert!(rehearsal_resources(&emu).is_empty(), "{:?}", rehearsal_resources(&emu));
}

#[test]
fn a_good_migration_is_rehearsed_on_a_clone_then_deployed() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cluster = s["cluster"].as_str().unwrap();
    let p =
        project(&emu, &s, ", when = \"always\", max_exclusive_lock = \"5s\", instance_class = \"db.t4g.medium\"", "");
    let plan = p.ferry(&["plan", "stage"]);
    assert!(plan.stdout.contains("RestoreDBClusterToPointInTime") && plan.stdout.contains("db.t4g.medium"), "{plan:?}");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["rehearsal"]["verdict"], "passed", "{rec}");
    assert_eq!(rec["rehearsal"]["clone_fate"], "deleted");
    assert_eq!(rec["snapshot"]["status"], "available");
    assert!(r.stderr.contains("this takes minutes on a cloud database"), "the clone's wait is announced: {r:?}");
    assert_eq!(version(&emu, cluster), json!([["0003b_split_name_part2"]]), "then the real migration ran");
    assert!(rehearsal_resources(&emu).is_empty(), "{:?}", rehearsal_resources(&emu));
}

#[test]
fn sigkill_during_the_rehearsal_then_unlock_and_resume_deletes_the_clone() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cluster = s["cluster"].as_str().unwrap();
    let p = project(&emu, &s, "", "FERRY_FIXTURE_LOCK_SECONDS = \"60\"");
    let mut child = p.command(&["rehearse", "stage"]).stderr(Stdio::null()).spawn().unwrap();
    let running = eventually(Duration::from_secs(60), || {
        try_record(p.path()).is_some_and(|r| r["rehearsal"]["task"]["arn"].is_string())
    });
    assert!(running, "the rehearsal's migration started");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = rehearsal_resources(&emu);
    assert_eq!(left.len(), 2, "the killed rehearsal left its clone and instance: {left:?}");
    let run_id = only_record(&p)["run_id"].as_str().unwrap().to_string();
    let status = p.ferry(&["status", "stage"]);
    assert!(
        status.stdout.contains("a rehearsal clone left behind")
            && status.stdout.contains(&format!("ferry resume {run_id}")),
        "status names the clone that costs money and how to delete it: {status:?}"
    );
    assert_eq!(p.ferry(&["unlock", "stage", "--yes"]).code, 0);
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["rehearsal"]["clone_fate"], "deleted", "{r:?}");
    assert!(rehearsal_resources(&emu).is_empty(), "{:?}", rehearsal_resources(&emu));
    assert_eq!(version(&emu, cluster), json!([["0002_add_email"]]));
}

#[test]
fn ctrl_c_during_the_rehearsal_stops_its_task_and_deletes_the_clone() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = project(&emu, &s, "", "FERRY_FIXTURE_LOCK_SECONDS = \"60\"");
    let child = p.command(&["rehearse", "stage"]).stderr(Stdio::piped()).spawn().unwrap();
    let running = eventually(Duration::from_secs(60), || {
        try_record(p.path()).is_some_and(|r| r["rehearsal"]["task"]["arn"].is_string())
    });
    assert!(running, "the rehearsal's migration started");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let rec = only_record(&p);
    assert_eq!(rec["outcome"], "interrupted");
    assert_eq!(rec["rehearsal"]["clone_fate"], "deleted", "{rec}");
    assert!(rehearsal_resources(&emu).is_empty(), "{:?}", rehearsal_resources(&emu));
    // Its task on the clone was stopped, not left running.
    let task = rec["rehearsal"]["task"]["arn"].as_str().unwrap();
    assert_eq!(emu.get("/_emulator/tasks")[task]["lastStatus"], "STOPPED", "{}", emu.get("/_emulator/tasks"));
}

#[test]
fn a_clone_retagged_as_another_runs_is_not_deleted_exit_5_naming_it() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = project(&emu, &s, "", "FERRY_FIXTURE_LOCK_SECONDS = \"4\"");
    let child = p.command(&["rehearse", "stage", "--output", "json"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut clone = String::new();
    let running = eventually(Duration::from_secs(60), || {
        let Some(r) = try_record(p.path()) else { return false };
        clone = r["rehearsal"]["clone"].as_str().unwrap_or_default().to_string();
        r["rehearsal"]["task"]["arn"].is_string()
    });
    assert!(running, "the rehearsal's migration started");
    // Someone marks the clone as another run's while the migration runs.
    let out = std::process::Command::new(&emu.python)
        .args([
            "-c",
            "import boto3, sys\n\
             rds = boto3.client('rds', endpoint_url=sys.argv[1], region_name='us-east-1', \
             aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             arn = rds.describe_db_clusters(DBClusterIdentifier=sys.argv[2])['DBClusters'][0]['DBClusterArn']\n\
             rds.add_tags_to_resource(ResourceName=arn, Tags=[{'Key': 'ferry:run-id', 'Value': 'someone-else'}])",
        ])
        .args([&emu.endpoint, &clone])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: crate::common::Run = child.wait_with_output().unwrap().into();
    assert_eq!(r.code, 5, "{r:?}");
    let rec = r.json();
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains(&format!("rehearsal clone {clone} could not be deleted")), "{error}");
    assert!(error.contains("not tagged as run"), "{error}");
    assert!(rehearsal_resources(&emu).contains(&clone), "refused, so kept: {:?}", rehearsal_resources(&emu));
}

/// A `rehearse.database_env` variable the task definition gives as a secret:
/// ECS does not document that an override replaces a secret, so the
/// rehearsal's migration could reach the real database. Refused at preflight
/// (exit 3), naming the variable; no emulator needed.
#[tokio::test]
async fn a_database_env_variable_given_as_a_secret_is_refused_at_preflight() {
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver, Secret, TaskDefinition};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use ferry_aws::ecs::{EcsRunner, EcsTarget};
    use ferry_core::runbook::preflight::{Scope, inspect};

    let td = mock!(aws_sdk_ecs::Client::describe_task_definition).then_output(|| {
        let container = ContainerDefinition::builder()
            .name("migrate")
            .log_configuration(
                LogConfiguration::builder()
                    .log_driver(LogDriver::Awslogs)
                    .options("awslogs-group", "/app/migrations")
                    .options("awslogs-stream-prefix", "ferry")
                    .build()
                    .unwrap(),
            )
            .secrets(Secret::builder().name("DATABASE_URL").value_from("arn:secret").build().unwrap())
            .build();
        DescribeTaskDefinitionOutput::builder()
            .task_definition(TaskDefinition::builder().container_definitions(container).build())
            .build()
    });
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_output(|| aws_sdk_ecs::operation::list_tasks::ListTasksOutput::builder().build());
    let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &list]);
    let runner = EcsRunner::new(
        client,
        EcsTarget {
            cluster: "c".into(),
            task_definition: "td".into(),
            subnets: vec!["s".into()],
            security_groups: vec![],
            assign_public_ip: false,
            container: "migrate".into(),
        },
    );
    let fake = ferry_core::provider::fake::FakeCloud::new("app-prod", "v1", false);
    let cloud = ferry_core::provider::Cloud { runner: std::sync::Arc::new(runner), ..fake.cloud() };
    let text = |var: &str| {
        format!(
            "project = \"app\"\n[env.prod]\ndatabase = {{ cluster = \"app-prod\" }}\n\
             migration = {{ cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [], container = \"migrate\", command = [\"m\"] }}\n\
             rehearse = {{ database_env = {{ {var} = \"postgresql://app@${{clone.endpoint}}/app\" }} }}\n"
        )
    };
    for (var, refused) in [("DATABASE_URL", true), ("REHEARSAL_DATABASE_URL", false)] {
        let cfg = ferry_core::config::parse(Path::new("/virtual/ferry.toml"), &text(var)).unwrap();
        let env = cfg.env("prod").unwrap();
        let scope =
            Scope { env, cloud: &cloud, restoring: false, own_task: None, with_snapshot: false, rehearsing: true };
        let found = inspect(&scope).await;
        let named = found
            .refusals
            .iter()
            .any(|r| r.contains(&format!("rehearse.database_env.{var} is given to the migration by a secret")));
        assert_eq!(named, refused, "{var}: {found:?}");
        // Not rehearsing, nothing is asked about it.
        let found = inspect(&Scope { rehearsing: false, ..scope }).await;
        assert!(found.refusals.iter().all(|r| !r.contains("secret")), "{found:?}");
    }
}
