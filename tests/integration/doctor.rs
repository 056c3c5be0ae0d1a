//! `ferry doctor` against a real PostgreSQL server: an advisory lock held by
//! another session, a query blocked behind a row lock, a transaction left open
//! and a long query are each found, attributed to the right session, with
//! advice; doctor's own session never is. Exit 3 exactly when something would
//! block a migration.
//!
//! Uses FERRY_TEST_PG_URL; skipped without it unless FERRY_TEST_REQUIRE_PG=1.

use std::time::Duration;

use crate::common::{Project, Run, pg_server, pg_url_with_db};
use tokio_postgres::{Client, NoTls};

struct PgDoctor {
    p: Project,
    db: String,
    url: String,
    rt: tokio::runtime::Runtime,
}

impl PgDoctor {
    fn new() -> Option<Self> {
        let server = pg_server()?;
        let db = format!("doc{:08x}", fastrand::u32(..));
        let url = pg_url_with_db(&server, &db);
        let p = Project::new(&format!(
            "project = \"t\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{server}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n"
        ));
        let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{db}\"")]);
        assert_eq!(r.code, 0, "{r:?}");
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let d = PgDoctor { p, db, url, rt };
        let r = d.p.ferry(&[
            "db",
            "exec",
            "pg",
            "--sql",
            "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        Some(d)
    }

    /// Another session, named `name` in pg_stat_activity; returns it and its pid.
    fn session(&self, name: &str) -> (Client, i32) {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{sep}application_name={name}", self.url);
        let (client, conn) = self.rt.block_on(tokio_postgres::connect(&url, NoTls)).unwrap();
        self.rt.spawn(conn);
        let pid: i32 = self.rt.block_on(client.query_one("SELECT pg_backend_pid()", &[])).unwrap().get(0);
        (client, pid)
    }

    fn exec(&self, c: &Client, sql: &str) {
        self.rt.block_on(c.batch_execute(sql)).unwrap();
    }

    fn doctor(&self, extra: &[&str]) -> (Run, serde_json::Value) {
        let mut args = vec!["doctor", "pg", "--output", "json"];
        args.extend_from_slice(extra);
        let r = self.p.ferry(&args);
        assert!(matches!(r.code, 0 | 3), "{r:?}");
        let json = r.json();
        (r, json)
    }
}

impl Drop for PgDoctor {
    fn drop(&mut self) {
        let _ = self.p.ferry(&[
            "db",
            "exec",
            "admin",
            "--sql",
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db),
        ]);
    }
}

fn findings<'a>(doc: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    doc["findings"].as_array().unwrap().iter().filter(|f| f["kind"] == kind).collect()
}

#[test]
fn a_quiet_database_has_nothing_to_report() {
    let Some(d) = PgDoctor::new() else { return };
    let (r, doc) = d.doctor(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["findings"].as_array().unwrap().len(), 0, "{doc}");
    assert!(doc["server"].as_str().unwrap().starts_with("postgresql "), "{doc}");
    let checked = doc["checked"].to_string();
    for what in ["advisory locks", "pg_blocking_pids", "longer than 1m", "replication: primary"] {
        assert!(checked.contains(what), "{what} in {checked}");
    }
    let human = d.p.ferry(&["doctor", "pg"]);
    assert_eq!(human.code, 0, "{human:?}");
    assert!(human.stdout.contains("nothing would block a migration"), "{human:?}");
}

