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
        let url = server()?;
        let tag = format!("e2e{:08x}", fastrand::u32(..));
        let app = with_db(&url, &format!("{tag}_app"));
        let p = Project::new(&format!(
            "project = \"{tag}\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"] }}\n"
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
