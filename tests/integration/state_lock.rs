//! The environment lock, unfinished runs, lost task state, private files and
//! secrets, with real ferry processes on the local provider: N deploys at the
//! same instant, SIGKILL at chosen journal states, files corrupted by hand.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, FERRY, Project, SEED, eventually};

/// A migration that marks its start, deletes rows (so a half-done migration is
/// visible), waits, then finishes.
const SLOW: &str = "echo started >> attempts.txt\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders WHERE total < 50\"\nsleep 2\necho finished >> attempts.txt\n";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Start `ferry deploy local` and SIGKILL it once the migration has started.
fn deploy_killed_in_migration(p: &Project) -> String {
    let mut child = p.command(&["deploy", "local"]).stderr(Stdio::null()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()), "migration started");
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let rec = p.only_run();
    assert_eq!(rec["outcome"], "running", "{rec}");
    rec["run_id"].as_str().unwrap().to_string()
}

#[test]
fn eight_simultaneous_deploys_from_eight_directories_one_runs_seven_are_refused_naming_the_holder() {
    let shared = tempfile::tempdir().unwrap();
    let db = shared.path().join("app.db");
    let state = shared.path().join("state");
    let projects: Vec<Project> = (0..8)
        .map(|_| {
            let p = Project::new(&format!(
                "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://{}\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"] }}\n",
                db.display()
            ));
            p.write("migrate.sh", "echo ran >> \"$MARKS\"\nsleep 2\n");
            p
        })
        .collect();
    projects[0].write("seed.sql", SEED);
    assert_eq!(projects[0].ferry(&["db", "exec", "local", "--create", "--file", "seed.sql", "--yes"]).code, 0);
    let marks = shared.path().join("marks.txt");
    let start = Instant::now() + Duration::from_millis(300);
    let children: Vec<_> = projects
        .iter()
        .map(|p| {
            let mut c = p.command(&["deploy", "local"]);
            c.env("FERRY_STATE", &state).env("MARKS", &marks).stdout(Stdio::piped()).stderr(Stdio::piped());
            std::thread::sleep(start.saturating_duration_since(Instant::now()));
            c.spawn().unwrap()
        })
        .collect();
    let results: Vec<common::Run> = children.into_iter().map(|c| c.wait_with_output().unwrap().into()).collect();
    let ok: Vec<_> = results.iter().filter(|r| r.code == 0).collect();
    let refused: Vec<_> = results.iter().filter(|r| r.code == 3).collect();
    assert_eq!(ok.len(), 1, "exactly one deploy runs: {results:#?}");
    assert_eq!(refused.len(), 7, "{results:#?}");
    for r in &refused {
        assert!(r.stderr.contains("is locked by `ferry deploy` (run local-"), "names the holder: {r:?}");
        assert!(r.stderr.contains("nothing was done"), "{r:?}");
    }
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "ran\n", "the migration ran once");
    let snapshots: usize = projects
        .iter()
        .map(|p| {
            std::fs::read_dir(p.path().join(".ferry/snapshots"))
                .map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(snapshots, 1, "one snapshot, by the one deploy that ran");
    let runs = std::fs::read_dir(state.join("runs")).unwrap().count();
    assert_eq!(runs, 1, "the refused deploys wrote no run");
    assert!(!state.join("locks").read_dir().unwrap().any(|_| true), "the lock is released at the end");
}

#[test]
fn a_killed_run_keeps_its_lock_until_unlock_then_blocks_deploys_until_resumed() {
    let p = Project::sqlite(SLOW, "");
    let run_id = deploy_killed_in_migration(&p);

    // Its lock is still there: only a person removes it.
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("(run {run_id})")) && r.stderr.contains("ferry unlock local"), "{r:?}");
    assert!(r.stderr.contains("probably dead"), "a dead local holder is called out: {r:?}");
    let plan = p.ferry(&["plan", "local"]);
    assert_eq!(plan.code, 3, "plan exits as deploy would start: {plan:?}");
    assert!(format!("{}{}", plan.stdout, plan.stderr).contains("is locked by"), "{plan:?}");
    let r = p.ferry(&["resume", &run_id]);
    assert_eq!(r.code, 3, "resume never takes over a lock by itself: {r:?}");
    let r = p.ferry(&["unlock", "local"]);
    assert_eq!(r.code, 2, "no TTY, no --yes: {r:?}");
    let r = p.ferry(&["unlock", "local", "--yes", "--reason", "runner killed"]);
    assert_eq!(r.code, 0, "{r:?}");
    let history: Vec<_> = std::fs::read_dir(p.path().join(".ferry/locks/history")).unwrap().collect();
    assert_eq!(history.len(), 1, "the removal is recorded");

    // The unfinished run blocks deploy, migrate and a restore of another snapshot.
    for args in [vec!["deploy", "local"], vec!["migrate", "local"]] {
        let r = p.ferry(&args);
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(r.stderr.contains(&format!("unfinished run: {run_id}")), "{r:?}");
        assert!(r.stderr.contains(&format!("ferry resume {run_id}")), "{r:?}");
    }
    let listed = p.ferry(&["runs", "list"]);
    assert!(listed.stdout.starts_with("RUN "), "header row: {listed:?}");
    // Resume finishes the same run, with the migration run once more from its
    // start (the local task was still running when ferry died, and finished).
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 0, "the environment is free again: {r:?}");
}

