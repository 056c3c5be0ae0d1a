//! End to end with sparse answers: the real `ferry` binary against the emulator
//! (tests/emulator/) with its sparse-answer switches on, as a plain moto and an
//! eventually consistent App Runner answer: no `startedAt`, `desiredStatus`
//! left RUNNING on stopped tasks, no DescribeAccountAttributes, new App Runner
//! operations listed only seconds after they started.
//!
//! The same decisions as with full answers: a failing migration is restored
//! (exit 4), a good one succeeds (exit 0), its stopped task blocks nothing,
//! pause and resume finish, and a deployment that lands during a restore
//! leaves the service paused until someone decides.
//!
//! Needs FERRY_EMULATOR_PYTHON and FERRY_TEST_PG_URL (scripts/test sets both).

use crate::common::emulator::{Emulator, strs};
use serde_json::json;

/// Every sparse switch on (tests/emulator/settings.py).
fn sparse(emu: &Emulator) {
    emu.configure(json!({
        "sparse_no_started_at": true,
        "sparse_desired_running": true,
        "sparse_no_account_attributes": true,
        "late_operation_seconds": 4
    }));
}

fn orders(emu: &Emulator, cluster: &str) -> serde_json::Value {
    emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id")
}

#[test]
fn a_failing_deploy_with_sparse_answers_is_restored() {
    let Some(emu) = Emulator::start() else { return };
    sparse(&emu);
    let s = emu.setup(true);
    let cluster = s["cluster"].as_str().unwrap();
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    p.failing_migration();
    let before = orders(&emu, cluster);

    // The quota cannot be read: a warning, not a refusal.
    let plan = p.ferry(&["plan", "stage"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(plan.stdout.contains("warning  the snapshot quota was not checked"), "{plan:?}");
    assert!(plan.stdout.contains("ferry deploy stage can start."), "{plan:?}");

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "a migration that ran and exited 1 is restored, startedAt or not: {r:?}");
    let rec = r.json();
    assert_eq!(rec["task"]["exit_code"], 1);
    assert_eq!(rec["error"], "the migration exited with code 1 (Essential container in task exited)");
    assert!(r.stderr.contains("warning: the snapshot quota was not checked"), "{}", r.stderr);
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), json!([["0002_add_email"]]));
    // Pause and resume finished although their operations were listed late.
    assert_eq!(emu.service(&s)["status"], "RUNNING");
}

