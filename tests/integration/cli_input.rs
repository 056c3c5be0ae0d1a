//! Bad input: a clear message naming what is wrong, exit 2, nothing touched.

use crate::common::{self, FERRY, Project};

const GOOD_MIGRATION: &str = "echo migrating\n";

/// The project as it was: same files, no journal, no snapshot, no lock left.
/// (The state directory itself exists: seeding the database took the lock.)
fn assert_untouched(p: &Project, before: &[String]) {
    assert_eq!(p.files(), before, "files changed");
    for dir in ["runs", "snapshots", "tasks"] {
        assert!(!p.path().join(".ferry").join(dir).exists(), "state dir {dir} created");
    }
    let locks = std::fs::read_dir(p.path().join(".ferry/locks"))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).count());
    assert_eq!(locks.unwrap_or(0), 0, "a lock left behind");
}

#[test]
fn unknown_environment() {
    let p = Project::sqlite(GOOD_MIGRATION, "");
    let before = p.files();
    let r = p.ferry(&["deploy", "staging"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown environment \"staging\"") && r.stderr.contains("defines: local"), "{r:?}");
    assert_untouched(&p, &before);
}

#[test]
fn missing_config() {
    let dir = tempfile::tempdir().unwrap();
    let r: common::Run = std::process::Command::new(FERRY)
        .args(["deploy", "local"])
        .current_dir(dir.path())
        .env_remove("FERRY_CONFIG")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no ferry.toml found") && r.stderr.contains("--config"), "{r:?}");

    let r: common::Run = std::process::Command::new(FERRY)
        .args(["--config", "nope.toml", "plan", "local"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("nope.toml") && r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn malformed_toml_unknown_key_and_bad_duration_are_located() {
    for (toml, expect) in [
        ("project = \"t\"\n[env.local\n", "ferry.toml:2:"),
        (
            "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabse = { url = \"sqlite://a.db\" }\n",
            "ferry.toml:4:1: unknown field `databse`",
        ),
        (
            "project = \"t\"\n[defaults]\ntimeouts = { migration = \"ten minutes\" }\n",
            "ferry.toml:3:26: invalid duration",
        ),
    ] {
        let p = Project::new(toml);
        let before = p.files();
        for args in [&["config", "validate"][..], &["deploy", "local"][..]] {
            let r = p.ferry(args);
            assert_eq!(r.code, 2, "{args:?} {r:?}");
            assert!(r.stderr.contains(expect), "{args:?}: expected {expect:?} in {r:?}");
        }
        assert_untouched(&p, &before);
    }
}

#[test]
fn snapshot_ids_breaking_the_rds_rules_are_refused() {
    let p = Project::sqlite(GOOD_MIGRATION, "");
    let before = p.files();
    for (args, problem) in [
        (vec!["snapshot", "create", "local", "--id", "1-starts-with-digit"], "does not start with a letter"),
        (vec!["snapshot", "create", "local", "--id", "double--hyphen"], "contains \"--\""),
        (vec!["snapshot", "delete", "local", "trailing-"], "ends with a hyphen"),
        (vec!["snapshot", "wait", "local", "under_score"], "contains '_'"),
        (vec!["restore", "local", "--snapshot", &"a".repeat(64)], "64 characters long"),
    ] {
        let r = p.ferry(&args);
        assert_eq!(r.code, 2, "{args:?} {r:?}");
        assert!(r.stderr.contains(problem) && r.stderr.contains("1-63 letters"), "{args:?} {r:?}");
    }
    assert_untouched(&p, &before);
}

#[test]
fn confirm_environments_need_yes_without_a_tty() {
    let p = Project::sqlite(GOOD_MIGRATION, "confirm = true");
    let before = p.files();
    for args in [
        &["deploy", "local"][..],
        &["migrate", "local"][..],
        &["snapshot", "create", "local"][..],
        &["db", "exec", "local", "--sql", "DELETE FROM orders"][..],
    ] {
        let r = p.ferry(args);
        assert_eq!(r.code, 2, "{args:?} {r:?}");
        assert!(r.stderr.contains("confirm = true") && r.stderr.contains("--yes"), "{args:?} {r:?}");
    }
    assert_untouched(&p, &before);
    for cmd in ["deploy", "migrate"] {
        let r = p.ferry(&[cmd, "local", "--no-snapshot", "--yes"]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(r.stderr.contains("--no-snapshot is refused"), "{cmd}: {r:?}");
    }
    assert_untouched(&p, &before);
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "5"]);
    // A restore first says what it would do, then refuses without --yes.
    assert_eq!(p.ferry(&["snapshot", "create", "local", "--id", "some-snapshot", "--yes"]).code, 0);
    p.sql("DELETE FROM orders WHERE id = 1");
    let r = p.ferry(&["restore", "local", "--snapshot", "some-snapshot"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("confirm = true") && r.stderr.contains("--yes"), "{r:?}");
    assert!(r.stderr.contains("from snapshot some-snapshot") && r.stderr.contains("Nothing is deleted"), "{r:?}");
    assert_eq!(p.sql("SELECT count(*) FROM orders"), ["count(*)", "4"], "not restored");
    // With --yes it goes ahead; global flags work after the command too.
    let r = p.ferry(&["deploy", "local", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn an_aws_environment_without_region_or_credentials_exits_2_saying_how_to_fix_it() {
    let p = Project::new(
        "project = \"t\"\n[env.prod]\nstack = \"s\"\ndatabase = { cluster = \"c\" }\nmigration = { cluster = \"${output:ClusterName}\", task_definition = \"td\", subnets = [\"a\"], security_groups = [\"b\"], container = \"m\", command = [\"x\"] }\n",
    );
    let r = p.ferry(&["config", "validate"]);
    assert_eq!(r.code, 0, "the config itself is valid: {r:?}");
    let home = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| -> common::Run {
        let mut c = p.command(&["deploy", "prod", "--yes"]);
        for k in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            c.env_remove(k);
        }
        // No instance metadata lookups from a test: loopback only.
        c.env("HOME", home.path()).env("AWS_EC2_METADATA_DISABLED", "true");
        for (k, v) in extra {
            c.env(k, v);
        }
        c.output().unwrap().into()
    };
    let r = run(&[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no AWS region"), "{r:?}");
    let r = run(&[("AWS_REGION", "us-east-1")]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no AWS credentials found") && r.stderr.contains("--profile"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line: {r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn aws_failures_of_the_state_store_and_the_provider_are_one_line_and_exit_2() {
    let p = Project::new(
        "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./app.db\" }\n\
         migration = { command = [\"true\"] }\nstate = \"s3://app-state/ferry\"\nregion = \"us-east-1\"\n\
         [env.prod]\nregion = \"us-east-1\"\ndatabase = { cluster = \"c\" }\nmigration = { cluster = \"k\", \
         task_definition = \"td\", subnets = [\"a\"], security_groups = [\"b\"], container = \"m\", command = [\"x\"] }\n",
    );
    let home = tempfile::tempdir().unwrap();
    let port = closed_port();
    let run = |args: &[&str], extra: &[(&str, &str)]| -> common::Run {
        let mut c = p.command(args);
        for k in [
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
        ] {
            c.env_remove(k);
        }
        c.env("HOME", home.path());
        for (k, v) in extra {
            c.env(k, v);
        }
        let started = std::time::Instant::now();
        let r: common::Run = c.output().unwrap().into();
        assert!(started.elapsed() < std::time::Duration::from_secs(8), "{args:?} {extra:?} answered quickly: {r:?}");
        r
    };
    let keys = [("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "secret")];
    let refused_endpoint = format!("http://127.0.0.1:{port}");
    let unreachable = [keys[0], keys[1], ("AWS_ENDPOINT_URL", refused_endpoint.as_str())];
    let bad_region = [keys[0], keys[1], ("AWS_ENDPOINT_URL", "http://s3.us-eest-1.invalid")];
    // The command, the variables added, the words its one line must hold.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 8] = [
        (&["runs", "list"], &[], &["no AWS credentials found", "environment", ".aws/credentials", "metadata"]),
        (&["runs", "show", "local-20261207T000000Z-abcd"], &[], &["no AWS credentials found"]),
        (&["unlock", "local", "--yes"], &[], &["no AWS credentials found"]),
        (&["--profile", "nope", "runs", "list"], &[], &["profile \"nope\"", ".aws/config", ".aws/credentials"]),
        (&["runs", "list"], &unreachable, &["refused the connection", "AWS_ENDPOINT_URL"]),
        (&["unlock", "local", "--yes"], &unreachable, &["refused the connection"]),
        (&["runs", "list"], &bad_region, &["does not resolve (DNS)"]),
        (&["deploy", "prod", "--yes"], &unreachable, &["reach AWS for environment prod", "refused the connection"]),
    ];
    for (args, extra, words) in cases {
        let r = run(args, extra);
        assert_eq!(r.code, 2, "{args:?} {extra:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{args:?} {extra:?}: one line: {r:?}");
        assert!(r.stderr.starts_with("error: cannot "), "{args:?}: says what ferry tried: {r:?}");
        for w in words {
            assert!(r.stderr.contains(w), "{args:?} {extra:?}: {w:?} in {r:?}");
        }
        assert!(!r.stderr.contains("DispatchFailure") && !r.stderr.contains("ConnectorError"), "{r:?}");
    }
    // -v adds the SDK's own words.
    let r = run(&["-v", "runs", "list"], &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.lines().count() > 1 && r.stderr.contains("detail: "), "{r:?}");
}

#[test]
fn usage_errors_from_the_command_line_exit_2() {
    let p = Project::sqlite(GOOD_MIGRATION, "");
    for args in [&["deploy"][..], &["frobnicate"][..], &["logs", "local", "--since", "ten"][..]] {
        let r = p.ferry(args);
        assert_eq!(r.code, 2, "{args:?} {r:?}");
    }
}

/// `p`'s ferry.toml with its migration line replaced by `migration`.
fn with_migration(p: &Project, migration: &str) {
    let toml = std::fs::read_to_string(p.path().join("ferry.toml")).unwrap();
    let old = "migration = { command = [\"sh\", \"migrate.sh\"] }";
    assert!(toml.contains(old), "{toml}");
    p.write("ferry.toml", &toml.replace(old, migration));
}

#[test]
fn a_nul_in_migration_env_or_a_command_argument_is_refused_naming_the_key() {
    for (migration, key) in [
        (
            "migration = { command = [\"sh\", \"migrate.sh\"], env = { GREETING = \"a\\u0000b\" } }",
            "env.local.migration.env.GREETING",
        ),
        (
            "migration = { command = [\"sh\", \"migrate.sh\"], env = { T = { value = \"x\\U00000000\", secret = true } } }",
            "env.local.migration.env.T.value",
        ),
        ("migration = { command = [\"sh\", \"migrate.sh\", \"--to\\u0000head\"] }", "env.local.migration.command[2]"),
    ] {
        let p = Project::sqlite(GOOD_MIGRATION, "");
        with_migration(&p, migration);
        let before = p.files();
        let r = p.run(["deploy", "local"]).expect_exit(2);
        assert!(r.stderr.contains(key) && r.stderr.contains("NUL") && r.stderr.contains("ferry.toml:"), "{r:?}");
        assert_untouched(&p, &before);
    }
}

/// An AWS environment whose config is valid; nothing here reaches a network.
const AWS_ENV: &str = "project = \"t\"\n[env.prod]\nregion = \"us-east-1\"\ndatabase = { cluster = \"c\" }\nmigration = { cluster = \"c\", task_definition = \"td\", subnets = [\"a\"], security_groups = [\"b\"], container = \"m\", command = [\"x\"] }\n";

/// `ferry deploy prod --yes` on an AWS project, loopback only, with `vars`.
fn aws_deploy(p: &Project, vars: &[(&str, &std::ffi::OsStr)]) -> common::Run {
    let home = tempfile::tempdir().unwrap();
    let mut c = p.command(&["deploy", "prod", "--yes"]);
    for k in ["AWS_PROFILE", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_CONFIG_FILE", "AWS_DEFAULT_REGION"] {
        c.env_remove(k);
    }
    c.env("HOME", home.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap().into()
}

#[test]
fn an_api_budget_too_small_to_be_a_rate_is_refused_naming_it() {
    for v in ["1e-300", "0.001", "nan", "inf"] {
        let p = Project::new(&format!("{AWS_ENV}api_budget = {{ rds = {v} }}\n"));
        let r = p.run(["config", "validate"]).expect_exit(2);
        assert!(r.stderr.contains("api_budget.rds"), "{v}: {r:?}");
        let r = aws_deploy(&p, &[]);
        assert_eq!(r.code, 2, "{v}: {r:?}");
        assert!(!p.path().join(".ferry").exists(), "nothing touched");
    }
}

#[test]
fn aws_retry_settings_the_sdk_would_panic_on_exit_2_naming_them() {
    let p = Project::new(AWS_ENV);
    let os = std::ffi::OsStr::new;
    for (var, value) in
        [("AWS_MAX_ATTEMPTS", "lots"), ("AWS_MAX_ATTEMPTS", "0"), ("AWS_MAX_ATTEMPTS", ""), ("AWS_RETRY_MODE", "bogus")]
    {
        let r = aws_deploy(&p, &[(var, os(value))]);
        assert_eq!(r.code, 2, "{var}={value}: {r:?}");
        assert!(r.stderr.contains(var) && !r.stderr.contains("panicked"), "{var}={value}: {r:?}");
    }
    let config = p.path().join("aws-config");
    std::fs::write(&config, "[default]\nmax_attempts = many\n").unwrap();
    let r = aws_deploy(&p, &[("AWS_CONFIG_FILE", config.as_os_str())]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("max_attempts") && r.stderr.contains("\"default\""), "{r:?}");
    std::fs::write(&config, "[profile ci]\nretry_mode = sometimes\n").unwrap();
    let r = aws_deploy(&p, &[("AWS_CONFIG_FILE", config.as_os_str()), ("AWS_PROFILE", os("ci"))]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("retry_mode") && !r.stderr.contains("panicked"), "{r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}

#[test]
fn a_non_utf8_ferry_config_is_an_error_not_a_fallback_to_the_local_ferry_toml() {
    use std::os::unix::ffi::OsStrExt;
    let p = Project::sqlite(GOOD_MIGRATION, "");
    let before = p.files();
    for var in ["FERRY_CONFIG", "FERRY_STATE", "FERRY_IMAGE"] {
        let r = p.run(["deploy", "local"]).env(var, std::ffi::OsStr::from_bytes(b"\xffother.toml")).expect_exit(2);
        assert!(r.stderr.contains(var) && r.stderr.contains("UTF-8"), "{r:?}");
        assert_untouched(&p, &before);
    }
}

#[test]
fn a_database_url_with_a_broken_percent_escape_is_refused_without_showing_the_password() {
    let p = Project::new(
        "project = \"t\"\n[env.local]\nprovider = \"local\"\ndatabase = { url = \"postgres://u:p%zzTopSecret@127.0.0.1:1/db\" }\nmigration = { command = [\"true\"] }\n",
    );
    let r = p.run(["deploy", "local"]).expect_exit(2);
    assert!(r.stderr.contains("the password") && r.stderr.contains("two hex digits"), "{r:?}");
    assert!(!r.stderr.contains("TopSecret"), "{r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}

#[test]
fn an_empty_region_and_a_config_that_is_not_a_regular_file_exit_2() {
    let p = Project::sqlite(GOOD_MIGRATION, "");
    let before = p.files();
    let r = p.run(["--region", "", "deploy", "local"]).expect_exit(2);
    assert!(r.stderr.contains("region is empty"), "{r:?}");
    let r = p.run(["--region", "US East", "deploy", "local"]).expect_exit(2);
    assert!(r.stderr.contains("not an AWS region code"), "{r:?}");
    let r = p.run(["--config", "/dev/null", "deploy", "local"]).expect_exit(2);
    assert!(r.stderr.contains("/dev/null") && r.stderr.contains("not a regular file"), "{r:?}");
    let r = p.run(["deploy", "local"]).env("FERRY_CONFIG", "/dev/null").expect_exit(2);
    assert!(r.stderr.contains("FERRY_CONFIG") && r.stderr.contains("not a regular file"), "{r:?}");
    assert_untouched(&p, &before);
}
