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
    assert!(r.stderr.contains("no usable AWS credentials") && r.stderr.contains("--profile"), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line: {r:?}");
    assert!(!p.path().join(".ferry").exists(), "nothing touched");
}

#[test]
fn usage_errors_from_the_command_line_exit_2() {
    let p = Project::sqlite(GOOD_MIGRATION, "");
    for args in [&["deploy"][..], &["frobnicate"][..], &["logs", "local", "--since", "ten"][..]] {
        let r = p.ferry(args);
        assert_eq!(r.code, 2, "{args:?} {r:?}");
    }
}
