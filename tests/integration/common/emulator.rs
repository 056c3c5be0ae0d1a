//! The AWS emulator (tests/emulator/) for end-to-end tests, with the scenario
//! helper (tests/e2e/scenario.py) and a ferry project pointed at it.
//!
//! ferry runs as the shipped IAM policy: `scenario.py setup` registers
//! infra/ferry-iam.yaml's policy rendered for the scenario under a fresh access
//! key (`access_key` in its JSON), and every [`Project`] made from that scenario
//! runs ferry with that key. When the emulator is dropped at the end of a test
//! that did not fail otherwise, it fails the test if IAM denied any request
//! (`GET /_emulator/iam/denied`), naming the action and the resource, unless the
//! test said it expects denials ([`Emulator::expect_denials`]).

use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::Run;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Emulator {
    child: Child,
    pub endpoint: String,
    pub python: PathBuf,
    pub dir: tempfile::TempDir,
    expect_denials: Cell<bool>,
}

impl Emulator {
    pub fn start() -> Option<Self> {
        let (Some(python), Some(pg)) = (super::emulator_python(), super::pg_server()) else { return None };
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
        Some(Emulator { endpoint: endpoint.to_string(), child, python, dir, expect_denials: Cell::new(false) })
    }

    pub fn scenario(&self, args: &[&str]) -> String {
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
    pub fn setup(&self, service: bool) -> serde_json::Value {
        self.setup_with(service, false)
    }

    /// As `setup`; with `app` the service runs tests/fixtures/alembic/serve.py,
    /// which migrates on start-up, from an image at the database's revision.
    pub fn setup_with(&self, service: bool, app: bool) -> serde_json::Value {
        let name = format!("e{:06x}", fastrand::u32(..0xff_ffff));
        let repo = repo();
        let cwd = self.dir.path().to_str().unwrap().to_string();
        let mut args = vec!["setup", "--repo", repo.to_str().unwrap(), "--name", &name];
        if service {
            args.push("--service");
        }
        if app {
            args.extend(["--app", "--task-cwd", &cwd]);
        }
        serde_json::from_str(&self.scenario(&args)).unwrap()
    }

    /// As `setup(false)`, with a cluster set up like a production one (see
    /// `production_cluster` in tests/e2e/scenario.py): two instances and
    /// every setting a restore must carry over.
    pub fn setup_production(&self) -> serde_json::Value {
        let name = format!("e{:06x}", fastrand::u32(..0xff_ffff));
        let repo = repo();
        serde_json::from_str(&self.scenario(&[
            "setup",
            "--repo",
            repo.to_str().unwrap(),
            "--name",
            &name,
            "--production",
        ]))
        .unwrap()
    }

    /// `{"cluster": DescribeDBClusters, "instances": DescribeDBInstances}` of a cluster.
    pub fn describe(&self, cluster: &str) -> serde_json::Value {
        serde_json::from_str(&self.scenario(&["describe", "--cluster", cluster])).unwrap()
    }

    /// "Push" a new image for the scenario's service: what its next deployment runs.
    pub fn push_image(&self, s: &serde_json::Value, release: serde_json::Value) {
        let cwd = self.dir.path().to_str().unwrap().to_string();
        let image = s["image"].as_str().unwrap();
        self.scenario(&["push-image", "--task-cwd", &cwd, "--image", image, "--release", &release.to_string()]);
    }

    /// The scenario's App Runner service as the emulator sees it: status,
    /// operations (newest first), status history, source configuration.
    pub fn service(&self, s: &serde_json::Value) -> serde_json::Value {
        self.get("/_emulator/apprunner")[s["service_arn"].as_str().unwrap()].clone()
    }

    /// The statuses the service went through, oldest first.
    pub fn service_history(&self, s: &serde_json::Value) -> Vec<String> {
        let svc = self.service(s);
        svc["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_string()).collect()
    }

    /// The URL standing for the app's health endpoint (see tests/emulator/apprunner.py).
    pub fn health_url(&self, s: &serde_json::Value) -> String {
        format!("{}/_emulator/apprunner/health/{}", self.endpoint, s["service_name"].as_str().unwrap())
    }

    /// GET a URL: the HTTP status and the JSON body.
    pub fn fetch(&self, url: &str) -> (u16, serde_json::Value) {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import json, sys, urllib.error, urllib.request\n\
                 try:\n    r = urllib.request.urlopen(sys.argv[1]); code, body = r.status, r.read()\n\
                 except urllib.error.HTTPError as e:\n    code, body = e.code, e.read()\n\
                 print(code); sys.stdout.write(body.decode())",
            ])
            .arg(url)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (code, body) = text.split_once('\n').unwrap_or_else(|| panic!("no answer from {url}: {text}"));
        (code.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
    }

    /// Change the emulator's timings or one-shot faults (POST /_emulator/config).
    pub fn configure(&self, changes: serde_json::Value) {
        self.post("/_emulator/config", &changes.to_string());
    }

    /// POST `body` to one of the emulator's own endpoints; it must answer 2xx.
    fn post(&self, path: &str, body: &str) {
        let out = Command::new(&self.python)
            .args([
                "-c",
                "import sys, urllib.request\n\
                 r = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(), method='POST')\n\
                 urllib.request.urlopen(r).read()",
            ])
            .arg(format!("{}{path}", self.endpoint))
            .arg(body)
            .output()
            .unwrap();
        assert!(out.status.success(), "POST {path}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A ferry project with this ferry.toml, pointed at the emulator, running
    /// as the scenario's policy.
    pub fn project_with(&self, s: &serde_json::Value, toml: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ferry.toml"), toml).unwrap();
        Project { dir, endpoint: self.endpoint.clone(), home: tempfile::tempdir().unwrap(), access_key: access_key(s) }
    }

    /// Register an IAM policy for an access key (POST /_emulator/iam).
    pub fn register_policy(&self, access_key: &str, policy: serde_json::Value) {
        self.post("/_emulator/iam", &serde_json::json!({ "access_key": access_key, "policy": policy }).to_string());
    }

    /// This test expects IAM to deny some of ferry's requests: the check at
    /// the end of the test is skipped.
    pub fn expect_denials(&self) {
        self.expect_denials.set(true);
    }

    /// The requests IAM denied so far (`GET /_emulator/iam/denied`).
    pub fn denied(&self) -> Vec<serde_json::Value> {
        self.get("/_emulator/iam/denied")["denied"].as_array().cloned().unwrap_or_default()
    }

    /// A backup point of `cluster` now: what a point-in-time restore to a
    /// later time restores (POST /_emulator/backup).
    pub fn backup(&self, cluster: &str) {
        self.post("/_emulator/backup", &serde_json::json!({ "cluster": cluster }).to_string());
    }

    /// Rows of `sql` on the real database behind a cluster id.
    pub fn query(&self, cluster: &str, sql: &str) -> serde_json::Value {
        serde_json::from_str(&self.scenario(&["query", "--cluster", cluster, "--sql", sql])).unwrap()
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
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
    pub fn project(&self, s: &serde_json::Value, command: &[&str], extra: &str) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let command = serde_json::to_string(command).unwrap();
        let service = match s["service_arn"].as_str() {
            Some(arn) => format!("service = {{ apprunner_arn = \"{arn}\" }}\n"),
            None => String::new(),
        };
        let toml = format!(
            "project = \"{project}\"\n[env.stage]\nregion = \"us-east-1\"\nstack = \"{stack}\"\ndatabase = {{ cluster = \"{cluster}\" }}\n\
             timeouts = {{ snapshot = \"2m\", migration = \"2m\", restore = \"3m\", service = \"1m\" }}\n{service}{extra}\n\
             [env.stage.migration]\ncluster = \"${{output:ClusterName}}\"\ntask_definition = \"${{output:MigrationTaskDefinitionArn}}\"\n\
             subnets = \"${{output:PrivateSubnetIds}}\"\nsecurity_groups = [\"${{output:MigrationSecurityGroupId}}\"]\n\
             container = \"migrate\"\ncommand = {command}\n",
            stack = s["stack"].as_str().unwrap(),
            cluster = s["cluster"].as_str().unwrap(),
            project = s["name"].as_str().unwrap(),
        );
        std::fs::write(dir.path().join("ferry.toml"), toml).unwrap();
        Project { dir, endpoint: self.endpoint.clone(), home: tempfile::tempdir().unwrap(), access_key: access_key(s) }
    }

    pub fn alembic(&self) -> Vec<String> {
        let bin = self.python.parent().unwrap().join("alembic");
        let ini = repo().join("tests/fixtures/alembic/alembic.ini");
        vec![bin.display().to_string(), "-c".into(), ini.display().to_string(), "upgrade".into(), "head".into()]
    }
}

/// The access key `scenario.py setup` registered the scenario's policy under.
fn access_key(s: &serde_json::Value) -> String {
    s["access_key"].as_str().unwrap_or_else(|| panic!("the scenario has no access_key: {s}")).to_string()
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if !std::thread::panicking() && !self.expect_denials.get() {
            let denied = self.denied();
            if !denied.is_empty() {
                let lines: Vec<String> = denied
                    .iter()
                    .map(|d| {
                        format!(
                            "{} on {} ({}: {})",
                            d["action"].as_str().unwrap_or("?"),
                            d["resource"].as_str().unwrap_or("?"),
                            d["operation"].as_str().unwrap_or("?"),
                            d["message"].as_str().unwrap_or("?")
                        )
                    })
                    .collect();
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let _ = self.child.wait();
                panic!(
                    "IAM denied {} of ferry's requests under the shipped policy:\n  {}",
                    lines.len(),
                    lines.join("\n  ")
                );
            }
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

pub struct Project {
    dir: tempfile::TempDir,
    endpoint: String,
    home: tempfile::TempDir,
    access_key: String,
}

impl Project {
    pub fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_with(args, &[])
    }

    /// `ferry` with these environment variables set as well.
    pub fn ferry_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut c = self.command(args);
        c.envs(vars.iter().copied());
        c.output().unwrap().into()
    }

    /// One ferry command pointed at the emulator, set up step by step and then
    /// run, as [`super::Project::run`].
    pub fn run<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> super::Invocation {
        let args: Vec<&str> = args.into_iter().collect();
        super::Invocation { command: self.command(&args) }
    }

    /// `ferry args` pointed at the emulator, not started yet.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(super::FERRY);
        c.args(args).current_dir(self.dir.path()).stdin(Stdio::null());
        for k in
            ["FERRY_CONFIG", "FERRY_IMAGE", "GITHUB_ACTIONS", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"]
        {
            c.env_remove(k);
        }
        c.env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("HOME", self.home.path());
        c
    }

    /// The same project in a second, fresh checkout: same ferry.toml, nothing else.
    pub fn checkout(&self) -> Project {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(self.dir.path().join("ferry.toml"), dir.path().join("ferry.toml")).unwrap();
        Project {
            dir,
            endpoint: self.endpoint.clone(),
            home: tempfile::tempdir().unwrap(),
            access_key: self.access_key.clone(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Make the migration fail halfway: the fixture's 0003b breaks with
    /// FERRY_FIXTURE_FAIL=1, after 0003a committed its changes. The ECS
    /// migration table is the last one `Emulator::project` writes.
    pub fn failing_migration(&self) {
        let toml = self.dir.path().join("ferry.toml");
        let text = std::fs::read_to_string(&toml).unwrap() + "env = { FERRY_FIXTURE_FAIL = \"1\" }\n";
        std::fs::write(toml, text).unwrap();
    }
}

pub fn strs(cmd: &[String]) -> Vec<&str> {
    cmd.iter().map(String::as_str).collect()
}
