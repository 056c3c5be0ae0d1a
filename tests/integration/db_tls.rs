//! TLS between ferry and PostgreSQL, through the real `ferry check` and
//! `ferry doctor`, against throwaway clusters this file starts itself: one with
//! `ssl=on`, a server certificate for `localhost` signed by a test CA made here
//! with the openssl CLI, and a pg_hba.conf that accepts only TLS (`hostssl`), so
//! every session that gets in used TLS; and one with `ssl=off`.
//!
//! Needs initdb and pg_ctl (under /usr/lib/postgresql/*/bin or on PATH) and
//! openssl; skipped without them unless FERRY_TEST_REQUIRE_PG=1.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{Project, Run};

const PASSWORD: &str = "s3cret-pw-never-shown";

/// The highest PostgreSQL under /usr/lib/postgresql, else the one on PATH.
fn pg_bindir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn have_openssl() -> bool {
    Command::new("openssl").arg("version").output().is_ok_and(|o| o.status.success())
}

/// The tools, or `None` (skipped) when they are missing and not required.
fn tools() -> Option<PathBuf> {
    let found = pg_bindir().filter(|_| have_openssl());
    if found.is_none() {
        assert!(
            !std::env::var("FERRY_TEST_REQUIRE_PG").is_ok_and(|v| v == "1"),
            "initdb/pg_ctl or openssl not found; install postgresql and openssl"
        );
        eprintln!("skipped: initdb/pg_ctl or openssl not found");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA (`<name>-ca.pem`) made in `dir`; returns the path of its certificate.
fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}-ca.key"), format!("{name}-ca.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &format!("/CN=ferry {name} test CA"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join(pem)
}

/// A name in the server's certificate that no resolver knows: reachable only
/// through `hostaddr`, as a cluster endpoint is through a tunnel.
const ENDPOINT: &str = "app.cluster-test.invalid";

/// `server.pem`/`server.key` for `localhost` and ENDPOINT (no IP address), signed by CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        format!("subjectAltName=DNS:localhost,DNS:{ENDPOINT}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}-ca.pem"),
            "-CAkey",
            &format!("{ca}-ca.key"),
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

/// PostgreSQL refuses to run as root: as root, run it as `nobody`.
fn run_as() -> Option<(String, u32, u32)> {
    if run(Command::new("id").arg("-u")) != "0" {
        return None;
    }
    let uid = run(Command::new("id").args(["-u", "nobody"])).parse().unwrap();
    let gid = run(Command::new("id").args(["-g", "nobody"])).parse().unwrap();
    Some(("nobody".into(), uid, gid))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A throwaway cluster on 127.0.0.1, stopped and removed on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<(String, u32, u32)>,
    port: u16,
}

impl Cluster {
    /// With `tls`, the server has `ssl=on` and the test CA's certificate for
    /// `localhost`, and accepts TCP sessions only over TLS.
    fn start(bin: PathBuf, tls: bool) -> Self {
        // Under /tmp: the unprivileged user must reach it and the socket path stays short.
        let dir = tempfile::Builder::new().prefix("ferry-tls-").tempdir_in("/tmp").unwrap();
        let user = run_as();
        let c = Cluster { dir, bin, user, port: free_port() };
        if tls {
            make_ca(c.path(), "test");
            make_ca(c.path(), "other");
            make_server_cert(c.path(), "test");
            std::fs::set_permissions(c.path().join("server.key"), std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
        }
        if let Some((_, uid, gid)) = &c.user {
            for f in ["", "server.key"] {
                let p = c.path().join(f);
                if p.exists() {
                    std::os::unix::fs::chown(&p, Some(*uid), Some(*gid)).unwrap();
                }
            }
        }
        let data = c.path().join("data");
        c.pg(&[
            "initdb",
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        let mut opts = format!("-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off", c.path().display(), c.port);
        if tls {
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .unwrap();
            let (cert, key) = (c.path().join("server.pem"), c.path().join("server.key"));
            opts.push_str(&format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", cert.display(), key.display()));
        } else {
            opts.push_str(" -c ssl=off");
        }
        let log = c.path().join("postgres.log");
        let started = c.try_pg(&[
            "pg_ctl",
            "start",
            "-D",
            data.to_str().unwrap(),
            "-w",
            "-t",
            "60",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
        ]);
        assert!(started, "pg_ctl start failed: {}", std::fs::read_to_string(&log).unwrap_or_default());
        c
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, tool: &str, args: &[&str]) -> Command {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.user {
            Some((name, _, _)) => {
                let mut c = Command::new("runuser");
                c.args(["-u", name, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        cmd.args(args).current_dir(self.path());
        cmd
    }

    fn try_pg(&self, args: &[&str]) -> bool {
        let out = self.command(args[0], &args[1..]).output().unwrap();
        if !out.status.success() {
            eprintln!("{args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        }
        out.status.success()
    }

    fn pg(&self, args: &[&str]) {
        assert!(self.try_pg(args), "{args:?} failed");
    }

    /// `postgres://postgres:PASSWORD@HOST:PORT/postgres` with `query` (trust auth ignores the password).
    fn url(&self, host: &str, query: &str) -> String {
        let q = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("postgres://postgres:{PASSWORD}@{host}:{}/postgres{q}", self.port)
    }

    fn ca(&self, name: &str) -> String {
        self.path().join(format!("{name}-ca.pem")).display().to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.path().join("data");
        let _ = self.try_pg(&["pg_ctl", "stop", "-D", data.to_str().unwrap(), "-m", "immediate", "-s"]);
    }
}

/// A project whose environments (name, provider, URL) all read through `database.url`.
fn project(envs: &[(&str, &str, String)]) -> Project {
    let mut toml = String::from("project = \"t\"\n");
    for (name, provider, url) in envs {
        let alembic = "alembic = { versions = \"versions\" }";
        if *provider == "aws" {
            toml.push_str(&format!(
                "[env.{name}]\nprovider = \"aws\"\nregion = \"us-east-1\"\ndatabase = {{ cluster = \"app\", url = \"{url}\" }}\n\
                 migration = {{ cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"], {alembic} }}\n"
            ));
        } else {
            toml.push_str(&format!(
                "[env.{name}]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"], {alembic} }}\n"
            ));
        }
    }
    let p = Project::new(&toml);
    std::fs::create_dir_all(p.path().join("versions")).unwrap();
    p.write("versions/a1.py", "revision = 'a1'\ndown_revision = None\n");
    p
}

/// ferry with no way to reach AWS: check and doctor must not need it.
fn ferry(p: &Project, args: &[&str]) -> Run {
    let r: Run = p
        .command(args)
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap()
        .into();
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD), "the password was printed: {r:?}");
    r
}

/// Doctor got in (over TLS: the server takes nothing else over TCP).
fn assert_connects(p: &Project, env: &str) {
    let r = ferry(p, &["doctor", env]);
    assert_eq!(r.code, 0, "{env}: {r:?}");
    assert!(r.stdout.contains("nothing would block a migration"), "{env}: {r:?}");
}

/// Doctor and check both refuse with exit 2 and a message holding `expected`.
fn assert_refused(p: &Project, env: &str, expected: &[&str]) {
    for cmd in ["doctor", "check"] {
        let r = ferry(p, &[cmd, env]);
        assert_eq!(r.code, 2, "{cmd} {env}: {r:?}");
        for e in expected {
            assert!(r.stderr.contains(e), "{cmd} {env}: expected {e:?} in {r:?}");
        }
    }
}

#[test]
fn verify_modes_against_a_server_that_takes_only_tls() {
    let Some(bin) = tools() else { return };
    let c = Cluster::start(bin, true);
    let (test_ca, other_ca) = (c.ca("test"), c.ca("other"));
    let p = project(&[
        ("full", "aws", c.url("localhost", &format!("sslmode=verify-full&sslrootcert={test_ca}"))),
        ("default-full", "aws", c.url("localhost", &format!("sslrootcert={test_ca}"))),
        ("rds-ca", "aws", c.url("localhost", "")),
        ("by-ip", "aws", c.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={test_ca}"))),
        ("tunnel", "aws", c.url(ENDPOINT, &format!("hostaddr=127.0.0.1&sslrootcert={test_ca}"))),
        ("ca-only", "aws", c.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={test_ca}"))),
        ("require", "aws", c.url("127.0.0.1", "sslmode=require")),
        ("require-other-ca", "aws", c.url("127.0.0.1", &format!("sslmode=require&sslrootcert={other_ca}"))),
        ("relative-ca", "aws", c.url("localhost", "sslmode=verify-full&sslrootcert=ca.pem")),
        ("local-default", "local", c.url("127.0.0.1", "")),
        ("disable", "aws", c.url("127.0.0.1", "sslmode=disable")),
    ]);
    std::fs::copy(&test_ca, p.path().join("ca.pem")).unwrap();

    // verify-full with the CA that signed the server's certificate: written or
    // the aws provider's default, by a name the certificate holds, or by that
    // name with the address in hostaddr (a tunnel); verify-ca and require by IP;
    // the local provider's default (prefer).
    for env in ["full", "default-full", "tunnel", "ca-only", "require", "relative-ca", "local-default"] {
        assert_connects(&p, env);
    }
    let r = ferry(&p, &["check", "full", "--output", "json"]);
    assert_eq!(r.code, 3, "the version table was read over TLS: {r:?}");
    assert_eq!(r.json()["pending"], serde_json::json!(["a1"]));

    assert_refused(
        &p,
        "rds-ca",
        &[
            "certificate verify failed: the server's certificate is not signed by a CA in the Amazon RDS CA bundle built into ferry",
            "(sslmode=verify-full is ferry's default on this provider)",
            "set sslrootcert=PATH",
        ],
    );
    assert_refused(
        &p,
        "by-ip",
        &[
            &format!(
                "certificate verify failed: the server's certificate is not valid for 127.0.0.1 (it names localhost, {ENDPOINT})"
            ),
            "sslmode=verify-ca",
        ],
    );
    assert_refused(
        &p,
        "require-other-ca",
        &[
            &format!("not signed by a CA in sslrootcert={other_ca} (sslmode=require with sslrootcert checks the chain"),
            "remove sslrootcert",
        ],
    );
    assert_refused(
        &p,
        "disable",
        &["the server accepts only TLS connections and sslmode=disable turns TLS off", "no encryption"],
    );
}

#[test]
fn prefer_falls_back_to_a_server_without_tls_and_the_stricter_modes_refuse_it() {
    let Some(bin) = tools() else { return };
    let c = Cluster::start(bin, false);
    let p = project(&[
        ("local-default", "local", c.url("127.0.0.1", "")),
        ("prefer", "aws", c.url("127.0.0.1", "sslmode=prefer")),
        ("disable", "aws", c.url("127.0.0.1", "sslmode=disable")),
        ("aws-default", "aws", c.url("localhost", "")),
        ("require", "local", c.url("127.0.0.1", "sslmode=require")),
    ]);
    for env in ["local-default", "prefer", "disable"] {
        assert_connects(&p, env);
    }
    let r = ferry(&p, &["check", "local-default"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_refused(
        &p,
        "aws-default",
        &["the server does not support TLS and sslmode=verify-full, ferry's default on this provider, requires it"],
    );
    assert_refused(
        &p,
        "require",
        &["the server does not support TLS and sslmode=require requires it", "sslmode=prefer"],
    );
}

/// No server needed: the config is refused before anything connects.
#[test]
fn an_unknown_sslmode_or_an_unreadable_root_certificate_is_a_config_error() {
    let p = project(&[("prod", "aws", format!("postgres://app:{PASSWORD}@db.internal/app?sslmode=verify_full"))]);
    for cmd in ["doctor", "check", "plan"] {
        let r = ferry(&p, &[cmd, "prod"]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(r.stderr.contains("unknown sslmode \"verify_full\""), "{cmd}: {r:?}");
        assert!(r.stderr.contains("disable, prefer, require, verify-ca, verify-full"), "{cmd}: {r:?}");
    }
    let p = project(&[(
        "prod",
        "aws",
        format!("postgres://app:{PASSWORD}@db.internal/app?sslrootcert=/nonexistent/ca.pem"),
    )]);
    let r = ferry(&p, &["doctor", "prod"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot read sslrootcert=/nonexistent/ca.pem"), "{r:?}");
}