#[test]
fn a_good_deploy_with_sparse_answers_succeeds_and_its_stopped_task_blocks_nothing() {
    let Some(emu) = Emulator::start() else { return };
    sparse(&emu);
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let task = r.json()["task"]["arn"].as_str().unwrap().to_string();

    // The task is STOPPED but still listed under desiredStatus RUNNING.
    let listed = emu.get("/_emulator/tasks");
    assert_eq!(listed[&task]["lastStatus"], "STOPPED", "{listed}");
    let status = p.ferry(&["status", "stage"]);
    assert!(status.stdout.contains("migration  none running"), "{status:?}");
    let plan = p.ferry(&["plan", "stage"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let again = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(again.code, 0, "{again:?}");
}

#[test]
fn service_pause_and_resume_finish_when_their_operations_are_listed_late() {
    let Some(emu) = Emulator::start() else { return };
    sparse(&emu);
    let s = emu.setup(true);
    let p = emu.project(&s, &["true"], "");
    let paused = p.ferry(&["service", "pause", "stage"]);
    assert_eq!(paused.code, 0, "{paused:?}");
    assert!(paused.stdout.contains("PAUSED"), "{paused:?}");
    let resumed = p.ferry(&["service", "resume", "stage"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(emu.service(&s)["status"], "RUNNING");
}

#[test]
fn an_app_runner_deployment_that_fails_with_late_listings_is_restored_and_its_logs_are_its_own() {
    let Some(emu) = Emulator::start() else { return };
    sparse(&emu);
    let s = emu.setup_with(true, true);
    let cluster = s["cluster"].as_str().unwrap();
    let before = orders(&emu, cluster);
    emu.push_image(&s, json!({"revision": "head", "fail": true}));
    let toml = format!(
        "project = \"{project}\"\n[env.stage]\nregion = \"us-east-1\"\ndatabase = {{ cluster = \"{cluster}\" }}\n\
         timeouts = {{ snapshot = \"2m\", migration = \"2m\", restore = \"3m\", service = \"1m\" }}\n\
         migration = {{ runner = \"apprunner\" }}\nservice = {{ apprunner_arn = \"{arn}\" }}\n",
        arn = s["service_arn"].as_str().unwrap(),
        project = s["name"].as_str().unwrap(),
    );
    let p = emu.project_with(&s, &toml);

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    let op = rec["task"]["arn"].as_str().unwrap();
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("ended ROLLBACK_SUCCEEDED"), "{rec}");
    assert_eq!(error.matches(op).count(), 1, "the deployment is named once: {error}");
    assert_eq!(orders(&emu, cluster), before);
    assert_eq!(emu.service(&s)["status"], "RUNNING");

    // Its logs: its own service events, none of the operations before or after it.
    let logs = p.ferry(&["logs", "stage", "--run", rec["run_id"].as_str().unwrap()]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains(&format!("START_DEPLOYMENT operation {op} started")), "{logs:?}");
    assert!(logs.stdout.contains("app start-up failed"), "{logs:?}");
    for other in ["CREATE_SERVICE", "PAUSE_SERVICE", "RESUME_SERVICE"] {
        assert!(!logs.stdout.contains(other), "{other} events in the deployment's logs: {}", logs.stdout);
    }
}

#[test]
fn a_restore_that_waits_out_a_deployment_that_succeeds_leaves_the_service_paused_until_asked() {
    let Some(emu) = Emulator::start() else { return };
    sparse(&emu);
    let s = emu.setup(true);
    let cluster = s["cluster"].as_str().unwrap();
    let p = emu.project(&s, &["true"], "");
    // Inside the policy's DatabaseNamePattern (<name>-*), as a snapshot id must be.
    let id = format!("{}-before-the-release", s["name"].as_str().unwrap());
    let snap = p.ferry(&["snapshot", "create", "stage", "--wait", "--id", &id]);
    assert_eq!(snap.code, 0, "{snap:?}");
    let before = orders(&emu, cluster);
    emu.query(cluster, "DELETE FROM orders RETURNING id");

    // Someone deploys a new version; the restore has to wait for it.
    emu.configure(json!({"service_seconds": 6}));
    emu.scenario(&["apprunner", "--arn", s["service_arn"].as_str().unwrap(), "--call", "start_deployment"]);
    // A person at a terminal says yes to the restore and no to resuming the
    // service under the version that landed meanwhile (`--yes` would resume it).
    let r = crate::common::at_a_terminal(&p.command(&["restore", "stage", "--snapshot", &id]), &["y", "n"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stdout.contains("Resume the App Runner service now? [y/N]"), "{r:?}");
    let rec: serde_json::Value = std::fs::read_dir(p.path().join(".ferry/runs"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .filter_map(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .find(|r| r["command"] == "restore")
        .expect("the restore's record");
    assert_eq!(rec["next"], "ferry service resume stage");
    assert!(rec["state"].as_str().unwrap().contains("App Runner service is PAUSED"), "{rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("START_DEPLOYMENT operation") && error.contains("image "), "{error}");
    assert_eq!(emu.service(&s)["status"], "PAUSED");
    assert_eq!(orders(&emu, cluster), before, "the database itself is restored");

    let resumed = p.ferry(&["service", "resume", "stage"]);
    assert_eq!(resumed.code, 0, "{resumed:?}");
    assert_eq!(emu.service(&s)["status"], "RUNNING");
}