#[test]
fn a_damaged_lock_still_locks_and_unlock_shows_removes_and_records_it() {
    let p = Project::sqlite(SLOW, "");
    let run_id = deploy_killed_in_migration(&p);
    let locks = p.path().join(".ferry/locks");
    let held: Vec<_> = std::fs::read_dir(&locks).unwrap().flatten().filter(|e| e.path().is_file()).collect();
    assert_eq!(held.len(), 1, "the killed run's lock: {held:?}");
    let lock = held[0].path();
    // Half a lock, as a full disk or a hand edit leaves it.
    std::fs::write(&lock, b"{\"format_version\": 7, \"holder\": ").unwrap();

    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 3, "a lock that cannot be read still locks: {r:?}");
    assert!(r.stderr.contains("cannot be read") && r.stderr.contains("ferry unlock local"), "{r:?}");
    let r = p.ferry(&["unlock", "local"]);
    assert_eq!(r.code, 2, "no TTY, no --yes: {r:?}");
    assert!(lock.exists(), "kept without a yes");
    let r = p.ferry(&["unlock", "local", "--yes", "--reason", "half-written by a full disk"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("\"format_version\": 7"), "the person is shown what is removed: {r:?}");
    assert!(!lock.exists());
    let history: Vec<_> = std::fs::read_dir(locks.join("history")).unwrap().flatten().collect();
    assert_eq!(history.len(), 1, "the removal is recorded");
    let recorded = std::fs::read_to_string(history[0].path()).unwrap();
    assert!(recorded.contains("format_version") && recorded.contains("half-written"), "{recorded}");
    // The killed run is still unfinished: settled (and its migration, still
    // running when ferry was killed, finished), the environment is free again.
    assert_eq!(p.ferry(&["runs", "abandon", &run_id, "--reason", "test"]).code, 0);
    assert!(
        eventually(Duration::from_secs(20), || p.ferry(&["deploy", "local"]).code == 0),
        "the environment is free again"
    );
}

#[test]
fn lost_task_state_at_resume_is_unknown_exit_5_never_nothing_changed() {
    let p = Project::sqlite(SLOW, "");
    let run_id = deploy_killed_in_migration(&p);
    assert_eq!(p.ferry(&["unlock", "local", "--yes"]).code, 0);
    // Wait for the orphaned migration to finish, then lose its state.
    assert!(eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(p.path().join("attempts.txt")).unwrap_or_default().contains("finished")
    }));
    std::fs::remove_dir_all(p.path().join(".ferry/tasks").join(&run_id)).unwrap();
    let started = Instant::now();
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "no long wait for a task that is gone");
    let rec = r.json();
    assert_eq!(rec["outcome"], "needs_attention");
    let state = rec["state"].as_str().unwrap();
    assert!(state.starts_with("unknown:") && !state.contains("nothing was changed"), "{state}");
    assert!(rec["next"].as_str().unwrap().contains("ferry restore local --snapshot"), "{rec}");
    assert!(rec["restore"].is_null(), "no automatic restore of an unknown outcome");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "1"], "the migration's work is left as it is");
    // The run blocks the environment until a person settles it: restoring its
    // own snapshot (confirmed) does, and records that it did.
    let snapshot = rec["snapshot"]["id"].as_str().unwrap().to_string();
    let r = p.ferry(&["restore", "local", "--snapshot", &snapshot]);
    assert_eq!(r.code, 2, "settling a run needs a yes: {r:?}");
    let r = p.ferry(&["restore", "local", "--snapshot", &snapshot, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "5"]);
    let shown = p.ferry(&["runs", "show", &run_id, "--output", "json"]).json();
    assert!(shown["resolved_by"].as_str().is_some_and(|s| s.starts_with("local-")), "{shown}");
    assert_eq!(p.ferry(&["deploy", "local"]).code, 0);
}

