//! Layer 3 and 4: the real `ferry` binary and the AWS SDK for Rust talking HTTP to
//! the emulator (moto server plus tests/emulator/), where RunTask runs the real
//! Alembic project of tests/fixtures/ against a real PostgreSQL database that
//! stands for the Aurora cluster, and the migration stack is infra/'s template.
//!
//! Needs FERRY_EMULATOR_PYTHON (the emulator venv's python) and
//! FERRY_TEST_PG_URL; scripts/test provides both. Skipped without them unless
//! FERRY_TEST_REQUIRE_EMULATOR=1.

use crate::common::emulator::{Emulator, strs};

#[test]
fn a_good_migration_reaches_head_with_a_tagged_snapshot() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let plan = p.ferry(&["plan", "stage"]);
    assert!(plan.stdout.contains("${output:ClusterName} = e") && plan.stdout.contains("-migrations"), "{plan:?}");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["task"]["exit_code"], 0);
    assert!(r.stderr.contains("Running upgrade 0002_add_email -> 0003a_split_name_part1"), "task logs streamed: {r:?}");
    let cluster = s["cluster"].as_str().unwrap();
    assert_eq!(
        emu.query(cluster, "SELECT version_num FROM alembic_version"),
        serde_json::json!([["0003b_split_name_part2"]])
    );

    let snaps = p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    let snap = snaps["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == rec["snapshot"]["id"])
        .expect("the run's snapshot");
    assert_eq!(snap["tags"]["ferry:run-id"], rec["run_id"]);
    assert_eq!(snap["tags"]["ferry:purpose"], "pre-deploy");
    // The snapshot really holds the pre-deploy data.
    let snapshots = emu.get("/_emulator/snapshots");
    assert_eq!(snapshots[snap["id"].as_str().unwrap()]["status"], "available");
}

#[test]
fn a_migration_failing_halfway_is_restored_under_the_original_identifier() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(true);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    p.failing_migration();
    let cluster = s["cluster"].as_str().unwrap();
    let before = emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id");
    assert_eq!(before.as_array().unwrap().len(), 7);

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    assert_eq!(rec["task"]["exit_code"], 1);
    // The record keeps the failing lines and where the logs are in the console.
    let tail: Vec<&str> = rec["log_tail"].as_array().unwrap().iter().filter_map(|l| l.as_str()).collect();
    assert!(!tail.is_empty() && tail.len() <= 20, "{tail:?}");
    assert!(tail.iter().any(|l| l.contains("UndefinedColumn")), "{tail:?}");
    let url = rec["task"]["log_url"].as_str().unwrap();
    assert!(url.starts_with("https://") && url.contains("/cloudwatch/home?region=") && url.contains("/log-events/"));
    assert_eq!(rec["restore"]["restored_cluster"], cluster);
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap().to_string();
    assert!(failed.starts_with(&format!("{cluster}-failed-")), "{failed}");

    // The original identifier holds the pre-deploy schema and every row...
    assert_eq!(emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id"), before);
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), serde_json::json!([["0002_add_email"]]));
    // ...and the failed cluster is kept as the migration left it.
    assert_eq!(
        emu.query(&failed, "SELECT version_num FROM alembic_version"),
        serde_json::json!([["0003a_split_name_part1"]])
    );
    assert_eq!(emu.query(&failed, "SELECT count(*) FROM orders"), serde_json::json!([[4]]));
    // The restored cluster copied the source's settings.
    let clusters = emu.get("/_emulator/clusters");
    assert!(clusters.get(cluster).is_some() && clusters.get(&failed).is_some(), "{clusters}");

    // App Runner was paused around the restore and runs again.
    let svc = emu.get("/_emulator/apprunner");
    let ops = svc[s["service_arn"].as_str().unwrap()]["operations"].as_array().unwrap().clone();
    let types: Vec<&str> = ops.iter().filter_map(|o| o["Type"].as_str()).collect();
    assert!(types.contains(&"PAUSE_SERVICE") && types.contains(&"RESUME_SERVICE"), "{types:?}");
    assert_eq!(svc[s["service_arn"].as_str().unwrap()]["status"], "RUNNING");

    // The journal says the same, and `ferry logs` reads the task's CloudWatch stream.
    let journal = p.ferry(&["runs", "show", rec["run_id"].as_str().unwrap(), "--output", "json"]).json();
    assert_eq!(journal, rec);
    let logs = p.ferry(&["logs", "stage", "--run", rec["run_id"].as_str().unwrap()]);
    assert!(logs.stdout.contains("UndefinedColumn"), "{logs:?}");
    let by_task = p.ferry(&["logs", "stage", "--task", rec["task"]["arn"].as_str().unwrap()]);
    assert_eq!(by_task.stdout, logs.stdout, "--task reads the same CloudWatch stream: {by_task:?}");
}

