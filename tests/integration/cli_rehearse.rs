//! `ferry rehearse` and `rehearse.when = "always"` on the local provider,
//! through the real executable: the migration runs on a clone, the real
//! database never changes, the clone is deleted in every case (success,
//! failure, Ctrl-C, SIGKILL then resume), and on PostgreSQL the locks the
//! migration held are reported with relation, mode and duration.
//!
//! The PostgreSQL tests use FERRY_TEST_PG_URL (skipped without it unless
//! FERRY_TEST_REQUIRE_PG=1).

use std::time::Duration;

use crate::common::{self, Project, eventually, pg_server, pg_url_with_db};

const ADDS_EMAIL: &str = r#"echo "adding email"
"$FERRY_BIN" db exec "$FERRY_ENV" --sql "ALTER TABLE customers ADD COLUMN email TEXT"
"#;

fn email_columns(p: &Project) -> String {
    p.sql("SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'email'")[1].clone()
}

/// Files beside the database whose name says they are a rehearsal's.
fn clones(p: &Project) -> Vec<String> {
    p.files().into_iter().filter(|f| f.contains("rehearsal")).collect()
}

fn steps(rec: &serde_json::Value) -> Vec<(String, String)> {
    rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_string(), s["status"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn sqlite_a_good_migration_passes_on_the_clone_and_the_real_database_is_untouched() {
    let p = Project::sqlite(ADDS_EMAIL, "");
    let r = p.ferry(&["rehearse", "local", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["command"], "rehearse");
    assert_eq!(rec["outcome"], "succeeded");
    let names: Vec<String> = steps(&rec).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["preflight", "clone", "rehearse", "cleanup"]);
    assert!(steps(&rec).iter().all(|(_, s)| s == "succeeded"), "{rec}");
    let reh = &rec["rehearsal"];
    assert_eq!(reh["verdict"], "passed");
    assert_eq!(reh["clone_fate"], "deleted");
    assert_eq!(reh["task"]["exit_code"], 0);
    assert_eq!(reh["locks_observed"], false);
    assert!(reh["not_observed"].as_str().unwrap().contains("SQLite"), "{reh}");
    assert!(reh["clone"].as_str().unwrap().contains("/app-rehearsal-"), "{reh}");
    assert!(r.stderr.contains("| adding email"), "the migration's output is streamed: {r:?}");
    assert!(r.stderr.contains("locks were not observed"), "{r:?}");
    // The migration ran on the clone only; the clone is gone; no snapshot was taken.
    assert_eq!(email_columns(&p), "0");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
    assert!(rec["snapshot"].is_null());
    assert_eq!(p.only_run(), rec);
    // `ferry logs --run` shows the rehearsal's migration output.
    let logs = p.ferry(&["logs", "local", "--run", rec["run_id"].as_str().unwrap()]);
    assert_eq!(logs.code, 0, "{logs:?}");
    assert!(logs.stdout.contains("adding email"), "{logs:?}");
}

#[test]
fn sqlite_a_failing_migration_exits_3_with_nothing_changed_and_the_clone_gone() {
    let p = Project::sqlite(&format!("{ADDS_EMAIL}echo broken >&2\nexit 7\n"), "");
    let r = p.ferry(&["rehearse", "local", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "aborted");
    assert_eq!(rec["rehearsal"]["verdict"], "failed");
    assert!(rec["error"].as_str().unwrap().contains("exit code 7"), "{rec}");
    let state = rec["state"].as_str().unwrap();
    assert!(state.starts_with("nothing of ") && state.contains("deleted"), "{state}");
    assert_eq!(rec["next"], "ferry rehearse local   (after fixing the migration)");
    assert_eq!(email_columns(&p), "0");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
}

#[test]
fn sqlite_max_exclusive_lock_set_fails_because_locks_cannot_be_observed() {
    let p = Project::sqlite(ADDS_EMAIL, "rehearse = { max_exclusive_lock = \"5s\" }");
    let r = p.ferry(&["rehearse", "local", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("max_exclusive_lock = 5s is set, but locks could not be observed"), "{error}");
    assert!(clones(&p).is_empty());
}

#[test]
fn sqlite_keep_clone_keeps_it_and_says_how_to_remove_it() {
    let p = Project::sqlite(ADDS_EMAIL, "");
    let r = p.ferry(&["rehearse", "local", "--keep-clone", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["rehearsal"]["clone_fate"], "kept");
    let kept = clones(&p);
    assert_eq!(kept.len(), 2, "the clone and its mark: {kept:?}");
    assert!(r.stderr.contains("is kept for inspection; remove it with: rm "), "{r:?}");
    let clone = rec["rehearsal"]["clone"].as_str().unwrap();
    assert!(std::path::Path::new(clone).is_file());
    assert_eq!(email_columns(&p), "0");
}

#[test]
fn deploy_with_when_always_rehearses_first_and_a_failed_rehearsal_changes_nothing() {
    let p = Project::sqlite(
        "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"ALTER TABLE customers ADD COLUMN email TEXT\"\n\
         if [ -n \"$FERRY_REHEARSAL_OF\" ]; then exit 9; fi\n",
        "rehearse = { when = \"always\" }",
    );
    let plan = p.ferry(&["plan", "local"]);
    assert!(plan.stdout.contains("clone") && plan.stdout.contains("cleanup"), "{plan:?}");
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "aborted");
    let s = steps(&rec);
    assert_eq!(s[2], ("rehearse".to_string(), "failed".to_string()), "{rec}");
    assert_eq!(s[3], ("cleanup".to_string(), "succeeded".to_string()), "{rec}");
    assert_eq!(s[4].1, "pending", "no snapshot after a failed rehearsal: {rec}");
    assert!(rec["snapshot"].is_null() && rec["task"].is_null(), "{rec}");
    assert_eq!(email_columns(&p), "0");
    assert!(clones(&p).is_empty());
}

#[test]
fn deploy_with_when_always_rehearses_then_deploys() {
    let p = Project::sqlite(ADDS_EMAIL, "rehearse = { when = \"always\" }");
    let r = p.ferry(&["deploy", "local", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    let names: Vec<String> = steps(&rec).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["preflight", "clone", "rehearse", "cleanup", "snapshot", "migrate", "verify", "restore"]);
    assert_eq!(rec["rehearsal"]["verdict"], "passed");
    assert_eq!(rec["snapshot"]["status"], "available");
    assert_eq!(email_columns(&p), "1", "then the real migration ran");
    assert!(clones(&p).is_empty());
}

#[test]
fn ctrl_c_during_the_rehearsal_deletes_the_clone_and_resume_does_not_repeat_it() {
    let p = Project::sqlite("echo started > started.txt\nsleep 30\n", "");
    let child = p.command(&["rehearse", "local"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("started.txt").exists()));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGINT).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let rec = p.only_run();
    assert_eq!(rec["outcome"], "interrupted");
    assert_eq!(rec["rehearsal"]["clone_fate"], "deleted", "{rec}");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
    let run_id = rec["run_id"].as_str().unwrap().to_string();
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.json()["error"].as_str().unwrap().contains("not repeated"), "{r:?}");
}

#[test]
fn sigkill_during_the_rehearsal_then_unlock_and_resume_deletes_the_clone() {
    let p = Project::sqlite("echo started > started.txt\nsleep 30\n", "");
    let mut child = p.command(&["rehearse", "local"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(20), || p.path().join("started.txt").exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(clones(&p).len(), 2, "the killed rehearsal left its clone: {:?}", p.files());
    let rec = p.only_run();
    let run_id = rec["run_id"].as_str().unwrap().to_string();
    assert_eq!(p.ferry(&["unlock", "local", "--yes"]).code, 0);
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["rehearsal"]["clone_fate"], "deleted", "{rec}");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
    // The rehearsal's migration (on the clone) was stopped, not left running.
    let status = p.ferry(&["status", "local"]);
    assert!(!status.stdout.contains("-rehearsal running"), "{status:?}");
}

#[test]
fn rehearse_on_aws_needs_database_env_pointing_at_the_clone_and_is_refused_with_the_apprunner_runner() {
    let aws = Project::new(
        "project = \"t\"\n[env.prod]\ndatabase = { cluster = \"app\" }\nmigration = { cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [\"g\"], container = \"m\", command = [\"x\"] }\n",
    );
    let r = aws.ferry(&["rehearse", "prod"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("${clone.endpoint}") && r.stderr.contains("against the real database"), "{r:?}");
    std::fs::write(
        aws.path().join("ferry.toml"),
        "project = \"t\"\n[env.prod]\ndatabase = { cluster = \"app\" }\nmigration = { cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [\"g\"], container = \"m\", command = [\"x\"] }\nrehearse = { when = \"always\", database_env = { DB_PORT = \"${clone.port}\" } }\n",
    )
    .unwrap();
    let r = aws.ferry(&["config", "validate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("rehearse.database_env") && r.stderr.contains("against the real database"), "{r:?}");
    let apprunner = Project::new(
        "project = \"t\"\n[env.prod]\ndatabase = { cluster = \"app\" }\nmigration = { runner = \"apprunner\" }\nservice = { apprunner_arn = \"arn:aws:apprunner:eu-west-1:123456789012:service/app/abc\" }\nrehearse = { when = \"never\" }\n",
    );
    let r = apprunner.ferry(&["config", "validate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("rehearse"), "{r:?}");
    let bad = Project::new(
        "project = \"t\"\n[env.l]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./a.db\" }\nmigration = { command = [\"true\"] }\nrehearse = { whenn = \"always\" }\n",
    );
    let r = bad.ferry(&["config", "validate"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("whenn"), "{r:?}");
}

// ---- PostgreSQL ----

struct Pg {
    p: Project,
    tag: String,
}

impl Pg {
    /// env `pg` on database `<tag>_app` (seeded), migrating with `script`; `extra` adds keys.
    fn new(script: &str, extra: &str) -> Option<Self> {
        let url = pg_server()?;
        let tag = format!("reh{:08x}", fastrand::u32(..));
        let app = pg_url_with_db(&url, &format!("{tag}_app"));
        let p = Project::new(&format!(
            "project = \"{tag}\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.pg]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"sh\", \"migrate.sh\"] }}\n{extra}\n"
        ));
        p.write("migrate.sh", script);
        p.write("seed.sql", &common::SEED.replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY"));
        let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}_app\"")]);
        assert_eq!(r.code, 0, "{r:?}");
        let pg = Pg { p, tag };
        let r = pg.p.ferry(&["db", "exec", "pg", "--file", "seed.sql"]);
        assert_eq!(r.code, 0, "{r:?}");
        Some(pg)
    }

    fn email_columns(&self) -> String {
        let r = self.p.ferry(&[
            "db",
            "exec",
            "pg",
            "--sql",
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'email'",
        ]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.lines().nth(1).unwrap().to_string()
    }

    fn clones(&self) -> Vec<String> {
        common::tagged_databases(&self.p, &self.tag).into_iter().filter(|d| d.contains("rehearsal")).collect()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        common::drop_tagged_databases(&self.p, &self.tag);
    }
}

/// Holds ACCESS EXCLUSIVE on orders for 2 s, then adds a column.
const LOCKS_ORDERS: &str = "\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(2); ALTER TABLE customers ADD COLUMN email TEXT; COMMIT;\"\n";

#[test]
fn postgres_an_access_exclusive_lock_is_reported_with_relation_mode_and_duration() {
    let Some(pg) = Pg::new(LOCKS_ORDERS, "") else { return };
    let r = pg.p.ferry(&["rehearse", "pg", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let reh = &r.json()["rehearsal"];
    assert_eq!(reh["locks_observed"], true);
    let orders = reh["locks"].as_array().unwrap().iter().find(|l| l["relation"] == "public.orders").unwrap();
    assert_eq!(orders["mode"], "ACCESS EXCLUSIVE", "{reh}");
    let held = orders["held_for_ms"].as_u64().unwrap();
    assert!((1500..=2500).contains(&held), "held for {held} ms, the truth is 2000: {reh}");
    assert!(reh["longest_statement"]["query"].as_str().unwrap().contains("pg_sleep"), "{reh}");
    assert!(
        r.stderr.contains("held ACCESS EXCLUSIVE on public.orders for ")
            && r.stderr.contains("in production every read and write of public.orders would wait that long"),
        "{r:?}"
    );
    assert_eq!(pg.email_columns(), "0", "the real database is untouched");
    assert!(pg.clones().is_empty(), "{:?}", pg.clones());
    // The plan suggests a lock_timeout from what this rehearsal measured.
    let run_id = r.json()["run_id"].as_str().unwrap().to_string();
    let plan = pg.p.ferry(&["plan", "pg"]);
    let line = plan.stdout.lines().find(|l| l.contains("suggested migration.lock_timeout")).unwrap_or_default();
    assert!(
        line.contains(&format!("rehearsal {run_id}")) && line.contains("held ACCESS EXCLUSIVE at most"),
        "{plan:?}"
    );
    assert!(line.contains("lock_timeout = \"5s\""), "no wait seen: the 5s floor: {line}");
    let json = pg.p.ferry(&["plan", "pg", "--output", "json"]).json();
    assert_eq!(json["lock_timeout_suggestion"].as_str(), Some(line));
}

#[test]
fn postgres_deploy_is_refused_when_the_lock_exceeds_max_exclusive_lock() {
    let Some(pg) = Pg::new(LOCKS_ORDERS, "rehearse = { when = \"always\", max_exclusive_lock = \"1s\" }") else {
        return;
    };
    let r = pg.p.ferry(&["deploy", "pg", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert!(
        rec["error"].as_str().unwrap().contains("held ACCESS EXCLUSIVE on public.orders for")
            && rec["error"].as_str().unwrap().contains("more than rehearse.max_exclusive_lock = 1s"),
        "{rec}"
    );
    assert!(rec["snapshot"].is_null(), "{rec}");
    assert_eq!(pg.email_columns(), "0", "the real database is untouched");
    assert!(pg.clones().is_empty(), "{:?}", pg.clones());
}

#[test]
fn postgres_a_good_migration_is_rehearsed_then_deployed() {
    let Some(pg) = Pg::new(ADDS_EMAIL, "rehearse = { when = \"always\", max_exclusive_lock = \"5s\" }") else {
        return;
    };
    let r = pg.p.ferry(&["deploy", "pg", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["rehearsal"]["verdict"], "passed");
    assert_eq!(rec["rehearsal"]["clone_fate"], "deleted");
    assert_eq!(pg.email_columns(), "1");
    assert!(pg.clones().is_empty(), "{:?}", pg.clones());
}

#[test]
fn postgres_sigkill_during_the_rehearsal_then_resume_deletes_the_clone() {
    let Some(pg) = Pg::new(
        "echo started > started.txt\n\"$FERRY_BIN\" db exec \"$FERRY_ENV\" --sql \"SELECT pg_sleep(30)\"\n",
        "",
    ) else {
        return;
    };
    let mut child = pg.p.command(&["rehearse", "pg"]).stderr(std::process::Stdio::null()).spawn().unwrap();
    assert!(eventually(Duration::from_secs(30), || pg.p.path().join("started.txt").exists()));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(pg.clones().len(), 1, "the killed rehearsal left its clone");
    let run_id = pg.p.only_run()["run_id"].as_str().unwrap().to_string();
    assert_eq!(pg.p.ferry(&["unlock", "pg", "--yes"]).code, 0);
    let r = pg.p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(r.json()["rehearsal"]["clone_fate"], "deleted");
    assert!(pg.clones().is_empty(), "{:?}", pg.clones());
}

#[test]
fn the_github_step_summary_tells_the_rehearsal_and_its_findings() {
    let Some(pg) = Pg::new(LOCKS_ORDERS, "") else { return };
    let summary = pg.p.path().join("summary.md");
    let r: common::Run =
        pg.p.command(&["rehearse", "pg"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", &summary)
            .output()
            .unwrap()
            .into();
    assert_eq!(r.code, 0, "{r:?}");
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("- rehearsal: passed on clone ") && md.contains("(deleted)"), "{md}");
    assert!(md.contains("held ACCESS EXCLUSIVE on public.orders for "), "{md}");
    assert!(r.stderr.contains("  rehearsal: passed on clone "), "{r:?}");
}

#[test]
fn a_clone_without_this_runs_mark_is_not_deleted_exit_5_naming_it_and_resume_tries_again() {
    // The migration replaces the clone's mark with another run's: ferry must refuse to delete it.
    let p = Project::sqlite(
        "clone=\"${DATABASE_URL#sqlite://}\"\ncp \"$clone.ferry-rehearsal\" mark.saved\n\
         echo '{\"purpose\":\"rehearsal\",\"run_id\":\"someone-else\"}' > \"$clone.ferry-rehearsal\"\n",
        "",
    );
    let r = p.ferry(&["rehearse", "local", "--output", "json"]);
    assert_eq!(r.code, 5, "{r:?}");
    let rec = r.json();
    let clone = rec["rehearsal"]["clone"].as_str().unwrap().to_string();
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains(&format!("rehearsal clone {clone} could not be deleted")), "{error}");
    assert!(error.contains("not marked as run"), "{error}");
    assert!(std::path::Path::new(&clone).is_file(), "refused, so kept");
    let run_id = rec["run_id"].as_str().unwrap().to_string();
    assert_eq!(rec["next"], format!("ferry resume {run_id}   (tries to delete the clone again)"));
    // Once the mark is this run's again, the resume deletes it.
    std::fs::copy(p.path().join("mark.saved"), format!("{clone}.ferry-rehearsal")).unwrap();
    let r = p.ferry(&["resume", &run_id, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["rehearsal"]["clone_fate"], "deleted");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
}

#[test]
fn a_migration_over_max_duration_is_stopped_on_the_clone_and_fails_the_rehearsal() {
    let p = Project::sqlite(
        "echo started\nsleep 20\necho finished > finished.txt\n",
        "rehearse = { max_duration = \"1s\" }",
    );
    let started = std::time::Instant::now();
    let r = p.ferry(&["rehearse", "local", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "stopped, not waited for: {:?}", started.elapsed());
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.contains("did not finish within rehearse.max_duration = 1s"), "{error}");
    assert!(clones(&p).is_empty(), "{:?}", p.files());
    std::thread::sleep(Duration::from_secs(1));
    assert!(!p.path().join("finished.txt").exists(), "the migration on the clone was stopped");
}

#[test]
fn postgres_with_the_application_connected_the_clone_is_a_dump_copy() {
    let Some(pg) = Pg::new(ADDS_EMAIL, "") else { return };
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("pg_dump").is_file() && d.join("pg_restore").is_file())
    });
    if !on_path {
        eprintln!("skipped: pg_dump and pg_restore are not on PATH");
        return;
    }
    // A session of "the application" keeps CREATE DATABASE ... TEMPLATE from copying the database.
    let url = pg_url_with_db(&pg_server().unwrap(), &format!("{}_app", pg.tag));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (client, conn) = rt.block_on(tokio_postgres::connect(&url, tokio_postgres::NoTls)).unwrap();
    rt.spawn(conn);
    let r = pg.p.ferry(&["rehearse", "pg", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["rehearsal"]["verdict"], "passed");
    assert_eq!(pg.email_columns(), "0");
    assert!(pg.clones().is_empty(), "{:?}", pg.clones());
    drop(client);
}