#[test]
fn an_unreadable_journal_is_listed_blocks_the_environment_and_can_be_abandoned() {
    let p = Project::sqlite("true\n", "");
    assert_eq!(p.ferry(&["deploy", "local"]).code, 0);
    let bad = "local-20260101T000000Z-abcd";
    std::fs::write(p.runs_dir().join(format!("{bad}.json")), "{\"run_id\": \"trunc").unwrap();
    let listed = p.ferry(&["runs", "list", "--env", "local"]);
    assert!(listed.stdout.lines().any(|l| l.starts_with(bad) && l.contains("unreadable")), "{listed:?}");
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("cannot be read") && r.stderr.contains("runs abandon"), "{r:?}");
    let r = p.ferry(&["runs", "abandon", bad, "--reason", "test corruption"]);
    assert_eq!(r.code, 0, "{r:?}");
    let kept: Vec<_> = std::fs::read_dir(p.runs_dir().join("unreadable")).unwrap().collect();
    assert_eq!(kept.len(), 1, "the unreadable bytes are kept aside");
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn state_files_are_private_and_a_restored_database_keeps_its_mode() {
    let p = Project::sqlite("\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders\"\nexit 1\n", "");
    std::fs::set_permissions(p.path().join("app.db"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let ferry = p.path().join(".ferry");
    assert_eq!(mode(&p.path().join("app.db")), 0o600, "the restored database keeps the original's mode");
    assert_eq!(mode(&ferry), 0o700);
    let rec = r.json();
    let run_id = rec["run_id"].as_str().unwrap();
    assert_eq!(mode(&ferry.join("runs").join(format!("{run_id}.json"))), 0o600);
    let snap = rec["snapshot"]["id"].as_str().unwrap();
    assert_eq!(mode(&ferry.join("snapshots").join(format!("{snap}.sqlite3"))), 0o600);
    assert_eq!(mode(&ferry.join("tasks").join(run_id).join("output.log")), 0o600);
    assert!(snap.ends_with(&run_id[run_id.len() - 4..]), "the snapshot id carries the run: {snap}");
}

#[test]
fn a_secret_is_masked_as_written_decoded_and_encoded() {
    let p = Project::sqlite(
        "echo \"as written $TOKEN\"\necho 'decoded Pw-S3cr3t@x'\necho 'encoded Pw-S3cr3t%2540x'\nexit 1\n",
        "migration = { command = [\"sh\", \"migrate.sh\"], env = { TOKEN = { value = \"Pw-S3cr3t%40x\", secret = true } } }",
    );
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 4, "{r:?}");
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    let logs = p.ferry(&["logs", "local", "--run", &run_id]);
    let log_file = std::fs::read_to_string(p.path().join(".ferry/tasks").join(&run_id).join("output.log")).unwrap();
    for text in [&r.stderr, &logs.stdout, &log_file] {
        assert!(text.contains("decoded ***") && text.contains("encoded ***"), "{text}");
        assert!(!text.contains("S3cr3t"), "a form of the secret leaked: {text}");
    }
}

#[test]
fn bad_settings_are_refused_up_front_naming_what_is_wrong() {
    let env = "[env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./app.db\" }\n";
    let cases = [
        (
            format!("project = \"t\"\n{env}migration = {{ command = [\"true\"] }}\nstate = \"s3://Bad_Bucket/x\"\n"),
            "not an S3 bucket name",
        ),
        ("project = \"t\"\nstate_dir = \"\"\n".to_string(), "state_dir is empty"),
        (format!("project = \"t\"\n{env}migration = {{ command = [\"\"] }}\n"), "empty program name"),
        (
            format!("project = \"t\"\n{env}migration = {{ command = [\"true\"], env = {{ \"A=B\" = \"x\" }} }}\n"),
            "not an environment variable name",
        ),
        (
            format!("project = \"t\"\n{env}migration = {{ command = [\"true\"], env = {{ \"\" = \"x\" }} }}\n"),
            "not an environment variable name",
        ),
        (
            format!(
                "project = \"t\"\n{env}migration = {{ command = [\"true\"] }}\n[env.LOCAL]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://./b.db\" }}\nmigration = {{ command = [\"true\"] }}\n"
            ),
            "differ only in case",
        ),
    ];
    for (toml, want) in cases {
        let p = Project::new(&toml);
        let r = p.ferry(&["config", "validate"]);
        assert_eq!(r.code, 2, "{toml}: {r:?}");
        assert!(r.stderr.contains(want) && r.stderr.contains("ferry.toml"), "{toml}: {r:?}");
        assert!(!p.path().join(".ferry").exists(), "nothing touched");
    }
    let p = Project::new(&format!("project = \"t\"\n{env}migration = {{ command = [\"true\"] }}\n"));
    let r = p.run(["deploy", "local"]).env("FERRY_STATE", "s3://x").expect_exit(2);
    assert!(r.stderr.contains("FERRY_STATE") && r.stderr.contains("not an S3 bucket name"), "{r:?}");
    let _ = FERRY;
}

/// A migration that fails after deleting rows, slowly enough to break the
/// state directory while it runs.
const FAILS_SLOWLY: &str = "echo started >> attempts.txt\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders WHERE total < 50\"\nsleep 2\nexit 1\n";

/// Make `<dir>/runs` unwritable even for root: a file where the directory was.
fn break_runs_dir(state: &Path) {
    std::fs::rename(state.join("runs"), state.join("runs.moved")).unwrap();
    std::fs::write(state.join("runs"), "not a directory").unwrap();
}

#[test]
fn a_journal_that_cannot_be_written_mid_run_goes_to_the_fallback_and_the_restore_still_happens() {
    let p = Project::sqlite(FAILS_SLOWLY, "");
    let tmp = tempfile::tempdir().unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    break_runs_dir(&p.path().join(".ferry"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    let fallback = tmp.path().join("ferry-journals");
    assert!(stderr.contains(&fallback.display().to_string()), "the fallback is named: {stderr}");
    let rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::fs::read_dir(&fallback).unwrap().next().unwrap().unwrap().path()).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["outcome"], "restored", "the fallback holds the final record");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "5"], "restored");
}

