//! Layer 3 and 4: the real `ferry` binary and the AWS SDK for Rust talking HTTP to
//! the emulator (moto server plus tests/emulator/), where RunTask runs the real
//! Alembic project of tests/fixtures/ against a real PostgreSQL database that
//! stands for the Aurora cluster, and the migration stack is infra/'s template.
//!
//! Needs FERRY_EMULATOR_PYTHON (the emulator venv's python) and
//! FERRY_TEST_PG_URL; scripts/test provides both. Skipped without them unless
//! FERRY_TEST_REQUIRE_EMULATOR=1.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::Run;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Emulator {
    child: Child,
    endpoint: String,
    python: PathBuf,
    dir: tempfile::TempDir,
}

impl Emulator {
    fn start() -> Option<Self> {
        let (python, pg) = match (std::env::var("FERRY_EMULATOR_PYTHON"), std::env::var("FERRY_TEST_PG_URL")) {
            (Ok(py), Ok(pg)) if !py.is_empty() && !pg.is_empty() => (PathBuf::from(py), pg),
            _ if std::env::var("FERRY_TEST_REQUIRE_EMULATOR").is_ok_and(|v| v == "1") => {
                panic!("FERRY_EMULATOR_PYTHON and FERRY_TEST_PG_URL must be set; run scripts/test")
            }
            _ => {
                eprintln!("skipped: FERRY_EMULATOR_PYTHON / FERRY_TEST_PG_URL not set (scripts/test sets them)");
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let mut child = Command::new(&python)
            .arg(repo().join("tests/emulator/server.py"))
            .args(["--port", "0", "--pg-url", &pg, "--delay-scale", "0.5", "--exit-on-stdin-eof"])
            .arg("--task-cwd")
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let endpoint = line.trim().strip_prefix("READY ").unwrap_or_else(|| {
            panic!(
                "emulator did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.path().join("emulator.log")).unwrap_or_default()
            )
        });
        Some(Emulator { endpoint: endpoint.to_string(), child, python, dir })
    }

    fn scenario(&self, args: &[&str]) -> String {
        let out = Command::new(&self.python)
            .arg(repo().join("tests/e2e/scenario.py"))
            .args(args)
            .args(["--endpoint", &self.endpoint])
            .output()
            .unwrap();
        assert!(out.status.success(), "scenario {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// A cluster at schema 0002 with 4 customers and 7 orders, the migration
    /// stack, and optionally an App Runner service.
    fn setup(&self, service: bool) -> serde_json::Value {
        let name = format!("e{:06x}", fastrand::u32(..0xff_ffff));
        let repo = repo();
        let mut args = vec!["setup", "--repo", repo.to_str().unwrap(), "--name", &name];
        if service {
            args.push("--service");
        }
        serde_json::from_str(&self.scenario(&args)).unwrap()
    }

    /// Rows of `sql` on the real database behind a cluster id.
    fn query(&self, cluster: &str, sql: &str) -> serde_json::Value {
        serde_json::from_str(&self.scenario(&["query", "--cluster", cluster, "--sql", sql])).unwrap()
    }

    fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())",
            ])
            .arg(format!("{}{path}", self.endpoint))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A ferry project for the scenario; `migration` is the inline table's extra keys.
    fn project(&self, s: &serde_json::Value, command: &[&str], extra: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let command = serde_json::to_string(command).unwrap();
        let service = match s["service_arn"].as_str() {
            Some(arn) => format!("service = {{ apprunner_arn = \"{arn}\" }}\n"),
            None => String::new(),
        };
        let toml = format!(
            "project = \"e2e\"\n[env.stage]\nregion = \"us-east-1\"\nstack = \"{stack}\"\ndatabase = {{ cluster = \"{cluster}\" }}\n\
             timeouts = {{ snapshot = \"2m\", migration = \"2m\", restore = \"3m\", service = \"1m\" }}\n{service}{extra}\n\
             [env.stage.migration]\ncluster = \"${{output:ClusterName}}\"\ntask_definition = \"${{output:MigrationTaskDefinitionArn}}\"\n\
             subnets = \"${{output:PrivateSubnetIds}}\"\nsecurity_groups = [\"${{output:MigrationSecurityGroupId}}\"]\n\
             container = \"migrate\"\ncommand = {command}\n",
            stack = s["stack"].as_str().unwrap(),
            cluster = s["cluster"].as_str().unwrap(),
        );
        std::fs::write(dir.path().join("ferry.toml"), toml).unwrap();
        Project { dir, endpoint: self.endpoint.clone(), home: tempfile::tempdir().unwrap() }
    }

    fn alembic(&self) -> Vec<String> {
        let bin = self.python.parent().unwrap().join("alembic");
        let ini = repo().join("tests/fixtures/alembic/alembic.ini");
        vec![bin.display().to_string(), "-c".into(), ini.display().to_string(), "upgrade".into(), "head".into()]
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

struct Project {
    dir: tempfile::TempDir,
    endpoint: String,
    home: tempfile::TempDir,
}

impl Project {
    fn ferry(&self, args: &[&str]) -> Run {
        let mut c = Command::new(common::FERRY);
        c.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        for k in ["FERRY_CONFIG", "GITHUB_ACTIONS", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"] {
            c.env_remove(k);
        }
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", self.home.path());
        c.output().unwrap().into()
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn strs(cmd: &[String]) -> Vec<&str> {
    cmd.iter().map(String::as_str).collect()
}

#[test]
fn a_good_migration_reaches_head_with_a_tagged_snapshot() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let plan = p.ferry(&["plan", "stage"]);
    assert!(plan.stdout.contains("${output:ClusterName} = e") && plan.stdout.contains("-migrations"), "{plan:?}");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["task"]["exit_code"], 0);
    assert!(r.stderr.contains("Running upgrade 0002_add_email -> 0003a_split_name_part1"), "task logs streamed: {r:?}");
    let cluster = s["cluster"].as_str().unwrap();
    assert_eq!(
        emu.query(cluster, "SELECT version_num FROM alembic_version"),
        serde_json::json!([["0003b_split_name_part2"]])
    );

    let snaps = p.ferry(&["snapshot", "list", "stage", "--output", "json"]).json();
    let snap = snaps.as_array().unwrap().iter().find(|x| x["id"] == rec["snapshot"]["id"]).expect("the run's snapshot");
    assert_eq!(snap["tags"]["ferry:run-id"], rec["run_id"]);
    assert_eq!(snap["tags"]["ferry:purpose"], "pre-deploy");
    // The snapshot really holds the pre-deploy data.
    let snapshots = emu.get("/_emulator/snapshots");
    assert_eq!(snapshots[snap["id"].as_str().unwrap()]["status"], "available");
}

#[test]
fn a_migration_failing_halfway_is_restored_under_the_original_identifier() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(true);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    // The fixture's 0003b fails when FERRY_FIXTURE_FAIL=1, after 0003a committed its changes.
    std::fs::write(
        p.path().join("ferry.toml"),
        std::fs::read_to_string(p.path().join("ferry.toml")).unwrap() + "env = { FERRY_FIXTURE_FAIL = \"1\" }\n",
    )
    .unwrap();
    let cluster = s["cluster"].as_str().unwrap();
    let before = emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id");
    assert_eq!(before.as_array().unwrap().len(), 7);

    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "restored");
    assert_eq!(rec["task"]["exit_code"], 1);
    assert_eq!(rec["restore"]["restored_cluster"], cluster);
    let failed = rec["restore"]["failed_cluster"].as_str().unwrap().to_string();
    assert!(failed.starts_with(&format!("{cluster}-failed-")), "{failed}");

    // The original identifier holds the pre-deploy schema and every row...
    assert_eq!(emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id"), before);
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), serde_json::json!([["0002_add_email"]]));
    // ...and the failed cluster is kept as the migration left it.
    assert_eq!(
        emu.query(&failed, "SELECT version_num FROM alembic_version"),
        serde_json::json!([["0003a_split_name_part1"]])
    );
    assert_eq!(emu.query(&failed, "SELECT count(*) FROM orders"), serde_json::json!([[4]]));
    // The restored cluster copied the source's settings.
    let clusters = emu.get("/_emulator/clusters");
    assert!(clusters.get(cluster).is_some() && clusters.get(&failed).is_some(), "{clusters}");

