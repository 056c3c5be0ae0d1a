//! A throwaway ferry project around the real `ferry` executable.

pub mod emulator;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

pub struct Project {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// A ferry command on a [`Project`], from [`Project::run`]: environment
/// changes, then [`Invocation::expect_exit`] (or [`Invocation::output`]).
pub struct Invocation {
    command: Command,
}

impl Invocation {
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Run it to the end, whatever its exit code.
    pub fn output(mut self) -> Run {
        self.command.output().expect("run ferry").into()
    }

    /// Run it to the end and fail the test, showing the whole run, unless it
    /// exited with `code`.
    #[track_caller]
    pub fn expect_exit(self, code: i32) -> Run {
        let r = self.output();
        assert_eq!(r.code, code, "{r:?}");
        r
    }
}

/// Seed used by most tests: 3 customers, 5 orders, schema version 1.
pub const SEED: &str = "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, total INTEGER NOT NULL);
INSERT INTO customers (name) VALUES ('ada'), ('grace'), ('edsger');
INSERT INTO orders (customer_id, total) VALUES (1, 10), (1, 20), (2, 5), (3, 7), (3, 99);";

impl Project {
    /// A project whose ferry.toml is `toml`.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ferry.toml"), toml).expect("write ferry.toml");
        Project { dir }
    }

    /// A SQLite project: env `local` runs `sh migrate.sh`, whose body is `script`;
    /// `extra` adds keys to `[env.local]` (its own `migration = ...` replaces the default).
    pub fn sqlite(script: &str, extra: &str) -> Self {
        let migration = if extra.lines().any(|l| l.starts_with("migration =")) {
            ""
        } else {
            "migration = { command = [\"sh\", \"migrate.sh\"] }"
        };
        let p = Project::new(&format!(
            "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://./app.db\" }}\n{migration}\n{extra}\n"
        ));
        p.write("migrate.sh", script);
        p.write("seed.sql", SEED);
        let seeded = p.ferry(&["db", "exec", "local", "--create", "--file", "seed.sql", "--yes"]);
        assert_eq!(seeded.code, 0, "{seeded:?}");
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("write");
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_IMAGE")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            // Tests talk to loopback only: no instance-metadata lookups by the AWS chain.
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        c
    }

    pub fn ferry(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run ferry").into()
    }

    /// One ferry command in the project, set up step by step and then run:
    /// `p.run(["deploy", "local"]).env("TERM", "dumb").expect_exit(3)`.
    pub fn run<'a>(&self, args: impl IntoIterator<Item = &'a str>) -> Invocation {
        let args: Vec<&str> = args.into_iter().collect();
        Invocation { command: self.command(&args) }
    }

    /// Rows of a query, tab-separated, header first.
    pub fn sql(&self, sql: &str) -> Vec<String> {
        let r = self.ferry(&["db", "exec", "local", "--sql", sql, "--yes"]);
        assert_eq!(r.code, 0, "{r:?}");
        r.stdout.lines().map(String::from).collect()
    }

    pub fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.dir.path().join(".ferry/runs")
    }

    /// The only run record in the journal.
    pub fn only_run(&self) -> serde_json::Value {
        let files: Vec<PathBuf> = std::fs::read_dir(self.runs_dir())
            .expect("runs dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        serde_json::from_str(&std::fs::read_to_string(&files[0]).expect("read")).expect("json")
    }
}

/// Poll until `f` holds or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// FERRY_TEST_PG_URL, the PostgreSQL server tests may create databases on; `None`
/// (test skipped) when unset, a panic when FERRY_TEST_REQUIRE_PG=1 (how CI runs).
pub fn pg_server() -> Option<String> {
    match std::env::var("FERRY_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("FERRY_TEST_REQUIRE_PG").is_ok_and(|v| v == "1") => {
            panic!("FERRY_TEST_PG_URL is not set; run scripts/test, which finds or starts a PostgreSQL server")
        }
        _ => {
            eprintln!("skipped: FERRY_TEST_PG_URL is not set");
            None
        }
    }
}

/// The emulator venv's python (with alembic), from FERRY_EMULATOR_PYTHON; `None`
/// (test skipped) when unset, a panic when FERRY_TEST_REQUIRE_EMULATOR=1.
pub fn emulator_python() -> Option<PathBuf> {
    match std::env::var("FERRY_EMULATOR_PYTHON") {
        Ok(py) if !py.is_empty() => Some(PathBuf::from(py)),
        _ if std::env::var("FERRY_TEST_REQUIRE_EMULATOR").is_ok_and(|v| v == "1") => {
            panic!("FERRY_EMULATOR_PYTHON is not set; run scripts/test (or py=$(tests/emulator/setup.sh | tail -n 1))")
        }
        _ => {
            eprintln!("skipped: FERRY_EMULATOR_PYTHON is not set (scripts/test sets it)");
            None
        }
    }
}

/// The databases on the test server whose names start with `tag`, listed through
/// the project's `admin` environment (a local env on the server's own URL).
pub fn tagged_databases(p: &Project, tag: &str) -> Vec<String> {
    let sql = format!("SELECT datname FROM pg_database WHERE datname LIKE '{tag}%' ORDER BY 1");
    let r = p.ferry(&["db", "exec", "admin", "--sql", &sql]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.lines().skip(1).map(String::from).collect()
}

/// Drop every database a test made, the copies ferry made of them included
/// (they all start with `tag`); for the tests' Drop impls.
pub fn drop_tagged_databases(p: &Project, tag: &str) {
    for db in tagged_databases(p, tag) {
        let _ = p.ferry(&["db", "exec", "admin", "--sql", &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)")]);
    }
}

/// A PostgreSQL URL with another database name.
pub fn pg_url_with_db(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Run `command` at a terminal: util-linux's `script` gives it a pty as
/// stdin and stderr (so ferry sees a person), and `answers` are typed, each
/// with Enter, once its questions are up. stdout holds everything the
/// terminal showed.
pub fn at_a_terminal(command: &Command, answers: &[&str]) -> Run {
    use std::io::Write;
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = quote(command.get_program());
    for a in command.get_args() {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let mut c = Command::new("script");
    c.args(["-qec", &line, "/dev/null"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(dir) = command.get_current_dir() {
        c.current_dir(dir);
    }
    for (k, v) in command.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let mut child = c.spawn().expect("script (util-linux) runs the command at a pty");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::sleep(Duration::from_millis(1500));
    for a in answers {
        let _ = stdin.write_all(format!("{a}\n").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    child.wait_with_output().expect("wait").into()
}
