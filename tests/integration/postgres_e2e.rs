//! End to end on the local provider with a real PostgreSQL server: a migration
//! failing halfway is restored (exit 4) with the original database name holding
//! every row and the failed database kept; a good one exits 0.
//!
//! Uses FERRY_TEST_PG_URL (scripts/test provides one); skipped without it unless
//! FERRY_TEST_REQUIRE_PG=1.

use crate::common::{self, Project, pg_server as server, pg_url_with_db as with_db};

struct PgProject {
    p: Project,
    tag: String,
}

impl PgProject {
    fn new(script: &str) -> Option<Self> {
        Self::with_migration(script, "")
    }

    /// As `new`, with `extra` inside the `migration = { ... }` table.
    fn with_migration(script: &str, extra: &str) -> Option<Self> {
        let url = server()?;
        let tag = format!("e2e{:08x}", fastrand::u32(..));
        let app = with_db(&url, &format!("{tag}_app"));
        let p = Project::new(&format!(
            "project = \"{tag}\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"]{extra} }}\n"
        ));
        p.write("migrate.sh", script);
        p.write("seed.sql", &common::SEED.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY"));
        let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}_app\"")]);
        assert_eq!(r.code, 0, "{r:?}");
        let project = PgProject { p, tag }; // from here on, Drop cleans up
        let r = project.p.ferry(&["db", "exec", "pg", "--file", "seed.sql"]);
        assert_eq!(r.code, 0, "{r:?}");
        Some(project)
    }

    fn sql(&self, env: &str, sql: &str) -> Vec<String> {
        let r = self.p.ferry(&["db", "exec", env, "--sql", sql]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.lines().map(String::from).collect()
    }

    fn databases(&self) -> Vec<String> {
        common::tagged_databases(&self.p, &self.tag)
    }
}

impl Drop for PgProject {
    fn drop(&mut self) {
        common::drop_tagged_databases(&self.p, &self.tag);
    }
}