    // App Runner was paused around the restore and runs again.
    let svc = emu.get("/_emulator/apprunner");
    let ops = svc[s["service_arn"].as_str().unwrap()]["operations"].as_array().unwrap().clone();
    let types: Vec<&str> = ops.iter().filter_map(|o| o["Type"].as_str()).collect();
    assert!(types.contains(&"PAUSE_SERVICE") && types.contains(&"RESUME_SERVICE"), "{types:?}");
    assert_eq!(svc[s["service_arn"].as_str().unwrap()]["status"], "RUNNING");

    // The journal says the same, and `ferry logs` reads the task's CloudWatch stream.
    let journal = p.ferry(&["runs", "show", rec["run_id"].as_str().unwrap(), "--output", "json"]).json();
    assert_eq!(journal, rec);
    let logs = p.ferry(&["logs", "stage", "--run", rec["run_id"].as_str().unwrap()]);
    assert!(logs.stdout.contains("UndefinedColumn"), "{logs:?}");
    let by_task = p.ferry(&["logs", "stage", "--task", rec["task"]["arn"].as_str().unwrap()]);
    assert_eq!(by_task.stdout, logs.stdout, "--task reads the same CloudWatch stream: {by_task:?}");
}

#[test]
fn a_task_that_cannot_start_exits_3_with_its_reason() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["/nonexistent/migrator", "upgrade"], "");
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("could not start"), "{rec}");
    assert!(rec["error"].as_str().unwrap().contains("CannotStartContainerError"), "{rec}");
    assert!(rec["restore"].is_null(), "nothing ran, nothing restored");
}

#[test]
fn a_migration_past_its_timeout_is_stopped_and_restored() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["sh", "-c", "echo 'starting a long backfill'; sleep 120"], "");
    let toml = std::fs::read_to_string(p.path().join("ferry.toml"))
        .unwrap()
        .replace("migration = \"2m\"", "migration = \"5s\"");
    std::fs::write(p.path().join("ferry.toml"), toml).unwrap();
    let r = p.ferry(&["deploy", "stage", "--output", "json"]);
    assert_eq!(r.code, 4, "{r:?}");
    let rec = r.json();
    assert!(rec["error"].as_str().unwrap().contains("did not finish within 5s"), "{rec}");
    let tasks = emu.get("/_emulator/tasks");
    let task = &tasks[rec["task"]["arn"].as_str().unwrap()];
    assert_eq!(task["lastStatus"], "STOPPED", "{task}");
    assert!(r.stderr.contains("starting a long backfill"), "{r:?}");
}

#[test]
fn a_missing_stack_output_is_named_with_the_outputs_that_exist() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let p = emu.project(&s, &["true"], "");
    let toml = std::fs::read_to_string(p.path().join("ferry.toml"))
        .unwrap()
        .replace("${output:ClusterName}", "${output:EcsCluster}");
    std::fs::write(p.path().join("ferry.toml"), toml).unwrap();
    let r = p.ferry(&["deploy", "stage"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no output \"EcsCluster\"") && r.stderr.contains("ClusterName, LogGroupName"), "{r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}
