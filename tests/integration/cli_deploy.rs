//! `ferry deploy` on the local provider, through the real executable: the
//! success and restore paths, timeouts, signals, SIGKILL and resume, GitHub
//! Actions output, and secrets.

use std::time::Duration;

use crate::common::{self, Project, eventually};

/// A migration that changes the schema and deletes rows, then fails.
const FAILS_HALFWAY: &str = r#"echo "step 1: add column"
"$FERRY_BIN" db exec "$FERRY_ENV" --sql "ALTER TABLE customers ADD COLUMN email TEXT; DELETE FROM orders WHERE total < 50;"
echo "step 2: backfill" >&2
"$FERRY_BIN" db exec "$FERRY_ENV" --sql "UPDATE customers SET nickname = name"
"#;

const SUCCEEDS: &str = r#"echo "adding email"
"$FERRY_BIN" db exec "$FERRY_ENV" --sql "ALTER TABLE customers ADD COLUMN email TEXT"
"#;

#[test]
fn a_good_migration_exits_0_with_a_tagged_snapshot_and_the_schema_changed() {
    let p = Project::sqlite(SUCCEEDS, "");
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "succeeded");
    assert_eq!(rec["exit_code"], 0);
    assert_eq!(rec["snapshot"]["status"], "available");
    assert_eq!(rec["task"]["exit_code"], 0);
    let steps: Vec<(&str, &str)> = rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("preflight", "succeeded"),
            ("snapshot", "succeeded"),
            ("migrate", "succeeded"),
            ("verify", "skipped"),
            ("restore", "skipped")
        ]
    );
    assert_eq!(p.only_run(), rec, "the journal holds the same record");
    assert!(r.stderr.contains("| adding email"), "task output streamed: {r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'")[1], "1");

    let snaps = p.ferry(&["snapshot", "list", "local", "--output", "json"]).json();
    let snap = &snaps["snapshots"][0];
    assert_eq!(snap["id"], rec["snapshot"]["id"]);
    assert_eq!(snap["tags"]["ferry:run-id"], rec["run_id"]);
    assert_eq!(snap["tags"]["ferry:env"], "local");
    assert_eq!(snap["tags"]["ferry:purpose"], "pre-deploy");
}

#[test]
fn a_migration_failing_halfway_is_restored_with_every_row_and_the_failed_copy_kept() {
    let p = Project::sqlite(FAILS_HALFWAY, "");
    let before = p.sql("SELECT id, customer_id, total FROM orders ORDER BY id");
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    assert_ne!(rec["task"]["exit_code"], 0);
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap().to_string();
    assert!(failed.ends_with(".db") && failed.contains("/app-failed-"), "{failed}");
    assert!(rec["next"].as_str().unwrap().starts_with("ferry logs local --run "), "{rec}");

    // The original path holds the pre-deploy schema and every row.
    assert_eq!(p.sql("SELECT id, customer_id, total FROM orders ORDER BY id"), before);
    assert_eq!(p.sql("SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'")[1], "0");
    // The failed database is kept as the migration left it.
    let kept = std::process::Command::new(common::FERRY)
        .args(["db", "exec", "failed", "--sql", "SELECT count(*) FROM orders"])
        .current_dir(p.path())
        .env("FERRY_CONFIG", {
            let cfg = p.path().join("failed.toml");
            std::fs::write(
                &cfg,
                format!("project = \"t\"\n[env.failed]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://{failed}\" }}\nmigration = {{ command = [\"true\"] }}\n"),
            )
            .unwrap();
            cfg
        })
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&kept.stdout),
        "count(*)\n1\n",
        "the failed copy still has the migration's deletes"
    );
    assert!(r.stderr.contains("step 2: backfill"), "stderr of the task streamed: {r:?}");
}