#[test]
fn a_held_advisory_lock_is_attributed_to_its_session() {
    let Some(d) = PgDoctor::new() else { return };
    let (holder, pid) = d.session("stuck-migration");
    d.exec(&holder, "SELECT pg_advisory_lock(4242); SELECT pg_advisory_lock(7, 9)");
    let (r, doc) = d.doctor(&[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(doc["ok"], false);
    let locks = findings(&doc, "advisory_lock");
    assert_eq!(locks.len(), 2, "{doc}");
    let keys: Vec<&str> = locks.iter().map(|f| f["lock_key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["4242", "(7, 9)"], "the bigint key and the two-int key: {doc}");
    for f in &locks {
        assert_eq!(f["pid"], pid);
        assert_eq!(f["application_name"], "stuck-migration");
        assert_eq!(f["blocks_migration"], true);
        assert!(f["user"].is_string() && f["since"].is_string(), "{f}");
        assert!(f["advice"].as_str().unwrap().contains(&format!("SELECT pg_terminate_backend({pid});")), "{f}");
    }
    let human = d.p.ferry(&["doctor", "pg"]);
    assert_eq!(human.code, 3, "{human:?}");
    assert!(human.stdout.contains("BLOCKS  advisory_lock"), "{human:?}");
    assert!(human.stdout.contains("\"stuck-migration\""), "{human:?}");

    // Released: nothing left to report.
    d.exec(&holder, "SELECT pg_advisory_unlock_all()");
    assert_eq!(d.doctor(&[]).0.code, 0);
}

#[test]
fn a_blocked_query_names_its_blocker_and_the_open_transaction_blocks() {
    let Some(d) = PgDoctor::new() else { return };
    let (a, a_pid) = d.session("holder");
    let (b, b_pid) = d.session("waiter");
    d.exec(&a, "BEGIN; UPDATE t SET v = 1 WHERE id = 1");
    let waiting = d.rt.spawn(async move { b.batch_execute("UPDATE t SET v = 2 WHERE id = 1").await.map(|_| b) });
    std::thread::sleep(Duration::from_millis(1500));
    let (r, doc) = d.doctor(&["--threshold", "1s"]);
    assert_eq!(r.code, 3, "{r:?}");
    let blocked = findings(&doc, "blocked_query");
    assert_eq!(blocked.len(), 1, "{doc}");
    assert_eq!(blocked[0]["pid"], b_pid);
    assert_eq!(blocked[0]["blocked_by"], serde_json::json!([a_pid]));
    assert!(blocked[0]["query"].as_str().unwrap().contains("SET v = 2"), "{doc}");
    let open = findings(&doc, "long_transaction");
    assert_eq!(open.len(), 1, "only the holder: the waiter is reported once, as blocked: {doc}");
    assert_eq!(open[0]["pid"], a_pid);
    assert_eq!(open[0]["state"], "idle in transaction");
    assert!(open[0]["seconds"].as_f64().unwrap() >= 1.0, "{doc}");
    assert!(open[0]["advice"].as_str().unwrap().contains(&format!("pg_terminate_backend({a_pid})")), "{doc}");
    // With the default threshold the transaction is too young to report, the wait is not.
    let (_, doc) = d.doctor(&[]);
    assert!(findings(&doc, "long_transaction").is_empty(), "{doc}");
    assert_eq!(findings(&doc, "blocked_query").len(), 1, "{doc}");

    d.exec(&a, "ROLLBACK");
    let b = d.rt.block_on(waiting).unwrap().unwrap();
    drop(b);
    assert_eq!(d.doctor(&["--threshold", "1s"]).0.code, 0);
}

#[test]
fn a_long_query_is_a_warning_and_doctor_never_reports_itself() {
    let Some(d) = PgDoctor::new() else { return };
    let (c, pid) = d.session("report");
    let slow = d.rt.spawn(async move { c.batch_execute("SELECT pg_sleep(20)").await });
    std::thread::sleep(Duration::from_millis(1500));
    let (r, doc) = d.doctor(&["--threshold", "1s"]);
    assert_eq!(r.code, 0, "a long query alone does not block: {r:?}");
    let long = findings(&doc, "long_query");
    assert_eq!(long.len(), 1, "{doc}");
    assert_eq!(long[0]["pid"], pid);
    assert_eq!(long[0]["blocks_migration"], false);
    assert!(long[0]["advice"].as_str().unwrap().contains(&format!("pg_cancel_backend({pid})")), "{doc}");
    for f in doc["findings"].as_array().unwrap() {
        assert_ne!(f["application_name"], "ferry (read-only check)", "doctor's own session: {f}");
    }
    slow.abort();
}

/// An aws environment reads its database through `database.url` (a tunnel in
/// real life): check and doctor need no AWS credentials and make no AWS call.
#[test]
fn an_aws_environment_is_read_through_its_database_url() {
    let Some(d) = PgDoctor::new() else { return };
    std::fs::create_dir_all(d.p.path().join("versions")).unwrap();
    d.p.write("versions/a1.py", "revision = 'a1'\ndown_revision = None\n");
    let toml = std::fs::read_to_string(d.p.path().join("ferry.toml")).unwrap();
    // The aws provider's default is verify-full against the RDS CA bundle; the
    // test server is not an RDS one (tests/integration/db_tls.rs covers TLS).
    let sep = if d.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=prefer", d.url);
    d.p.write(
        "ferry.toml",
        &format!(
            "{toml}[env.prod]\nprovider = \"aws\"\nregion = \"us-east-1\"\ndatabase = {{ cluster = \"app-prod\", url = \"{url}\" }}\nmigration = {{ cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"], alembic = {{ versions = \"versions\" }} }}\n",
        ),
    );
    let no_aws = |args: &[&str]| -> Run {
        d.p.command(args)
            .env("AWS_ACCESS_KEY_ID", "")
            .env("AWS_SECRET_ACCESS_KEY", "")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .output()
            .unwrap()
            .into()
    };
    let r = no_aws(&["check", "prod", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["pending"], serde_json::json!(["a1"]));
    let r = d.p.ferry(&[
        "db",
        "exec",
        "pg",
        "--sql",
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY); INSERT INTO alembic_version VALUES ('a1')",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = no_aws(&["check", "prod"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = no_aws(&["doctor", "prod"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("nothing would block a migration"), "{r:?}");
}
