//! Data safety with real processes on the local provider: runs in the same
//! second never take each other's databases for their own, a run settled on
//! the fallback journal is never restored again, a migration whose end was
//! recorded nowhere (or that lost its supervisor) is exit 5 and never restored
//! under a running migration, and a long output line hides nothing after it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{self, Project, eventually, pg_server, pg_url_with_db};

/// Deletes rows, then fails: a restore must bring them back.
const DAMAGES_THEN_FAILS: &str =
    "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders WHERE total < 50\"\nexit 1\n";

/// Sleep until just after the start of the next wall-clock second.
fn at_the_start_of_a_second() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos())) + Duration::from_millis(5));
}

/// The `yyyymmddThhmmss` of a run id.
fn second_of(run_id: &str) -> String {
    run_id.rsplit('-').nth(1).unwrap().to_string()
}

/// Three failing deploys back to back (as a script or a CI retry would): each
/// one's exit code is the truth about the database after it.
fn three_failing_deploys(p: &Project, env: &str, orders: impl Fn() -> Vec<String>) {
    let before = orders();
    at_the_start_of_a_second();
    let mut seconds = Vec::new();
    let mut records = Vec::new();
    for attempt in 1..=3 {
        let r = p.run(["deploy", env, "--output", "json"]).output();
        let after = orders();
        match r.code {
            4 => {
                assert_eq!(after, before, "deploy {attempt} said restored: the database must hold the pre-deploy rows")
            }
            5 => {}
            _ => panic!("deploy {attempt}: {r:?}"),
        }
        assert_eq!(r.code, 4, "{r:?}");
        let rec = r.json();
        seconds.push(second_of(rec["run_id"].as_str().unwrap()));
        records.push(rec);
    }
    // Every run took its own names.
    for rec in &records {
        let hex = rec["run_id"].as_str().unwrap().rsplit('-').next().unwrap().to_string();
        for key in ["failed_cluster", "staging_cluster"] {
            let name = rec["restore"][key].as_str().unwrap();
            assert!(name.trim_end_matches(".db").ends_with(&format!("-{hex}")), "{key} {name} carries the run");
        }
    }
    eprintln!("the three deploys ran in the seconds {seconds:?}");
}

#[test]
fn three_failing_sqlite_deploys_in_one_second_each_report_the_truth() {
    let p = Project::sqlite(DAMAGES_THEN_FAILS, "");
    three_failing_deploys(&p, "local", || p.sql("SELECT id, total FROM orders ORDER BY id"));
    let failed: Vec<String> = p.files().into_iter().filter(|f| f.starts_with("app-failed-")).collect();
    assert_eq!(failed.len(), 3, "each run kept its own failed copy: {failed:?}");
}

#[test]
fn three_failing_postgres_deploys_in_one_second_each_report_the_truth() {
    let Some(url) = pg_server() else { return };
    let tag = format!("sr{:08x}", fastrand::u32(..));
    let app = pg_url_with_db(&url, &format!("{tag}_app"));
    let p = Project::new(&format!(
        "project = \"{tag}\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"] }}\n"
    ));
    struct Cleanup<'a>(&'a Project, String);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            common::drop_tagged_databases(self.0, &self.1);
        }
    }
    let _cleanup = Cleanup(&p, tag.clone());
    p.write("migrate.sh", DAMAGES_THEN_FAILS);
    p.write("seed.sql", &common::SEED.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY"));
    p.run(["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}_app\"")]).expect_exit(0);
    p.run(["db", "exec", "pg", "--file", "seed.sql"]).expect_exit(0);
    let orders = || {
        let r = p.run(["db", "exec", "pg", "--sql", "SELECT id, total FROM orders ORDER BY id"]).expect_exit(0);
        r.stdout.lines().map(String::from).collect::<Vec<_>>()
    };
    three_failing_deploys(&p, "pg", orders);
    let failed: Vec<String> =
        common::tagged_databases(&p, &tag).into_iter().filter(|d| d.contains("_app-failed-")).collect();
    assert_eq!(failed.len(), 3, "each run kept its own failed database: {failed:?}");
}

/// A migration that fails after deleting rows, slowly enough to break the
/// journal while it runs.
const FAILS_SLOWLY: &str = "echo started >> attempts.txt\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"DELETE FROM orders WHERE total < 50\"\nsleep 2\nexit 1\n";