#[test]
fn a_failed_migration_is_restored_under_the_original_database_name() {
    let Some(pg) = PgProject::new(
        "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"ALTER TABLE customers ADD COLUMN email TEXT; DELETE FROM orders WHERE total < 50\"\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"UPDATE customers SET nickname = name\"\n",
    ) else {
        return;
    };
    let before = pg.sql("pg", "SELECT id, customer_id, total FROM orders ORDER BY id");
    let r = pg.p.ferry(&["deploy", "pg", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    assert_eq!(pg.sql("pg", "SELECT id, customer_id, total FROM orders ORDER BY id"), before, "every row back");
    assert_eq!(
        pg.sql(
            "pg",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'"
        )[1],
        "0"
    );
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap().to_string();
    assert!(failed.starts_with(&format!("{}_app-failed-", pg.tag)), "{failed}");
    assert!(pg.databases().contains(&failed), "failed database kept: {:?}", pg.databases());
    let snapshot = rec["snapshot"]["id"].as_str().unwrap();
    assert!(pg.databases().contains(&snapshot.to_string()), "snapshot kept as a database: {:?}", pg.databases());

    // The writes the restore left out are accounted for, per table, from the
    // baseline recorded with the snapshot: the migration's four deletes.
    let discarded = &rec["restore"]["discarded"];
    assert_eq!(discarded["kept_in"], failed.as_str(), "{discarded}");
    let orders = discarded["tables"].as_array().and_then(|t| t.iter().find(|t| t["table"] == "public.orders"));
    let orders = orders.unwrap_or_else(|| panic!("per-table counts: {discarded}"));
    assert_eq!((orders["inserted"].as_i64(), orders["deleted"].as_i64()), (Some(0), Some(4)), "{discarded}");
    assert!(r.stderr.contains("public.orders: 0 inserted, 0 updated, 4 deleted"), "{r:?}");
    // The set-aside database is fenced off: closed to connections, data kept.
    assert_eq!(rec["restore"]["set_aside"]["stopped"], true, "{}", rec["restore"]);
    let allowed = pg.sql("admin", &format!("SELECT datallowconn FROM pg_database WHERE datname = '{failed}'"));
    assert!(matches!(allowed.get(1).map(String::as_str), Some("f" | "false")), "{allowed:?}");
}

/// The responder's restore of the snapshot a failed deploy took (`--before-run`)
/// counts, per table, the writes it leaves out, from the baseline that deploy
/// recorded with its snapshot; the database set aside is closed.
#[test]
fn a_restore_before_a_run_counts_the_writes_it_leaves_out_from_that_runs_baseline() {
    let Some(pg) =
        PgProject::new("\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"DELETE FROM orders WHERE total < 50\"\nexit 1\n")
    else {
        return;
    };
    let before = pg.sql("pg", "SELECT id, customer_id, total FROM orders ORDER BY id");
    let failed = pg.p.ferry(&["deploy", "pg", "--no-restore", "--output", "json"]);
    assert_eq!(failed.code, 5, "{failed:?}");
    let run = failed.json()["run_id"].as_str().unwrap().to_string();
    // Written after the failed deploy too: left out as well, and counted.
    pg.sql("pg", "INSERT INTO orders (customer_id, total) VALUES (1, 1)");

    let r = pg.p.ferry(&["restore", "pg", "--before-run", &run, "--yes", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(pg.sql("pg", "SELECT id, customer_id, total FROM orders ORDER BY id"), before, "every row back");
    let discarded = &r.json()["restore"]["discarded"];
    let orders = discarded["tables"].as_array().and_then(|t| t.iter().find(|t| t["table"] == "public.orders"));
    let orders = orders.unwrap_or_else(|| panic!("per-table counts from run {run}'s baseline: {discarded}"));
    assert_eq!((orders["inserted"].as_i64(), orders["deleted"].as_i64()), (Some(1), Some(4)), "{discarded}");

    let bad = pg.p.ferry(&["restore", "pg", "--before-run", "not-a-run", "--yes"]);
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[test]
fn a_good_migration_exits_0() {
    let Some(pg) =
        PgProject::new("\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"ALTER TABLE customers ADD COLUMN email TEXT\"\n")
    else {
        return;
    };
    let r = pg.p.ferry(&["deploy", "pg"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        pg.sql(
            "pg",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'"
        )[1],
        "1"
    );
    assert_eq!(pg.sql("pg", "SELECT count(*) FROM orders")[1], "5");
}

#[test]
fn lock_timeout_makes_a_migration_stuck_behind_a_reader_fail_fast_instead_of_queueing() {
    // The migration as libpq clients run it (psql reads PGOPTIONS at connect).
    let Some(pg) = PgProject::with_migration(
        "echo \"PGOPTIONS=$PGOPTIONS\"\npsql -v ON_ERROR_STOP=1 \"$DATABASE_URL\" -c 'ALTER TABLE customers ADD COLUMN email TEXT'\n",
        ", lock_timeout = \"1s\"",
    ) else {
        return;
    };
    let plan = pg.p.ferry(&["plan", "pg"]);
    assert!(plan.stdout.contains("lock_timeout 1s") && plan.stdout.contains("-c lock_timeout=1000"), "{plan:?}");

    // A long reader holds ACCESS SHARE on the table the migration alters.
    let url = crate::common::pg_url_with_db(&server().unwrap(), &format!("{}_app", pg.tag));
    let mut reader = std::process::Command::new("psql")
        .arg(&url)
        .args(["-c", "BEGIN; LOCK TABLE customers IN ACCESS SHARE MODE; SELECT pg_sleep(60); COMMIT;"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    assert!(
        crate::common::eventually(std::time::Duration::from_secs(10), || {
            pg.sql("pg", "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'customers' AND l.mode = 'AccessShareLock' AND l.granted")[1] != "0"
        }),
        "the reader holds its lock"
    );
    let r = pg.p.ferry(&["migrate", "pg", "--no-snapshot"]);
    let reader_still_running = reader.try_wait().expect("reader").is_none();
    let _ = reader.kill();
    let _ = reader.wait();
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("PGOPTIONS=-c lock_timeout=1000"), "the migration gets PGOPTIONS: {r:?}");
    assert!(r.stderr.contains("canceling statement due to lock timeout"), "it failed on the lock: {r:?}");
    assert!(reader_still_running, "ferry's migration gave up while the reader still ran, not after it");
    assert_eq!(
        pg.sql(
            "pg",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'"
        )[1],
        "0"
    );
}