#[test]
fn with_neither_the_journal_nor_the_fallback_writable_the_run_stops_at_exit_5_with_the_record_on_stderr() {
    let p = Project::sqlite(FAILS_SLOWLY, "");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("ferry-journals"), "not a directory").unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    break_runs_dir(&p.path().join(".ferry"));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("\"run_id\"") && stderr.contains("the record below is the only copy"), "{stderr}");
    assert!(!stderr.contains("nothing was changed"), "{stderr}");
    // No restore without a record of it: the database is as the migration left it.
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "1"]);
}

#[test]
fn a_secret_is_masked_form_encoded_json_escaped_and_in_base64() {
    let p = Project::sqlite(
        "echo \"form $(printf '%s' \"$FORM\")\"\n\
         printf '%s\\n' 'json {\"t\": \"Pw S3cr3t\\/x?\\u00fc\"}'\n\
         echo \"b64 $(printf 'user:%s' \"$TOKEN\" | base64 -w0)\"\n\
         echo \"b64url $(printf 'a%s!' \"$TOKEN\" | base64 -w0 | tr '+/' '-_')\"\n\
         echo \"b64alone $(printf '%s' \"$TOKEN\" | base64 -w0)\"\n\
         exit 1\n",
        "migration = { command = [\"sh\", \"migrate.sh\"], env = { TOKEN = { value = \"Pw S3cr3t/x?ü\", secret = true }, FORM = \"Pw+S3cr3t%2Fx%3F%C3%BC\" } }",
    );
    let r = p.ferry(&["deploy", "local"]);
    assert_eq!(r.code, 4, "{r:?}");
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    let log_file = std::fs::read_to_string(p.path().join(".ferry/tasks").join(&run_id).join("output.log")).unwrap();
    let journal = std::fs::read_to_string(p.runs_dir().join(format!("{run_id}.json"))).unwrap();
    for text in [&r.stderr, &log_file, &journal] {
        assert!(!text.contains("S3cr3t"), "a form of the secret leaked: {text}");
        for label in ["form ", "json ", "b64 ", "b64url ", "b64alone "] {
            for line in text.lines().filter(|l| l.contains(label)) {
                assert!(line.contains("***"), "{label:?} not masked: {line}");
            }
        }
    }
    assert!(r.stderr.contains("b64alone ***"), "{r:?}");
}

