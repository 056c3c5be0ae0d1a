//! Lock safety end to end: the real `ferry`, the local PostgreSQL provider and
//! a real Alembic project (tests/fixtures/alembic_locks) whose head revision
//! alters `orders`, while a test session holds ACCESS SHARE on `orders` longer
//! than `migration.lock_timeout`:
//! - with `lock_retries` and the reader gone after the first attempt: the
//!   second attempt goes through (exit 0), nothing restored, every row kept;
//! - with no retries: exit 3, `nothing_changed`, nothing restored, the
//!   snapshot kept, and the report says which evidence held;
//! - a migration failing for another reason, or one that committed a revision
//!   before its lock timeout: restored (exit 4), as before.
//!
//! Needs FERRY_EMULATOR_PYTHON (the venv with alembic and psycopg) and
//! FERRY_TEST_PG_URL; scripts/test provides both.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::{self, Project, Run, emulator_python, pg_server, pg_url_with_db};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/alembic_locks")
}

const ORDERS: &str = "SELECT id, customer_id, total_cents FROM orders ORDER BY id";

struct Locks {
    p: Project,
    tag: String,
    /// The application database's URL.
    app: String,
    py: PathBuf,
}

impl Locks {
    /// A database migrated by Alembic to `at` and seeded (3 customers, 5
    /// orders); env `pg` runs `alembic upgrade head` with `extra` inside its
    /// `migration = { ... }` and `env` in the migration's environment.
    fn new(at: &str, extra: &str) -> Option<Self> {
        let py = emulator_python()?;
        let server = pg_server()?;
        let tag = format!("lk{:08x}", fastrand::u32(..));
        let app = pg_url_with_db(&server, &format!("{tag}_app"));
        let ini = fixture().join("alembic.ini");
        let versions = fixture().join("versions");
        let p = Project::new(&format!(
            "project = \"{tag}\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{server}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"{}\", \"-m\", \"alembic\", \"-c\", \"{}\", \"upgrade\", \"head\"], alembic = {{ versions = \"{}\" }}{extra} }}\n",
            py.display(),
            ini.display(),
            versions.display()
        ));
        let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}_app\"")]);
        assert_eq!(r.code, 0, "{r:?}");
        let l = Locks { p, tag, app, py }; // from here on, Drop cleans up
        l.alembic(&["upgrade", at]);
        l.sql(
            "INSERT INTO customers (name) VALUES ('ada'), ('grace'), ('edsger'); \
             INSERT INTO orders (customer_id, total_cents) VALUES (1, 1000), (1, 2000), (2, 500), (3, 700), (3, 9900)",
        );
        Some(l)
    }

    fn alembic(&self, args: &[&str]) {
        let r: Run = Command::new(&self.py)
            .args(["-m", "alembic", "-c"])
            .arg(fixture().join("alembic.ini"))
            .args(args)
            .env("DATABASE_URL", &self.app)
            .output()
            .expect("alembic")
            .into();
        assert_eq!(r.code, 0, "alembic {args:?}: {r:?}");
    }

    fn sql(&self, sql: &str) -> Vec<String> {
        let r = self.p.ferry(&["db", "exec", "pg", "--sql", sql]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.lines().map(String::from).collect()
    }

    fn versions(&self) -> Vec<String> {
        self.sql("SELECT version_num FROM alembic_version").into_iter().skip(1).collect()
    }

    fn has_note_column(&self) -> bool {
        self.sql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'")
            [1]
            != "0"
    }

    fn reader_name(&self) -> String {
        format!("{}-reader", self.tag)
    }

    /// A session that holds ACCESS SHARE on `orders` (a long report, say)
    /// until [`Locks::release`].
    fn hold_orders(&self) -> Child {
        let reader = Command::new("psql")
            .arg(&self.app)
            .env("PGAPPNAME", self.reader_name())
            .args(["-c", "BEGIN; SELECT count(*) FROM orders; SELECT pg_sleep(300); COMMIT;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                    WHERE c.relname = 'orders' AND l.mode = 'AccessShareLock' AND l.granted";
        assert!(
            common::eventually(Duration::from_secs(10), || self.sql(held)[1] != "0"),
            "the reader holds ACCESS SHARE on orders"
        );
        reader
    }

    /// End the reader's session (its transaction and its lock with it).
    fn release(&self, mut reader: Child) {
        let end = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
            self.reader_name()
        );
        let r = self.p.ferry(&["db", "exec", "admin", "--sql", &end]);
        assert_eq!(r.code, 0, "{r:?}");
        let _ = reader.kill();
        let _ = reader.wait();
    }

    fn databases(&self) -> Vec<String> {
        common::tagged_databases(&self.p, &self.tag)
    }

    /// Whether `ferry snapshot list pg` lists `id`.
    fn snapshot_listed(&self, id: &str) -> bool {
        let r = self.p.ferry(&["snapshot", "list", "pg"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.contains(id)
    }
}

impl Drop for Locks {
    fn drop(&mut self) {
        let end = format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{}'",
            self.reader_name()
        );
        let _ = self.p.ferry(&["db", "exec", "admin", "--sql", &end]);
        common::drop_tagged_databases(&self.p, &self.tag);
    }
}

/// No database beside the application's was made by a restore.
fn assert_not_restored(l: &Locks, rec: &serde_json::Value) {
    assert!(rec["restore"].is_null(), "{rec}");
    let dbs = l.databases();
    assert!(!dbs.iter().any(|d| d.contains("-failed-") || d.contains("-restored-")), "nothing restored: {dbs:?}");
}

#[test]
fn with_retries_the_migration_goes_through_once_the_reader_ends_and_nothing_is_restored() {
    let Some(l) = Locks::new("0002_customer_email", ", lock_timeout = \"1s\", lock_retries = 2") else { return };
    let before = l.sql(ORDERS);
    let reader = l.hold_orders();
    let mut ferry =
        l.p.command(&["deploy", "pg", "--output", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry");
    let stderr = ferry.stderr.take().expect("stderr");
    let lines = std::thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    // The reader ends once the journal shows the first attempt ended: the
    // second attempt (after a backoff of about 5 s) finds the table free.
    let first_ended = common::eventually(Duration::from_secs(120), || {
        let Ok(dir) = std::fs::read_dir(l.p.runs_dir()) else { return false };
        dir.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .is_ok_and(|v| v["migration_attempts"][0]["ended_at"].is_string())
            })
        })
    });
    l.release(reader);
    assert!(first_ended, "the first attempt ended within 2 minutes");
    let out = ferry.wait_with_output().expect("ferry");
    let stderr = lines.join().expect("stderr").join("\n");
    let r = Run { code: out.status.code().unwrap_or(-1), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr };
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "succeeded");
    let attempts = rec["migration_attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0]["lock_timeout"], true);
    assert_eq!(attempts[0]["transactional_ddl"], true);
    assert_eq!(attempts[0]["exit_code"], 1);
    assert_eq!(attempts[0]["proof"]["versions_unchanged"], true);
    assert_eq!(attempts[0]["proof"]["schema_unchanged"], true);
    assert_eq!(attempts[1]["exit_code"], 0);
    assert_ne!(attempts[0]["task"], attempts[1]["task"], "a new task for the second attempt");
    let blockers = attempts[0]["blockers"].as_array().expect("blockers");
    assert!(
        blockers.iter().any(|b| b["query"].as_str().is_some_and(|q| q.contains("SELECT count(*) FROM orders"))),
        "the reader is named as the blocker: {blockers:?}"
    );
    assert!(r.stderr.contains("attempt 1: task"), "the report lists the attempts: {r:?}");
    assert!(r.stderr.contains("blocked by pid"), "and their blockers: {r:?}");
    assert_not_restored(&l, &rec);
    assert_eq!(l.sql(ORDERS), before, "every row kept");
    assert!(l.has_note_column(), "the migration is applied");
    assert_eq!(l.versions(), ["0003_order_note"]);
}