#[test]
fn restore_on_failure_never_exits_5_naming_the_restore_command() {
    let p = Project::sqlite(FAILS_HALFWAY, "restore_on_failure = \"never\"");
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 5, "{r:?}");
    let rec = r.json();
    let snap = rec["snapshot"]["id"].as_str().unwrap();
    assert_eq!(rec["next"], format!("ferry restore local --snapshot {snap}"));
    assert!(r.stderr.contains(&format!("next:     ferry restore local --snapshot {snap}")), "{r:?}");
    // The next command does what it says (confirmed: it settles the run).
    let r = p.ferry(&["restore", "local", "--snapshot", snap, "--output", "json", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "5");
}

#[test]
fn a_migration_past_its_timeout_is_stopped_and_restored() {
    let p = Project::sqlite(
        "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"DELETE FROM orders\"\necho 'long backfill'\nsleep 60\n",
        "timeouts = { migration = \"3s\" }",
    );
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("did not finish within 3s"), "{rec}");
    assert!(rec["task"]["stopped_reason"].as_str().unwrap().contains("stopped by ferry"), "{rec}");
    assert_eq!(p.sql("SELECT count(*) FROM orders")[1], "5");
}

#[test]
fn a_command_that_cannot_start_exits_3_with_the_reason() {
    let p = Project::new(
        "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./app.db\" }\nmigration = { command = [\"./no-such-migrator\"] }\n",
    );
    p.write("seed.sql", common::SEED);
    assert_eq!(p.ferry(&["db", "exec", "local", "--create", "--file", "seed.sql"]).code, 0);
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "aborted");
    assert!(
        rec["error"].as_str().unwrap().contains("could not start")
            && rec["error"].as_str().unwrap().contains("no-such-migrator"),
        "{rec}"
    );
    assert!(rec["state"].as_str().unwrap().starts_with("nothing was changed"), "{rec}");
}

#[test]
fn a_missing_database_aborts_in_preflight() {
    let p = Project::sqlite(SUCCEEDS, "");
    std::fs::remove_file(p.path().join("app.db")).unwrap();
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn sigkill_during_the_migration_then_resume_finishes_the_same_migration_once() {
    let p = Project::sqlite(
        "echo started >> attempts.txt\nsleep 3\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"ALTER TABLE customers ADD COLUMN email TEXT\"\necho finished >> attempts.txt\n",
        "",
    );
    let mut child = p.command(&["deploy", "local"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()), "migration started");
    child.kill().unwrap(); // SIGKILL: ferry records nothing more
    child.wait().unwrap();
    let rec = p.only_run();
    assert_eq!(rec["outcome"], "running", "journal of a killed run: {rec}");
    assert_eq!(rec["steps"][2]["status"], "running");
    let run_id = rec["run_id"].as_str().unwrap().to_string();

    // The killed ferry still holds the lock: a person removes it, then resumes.
    assert_eq!(p.ferry(&["resume", &run_id]).code, 3);
    assert_eq!(p.ferry(&["unlock", "local", "--yes"]).code, 0);
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["outcome"], "succeeded");
    let attempts = std::fs::read_to_string(p.path().join("attempts.txt")).unwrap();
    assert_eq!(attempts, "started\nfinished\n", "the migration ran once, to its end");
    // Resuming a finished run reports it again.
    let r = p.ferry(&["resume", &run_id]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("already finished"), "{r:?}");
}