/// After a run settled on the fallback: `status` shows it settled and writes
/// it back, `resume` never restores again (a row written after the restore
/// survives), and the backend holds the final record.
fn settled_on_the_fallback(p: &Project, tmp: &Path, run_id: &str, runs: &Path) {
    let key = runs.join(format!("{run_id}.json"));
    let backend: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert_eq!(backend["outcome"], "running", "the backend missed the end: {backend}");
    // The app writes to the restored database.
    p.sql("INSERT INTO orders (customer_id, total) VALUES (2, 1234)");

    let r = p.run(["status", "local"]).env("TMPDIR", tmp).output();
    assert!(!r.stdout.contains("ferry resume") && !r.stderr.contains("ferry resume"), "{r:?}");
    assert!(r.stdout.contains("restored"), "{r:?}");
    let backend: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert_eq!(backend["outcome"], "restored", "written back: {backend}");

    let shown = p.run(["runs", "show", run_id, "--output", "json"]).env("TMPDIR", tmp).expect_exit(0).json();
    assert_eq!(shown["outcome"], "restored");
    let r = p.run(["resume", run_id]).env("TMPDIR", tmp).output();
    assert!(r.stderr.contains("already finished (restored); nothing to resume"), "never restored again: {r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders WHERE total = 1234"), ["count(*)", "1"], "the app's write is kept");
    let failed = p.files().into_iter().filter(|f| f.starts_with("app-failed-") && f.ends_with(".db")).count();
    assert_eq!(failed, 1, "one restore, one failed copy: {:?}", p.files());
}

#[test]
fn a_run_settled_on_the_fallback_is_shown_settled_written_back_and_never_restored_again() {
    let p = Project::sqlite(FAILS_SLOWLY, "");
    let tmp = tempfile::tempdir().unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    // The journal becomes unwritable: a file where the runs directory was.
    let state = p.path().join(".ferry");
    std::fs::rename(state.join("runs"), state.join("runs.moved")).unwrap();
    std::fs::write(state.join("runs"), "not a directory").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "5"], "restored");
    // The backend comes back.
    std::fs::remove_file(state.join("runs")).unwrap();
    std::fs::rename(state.join("runs.moved"), state.join("runs")).unwrap();
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    settled_on_the_fallback(&p, tmp.path(), &run_id, &state.join("runs"));
}

#[test]
fn a_resume_on_another_machine_without_the_fallback_never_restores_a_second_time() {
    let p = Project::sqlite(FAILS_SLOWLY, "");
    let tmp = tempfile::tempdir().unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    let state = p.path().join(".ferry");
    std::fs::rename(state.join("runs"), state.join("runs.moved")).unwrap();
    std::fs::write(state.join("runs"), "not a directory").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_file(state.join("runs")).unwrap();
    std::fs::rename(state.join("runs.moved"), state.join("runs")).unwrap();
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    assert_eq!(p.only_run()["outcome"], "running");
    p.sql("INSERT INTO orders (customer_id, total) VALUES (2, 1234)");
    // Another machine: its $TMPDIR has no fallback copy; the backend says running.
    let elsewhere = tempfile::tempdir().unwrap();
    let _ = p.run(["unlock", "local", "--yes"]).env("TMPDIR", elsewhere.path()).output();
    let r = p.run(["resume", &run_id]).env("TMPDIR", elsewhere.path()).output();
    assert!(matches!(r.code, 4 | 5), "{r:?}");
    assert_eq!(
        p.sql("SELECT count(*) FROM orders WHERE total = 1234"),
        ["count(*)", "1"],
        "the restored database was not restored again: {r:?}"
    );
    let failed = p.files().into_iter().filter(|f| f.starts_with("app-failed-") && f.ends_with(".db")).count();
    assert_eq!(failed, 1, "one restore, one failed copy: {:?}", p.files());
}

/// A tmpfs of `size` at `dir` (root only); `None` when it cannot be mounted.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
        }
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }

    /// Fill it: a file as large as the space left.
    fn fill(&self) {
        let _ = std::process::Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("filler").display()))
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_state_dir_mid_run_restores_on_the_fallback_once_and_status_settles_it() {
    let p = Project::sqlite(FAILS_SLOWLY, "");
    let Some(disk) = Tmpfs::mount(&p.path().join(".ferry"), "4m") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    disk.fill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("ferry-journals"), "the fallback is named: {stderr}");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "5"], "restored");
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    // Room again.
    std::fs::remove_file(p.path().join(".ferry/filler")).unwrap();
    settled_on_the_fallback(&p, tmp.path(), &run_id, &p.path().join(".ferry/runs"));
}