#[test]
fn a_task_that_cannot_start_exits_3_with_its_reason() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["/nonexistent/migrator", "upgrade"], "");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("could not start"), "{rec}");
    assert!(rec["error"].as_str().unwrap().contains("CannotStartContainerError"), "{rec}");
    assert!(rec["restore"].is_null(), "nothing ran, nothing restored");
}

#[test]
fn a_migration_past_its_timeout_is_stopped_and_restored() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["sh", "-c", "echo 'starting a long backfill'; sleep 120"], "");
    let toml = std::fs::read_to_string(p.path().join("ferry.toml"))
        .unwrap()
        .replace("migration = \"2m\"", "migration = \"5s\"");
    std::fs::write(p.path().join("ferry.toml"), toml).unwrap();
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("did not finish within 5s"), "{rec}");
    let tasks = emu.get("/_emulator/tasks");
    let task = &tasks[rec["task"]["arn"].as_str().unwrap()];
    assert_eq!(task["lastStatus"], "STOPPED", "{task}");
    assert!(r.stderr.contains("starting a long backfill"), "{r:?}");
}

#[test]
fn api_budget_spaces_this_deploys_log_reads_and_no_line_is_lost() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let script = "for i in 1 2 3 4 5 6 7 8; do echo \"backfill batch $i\"; sleep 1; done";
    let p = emu.project(&s, &["sh", "-c", script], "api_budget = { logs = 0.5 }");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    for i in 1..=8 {
        assert!(r.stderr.contains(&format!("backfill batch {i}")), "line {i} lost: {r:?}");
    }
    let calls = emu.get("/_emulator/calls");
    let mut reads: Vec<f64> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c[2] == "logs" && c[4].as_str().unwrap_or("").starts_with("aws-sdk-rust"))
        .map(|c| c[0].as_f64().unwrap())
        .collect();
    reads.sort_by(f64::total_cmp);
    assert!(reads.len() >= 3, "the log was read during an 8 s migration: {reads:?}");
    // 0.5 requests a second with a burst of one: ferry's CloudWatch Logs
    // requests are at least 2 s apart (the default budget reads every second).
    for w in reads.windows(2) {
        assert!(w[1] - w[0] >= 1.8, "two log reads {:.2} s apart under api_budget.logs = 0.5: {reads:?}", w[1] - w[0]);
    }
}

#[test]
fn a_missing_stack_output_is_named_with_the_outputs_that_exist() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["true"], "");
    let toml = std::fs::read_to_string(p.path().join("ferry.toml"))
        .unwrap()
        .replace("${output:ClusterName}", "${output:EcsCluster}");
    std::fs::write(p.path().join("ferry.toml"), toml).unwrap();
    let r = p.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no output \"EcsCluster\"") && r.stderr.contains("ClusterName, LogGroupName"), "{r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}

