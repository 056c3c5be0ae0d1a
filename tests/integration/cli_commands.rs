//! The commands around deploy, on the local provider: snapshot, restore, migrate,
//! logs, status, runs, plan, config validate.

use serde_json::json;

use crate::common::{self, Project};

const SUCCEEDS: &str = "echo 'line one'\necho 'line two' >&2\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"ALTER TABLE customers ADD COLUMN email TEXT\"\n";

fn ids(v: &serde_json::Value) -> Vec<String> {
    assert_eq!(v["format_version"], 1, "{v}");
    v["snapshots"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn snapshot_create_list_wait_delete() {
    let p = Project::sqlite(SUCCEEDS, "");
    let r =
        p.run(["snapshot", "create", "local", "--wait", "--id", "before-upgrade", "--output", "json"]).expect_exit(0);
    assert_eq!(r.json()["snapshots"][0]["status"], "available");
    assert_eq!(r.json()["snapshots"][0]["tags"]["ferry:purpose"], "manual");
    let again = p.ferry(&["snapshot", "create", "local", "--id", "before-upgrade"]);
    assert_eq!(again.code, 3, "an existing id is refused, never overwritten: {again:?}");

    p.run(["snapshot", "wait", "local", "before-upgrade"]).expect_exit(0);
    let list = p.ferry(&["snapshot", "list", "local", "--output", "json"]).json();
    assert_eq!(ids(&list), ["before-upgrade"]);

    p.run(["snapshot", "delete", "local", "no-such-snapshot"]).expect_exit(2);
    p.run(["snapshot", "delete", "local", "before-upgrade"]).expect_exit(0);
    assert_eq!(ids(&p.ferry(&["snapshot", "list", "local", "--output", "json"]).json()).len(), 0);
    let r = p.ferry(&["snapshot", "wait", "local", "before-upgrade"]);
    assert_eq!(r.code, 3, "waiting for a snapshot that does not exist: {r:?}");
}

#[test]
fn prune_only_touches_ferry_pre_deploy_snapshots_of_the_environment() {
    let p = Project::sqlite("true\n", "");
    assert_eq!(p.ferry(&["snapshot", "create", "local", "--id", "manual-keep-me"]).code, 0);
    for _ in 0..3 {
        assert_eq!(p.ferry(&["deploy", "local"]).code, 0);
        std::thread::sleep(std::time::Duration::from_millis(1100)); // distinct second stamps
    }
    let all = ids(&p.ferry(&["snapshot", "list", "local", "--output", "json"]).json());
    assert_eq!(all.len(), 4, "{all:?}");
    let r = p.run(["snapshot", "prune", "local", "--keep", "1", "--output", "json"]).expect_exit(0);
    let deleted = ids(&r.json());
    assert_eq!(deleted.len(), 2, "{r:?}");
    let left = ids(&p.ferry(&["snapshot", "list", "local", "--output", "json"]).json());
    assert_eq!(left.len(), 2);
    assert!(left.contains(&"manual-keep-me".to_string()), "a manual snapshot is never pruned: {left:?}");
    assert!(left.iter().any(|id| id.starts_with("t-local-pre-deploy-")), "the newest pre-deploy is kept: {left:?}");
    assert!(deleted.iter().all(|d| d < left.iter().find(|l| l.starts_with("t-local")).unwrap()), "oldest go first");
}

#[test]
fn restore_latest_brings_the_newest_pre_deploy_snapshot_back_keeping_the_current_database() {
    let p = Project::sqlite(SUCCEEDS, "");
    let r = p.ferry(&["restore", "local", "--snapshot", "latest"]);
    assert_eq!(r.code, 3, "no pre-deploy snapshot yet: {r:?}");
    assert!(r.stderr.contains("no available pre-deploy snapshot taken by ferry for local"), "{r:?}");

    let deploy = p.run(["deploy", "local", "--output", "json"]).expect_exit(0);
    let pre_deploy = deploy.json()["snapshot"]["id"].as_str().unwrap().to_string();
    // A newer manual snapshot, taken after the orders are gone, is not "latest".
    p.sql("DELETE FROM orders");
    assert_eq!(p.ferry(&["snapshot", "create", "local", "--id", "snap-a"]).code, 0);
    let r = p.run(["restore", "local", "--snapshot", "latest", "--yes", "--output", "json"]).expect_exit(0);
    assert!(r.stderr.contains(&format!("from snapshot {pre_deploy} (taken ")), "what it restores is said first: {r:?}");
    let rec = r.json();
    assert_eq!(rec["command"], "restore");
    assert_eq!(rec["restore"]["snapshot_id"], json!(pre_deploy));
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "5");
    assert!(p.files().iter().any(|f| f.starts_with("app-failed-")), "{:?}", p.files());

    let before = p.files();
    let r = p.ferry(&["restore", "local", "--snapshot", "nope"]);
    assert_eq!(r.code, 2, "an unknown snapshot is bad input: {r:?}");
    assert!(r.stderr.contains("snapshot nope not found; nothing was done"), "{r:?}");
    assert_eq!(p.files(), before, "nothing touched");
}

#[test]
fn restore_with_the_new_cluster_strategy_leaves_the_current_database_alone() {
    let p = Project::sqlite(SUCCEEDS, "");
    assert_eq!(p.ferry(&["snapshot", "create", "local", "--id", "snap-b"]).code, 0);
    p.sql("DELETE FROM orders");
    let r = p
        .run(["restore", "local", "--snapshot", "snap-b", "--strategy", "new-cluster", "--output", "json"])
        .expect_exit(0);
    let restored = r.json()["restore"]["restored_cluster"].as_str().unwrap().to_string();
    assert!(restored.contains("/app-restored-"), "{restored}");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "0", "the current database is untouched");
}