#[test]
fn with_no_retries_a_lock_timeout_that_changed_nothing_exits_3_without_a_restore() {
    let Some(l) = Locks::new("0002_customer_email", ", lock_timeout = \"1s\"") else { return };
    let before = l.sql(ORDERS);
    let reader = l.hold_orders();
    let r = l.p.ferry(&["deploy", "pg", "--output", "json"]);
    l.release(reader);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "nothing_changed");
    assert_eq!(rec["exit_code"], 3);
    let proof = &rec["migration_attempts"][0]["proof"];
    for piece in ["lock_timeout", "transactional_ddl", "versions_unchanged", "schema_unchanged"] {
        assert_eq!(proof[piece], true, "{piece}: {proof}");
    }
    assert_eq!(rec["baseline"]["versions"], serde_json::json!(["0002_customer_email"]));
    assert!(rec["baseline"]["schema"]["tables"].as_u64().is_some_and(|n| n >= 3), "{}", rec["baseline"]);
    assert_eq!(rec["steps"].as_array().unwrap().iter().find(|s| s["name"] == "restore").unwrap()["status"], "skipped");
    assert_not_restored(&l, &rec);
    let snapshot = rec["snapshot"]["id"].as_str().expect("snapshot");
    assert_eq!(rec["snapshot"]["status"], "available");
    assert!(l.snapshot_listed(snapshot), "the snapshot is kept");
    assert!(r.stderr.contains("nothing changed, proved"), "the report says which evidence held: {r:?}");
    assert!(r.stderr.contains("ferry doctor pg"), "what to do next: {r:?}");
    assert_eq!(l.sql(ORDERS), before, "every row kept");
    assert!(!l.has_note_column());
    assert_eq!(l.versions(), ["0002_customer_email"]);
}