#[test]
fn sigterm_and_sigint_record_interrupted_exit_130_and_leave_the_migration_running() {
    for signal in [nix::sys::signal::Signal::SIGTERM, nix::sys::signal::Signal::SIGINT] {
        let p = Project::sqlite("echo started > started.txt\nsleep 2\necho finished > finished.txt\n", "");
        let child = p.command(&["deploy", "local"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
        assert!(eventually(Duration::from_secs(20), || p.path().join("started.txt").exists()));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{signal}: {}", String::from_utf8_lossy(&out.stderr));
        let rec = p.only_run();
        assert_eq!(rec["outcome"], "interrupted");
        assert_eq!(rec["steps"][2]["status"], "interrupted");
        assert!(rec["state"].as_str().unwrap().contains("may still be running"), "{rec}");
        let run_id = rec["run_id"].as_str().unwrap().to_string();
        assert_eq!(rec["next"], format!("ferry resume {run_id}"));
        // The migration was not killed halfway.
        assert!(
            eventually(Duration::from_secs(20), || p.path().join("finished.txt").exists()),
            "{signal}: migration finished"
        );
        let r = p.ferry(&["resume", &run_id]);
        assert_eq!(r.code, 0, "{signal}: {r:?}");
    }
}

#[test]
fn github_actions_get_groups_an_error_annotation_and_a_step_summary() {
    let p = Project::sqlite(FAILS_HALFWAY, "");
    let summary = p.path().join("summary.md");
    let out = p
        .command(&["deploy", "local"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap();
    let r: common::Run = out.into();
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("::group::migration logs"), "{r:?}");
    assert!(r.stderr.contains("::endgroup::"), "{r:?}");
    assert!(r.stderr.contains("::error title=ferry migrate::the migration exited with code"), "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("### ferry deploy local failed; the database was restored from the snapshot (exit 4)"), "{md}");
    assert!(md.contains("| migrate | FAILED |"), "{md}");
    assert!(md.contains("- failed database kept as `"), "{md}");
}

#[test]
fn secrets_never_reach_output_or_journal() {
    let p = Project::sqlite(
        "echo \"token is $API_TOKEN\"\necho \"connecting to postgres://app:hunter2@db.internal/app\" >&2\nexit 1\n",
        "migration = { command = [\"sh\", \"migrate.sh\"], env = { API_TOKEN = { value = \"tok-9f8e7d6c\", secret = true }, REGION = \"eu\" } }",
    );
    let summary = p.path().join("summary.md");
    let r: common::Run = p
        .command(&["deploy", "local", "--output", "json"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 4, "{r:?}");
    assert!(r.stderr.contains("token is ***"), "{r:?}");
    assert!(r.stderr.contains("postgres://app:***@db.internal/app"), "{r:?}");
    let journal =
        std::fs::read_to_string(p.runs_dir().join(format!("{}.json", r.json()["run_id"].as_str().unwrap()))).unwrap();
    let md = std::fs::read_to_string(&summary).unwrap();
    let plan = p.ferry(&["plan", "local"]);
    let logs = p.ferry(&["logs", "local"]);
    assert!(logs.stdout.contains("token is ***"), "{logs:?}");
    for (what, text) in [
        ("output", &r.stderr),
        ("json", &r.stdout),
        ("journal", &journal),
        ("summary", &md),
        ("plan", &plan.stdout),
        ("logs", &logs.stdout),
    ] {
        assert!(!text.contains("tok-9f8e7d6c"), "secret in {what}: {text}");
        assert!(!text.contains("hunter2"), "URL password in {what}: {text}");
    }
    assert!(plan.stdout.contains("API_TOKEN=***") && plan.stdout.contains("REGION=eu"), "{plan:?}");
    // Nothing ferry keeps on disk holds them either (journal, task log, snapshots' metadata).
    for file in files_under(&p.path().join(".ferry")) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        assert!(!text.contains("tok-9f8e7d6c") && !text.contains("hunter2"), "secret in {}: {text}", file.display());
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn health_verify_gates_the_deploy() {
    // A tiny HTTP server answering 200.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50) {
            let Ok(mut s) = stream else { continue };
            use std::io::{Read, Write};
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    let p = Project::sqlite(
        SUCCEEDS,
        &format!("health = {{ url = \"http://127.0.0.1:{port}/readyz\", timeout = \"5s\" }}"),
    );
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json()["steps"][3]["detail"].as_str().unwrap().contains("answered 200"), "{r:?}");

    // Nothing listening: verify fails, the restore runs, verify fails again → a human.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let p = Project::sqlite(
        SUCCEEDS,
        &format!("health = {{ url = \"http://127.0.0.1:{closed}/readyz\", timeout = \"2s\" }}"),
    );
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 5, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["steps"][3]["status"], "failed");
    assert!(rec["error"].as_str().unwrap().contains("verify failed"), "{rec}");
    assert_eq!(p.sql("SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'")[1], "0", "restored");
}