/// What always differs between a cluster and its restored twin (names,
/// endpoints, ARNs, resource ids, times, status); tags are compared without
/// ferry's and AWS's own. Everything else DescribeDBClusters and
/// DescribeDBInstances return must be equal.
const CLUSTER_ALLOWLIST: &[&str] = &[
    "DBClusterIdentifier",
    "Status",
    "PercentProgress",
    "EarliestRestorableTime",
    "LatestRestorableTime",
    "Endpoint",
    "ReaderEndpoint",
    "DBClusterMembers",
    "DbClusterResourceId",
    "DBClusterArn",
    "ClusterCreateTime",
    "TagList",
];
const INSTANCE_ALLOWLIST: &[&str] = &[
    "DBInstanceIdentifier",
    "DBInstanceStatus",
    "Endpoint",
    "InstanceCreateTime",
    "LatestRestorableTime",
    "DBClusterIdentifier",
    "DBInstanceArn",
    "DbiResourceId",
    "EnhancedMonitoringResourceArn",
    "TagList",
];

fn user_tags(v: &serde_json::Value) -> Vec<String> {
    let mut tags: Vec<String> = v["TagList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some(format!("{}={}", t["Key"].as_str()?, t["Value"].as_str()?)))
        .filter(|t| !t.starts_with("ferry:") && !t.starts_with("aws:"))
        .collect();
    tags.sort();
    tags
}

fn differing(label: &str, a: &serde_json::Value, b: &serde_json::Value, allowed: &[&str]) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> =
        a.as_object().unwrap().keys().chain(b.as_object().unwrap().keys()).collect();
    let mut out: Vec<String> = keys
        .into_iter()
        .filter(|k| !allowed.contains(&k.as_str()) && a[k.as_str()] != b[k.as_str()])
        .map(|k| format!("{label}{k}: {} vs {}", a[k.as_str()], b[k.as_str()]))
        .collect();
    if user_tags(a) != user_tags(b) {
        out.push(format!("{label}TagList: {:?} vs {:?}", user_tags(a), user_tags(b)));
    }
    out
}

/// The writer first, then the readers by name.
fn twin_order(described: &serde_json::Value) -> Vec<serde_json::Value> {
    let writer = described["cluster"]["DBClusterMembers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["IsClusterWriter"] == true)
        .map(|m| m["DBInstanceIdentifier"].as_str().unwrap().to_string());
    let mut instances = described["instances"].as_array().unwrap().clone();
    instances.sort_by_key(|i| {
        let id = i["DBInstanceIdentifier"].as_str().unwrap().to_string();
        (Some(&id) != writer.as_ref(), id.len(), id)
    });
    instances
}

#[test]
fn a_production_like_cluster_is_restored_as_its_twin_with_every_instance() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup_production();
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    p.failing_migration();
    let cluster = s["cluster"].as_str().unwrap();

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["restore"]["differences"], serde_json::json!([]), "ferry found no difference: {rec}");
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap().to_string();
    let staging = rec["restore"]["staging_cluster"].as_str().unwrap().to_string();
    assert!(
        r.stderr.contains(&format!("creating 1 instance of {staging}: {staging}-1"))
            && r.stderr.contains(&format!("creating 1 instance of {staging}: {staging}-2")),
        "the writer, then the reader: {}",
        r.stderr
    );

    // DescribeDBClusters / DescribeDBInstances of the original (now kept aside) and the restored one.
    let (original, restored) = (emu.describe(&failed), emu.describe(cluster));
    let mut diffs = differing("", &original["cluster"], &restored["cluster"], CLUSTER_ALLOWLIST);
    let (a, b) = (twin_order(&original), twin_order(&restored));
    assert_eq!((a.len(), b.len()), (2, 2), "two instances on each side: {restored}");
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        diffs.extend(differing(&format!("instance {n}: "), x, y, INSTANCE_ALLOWLIST));
    }
    assert!(diffs.is_empty(), "the restored cluster differs from the original:\n{}", diffs.join("\n"));

    // What the issue found missing, named once more.
    let c = &restored["cluster"];
    assert_eq!((c["StorageType"].as_str(), c["CopyTagsToSnapshot"].as_bool()), (Some("aurora-iopt1"), Some(true)));
    assert_eq!(c["EnabledCloudwatchLogsExports"], serde_json::json!(["postgresql"]));
    let classes: Vec<&str> = b.iter().map(|i| i["DBInstanceClass"].as_str().unwrap()).collect();
    assert_eq!(classes, ["db.r6g.large", "db.r6g.xlarge"]);
    for (tier, i) in b.iter().enumerate() {
        assert_eq!(i["CACertificateIdentifier"], "rds-ca-rsa2048-g1");
        assert_eq!(i["MonitoringInterval"], 60);
        assert_eq!(i["PerformanceInsightsEnabled"], true);
        assert_eq!(i["AutoMinorVersionUpgrade"], false);
        assert_eq!(i["PromotionTier"], tier);
    }
    let tag = |v: &serde_json::Value, k: &str| {
        v["TagList"].as_array().unwrap().iter().find(|t| t["Key"] == k).map(|t| t["Value"].clone())
    };
    assert_eq!(tag(c, "ferry:purpose"), Some("restore".into()));
    assert_eq!(tag(c, "ferry:run-id"), Some(rec["run_id"].clone()));
    assert_eq!(tag(&original["cluster"], "ferry:run-id"), Some(rec["run_id"].clone()), "renamed aside, tagged first");

    // And the data is the snapshot's.
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), serde_json::json!([["0002_add_email"]]));
}