/// A shared `$TMPDIR` whose `ferry-journals` was made by someone else: ferry
/// does not write its fallback record there.
#[test]
fn a_fallback_directory_that_is_not_ferrys_own_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    type Make<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: [(&str, Make, &str); 3] = [
        (
            "world-writable",
            Box::new(|d: &Path| {
                std::fs::create_dir(d).unwrap();
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap();
            }),
            "writable by group or others",
        ),
        ("symlink", Box::new(|d: &Path| std::os::unix::fs::symlink(elsewhere.path(), d).unwrap()), "symbolic link"),
        (
            "another user's",
            Box::new(|d: &Path| {
                std::fs::create_dir(d).unwrap();
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
                nix::unistd::chown(d, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
            }),
            "owned by uid 65534",
        ),
    ];
    for (what, make, why) in cases {
        let p = Project::sqlite(FAILS_SLOWLY, "");
        let tmp = tmp.path().join(what.replace([' ', '\''], "_"));
        std::fs::create_dir(&tmp).unwrap();
        let fallback = tmp.join("ferry-journals");
        make(&fallback);
        let child = p.command(&["deploy", "local"]).env("TMPDIR", &tmp).stderr(Stdio::piped()).spawn().unwrap();
        assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
        break_runs_dir(&p.path().join(".ferry"));
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{what}: {stderr}");
        assert!(stderr.contains(&fallback.display().to_string()) && stderr.contains(why), "{what}: {stderr}");
        let written = std::fs::read_dir(&fallback).map(|d| d.count()).unwrap_or(0);
        assert_eq!(written, 0, "{what}: nothing written into it");
        assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "{what}: nor through the link");
    }
}

/// The lock file a killed deploy left, rewritten as held by a live ferry on
/// another machine with `heartbeat_at` as given.
fn lock_of_another_machine(p: &Project, heartbeat_at: chrono::DateTime<chrono::Utc>) -> std::path::PathBuf {
    let lock = std::fs::read_dir(p.path().join(".ferry/locks"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .unwrap();
    let mut h: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    h["host"] = "build-box-elsewhere".into();
    h["heartbeat_at"] = heartbeat_at.to_rfc3339().into();
    std::fs::write(&lock, h.to_string()).unwrap();
    lock
}

#[test]
fn a_local_locks_age_is_its_files_not_its_holders_clock() {
    let p = Project::sqlite(SLOW, "");
    deploy_killed_in_migration(&p);
    // The holder's clock is 12 minutes behind; the file was written just now.
    let lock = lock_of_another_machine(&p, chrono::Utc::now() - chrono::Duration::minutes(12));
    let r = p.run(["deploy", "local"]).expect_exit(3);
    assert!(r.stderr.contains("is locked by") && !r.stderr.contains("probably dead"), "{r:?}");
    // Its clock is right, but nothing has written the file for 20 minutes.
    lock_of_another_machine(&p, chrono::Utc::now());
    let old = std::time::SystemTime::now() - Duration::from_secs(20 * 60);
    std::fs::File::options().write(true).open(&lock).unwrap().set_modified(old).unwrap();
    let r = p.run(["deploy", "local"]).expect_exit(3);
    assert!(r.stderr.contains("its last heartbeat was 20m") && r.stderr.contains("probably dead"), "{r:?}");
}

#[test]
fn runs_are_ordered_by_when_the_backend_wrote_them_not_by_their_ids_clock() {
    let p = Project::sqlite("echo ok\n", "");
    assert_eq!(p.ferry(&["deploy", "local"]).code, 0);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(p.ferry(&["deploy", "local"]).code, 0);
    let list = |p: &Project| -> Vec<String> {
        let r = p.ferry(&["runs", "list", "--output", "json"]);
        r.json()["runs"].as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect()
    };
    let ids = list(&p);
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1], "the run written last is first: {ids:?}");
    // The older id's record is the one written last (its machine's clock was behind).
    let older = p.runs_dir().join(format!("{}.json", ids[1]));
    let later = std::time::SystemTime::now() + Duration::from_secs(5);
    std::fs::File::options().write(true).open(&older).unwrap().set_modified(later).unwrap();
    assert_eq!(list(&p)[0], ids[1], "ordered by the backend's time");
}

