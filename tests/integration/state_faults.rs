//! The S3 state backend under faults real networks produce, through
//! tests/emulator/fault_proxy.py: an answer lost after S3 applied the lock's
//! conditional write (a 500, a dropped connection) is read back and kept as
//! ferry's own; a listing of `runs/` cut short is an error, never a shorter
//! list; and a lock's age comes from S3's clock, not its holder's.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::common::emulator::{Emulator, Project};
use crate::common::eventually;
use crate::common::fault_proxy::FaultProxy;

/// The state bucket and prefix the scenario's policy grants (tests/e2e/scenario.py's
/// `--state-bucket` / `--state-prefix` defaults); each test keeps its state under a
/// prefix of its own below it.
const BUCKET: &str = "acme-ferry-state";

/// Run a boto3 snippet against the emulator's S3: `s3`, `bucket` and `argv` are set.
fn s3(emu: &Emulator, code: &str, args: &[&str]) -> String {
    let script = format!(
        "import sys, json, boto3\n\
         s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         bucket = sys.argv[2]\nargv = sys.argv[3:]\n{code}"
    );
    let out = Command::new(&emu.python).args(["-c", &script, &emu.endpoint, BUCKET]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A project of the emulator's scenario with its state under a prefix of its
/// own in the bucket; returns the prefix too.
fn project(emu: &Emulator, command: &[&str]) -> (Project, String, String) {
    s3(emu, "try:\n    s3.create_bucket(Bucket=bucket)\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass", &[]);
    let s = emu.setup(false);
    let prefix = format!("ferry/team/{:08x}", fastrand::u32(..));
    let p = emu.project(&s, command, &format!("state = \"s3://{BUCKET}/{prefix}\""));
    (p, prefix, s["cluster"].as_str().unwrap().to_string())
}

/// The keys under `prefix/locks/` (the history of unlocks left out).
fn locks(emu: &Emulator, prefix: &str) -> Vec<String> {
    let out = s3(
        emu,
        "r = s3.list_objects_v2(Bucket=bucket, Prefix=argv[0] + '/locks/')\n\
         print(json.dumps([o['Key'] for o in r.get('Contents', []) if '/history/' not in o['Key']]))",
        &[prefix],
    );
    serde_json::from_str(&out).unwrap()
}

fn through(p: &Project, proxy: &FaultProxy, args: &[&str], extra: &[(&str, &str)]) -> crate::common::Run {
    let mut vars = vec![("AWS_ENDPOINT_URL_S3", proxy.endpoint.as_str())];
    vars.extend_from_slice(extra);
    p.ferry_with(args, &vars)
}

#[test]
fn a_lost_answer_to_the_lock_create_is_read_back_as_ours_and_the_deploy_runs() {
    let Some(emu) = Emulator::start() else { return };
    for action in ["500", "drop"] {
        let proxy = FaultProxy::start(&emu);
        let (p, prefix, _) = project(&emu, &["sh", "-c", "echo migrated"]);
        proxy.rules(json!([{
            "method": "PUT", "path": "/locks/[^/]+\\.json", "headers": {"If-None-Match": "\\*"},
            "action": action, "count": 1
        }]));
        let r = through(&p, &proxy, &["deploy", "stage", "--output", "json"], &[]);
        assert_eq!(r.code, 0, "{action}: {r:?}");
        assert_eq!(r.json()["outcome"], "succeeded", "{action}");
        assert_eq!(proxy.applied(), [1], "{action}: the create's answer was lost once");
        let creates: Vec<_> = proxy
            .log()
            .into_iter()
            .filter(|e| e["method"] == "PUT" && e["headers"]["if-none-match"] == "*")
            .map(|e| e["status"].clone())
            .collect();
        assert!(creates.len() >= 2 && creates.contains(&json!(412)), "{action}: the SDK retried into 412: {creates:?}");
        assert!(locks(&emu, &prefix).is_empty(), "{action}: no orphan lock");
    }
}

#[test]
fn a_lost_answer_to_a_heartbeat_keeps_the_lock_ours_and_released_at_the_end() {
    let Some(emu) = Emulator::start() else { return };
    for action in ["500", "drop"] {
        let proxy = FaultProxy::start(&emu);
        let (p, prefix, _) = project(&emu, &["sh", "-c", "echo migrating; sleep 6; echo migrated"]);
        // The second heartbeat's answer is lost (the first passes untouched).
        proxy.rules(json!([{
            "method": "PUT", "path": "/locks/[^/]+\\.json", "headers": {"If-Match": "."},
            "action": action, "skip": 1, "count": 1
        }]));
        let r = through(&p, &proxy, &["deploy", "stage"], &[("FERRY_TEST_HEARTBEAT_SECONDS", "1")]);
        assert_eq!(r.code, 0, "{action}: {r:?}");
        assert_eq!(proxy.applied(), [1], "{action}: a heartbeat's answer was lost: {:?}", proxy.log());
        assert!(!r.stderr.contains("no longer ferry's own"), "{action}: {r:?}");
        assert!(!r.stderr.contains("cannot release"), "{action}: {r:?}");
        let heartbeats =
            proxy.log().into_iter().filter(|e| e["method"] == "PUT" && e["headers"]["if-match"].is_string()).count();
        assert!(heartbeats >= 4, "{action}: the heartbeat went on after the lost answer ({heartbeats})");
        assert!(locks(&emu, &prefix).is_empty(), "{action}: no lock left behind");
    }
}

#[test]
fn a_cut_short_listing_of_runs_is_an_error_and_the_interrupted_run_still_blocks() {
    let Some(emu) = Emulator::start() else { return };
    let proxy = FaultProxy::start(&emu);
    let (p, prefix, _) = project(&emu, &["sh", "-c", "echo migrating; sleep 8; echo migrated"]);
    // A finished run, then one killed mid-migration (interrupted), whose key sorts after it.
    assert_eq!(p.ferry(&["deploy", "stage"]).code, 0);
    let mut child = p.command(&["deploy", "stage"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let runs_with_task = || {
        let r = p.ferry(&["runs", "list", "--env", "stage", "--output", "json"]);
        r.json()["runs"].as_array().unwrap().iter().filter(|r| !r["task"].is_null()).count() == 2
    };
    assert!(eventually(Duration::from_secs(60), runs_with_task), "the second run started its task");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(p.ferry(&["unlock", "stage", "--yes", "--reason", "runner gone"]).code, 0);
    // Its task ends by itself: nothing but the run's record shows it unfinished
    // (ECS's own "a migration task is running" preflight no longer guards).
    let all_stopped = || match emu.get("/_emulator/tasks") {
        serde_json::Value::Object(m) => m.values().all(|t| t["lastStatus"] == "STOPPED"),
        _ => false,
    };
    assert!(eventually(Duration::from_secs(60), all_stopped), "the interrupted run's task stopped");
    let snapshots =
        || p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json()["snapshots"].as_array().unwrap().len();
    let before = snapshots();

    // Every ListObjectsV2 of runs/ now arrives with its first key only, as a
    // well-formed-looking 200 whose Content-Length matches what is sent.
    proxy.rules(json!([{
        "method": "GET", "path": "list-type=2.*runs", "action": "truncate", "after": "</Contents>",
        "fix_length": true, "count": -1
    }]));
    let r = through(&p, &proxy, &["deploy", "stage"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot list"), "{r:?}");
    eprintln!("cut, Content-Length fixed: {}", r.stderr);
    assert!(proxy.applied()[0] >= 1, "the listing was cut");
    assert_eq!(snapshots(), before, "no snapshot taken");
    assert!(locks(&emu, &prefix).is_empty(), "no lock left");

    // The same cut, with the original Content-Length (the body ends early).
    let proxy2 = FaultProxy::start(&emu);
    proxy2.rules(json!([{
        "method": "GET", "path": "list-type=2.*runs", "action": "truncate", "after": "</Contents>",
        "fix_length": false, "count": -1
    }]));
    let r = through(&p, &proxy2, &["deploy", "stage"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    eprintln!("cut, Content-Length kept: {}", r.stderr);
    assert_eq!(snapshots(), before, "no snapshot taken");

    // Without the fault the interrupted run blocks, as it should.
    let r = p.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("unfinished run"), "{r:?}");
}

#[test]
fn a_holder_whose_clock_is_12_minutes_behind_is_not_called_probably_dead() {
    let Some(emu) = Emulator::start() else { return };
    let (p, prefix, cluster) = project(&emu, &["sh", "-c", "true"]);
    // A live holder on another machine whose clock is 12 minutes behind: its
    // lock object is fresh (S3 stamps it), its own timestamps are old.
    let then = (chrono::Utc::now() - chrono::Duration::minutes(12)).to_rfc3339();
    let holder = json!({
        "format_version": 1, "database": cluster, "env": "stage", "run_id": "stage-20260101T000000Z-abcd",
        "command": "deploy", "user": "ci", "host": "runner-elsewhere", "pid": 4242, "ferry_version": "0.1.0",
        "ci_url": null, "since": then, "heartbeat_at": then, "nonce": "someone-else"
    });
    s3(
        &emu,
        "s3.put_object(Bucket=bucket, Key=argv[0], Body=argv[1].encode())",
        &[&format!("{prefix}/locks/{cluster}.json"), &holder.to_string()],
    );
    let r = p.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("is locked by `ferry deploy` (run stage-20260101T000000Z-abcd)"), "{r:?}");
    assert!(!r.stderr.contains("probably dead"), "S3 wrote the lock just now: {r:?}");
    let status = p.ferry(&["status", "stage"]);
    assert!(status.stdout.contains("lock       held") && !status.stdout.contains("probably dead"), "{status:?}");

    // The same lock read when S3's clock says 20 minutes have passed since it
    // was written (the proxy moves the answer's Date): probably dead.
    let proxy = FaultProxy::start(&emu);
    proxy.rules(
        json!([{"method": "GET", "path": "/locks/[^/]+\\.json", "action": "shift_date", "seconds": 1200, "count": -1}]),
    );
    let r = through(&p, &proxy, &["deploy", "stage"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("its last heartbeat was 20m") && r.stderr.contains("probably dead"), "{r:?}");
}