/// The harness's IAM check: a request the registered policy denies fails the
/// test at its end, naming the action and the resource IAM checked (an
/// identifier-less Describe: the type's wildcard ARN); `expect_denials` lets a
/// test that wants the denial pass.
#[test]
fn a_request_the_policy_denies_fails_the_test_naming_its_action_and_resource() {
    let denied_describe = |emu: &Emulator| {
        emu.register_policy(
            "AKIADENIEDCHECK",
            serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": "rds:DescribeDBClusters", "Resource": "arn:aws:rds:us-east-1:123456789012:cluster:app-*"}]}),
        );
        let out = std::process::Command::new(&emu.python)
            .args([
                "-c",
                "import sys, boto3\nfrom botocore.exceptions import ClientError\n\
                 rds = boto3.client('rds', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id='AKIADENIEDCHECK', aws_secret_access_key='x')\n\
                 try:\n    rds.describe_db_clusters()\nexcept ClientError as e:\n    print(e.response['Error']['Code'])",
            ])
            .arg(&emu.endpoint)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "AccessDenied", "{out:?}");
    };

    let Some(emu) = Emulator::start() else { return };
    denied_describe(&emu);
    let denied = emu.denied();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["resource"], "arn:aws:rds:us-east-1:123456789012:cluster:*");
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(emu)))
        .expect_err("the end of the test fails on a denied request");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("rds:DescribeDBClusters on arn:aws:rds:us-east-1:123456789012:cluster:*"), "{message}");

    let Some(emu) = Emulator::start() else { return };
    denied_describe(&emu);
    emu.expect_denials();
}