#[test]
fn a_migration_failing_for_another_reason_is_restored_as_before() {
    let Some(l) = Locks::new(
        "0002_customer_email",
        ", lock_timeout = \"1s\", lock_retries = 2, env = { FERRY_FIXTURE_FAIL = \"1\" }",
    ) else {
        return;
    };
    let before = l.sql(ORDERS);
    let r = l.p.ferry(&["deploy", "pg", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    let attempts = rec["migration_attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "no retry without a lock timeout: {attempts:?}");
    assert_eq!(attempts[0]["transactional_ddl"], true);
    assert_eq!(attempts[0]["lock_timeout"], false);
    assert_eq!(l.sql(ORDERS), before);
    assert_eq!(l.versions(), ["0002_customer_email"]);
}

#[test]
fn a_migration_that_committed_a_revision_before_its_lock_timeout_is_restored() {
    let Some(l) = Locks::new(
        "0001_init",
        ", lock_timeout = \"1s\", lock_retries = 2, env = { FERRY_FIXTURE_TRANSACTION_PER_MIGRATION = \"1\" }",
    ) else {
        return;
    };
    let before = l.sql(ORDERS);
    let reader = l.hold_orders();
    let r = l.p.ferry(&["deploy", "pg", "--output", "json"]);
    l.release(reader);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    let attempts = rec["migration_attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 1, "no retry after a change: {attempts:?}");
    let proof = &attempts[0]["proof"];
    assert_eq!((&proof["lock_timeout"], &proof["versions_unchanged"]), (&true.into(), &false.into()), "{proof}");
    assert!(
        proof["missing"].as_array().unwrap().iter().any(|m| m.as_str().unwrap().contains("0002_customer_email")),
        "{proof}"
    );
    assert_eq!(l.versions(), ["0001_init"], "restored to before the migration");
    assert_eq!(
        l.sql(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'"
        )[1],
        "0"
    );
    assert_eq!(l.sql(ORDERS), before);
}

/// ferry SIGKILLed in the backoff between attempts, then resumed: the
/// finished first attempt is not run again, the second runs once, and each
/// has its own task.
#[test]
fn killed_between_attempts_and_resumed_neither_repeats_nor_loses_an_attempt() {
    let Some(l) = Locks::new("0002_customer_email", ", lock_timeout = \"1s\", lock_retries = 2") else { return };
    let before = l.sql(ORDERS);
    let reader = l.hold_orders();
    let mut ferry = l.p.command(&["deploy", "pg"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("ferry");
    let first_ended = common::eventually(Duration::from_secs(120), || {
        let Ok(dir) = std::fs::read_dir(l.p.runs_dir()) else { return false };
        dir.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).any(|e| {
            std::fs::read_to_string(e.path()).is_ok_and(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .is_ok_and(|v| v["migration_attempts"][0]["ended_at"].is_string())
            })
        })
    });
    ferry.kill().expect("SIGKILL"); // in the backoff (about 5 s): ferry records nothing more
    ferry.wait().expect("wait");
    l.release(reader);
    assert!(first_ended, "the first attempt ended within 2 minutes");
    let rec = l.p.only_run();
    assert_eq!(rec["outcome"], "running", "{rec}");
    assert_eq!(rec["migration_attempts"].as_array().map(Vec::len), Some(1), "{rec}");
    let run_id = rec["run_id"].as_str().unwrap().to_string();

    assert_eq!(l.p.ferry(&["unlock", "pg", "--yes"]).code, 0, "the killed ferry's lock, removed by a person");
    let r = l.p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "succeeded");
    let attempts = rec["migration_attempts"].as_array().expect("attempts");
    let numbers: Vec<u64> = attempts.iter().map(|a| a["attempt"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2], "{attempts:?}");
    assert_eq!(attempts[0]["exit_code"], 1, "the first attempt as it ended before the kill");
    let tasks: Vec<String> = std::fs::read_dir(l.p.path().join(".ferry/tasks"))
        .expect("tasks")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(tasks.len(), 2, "one task per attempt: {tasks:?}");
    assert!(tasks.contains(&format!("{run_id}-attempt-2")), "{tasks:?}");
    assert_eq!(l.sql(ORDERS), before, "every row kept");
    assert_eq!(l.versions(), ["0003_order_note"]);
}