#[test]
fn migrate_snapshots_then_runs_only_the_migration() {
    let p = Project::sqlite(SUCCEEDS, "");
    let r = p.run(["migrate", "local", "--output", "json"]).expect_exit(0);
    let rec = r.json();
    assert_eq!(rec["command"], "migrate");
    assert_eq!(rec["snapshot"]["status"], "available", "promise 1: a snapshot before the migration");
    let names: Vec<&str> = rec["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["preflight", "snapshot", "migrate"]);
    // Again: the column exists now, so the migration fails; nothing is restored.
    let r = p.run(["migrate", "local", "--output", "json"]).expect_exit(5);
    let rec = r.json();
    assert!(rec["state"].as_str().unwrap().contains("does not restore"), "{r:?}");
    assert_eq!(rec["next"], format!("ferry restore local --snapshot {}", rec["snapshot"]["id"].as_str().unwrap()));
    // That run needs attention and blocks the environment until a person settles it.
    p.run(["migrate", "local", "--no-snapshot"]).expect_exit(3);
    let run = rec["run_id"].as_str().unwrap();
    assert_eq!(p.ferry(&["runs", "abandon", run, "--reason", "the column is there already"]).code, 0);
    let r = p.run(["migrate", "local", "--no-snapshot", "--output", "json"]).expect_exit(5);
    assert_eq!(r.json()["steps"][1]["status"], "skipped");
}

#[test]
fn logs_runs_status_and_plan_describe_what_happened() {
    let p = Project::sqlite(SUCCEEDS, "");
    let r = p.run(["deploy", "local", "--output", "json"]).expect_exit(0);
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();

    let logs = p.run(["logs", "local"]).expect_exit(0);
    assert!(logs.stdout.contains("| line one") && logs.stdout.contains("| line two"), "{logs:?}");
    let by_run = p.ferry(&["logs", "local", "--run", &run_id]);
    assert_eq!(by_run.stdout.matches("| line").count(), 2, "{by_run:?}");
    let recent = p.ferry(&["logs", "local", "--since", "1h", "--output", "json"]);
    let events = recent.json();
    let mut messages: Vec<&str> =
        events["events"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
    messages.sort_unstable(); // stdout and stderr are read concurrently: their relative order is not defined
    assert_eq!(messages, ["line one", "line two"], "{recent:?}");
    let r = p.ferry(&["logs", "local", "--task", "nope"]);
    assert_eq!(r.code, 2, "an unknown task is an error: {r:?}");
    let r = p.ferry(&["logs", "local", "--task", "bad id"]);
    assert_eq!(r.code, 2, "a malformed task id is a usage error: {r:?}");
    let r = p.ferry(&["logs", "local", "--task", &run_id]);
    assert_eq!(r.stdout.matches("| line").count(), 2, "--task finds the stream: {r:?}");
    let followed = p.ferry(&["logs", "local", "--follow"]);
    assert_eq!(followed.code, 0, "follow ends when the task has stopped: {followed:?}");
    p.run(["logs", "local", "--run", "local-20000101T000000Z-0000"]).expect_exit(2);

    let list = p.ferry(&["runs", "list"]);
    assert!(list.stdout.contains(&run_id) && list.stdout.contains("succeeded"), "{list:?}");
    let show = p.ferry(&["runs", "show", &run_id]);
    assert!(show.stdout.contains("steps:") && show.stdout.contains("migrate"), "{show:?}");
    assert_eq!(p.ferry(&["runs", "show", &run_id, "--output", "json"]).json()["run_id"], run_id.as_str());

    let status = p.run(["status", "local"]).expect_exit(0);
    assert!(status.stdout.contains("available") && status.stdout.contains(&run_id), "{status:?}");
    assert!(status.stdout.contains("migration  none running"), "{status:?}");

    let plan = p.ferry(&["plan", "local", "--output", "json"]).json();
    let planned: Vec<&str> =
        plan["plan"]["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let journal = p.ferry(&["runs", "show", &run_id, "--output", "json"]).json();
    let ran: Vec<&str> = journal["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(planned, ran, "plan shows the steps deploy runs");
    let human = p.ferry(&["plan", "local"]);
    assert!(
        human.stdout.contains("ferry deploy local will:")
            && human.stdout.contains("5. restore (only if migrate or verify fails)"),
        "{human:?}"
    );
}

#[test]
fn config_validate_is_offline_and_lists_environments() {
    let p = Project::new(
        "project = \"t\"\n[env.prod]\nprovider = \"aws\"\nstack = \"s\"\ndatabase = { cluster = \"c\" }\nmigration = { cluster = \"${output:ClusterName}\", task_definition = \"td\", subnets = \"${output:PrivateSubnetIds}\", security_groups = [\"sg\"], container = \"m\", command = [\"x\"] }\n[env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./a.db\" }\nmigration = { command = [\"true\"] }\n",
    );
    let r = p
        .run(["config", "validate"])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env_remove("AWS_ACCESS_KEY_ID")
        .expect_exit(0);
    assert!(r.stdout.contains("valid (2 environments: local, prod)"), "{r:?}");
    let plan = p.run(["plan", "prod"]).env_remove("AWS_REGION").env_remove("AWS_DEFAULT_REGION").output();
    // Without a region the stack outputs cannot be read: plan still prints the
    // plan, and exits 2 as deploy would.
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("not read (no AWS region") && plan.stdout.contains("ClusterName, PrivateSubnetIds"),
        "{plan:?}"
    );
    assert!(plan.stdout.contains("ferry deploy prod would exit 2: the outputs of stack s cannot be read"), "{plan:?}");
}

#[test]
fn config_is_found_through_flag_env_and_parent_directories() {
    let p = Project::sqlite("true\n", "");
    let sub = p.path().join("deep/er");
    std::fs::create_dir_all(&sub).unwrap();
    let r: common::Run = std::process::Command::new(common::FERRY)
        .args(["config", "validate"])
        .current_dir(&sub)
        .env_remove("FERRY_CONFIG")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:?}");
    let r: common::Run = std::process::Command::new(common::FERRY)
        .args(["config", "validate"])
        .current_dir(std::env::temp_dir())
        .env("FERRY_CONFIG", p.path().join("ferry.toml"))
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn a_snapshot_a_failed_run_needs_is_protected_until_it_is_restored() {
    let p = Project::sqlite(
        "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders\"\nexit 1\n",
        "restore_on_failure = \"never\"",
    );
    let r = p.run(["deploy", "local", "--output", "json"]).expect_exit(5);
    let snap = r.json()["snapshot"]["id"].as_str().unwrap().to_string();
    let r = p.run(["snapshot", "delete", "local", &snap]).expect_exit(2);
    assert!(r.stderr.contains("needs attention"), "{r:?}");
    let r = p.run(["snapshot", "prune", "local", "--keep", "0"]).expect_exit(0);
    assert!(r.stderr.contains(&format!("keeping snapshot {snap}")), "{r:?}");
    // The next command the run named brings the data back (restoring the run's
    // own snapshot settles it: confirmed with --yes); then the snapshot is free.
    assert_eq!(p.ferry(&["restore", "local", "--snapshot", &snap, "--yes"]).code, 0);
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "5");
    p.run(["snapshot", "delete", "local", &snap]).expect_exit(0);
}

#[test]
fn db_exec_reports_whether_anything_was_applied() {
    let p = Project::sqlite("true\n", "");
    let r = p.ferry(&["db", "exec", "local", "--sql", "SELEC nonsense"]);
    assert_eq!(r.code, 3, "nothing ran: {r:?}");
    let r = p.run(["db", "exec", "local", "--sql", "DELETE FROM orders WHERE id = 1; DELETE FROM nope"]).expect_exit(5);
    assert!(r.stderr.contains("the statement before it was applied"), "{r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "4");
}

fn restore_at_a_terminal(p: &Project, answer: &str) -> crate::common::Run {
    common::at_a_terminal(&p.command(&["restore", "local", "--snapshot", "latest"]), &[answer])
}

#[test]
fn a_restore_asks_at_a_terminal_and_refuses_without_one_unless_yes() {
    let p = Project::sqlite(SUCCEEDS, "");
    p.run(["deploy", "local"]).expect_exit(0);
    p.sql("DELETE FROM orders");
    let runs = std::fs::read_dir(p.runs_dir()).expect("runs").count();
    let before = p.files();

    let r = p.ferry(&["restore", "local", "--snapshot", "latest"]);
    assert_eq!(r.code, 2, "no terminal and no --yes: {r:?}");
    assert!(r.stderr.contains("pass --yes to restore without a terminal; nothing was done"), "{r:?}");
    assert!(r.stderr.contains("from snapshot "), "the plan is shown before refusing: {r:?}");

    let no = restore_at_a_terminal(&p, "n");
    assert_eq!(no.code, 2, "{no:?}");
    assert!(no.stdout.contains("Restore as described above? [y/N]"), "the question at the terminal: {no:?}");
    assert!(no.stdout.contains("not confirmed; nothing was done"), "{no:?}");
    assert_eq!(p.files(), before, "answered no: nothing created or renamed");
    assert_eq!(std::fs::read_dir(p.runs_dir()).expect("runs").count(), runs, "and no run recorded");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "0");

    let yes = restore_at_a_terminal(&p, "y");
    assert_eq!(yes.code, 0, "{yes:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "5", "answered yes: restored");
}