/// Writes a row a second for `secs` seconds, then exits `code`.
fn writes_for(secs: u32, code: i32) -> String {
    format!(
        "echo started >> attempts.txt\ni=0\nwhile [ $i -lt {secs} ]; do \"$FERRY_BIN\" db exec \"$FERRY_ENV\" --yes --sql \"INSERT INTO orders (customer_id, total) VALUES (9, 1000 + $i)\"; i=$((i+1)); sleep 0.2; done\necho finished >> attempts.txt\nexit {code}\n"
    )
}

#[test]
fn a_migration_that_succeeds_with_a_full_state_dir_is_never_restored() {
    let p = Project::sqlite(&writes_for(5, 0), "");
    let Some(disk) = Tmpfs::mount(&p.path().join(".ferry"), "4m") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let child = p.command(&["deploy", "local"]).env("TMPDIR", tmp.path()).stderr(Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    disk.fill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Its exit code was recorded in place (preallocated) though the disk was full.
    assert!(matches!(out.status.code(), Some(0 | 5)), "{stderr}");
    assert!(!stderr.contains("restored from"), "{stderr}");
    assert!(std::fs::read_to_string(p.path().join("attempts.txt")).unwrap().contains("finished"));
    assert_eq!(p.sql("SELECT count(*) FROM orders WHERE customer_id = 9"), ["count(*)", "5"], "its writes are kept");
}

#[test]
fn an_exit_code_recorded_nowhere_is_exit_5_and_nothing_is_restored() {
    // The supervisor is killed after the migration ended and before it
    // recorded the end: nothing says how it ended.
    let p = Project::sqlite(&writes_for(3, 0), "");
    let child = p
        .command(&["deploy", "local", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tasks = p.path().join(".ferry/tasks");
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    let task = std::fs::read_dir(&tasks).unwrap().next().unwrap().unwrap().path();
    let supervisor = pid_in(&task.join("supervisor.pid"));
    // Stop the supervisor, let the migration end, then kill the supervisor.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGSTOP).unwrap();
    // (Its process stays a zombie until the stopped supervisor is gone.)
    assert!(eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(p.path().join("attempts.txt")).unwrap_or_default().contains("finished")
    }));
    std::thread::sleep(Duration::from_millis(300));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
    let out = child.wait_with_output().unwrap();
    let r: common::Run = out.into();
    assert_eq!(r.code, 5, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "needs_attention");
    assert!(rec["restore"].is_null(), "no restore: {rec}");
    assert!(rec["state"].as_str().unwrap().starts_with("unknown:"), "{rec}");
    assert_eq!(p.sql("SELECT count(*) FROM orders WHERE customer_id = 9"), ["count(*)", "3"], "its writes are kept");
}

fn pid_in(path: &Path) -> i32 {
    let mut pid = None;
    assert!(eventually(Duration::from_secs(20), || {
        pid = std::fs::read_to_string(path).ok().and_then(|t| t.split_whitespace().next()?.parse().ok());
        pid.is_some()
    }));
    pid.unwrap()
}

fn group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

#[test]
fn a_supervisor_killed_under_a_running_migration_stops_it_before_anything_else_and_never_restores() {
    let p = Project::sqlite(&writes_for(200, 1), "");
    let child = p
        .command(&["deploy", "local", "--output", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let tasks = p.path().join(".ferry/tasks");
    assert!(eventually(Duration::from_secs(20), || p.path().join("attempts.txt").exists()));
    let task = std::fs::read_dir(&tasks).unwrap().next().unwrap().unwrap().path();
    let supervisor = pid_in(&task.join("supervisor.pid"));
    let migration = pid_in(&task.join("child.pid"));
    std::thread::sleep(Duration::from_millis(500));
    // The OOM killer takes the supervisor alone.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor), nix::sys::signal::Signal::SIGKILL).unwrap();
    let started = Instant::now();
    let r: common::Run = child.wait_with_output().unwrap().into();
    assert!(started.elapsed() < Duration::from_secs(60), "{r:?}");
    assert!(!group_alive(migration), "the migration's process group was stopped: {r:?}");
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("ferry stops it before deciding anything"), "said what it does: {r:?}");
    let rec = r.json();
    assert!(rec["restore"].is_null(), "no restore: {rec}");
    assert!(rec["task"]["stopped_reason"].as_str().unwrap().contains("ferry stopped it"), "recorded: {rec}");
    // Nothing writes any more: the database stays as the migration left it.
    let rows = p.sql("SELECT count(*) FROM orders WHERE customer_id = 9");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(p.sql("SELECT count(*) FROM orders WHERE customer_id = 9"), rows, "nothing writes after the decision");
    assert_ne!(rows[1], "0", "the migration's writes are kept, not restored away");
}

#[test]
fn a_300_kib_line_hides_nothing_after_it_on_stderr_or_in_ferry_logs() {
    let p = Project::sqlite(
        "head -c 307200 /dev/zero | tr '\\0' x\necho\necho 'ERROR: relation \"widgets\" does not exist' >&2\nprintf 'bar\\r50%%\\033[2J\\n'\nexit 1\n",
        "",
    );
    let r = p.run(["deploy", "local", "--no-restore"]).output();
    assert_eq!(r.code, 5, "{r:?}");
    assert!(
        r.stderr.contains("ERROR: relation \"widgets\" does not exist"),
        "{}",
        &r.stderr[r.stderr.len().saturating_sub(3000)..]
    );
    assert!(r.stderr.contains("xxxx…"), "the long line is shown in pieces");
    assert!(r.stderr.contains("bar\\r50%\\x1b[2J"), "control characters escaped");
    assert!(!r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'), "no raw control characters");
    let run_id = p.only_run()["run_id"].as_str().unwrap().to_string();
    let logs = p.run(["logs", "local", "--run", &run_id]).expect_exit(0);
    assert!(logs.stdout.contains("ERROR: relation \"widgets\" does not exist"), "{}", logs.stdout.len());
    let xs: usize = logs.stdout.lines().map(|l| l.matches('x').count()).sum();
    assert!(xs >= 307_200, "every byte of the long line is in the log: {xs}");
    // The task log keeps the full line, in pieces.
    let log = std::fs::read_to_string(p.path().join(".ferry/tasks").join(&run_id).join("output.log")).unwrap();
    let xs: usize = log
        .lines()
        .filter_map(|l| l.splitn(3, ' ').nth(2))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b == b'x'))
        .map(str::len)
        .sum();
    assert_eq!(xs, 307_200, "every byte of the long line, in pieces");
    assert!(log.lines().all(|l| l.len() < 17 * 1024), "no entry longer than a piece");
}

/// Resident set of a process and its descendants, in KiB.
fn tree_rss_kib(root: i32) -> u64 {
    let mut total = 0;
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            total += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            todo.extend(children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()));
        }
    }
    total
}

