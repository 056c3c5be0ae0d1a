//! Run records and the environment lock in S3 (the emulator's S3 with
//! conditional writes), seen from several checkouts as CI runners and laptops
//! see them: a run killed on one machine is resumed from another, N deploys at
//! once from N checkouts let exactly one through, and an unreachable backend
//! stops a deploy before anything changes.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::emulator::{Emulator, Project};
use crate::common::{self, eventually};

const BUCKET: &str = "acme-ferry-state";

fn make_bucket(emu: &Emulator) {
    let out = Command::new(&emu.python)
        .args([
            "-c",
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             s3.create_bucket(Bucket=sys.argv[2])\n\
             s3.put_bucket_versioning(Bucket=sys.argv[2], VersioningConfiguration={'Status': 'Enabled'})",
        ])
        .args([&emu.endpoint, BUCKET])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A project of the emulator's scenario whose state is in S3 and whose
/// migration is `command`.
fn project(emu: &Emulator, command: &[&str]) -> (serde_json::Value, Project) {
    make_bucket(emu);
    let s = emu.setup(false);
    let p = emu.project(&s, command, &format!("state = \"s3://{BUCKET}/ferry/team\""));
    (s, p)
}

fn runs(p: &Project) -> Vec<serde_json::Value> {
    let r = p.ferry(&["runs", "list", "--env", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.json()["runs"].as_array().unwrap().clone()
}

#[test]
fn a_deploy_killed_on_one_machine_is_seen_unlocked_and_resumed_from_a_fresh_checkout() {
    let Some(emu) = Emulator::start() else { return };
    let (_, runner) = project(&emu, &["sh", "-c", "echo migrating; sleep 6; echo migrated"]);
    let laptop = runner.checkout();
    let mut child = runner.command(&["deploy", "stage"]).stderr(Stdio::null()).spawn().unwrap();
    // The laptop sees the run from S3 alone, once its task has started.
    assert!(
        eventually(Duration::from_secs(60), || runs(&laptop).iter().any(|r| !r["task"].is_null())),
        "the run and its task are visible from another checkout"
    );
    child.kill().unwrap(); // the CI runner dies
    child.wait().unwrap();
    let run_id = runs(&laptop)[0]["run_id"].as_str().unwrap().to_string();
    assert!(!runner.path().join(".ferry/runs").exists(), "nothing of the run is kept on the runner's disk");

    let r = laptop.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("(run {run_id})")), "the lock names the dead run: {r:?}");
    let status = laptop.ferry(&["status", "stage"]);
    assert!(status.stdout.contains("lock       held") && status.stdout.contains(&run_id), "{status:?}");
    assert_eq!(laptop.ferry(&["unlock", "stage", "--yes", "--reason", "runner gone"]).code, 0);
    let r = laptop.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["outcome"], "succeeded");
    assert_eq!(r.json()["task"]["exit_code"], 0, "the task the runner started was followed to its end");
    let shown = runner.ferry(&["runs", "show", &run_id, "--output", "json"]);
    assert_eq!(shown.json()["outcome"], "succeeded", "the runner's checkout sees the same record");
}

