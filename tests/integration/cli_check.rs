//! `ferry check` and `ferry doctor` with the real binary on SQLite: exit codes,
//! the readiness JSON, and the messages that say what to do.

use crate::common::Project;

const A1: &str = "revision = 'a1'\ndown_revision = None\n";
const B2: &str = "revision: str = 'b2'\ndown_revision: Union[str, Sequence[str], None] = 'a1'\n";

fn project(alembic: bool) -> Project {
    let migration = if alembic {
        "migration = { command = [\"true\"], alembic = { versions = \"alembic/versions\" } }"
    } else {
        "migration = { command = [\"true\"] }"
    };
    let p = Project::new(&format!(
        "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://./app.db\" }}\n{migration}\n"
    ));
    std::fs::create_dir_all(p.path().join("alembic/versions")).unwrap();
    p.write("alembic/versions/a1_init.py", A1);
    p.write("alembic/versions/b2_next.py", B2);
    p.run(["db", "exec", "local", "--create", "--sql", "CREATE TABLE t (id INTEGER)", "--yes"]).expect_exit(0);
    p
}

fn stamp(p: &Project, rows: &[&str]) {
    let mut sql =
        "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL); DELETE FROM alembic_version;"
            .to_string();
    for r in rows {
        sql.push_str(&format!("INSERT INTO alembic_version VALUES ('{r}');"));
    }
    p.run(["db", "exec", "local", "--sql", &sql, "--yes"]).expect_exit(0);
}

#[test]
fn check_exits_3_with_the_pending_revisions_and_0_in_sync() {
    let p = project(true);
    // No version table at all: nothing applied.
    let r = p.run(["check", "local", "--output", "json"]).expect_exit(3);
    assert_eq!(
        r.json(),
        serde_json::json!({"format_version": 1, "name": "migrations", "ok": false, "current_version": [], "expected_heads": ["b2"], "pending": ["a1", "b2"]})
    );
    stamp(&p, &["a1"]);
    let r = p.run(["check", "local"]).expect_exit(3);
    assert!(
        r.stdout.contains("1 pending") && r.stdout.contains("current: a1") && r.stdout.contains("pending: b2"),
        "{r:?}"
    );
    assert!(r.stderr.contains("ferry deploy local"), "{r:?}");
    stamp(&p, &["b2"]);
    let r = p.run(["check", "local", "--output", "json"]).expect_exit(0);
    assert_eq!(r.json()["ok"], true);
    assert_eq!(r.json()["current_version"], serde_json::json!(["b2"]));
    // Read-only: the version table is as it was.
    assert_eq!(p.sql("SELECT version_num FROM alembic_version"), ["version_num", "b2"]);
}

#[test]
fn check_exits_2_when_it_cannot_tell_and_says_what_to_do() {
    let p = project(false);
    let r = p.run(["check", "local"]).expect_exit(2);
    assert!(r.stderr.contains("no migration.alembic") && r.stderr.contains("versions = \"alembic/versions\""), "{r:?}");

    let p = project(true);
    p.write("alembic/versions/c3_bad.py", "revision = 'c3'\ndown_revision = 'zz'\n");
    let r = p.run(["check", "local"]).expect_exit(2);
    assert!(r.stderr.contains("c3_bad.py:2: down_revision names revision zz"), "{r:?}");

    let p = Project::new(
        "project = \"t\"\n[env.prod]\nprovider = \"aws\"\ndatabase = { cluster = \"app-prod\" }\nmigration = { cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"], alembic = { versions = \"v\" } }\n",
    );
    std::fs::create_dir_all(p.path().join("v")).unwrap();
    p.write("v/a1.py", A1);
    let r = p.run(["check", "prod"]).expect_exit(2);
    assert!(r.stderr.contains("cannot see inside cluster app-prod"), "{r:?}");
    assert!(r.stderr.contains("url = \"postgres://"), "says how: {r:?}");
    p.run(["doctor", "prod"]).expect_exit(2);
}

#[test]
fn a_database_behind_the_checkout_is_not_ready_and_one_ahead_is_named() {
    let p = project(true);
    stamp(&p, &["c9"]);
    let r = p.run(["check", "local"]).expect_exit(3);
    assert!(r.stderr.contains("holds revision c9"), "{r:?}");
}

#[test]
fn doctor_on_sqlite_probes_the_write_lock() {
    let p = project(true);
    let r = p.run(["doctor", "local", "--output", "json"]).expect_exit(0);
    let doc = r.json();
    assert_eq!(doc["ok"], true);
    assert!(doc["checked"].to_string().contains("BEGIN IMMEDIATE"), "{doc}");

    let conn = rusqlite::Connection::open(p.path().join("app.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);").unwrap();
    let r = p.run(["doctor", "local"]).expect_exit(3);
    assert!(r.stdout.contains("BLOCKS  write_lock: another process holds a write lock"), "{r:?}");
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(p.ferry(&["doctor", "local"]).code, 0);
    p.run(["doctor", "local", "--threshold", "soon"]).expect_exit(2);
}

#[test]
fn plan_shows_the_migrations_check() {
    let p = project(true);
    let r = p.run(["plan", "local"]).expect_exit(0);
    assert!(r.stdout.contains("have one head per branch"), "{r:?}");
    assert!(r.stdout.contains("compare the database's alembic_version with the head"), "{r:?}");
    assert!(r.stdout.contains("Alembic revisions: 2, head(s): b2"), "{r:?}");
    p.write("alembic/versions/c3_other.py", "revision = 'c3'\ndown_revision = 'a1'\n");
    // Deploy would refuse several heads on one branch: so does plan, with exit 3.
    let r = p.run(["plan", "local", "--output", "json"]).expect_exit(3);
    assert_eq!(r.json()["migrations"]["heads_to_merge"], serde_json::json!(["b2", "c3"]));
    assert!(r.json()["refusals"][0].as_str().unwrap().contains("2 heads (b2, c3) on one branch"), "{r:?}");
    let r = p.run(["plan", "local"]).expect_exit(3);
    assert!(r.stdout.contains("merge them with `alembic merge -m \"merge heads\" b2 c3`"), "{r:?}");
    assert!(r.stdout.contains("ferry deploy local would refuse (exit 3)"), "{r:?}");
}