/// `snapshot create`, `delete` and `prune` as the shipped policy: a manual
/// snapshot is taken, and deleting it is refused by IAM (only pre-deploy
/// snapshots may be deleted: exit 2, access denied); prune deletes the
/// deploy's pre-deploy snapshot.
#[test]
fn snapshots_are_made_and_only_pre_deploy_ones_deleted_as_the_policy() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["true"], "");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let pre_deploy = r.json()["snapshot"]["id"].as_str().unwrap().to_string();
    let manual = p.ferry(&["snapshot", "create", "stage", "--wait", "--yes", "--output", "json"]);
    assert_eq!(manual.code, 0, "{manual:?}");
    let ids = |p: &crate::common::emulator::Project| -> Vec<String> {
        let list = p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
        list["snapshots"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
    };
    let manual_id = ids(&p).into_iter().find(|id| id.contains("-manual-")).expect("the manual snapshot");

    emu.expect_denials();
    let refused = p.ferry(&["snapshot", "delete", "stage", &manual_id, "--yes"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("access denied"), "{refused:?}");
    let denied = emu.denied();
    assert!(
        denied.len() == 1
            && denied[0]["action"] == "rds:DeleteDBClusterSnapshot"
            && denied[0]["deny"] == "explicit"
            && denied[0]["resource"].as_str().unwrap().ends_with(&format!(":cluster-snapshot:{manual_id}")),
        "{denied:?}"
    );

    let pruned = p.ferry(&["snapshot", "prune", "stage", "--keep", "0", "--yes"]);
    assert_eq!(pruned.code, 0, "{pruned:?}");
    let left = ids(&p);
    assert!(!left.contains(&pre_deploy) && left.contains(&manual_id), "{left:?}");
    assert_eq!(emu.denied().len(), 1, "prune was allowed: {:?}", emu.denied());
}

#[test]
fn a_responder_lists_automated_snapshots_and_restores_one_by_its_rds_id() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let cluster = s["cluster"].as_str().unwrap();

    let ferrys = p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    assert!(
        ferrys["snapshots"].as_array().unwrap().iter().all(|x| x["kind"] == "manual"),
        "without --all only manual snapshots: {ferrys}"
    );
    let all = p.ferry(&["snapshot", "list", "stage", "--all", "--output", "json"]).json();
    let automated = all["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "automated")
        .unwrap_or_else(|| panic!("--all lists the automated backup: {all}"));
    let id = automated["id"].as_str().unwrap();
    assert!(id.starts_with("rds:"), "{id}");
    let text = p.ferry(&["snapshot", "list", "stage", "--all"]);
    assert!(text.stdout.lines().any(|l| l.starts_with(id) && l.contains("automated")), "{text:?}");

    let r = p.ferry(&["restore", "stage", "--snapshot", id, "--yes", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["restore"]["snapshot_id"], id);
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap();
    let clusters = emu.get("/_emulator/clusters");
    assert!(clusters.get(cluster).is_some() && clusters.get(failed).is_some(), "swapped, original kept: {clusters}");

    let bad = p.ferry(&["restore", "stage", "--snapshot", "rds:", "--yes"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("--snapshot takes"), "{bad:?}");
}

/// The responder's point-in-time restore: a time outside the restorable
/// window is exit 2 with nothing created; a time inside it brings back the
/// data as it was then under the original name, the writes after it are
/// accounted for and kept in the set-aside cluster, which is stopped (and
/// `status` says so, with AWS's seven-day restart).
#[test]
fn a_point_in_time_restore_brings_back_that_moment_and_fences_the_set_aside_cluster() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let cluster = s["cluster"].as_str().unwrap();
    emu.query(cluster, "CREATE TABLE ledger (n int)");
    emu.query(cluster, "INSERT INTO ledger VALUES (1)");
    emu.backup(cluster);
    // Whole seconds on the command line: the time is at least a second after the backup point.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let good = chrono::Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    emu.query(cluster, "INSERT INTO ledger VALUES (2)");
    emu.backup(cluster);
    let before = emu.get("/_emulator/clusters");

    let early = p.ferry(&["restore", "stage", "--to-time", "2001-01-01T00:00:00Z", "--yes"]);
    assert_eq!(early.code, 2, "{early:?}");
    assert!(early.stderr.contains("outside the window") && early.stderr.contains(cluster), "{early:?}");
    let after = emu.get("/_emulator/clusters");
    assert_eq!(
        after.as_object().unwrap().keys().collect::<Vec<_>>(),
        before.as_object().unwrap().keys().collect::<Vec<_>>(),
        "nothing created"
    );
    let future = p.ferry(&["restore", "stage", "--to-time", "2999-01-01T00:00:00Z", "--yes"]);
    assert_eq!(future.code, 2, "{future:?}");

    let at = good.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let r = p.ferry(&["restore", "stage", "--to-time", &at, "--yes", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    let restore = &rec["restore"];
    assert_eq!(restore["to_time"].as_str().map(|t| t.starts_with(&at[..19])), Some(true), "{restore}");
    assert_eq!(emu.query(cluster, "SELECT n FROM ledger ORDER BY n"), serde_json::json!([[1]]), "the data at {at}");
    let failed = restore["failed_cluster"].as_str().unwrap();
    assert_eq!(emu.query(failed, "SELECT n FROM ledger ORDER BY n"), serde_json::json!([[1], [2]]), "kept aside");
    assert_eq!(restore["discarded"]["kept_in"], failed, "{restore}");
    assert_eq!(restore["set_aside"]["id"], failed, "{restore}");
    assert_eq!(restore["set_aside"]["stopped"], true, "{restore}");
    assert_eq!(emu.describe(failed)["cluster"]["Status"], "stopped");
    assert!(r.stderr.contains("are not in the restored database"), "the window is reported: {r:?}");

    let status = p.ferry(&["status", "stage"]);
    let line = status.stdout.lines().find(|l| l.contains(failed)).unwrap_or_else(|| panic!("{status:?}"));
    assert!(line.contains("stopped") && line.contains("seven days"), "{line}");

    let local = crate::common::Project::sqlite("exit 0", "");
    let refused = local.ferry(&["restore", "local", "--to-time", "10m", "--yes"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(refused.stderr.contains("no point-in-time restore"), "{refused:?}");
}

#[test]
fn lock_timeout_rides_in_the_ecs_container_override_as_pgoptions() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["sh", "-c", "echo \"PGOPTIONS=$PGOPTIONS\""], "");
    let toml = p.path().join("ferry.toml");
    let text = std::fs::read_to_string(&toml).unwrap() + "lock_timeout = \"3s\"\n";
    std::fs::write(&toml, text).unwrap();
    let r = p.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("PGOPTIONS=-c lock_timeout=3000"), "the task's environment has it: {r:?}");
}

#[test]
fn a_run_task_without_capacity_is_retried_and_the_late_log_lines_still_shown() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    p.failing_migration();
    // Two RunTask answers with capacity failures; log lines readable 3 s after they are written.
    emu.configure(serde_json::json!({"capacity_failures": 2, "log_ingest_delay_seconds": 3}));
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "restored after the migration failed: {r:?}");
    let rec = r.json();
    let attempts = rec["start_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{rec}");
    assert!(attempts[0]["reason"].as_str().unwrap().contains("Capacity is unavailable"), "{rec}");
    assert!(r.stderr.contains("no capacity for the migration task (attempt 2"), "{r:?}");
    // The migration's last lines, its error, reach CloudWatch after the task stopped.
    assert!(r.stderr.contains("column \"last_name\" of relation \"customers\" does not exist"), "{r:?}");
}

/// A session on the cluster's database that holds ACCESS SHARE on
/// `customers` (a long report) until it is ended by its application name.
fn hold_customers(emu: &Emulator, cluster: &str, name: &str) -> std::process::Child {
    let url = emu.get("/_emulator/clusters")[cluster]["url"].as_str().expect("the cluster's database URL").to_string();
    let reader = std::process::Command::new("psql")
        .arg(&url)
        .env("PGAPPNAME", name)
        .args(["-c", "BEGIN; SELECT count(*) FROM customers; SELECT pg_sleep(300); COMMIT;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE c.relname = 'customers' AND l.mode = 'AccessShareLock' AND l.granted";
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(10), || emu.query(cluster, held)
            != serde_json::json!([[0]])),
        "the reader holds ACCESS SHARE on customers"
    );
    reader
}

/// `ferry deploy stage --output json`, with a reader holding ACCESS SHARE on
/// `customers` from the moment the snapshot is available (the emulator's
/// snapshot ends every session of the database, as a template copy must)
/// until ferry ends.
fn deploy_behind_a_reader(emu: &Emulator, p: &crate::common::emulator::Project, cluster: &str) -> crate::common::Run {
    use std::io::BufRead;
    let name = format!("{cluster}-reader");
    let mut ferry = p
        .command(&["deploy", "stage", "--output", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ferry");
    let stderr = ferry.stderr.take().expect("stderr");
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let reading = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    let snapshot_taken = crate::common::eventually(std::time::Duration::from_secs(120), || {
        lines.lock().unwrap().iter().any(|l| l.contains("snapshot: snapshot") && l.contains("available"))
    });
    assert!(snapshot_taken, "the snapshot became available: {:?}", lines.lock().unwrap());
    let mut reader = hold_customers(emu, cluster, &name);
    let out = ferry.wait_with_output().expect("ferry");
    emu.query(
        cluster,
        &format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}'"),
    );
    let _ = reader.kill();
    let _ = reader.wait();
    reading.join().expect("stderr");
    let stderr = lines.lock().unwrap().join("\n");
    crate::common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr,
    }
}

/// The ECS task waits for its lock past `lock_timeout` (PGOPTIONS in the
/// container override) and rolls back; through `database.url` ferry proves
/// nothing changed: exit 3, no restore, the snapshot kept.
#[test]
fn a_lock_timeout_on_ecs_that_provably_changed_nothing_is_not_restored() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let cluster = s["cluster"].as_str().unwrap();
    let url = emu.get("/_emulator/clusters")[cluster]["url"].as_str().unwrap().to_string();
    // The aws provider's default is verify-full against the RDS CA bundle; the
    // test server is not an RDS one (tests/integration/db_tls.rs covers TLS).
    let url = format!("{url}{}sslmode=prefer", if url.contains('?') { '&' } else { '?' });
    let toml = p.path().join("ferry.toml");
    let text = std::fs::read_to_string(&toml).unwrap().replace(
        &format!("database = {{ cluster = \"{cluster}\" }}"),
        &format!("database = {{ cluster = \"{cluster}\", url = \"{url}\" }}"),
    ) + "lock_timeout = \"1s\"\n";
    assert!(text.contains("url = "), "{text}");
    std::fs::write(&toml, text).unwrap();
    let before = emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id");
    let r = deploy_behind_a_reader(&emu, &p, cluster);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("PGOPTIONS") || r.stderr.contains("lock timeout"), "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "nothing_changed");
    let proof = &rec["migration_attempts"][0]["proof"];
    for piece in ["lock_timeout", "transactional_ddl", "versions_unchanged", "schema_unchanged"] {
        assert_eq!(proof[piece], true, "{piece}: {proof}");
    }
    assert!(rec["restore"].is_null(), "{rec}");
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), serde_json::json!([["0002_add_email"]]));
    assert_eq!(emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id"), before);
    let snapshots = emu.get("/_emulator/snapshots");
    assert_eq!(snapshots[rec["snapshot"]["id"].as_str().unwrap()]["status"], "available", "the snapshot is kept");
}

/// The same lock timeout without `database.url`: ferry cannot look inside the
/// database, so there is no proof, and it restores as always (exit 4).
#[test]
fn a_lock_timeout_on_ecs_without_a_database_session_is_restored() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let toml = p.path().join("ferry.toml");
    let text = std::fs::read_to_string(&toml).unwrap() + "lock_timeout = \"1s\"\nlock_retries = 2\n";
    std::fs::write(&toml, text).unwrap();
    let cluster = s["cluster"].as_str().unwrap();
    let r = deploy_behind_a_reader(&emu, &p, cluster);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    let attempts = rec["migration_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "no retry without a proof: {attempts:?}");
    assert_eq!(attempts[0]["lock_timeout"], true);
    let missing = attempts[0]["proof"]["missing"].as_array().unwrap();
    assert!(missing.iter().any(|m| m.as_str().unwrap().contains("cannot read the database from here")), "{missing:?}");
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), serde_json::json!([["0002_add_email"]]));
}