#[test]
fn eight_deploys_at_once_from_eight_checkouts_one_runs_and_seven_exit_3_naming_it() {
    let Some(emu) = Emulator::start() else { return };
    let (_, first) = project(&emu, &["sh", "-c", "sleep 3"]);
    let checkouts: Vec<Project> = (0..8).map(|_| first.checkout()).collect();
    let at = Instant::now() + Duration::from_millis(500);
    let children: Vec<_> = checkouts
        .iter()
        .map(|p| {
            let mut c = p.command(&["deploy", "stage"]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            c.spawn().unwrap()
        })
        .collect();
    let results: Vec<common::Run> = children.into_iter().map(|c| c.wait_with_output().unwrap().into()).collect();
    assert_eq!(results.iter().filter(|r| r.code == 0).count(), 1, "{results:#?}");
    let refused: Vec<_> = results.iter().filter(|r| r.code == 3).collect();
    assert_eq!(refused.len(), 7, "{results:#?}");
    assert!(refused.iter().all(|r| r.stderr.contains("is locked by `ferry deploy` (run stage-")), "{refused:#?}");
    assert_eq!(runs(&first).len(), 1, "one run recorded");
    let snaps = first.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    let ours =
        snaps["snapshots"].as_array().unwrap().iter().filter(|s| s["tags"]["ferry:purpose"] == "pre-deploy").count();
    assert_eq!(ours, 1, "one snapshot: {snaps}");
}

#[test]
fn an_unreachable_state_backend_stops_a_deploy_before_any_change() {
    let Some(emu) = Emulator::start() else { return };
    let (_, p) = project(&emu, &["sh", "-c", "true"]);
    // An endpoint that refuses is a configuration to fix (exit 2), said in one line.
    let r = p.run(["deploy", "stage"]).env("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9").expect_exit(2);
    assert!(r.stderr.contains("refused the connection") && r.stderr.contains("nothing was done"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    let snaps = p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    assert!(
        snaps["snapshots"].as_array().unwrap().iter().all(|s| s["tags"]["ferry:purpose"] != "pre-deploy"),
        "no snapshot: {snaps}"
    );
}

#[test]
fn state_outside_what_the_policy_grants_is_one_line_naming_the_action_exit_2() {
    let Some(emu) = Emulator::start() else { return };
    let (_, p) = project(&emu, &["sh", "-c", "true"]);
    emu.expect_denials();
    // ferry's policy lists the state bucket under `ferry/` only.
    let elsewhere = format!("s3://{BUCKET}/other/team");
    for args in [&["runs", "list"][..], &["unlock", "stage", "--yes"], &["deploy", "stage"]] {
        let r = p.run(args.iter().copied()).env("FERRY_STATE", &elsewhere).expect_exit(2);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {r:?}");
        assert!(r.stderr.contains("access denied to s3:ListBucket on acme-ferry-state (prefix other/team/)"), "{r:?}");
        assert!(r.stderr.starts_with(&format!("error: cannot read ferry's state in {elsewhere}: ")), "{r:?}");
    }
    // One unretried request each, and the only ones denied.
    let denied = emu.denied();
    assert_eq!(denied.len(), 3, "{denied:?}");
    assert!(denied.iter().all(|d| d["action"] == "s3:ListBucket"), "{denied:?}");
}

/// The ids of the emulator's clusters.
fn cluster_ids(emu: &Emulator) -> Vec<String> {
    match emu.get("/_emulator/clusters") {
        serde_json::Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("clusters: {other}"),
    }
}

/// A failing deploy SIGKILLed in the middle of its restore's swap: after the
/// original was renamed aside, before the restored database took its id.
fn killed_mid_swap(emu: &Emulator) -> (String, Project, String) {
    make_bucket(emu);
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let runner = emu.project(&s, &common::emulator::strs(&cmd), &format!("state = \"s3://{BUCKET}/ferry/team\""));
    runner.failing_migration();
    let cluster = s["cluster"].as_str().unwrap().to_string();
    emu.configure(serde_json::json!({ "rename_seconds": 6 }));
    let mut child = runner.command(&["deploy", "stage"]).stderr(Stdio::null()).spawn().unwrap();
    let aside = format!("{cluster}-failed-");
    assert!(
        eventually(Duration::from_secs(240), || cluster_ids(emu).iter().any(|c| c.starts_with(&aside))),
        "the original was renamed aside"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cluster_ids(emu).contains(&cluster), "killed with the original id free");
    let laptop = runner.checkout();
    let run_id = runs(&laptop)[0]["run_id"].as_str().unwrap().to_string();
    (cluster, laptop, run_id)
}

#[test]
fn a_restore_killed_mid_swap_is_resumed_from_a_fresh_checkout_with_only_the_s3_state() {
    let Some(emu) = Emulator::start() else { return };
    let (cluster, laptop, run_id) = killed_mid_swap(&emu);
    assert_eq!(laptop.ferry(&["unlock", "stage", "--yes"]).code, 0);
    let r = laptop.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(r.json()["restore"]["restored_cluster"], cluster.as_str());
    let orders = emu.query(&cluster, "SELECT count(*) FROM orders");
    assert_eq!(orders, serde_json::json!([[7]]), "the original id holds the pre-deploy data");
}

#[test]
fn with_the_record_gone_too_status_names_the_half_swap_and_restore_finish_completes_it() {
    let Some(emu) = Emulator::start() else { return };
    let (cluster, laptop, run_id) = killed_mid_swap(&emu);
    let out = Command::new(&emu.python)
        .args([
            "-c",
            "import sys, boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
             s3.delete_object(Bucket=sys.argv[2], Key=sys.argv[3])",
        ])
        .args([&emu.endpoint, BUCKET, &format!("ferry/team/runs/{run_id}.json")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(laptop.ferry(&["unlock", "stage", "--yes"]).code, 0);
    // Let the interrupted rename of the original settle in the emulator.
    std::thread::sleep(Duration::from_secs(4));
    let status = laptop.ferry(&["status", "stage"]);
    assert!(status.stdout.contains(&format!("the id {cluster} is free")), "{status:?}");
    assert!(status.stdout.contains("stopped halfway through its swap"), "{status:?}");
    assert!(status.stdout.contains("next: ferry restore stage --finish"), "{status:?}");
    let r = laptop.ferry(&["restore", "stage", "--finish", "--yes", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(cluster_ids(&emu).contains(&cluster), "the restored database has the original id again");
    assert_eq!(emu.query(&cluster, "SELECT count(*) FROM orders"), serde_json::json!([[7]]));
    assert!(cluster_ids(&emu).iter().any(|c| c.starts_with(&format!("{cluster}-failed-"))), "the original is kept");
    let again = laptop.ferry(&["restore", "stage", "--finish", "--yes"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stderr.contains("nothing to finish"), "{again:?}");
}

#[test]
fn a_deploy_killed_in_its_snapshot_wait_is_resumed_from_a_fresh_checkout_and_migrates_once() {
    let Some(emu) = Emulator::start() else { return };
    let (_, runner) = project(&emu, &["sh", "-c", "echo migrated"]);
    emu.configure(serde_json::json!({ "snapshot_seconds": 16 }));
    let laptop = runner.checkout();
    let mut child = runner.command(&["deploy", "stage"]).stderr(Stdio::null()).spawn().unwrap();
    assert!(
        eventually(Duration::from_secs(60), || {
            runs(&laptop).iter().any(|r| r["snapshot"]["status"] == "creating" && r["task"].is_null())
        }),
        "the run is waiting for its snapshot"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = runs(&laptop)[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(laptop.ferry(&["unlock", "stage", "--yes"]).code, 0);
    let r = laptop.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["snapshot"]["status"], "available", "the same snapshot, waited for to the end");
    assert_eq!(rec["task"]["exit_code"], 0);
    let snaps = laptop.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    let ours =
        snaps["snapshots"].as_array().unwrap().iter().filter(|s| s["tags"]["ferry:purpose"] == "pre-deploy").count();
    assert_eq!(ours, 1, "one snapshot, not a second one: {snaps}");
}