#[test]
fn a_64_mb_line_without_a_newline_keeps_ferry_s_memory_bounded() {
    let p = Project::sqlite("head -c 67108864 /dev/zero | tr '\\0' y\necho 'ERROR: the end' >&2\nexit 1\n", "");
    let mut child =
        p.command(&["deploy", "local", "--no-restore"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let pid = child.id() as i32;
    // Measure ferry's own tree (itself; the supervisor runs in its own
    // session, re-parented, and is measured from its pid file).
    let stderr = child.stderr.take().unwrap();
    let drain = std::thread::spawn(move || {
        let mut s = String::new();
        let mut tail = String::new();
        let mut r = std::io::BufReader::new(stderr);
        while std::io::BufRead::read_line(&mut r, &mut s).is_ok_and(|n| n > 0) {
            if s.contains("ERROR") {
                tail.push_str(&s);
            }
            s.clear();
        }
        tail
    });
    let mut peak = 0;
    let mut supervisor = None;
    while child.try_wait().unwrap().is_none() {
        if supervisor.is_none() {
            supervisor = std::fs::read_dir(p.path().join(".ferry/tasks"))
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| std::fs::read_to_string(e.ok()?.path().join("supervisor.pid")).ok())
                .and_then(|t| t.split_whitespace().next()?.parse::<i32>().ok());
        }
        peak = peak.max(tree_rss_kib(pid) + supervisor.map_or(0, tree_rss_kib));
        std::thread::sleep(Duration::from_millis(20));
    }
    let tail = drain.join().unwrap();
    assert!(tail.contains("ERROR: the end"), "the line after it is shown: {tail}");
    eprintln!("peak RSS of ferry, the supervisor and the migration: {peak} KiB");
    assert!(peak < 120 * 1024, "memory stays bounded: {peak} KiB");
}