#[test]
fn status_runs_and_resume_say_what_is_true_of_a_killed_and_then_settled_run() {
    let p = Project::sqlite(SLOW, "");
    let run_id = deploy_killed_in_migration(&p);

    // Every lock line has the heartbeat's age; this holder's pid is gone, so it is probably dead.
    let status = p.run(["status", "local"]).expect_exit(0);
    let lock = status.stdout.lines().find(|l| l.starts_with("lock ")).unwrap().to_string();
    assert!(lock.contains("its last heartbeat was ") && lock.contains("probably dead"), "{status:?}");
    let refused = p.run(["deploy", "local"]).expect_exit(3);
    assert!(refused.stderr.contains("its last heartbeat was ") && refused.stderr.contains("probably dead"));
    let shown = p.run(["unlock", "local"]).expect_exit(2);
    assert!(shown.stderr.contains("its last heartbeat was "), "{shown:?}");

    // The run began its snapshot and its migration: never "nothing was done",
    // never an exit code it does not have.
    let unfinished = status.stdout.lines().find(|l| l.starts_with("unfinished ")).unwrap();
    assert!(unfinished.contains("it began snapshot, migrate, so the database may have changed"), "{unfinished}");
    assert!(!status.stdout.contains("nothing was done"), "{status:?}");
    assert!(!status.stdout.contains("(exit 130)"), "{status:?}");
    assert!(status.stdout.contains("running, or its ferry died (no exit code yet)"), "{status:?}");

    // Resume says only what is left, and follows the task already started.
    p.run(["unlock", "local", "--yes", "--reason", "killed by the test"]).expect_exit(0);
    let resumed = p.run(["resume", &run_id]).expect_exit(0);
    assert!(resumed.stderr.contains("already done: preflight, snapshot"), "{resumed:?}");
    assert!(resumed.stderr.contains("still to run: migrate, verify, restore"), "{resumed:?}");
    assert!(resumed.stderr.contains("==> migrate: follow task "), "{resumed:?}");
    assert!(!resumed.stderr.contains("locally with DATABASE_URL set"), "no plan words for a start: {resumed:?}");
}

#[test]
fn a_run_settled_by_the_restore_of_its_snapshot_is_settled_in_status_and_runs() {
    let p = Project::sqlite(SLOW, "");
    let run_id = deploy_killed_in_migration(&p);
    let snapshot = p.only_run()["snapshot"]["id"].as_str().unwrap().to_string();
    let finished = || std::fs::read_to_string(p.path().join("attempts.txt")).is_ok_and(|t| t.contains("finished"));
    assert!(eventually(Duration::from_secs(20), finished), "the orphaned migration ended");
    p.run(["unlock", "local", "--yes", "--reason", "killed by the test"]).expect_exit(0);
    p.run(["restore", "local", "--snapshot", &snapshot, "--yes"]).expect_exit(0);

    let shown = p.run(["runs", "show", &run_id]).expect_exit(0);
    assert!(shown.stdout.starts_with("ferry deploy local was settled by run local-"), "{shown:?}");
    assert!(!shown.stdout.contains("still running"), "{shown:?}");
    let listed = p.run(["runs", "list"]).expect_exit(0);
    let row = listed.stdout.lines().find(|l| l.starts_with(&run_id)).unwrap();
    assert!(row.contains(" settled ") && !row.contains("running"), "{row}");
    let status = p.run(["status", "local"]).expect_exit(0);
    assert!(!status.stdout.contains("(exit 130)") && !status.stdout.contains("unfinished "), "{status:?}");
}
