use super::*;
use proptest::prelude::*;

const GOOD: &str = r#"
project = "wumbo"

[defaults]
provider = "aws"
region = "us-east-1"
timeouts = { snapshot = "60m", migration = "30m" }

[env.production]
confirm = true
stack = "production-ComputeStack"
database = { cluster = "wumbo-prod-aurora-cluster" }
migration = { runner = "ecs", cluster = "${output:ClusterName}", task_definition = "${output:MigrationTaskDefinitionArn}", subnets = "${output:PrivateSubnetIds}", security_groups = ["${output:MigrationSecurityGroupId}"], container = "migrate", command = ["python", "scripts/run_migrations.py"] }
service = { apprunner_arn = "arn:aws:apprunner:us-east-1:123456789012:service/wumbo/abc" }
health = { url = "https://api.example.com/readyz", timeout = "5m" }

[env.local]
provider = "local"
timeouts = { migration = "2m" }
database = { url = "sqlite://./app.db" }
migration = { command = ["sh", "migrate.sh"], env = { TOKEN = { value = "hunter2", secret = true }, MODE = "x" } }
"#;

fn parse_str(text: &str) -> Result<Config, ConfigError> {
    parse(Path::new("/srv/app/ferry.toml"), text)
}

#[test]
fn defaults_are_inherited_key_by_key() {
    let cfg = parse_str(GOOD).unwrap();
    let prod = cfg.env("production").unwrap();
    assert_eq!(prod.provider, ProviderKind::Aws);
    assert_eq!(prod.region.as_deref(), Some("us-east-1"));
    assert!(prod.confirm);
    assert_eq!(prod.snapshot_prefix, "wumbo-production-pre-deploy");
    assert_eq!(prod.timeouts.snapshot, Duration::from_secs(3600));
    assert_eq!(prod.timeouts.restore, Duration::from_secs(5400), "built-in default");
    assert_eq!(
        prod.output_refs(),
        ["ClusterName", "MigrationSecurityGroupId", "MigrationTaskDefinitionArn", "PrivateSubnetIds"]
    );
    assert_eq!(prod.service.as_ref().unwrap().database_url_var, "DATABASE_URL");

    let local = cfg.env("local").unwrap();
    assert_eq!(local.provider, ProviderKind::Local);
    assert_eq!(local.migration.runner, RunnerKind::Command);
    // nested table merged: migration from env, snapshot from defaults
    assert_eq!(local.timeouts.migration, Duration::from_secs(120));
    assert_eq!(local.timeouts.snapshot, Duration::from_secs(3600));
    assert_eq!(local.secrets(), ["hunter2"]);
    assert_eq!(cfg.state_dir, Path::new("/srv/app/.ferry"));
}

#[test]
fn unknown_env_lists_the_known_ones() {
    let cfg = parse_str(GOOD).unwrap();
    let e = cfg.env("prod").unwrap_err().to_string();
    assert!(e.contains("unknown environment \"prod\""), "{e}");
    assert!(e.contains("local, production"), "{e}");
}

fn error_of(text: &str) -> String {
    parse_str(text).unwrap_err().to_string()
}

#[test]
fn unknown_keys_are_located() {
    let e = error_of("project = \"x\"\n[env.a]\nprovider = \"local\"\ndatabse = { url = \"sqlite://a.db\" }\n");
    assert!(e.starts_with("/srv/app/ferry.toml:4:1: "), "{e}");
    assert!(e.contains("unknown field `databse`"), "{e}");
}

#[test]
fn bad_durations_are_located() {
    let e = error_of("project = \"x\"\n[defaults]\ntimeouts = { snapshot = \"10 minutes\" }\n");
    assert!(e.starts_with("/srv/app/ferry.toml:3:25: "), "{e}");
    assert!(e.contains("invalid duration"), "{e}");
}

#[test]
fn malformed_toml_is_located() {
    let e = error_of("project = \"x\"\n[env.a\n");
    assert!(e.starts_with("/srv/app/ferry.toml:2:"), "{e}");
}

#[test]
fn semantic_errors_point_at_the_env() {
    let e = error_of("project = \"x\"\n\n[env.prod]\nprovider = \"aws\"\n");
    assert!(e.starts_with("/srv/app/ferry.toml:3:1: [env.prod]: missing database.cluster"), "{e}");

    let e = error_of(
        "project = \"x\"\n[env.a]\nprovider = \"local\"\ndatabase = { url = \"sqlite://a.db\" }\nmigration = { runner = \"ecs\", command = [\"x\"] }\n",
    );
    assert!(e.contains("needs provider = \"aws\""), "{e}");

    let e = error_of(
        "project = \"x\"\n[env.a]\ndatabase = { cluster = \"${output:Db}\" }\nmigration = { cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"] }\n",
    );
    assert!(e.contains("no `stack` is set"), "{e}");
}

#[test]
fn an_app_that_migrates_on_start_up_takes_no_command_and_is_restored_by_rename() {
    let svc = "service = { apprunner_arn = \"arn:aws:apprunner:us-east-1:1:service/app/x\" }";
    let ok = parse_str(&format!(
        "project = \"x\"\n[env.a]\ndatabase = {{ cluster = \"db\" }}\nmigration = {{ runner = \"apprunner\" }}\n{svc}\n"
    ))
    .unwrap();
    assert_eq!(ok.env("a").unwrap().migration.runner, RunnerKind::Apprunner);

    let e = error_of(&format!(
        "project = \"x\"\n[env.a]\ndatabase = {{ cluster = \"db\" }}\nmigration = {{ runner = \"apprunner\", command = [\"alembic\"] }}\n{svc}\n"
    ));
    assert!(e.contains("[env.a]") && e.contains("migration.command and migration.env are not used"), "{e}");

    let e = error_of(&format!(
        "project = \"x\"\n[defaults]\nrestore_strategy = \"new-cluster\"\n[env.a]\ndatabase = {{ cluster = \"db\" }}\nmigration = {{ runner = \"apprunner\" }}\n{svc}\n"
    ));
    assert!(e.contains("[env.a]") && e.contains("use restore_strategy = \"rename\""), "{e}");
}

#[test]
fn snapshot_prefix_must_make_valid_ids() {
    let e = error_of(
        "project = \"x\"\n[env.a]\nprovider = \"local\"\nsnapshot_prefix = \"{env}_snap\"\ndatabase = { url = \"sqlite://a.db\" }\nmigration = { command = [\"x\"] }\n",
    );
    assert!(e.starts_with("/srv/app/ferry.toml:4:19: "), "{e}");
    assert!(e.contains("contains '_'"), "{e}");
}

#[test]
fn locate_prefers_flag_then_env_then_parents() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::write(dir.path().join(FILE_NAME), "project = \"x\"").unwrap();
    std::fs::write(dir.path().join("other.toml"), "project = \"y\"").unwrap();
    assert_eq!(locate(None, None, &nested).unwrap(), dir.path().join(FILE_NAME));
    assert_eq!(locate(None, Some("../../other.toml"), &nested).unwrap(), nested.join("../../other.toml"));
    assert_eq!(
        locate(Some(Path::new("../../other.toml")), Some("nope.toml"), &nested).unwrap(),
        nested.join("../../other.toml")
    );
    let e = locate(Some(Path::new("missing.toml")), None, &nested).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = locate(None, None, empty.path()).unwrap_err().to_string();
    assert!(e.contains("no ferry.toml found"), "{e}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Any bytes: an error or a config, never a panic.
    #[test]
    fn parser_never_panics_on_arbitrary_text(text in "\\PC*") {
        let _ = parse_str(&text);
    }

    /// Mutations of a valid file (the interesting neighbourhood): never a panic,
    /// and every error carries a position inside the file or none.
    #[test]
    fn parser_never_panics_on_mutated_config(
        cut in 0..GOOD.len(),
        insert in "[\\[\\]{}=\",.a-z0-9${}:\n ]{0,12}",
    ) {
        let mut text = GOOD.to_string();
        let at = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        text.insert_str(at, &insert);
        if let Err(e) = parse_str(&text)
            && let Some((line, col)) = e.position {
                prop_assert!(line >= 1 && col >= 1);
                prop_assert!(line <= text.lines().count() + 1);
            }
    }
}

#[test]
fn migration_env_tables_merge_key_by_key() {
    let cfg = parse_str(
        "project = \"x\"\n[defaults]\nprovider = \"local\"\ndatabase = { url = \"sqlite://a.db\" }\nmigration = { command = [\"m\"], env = { A = \"1\", B = \"2\" } }\n[env.one]\nmigration = { env = { B = \"3\", C = { value = \"s\", secret = true } } }\n",
    )
    .unwrap();
    let env = &cfg.env("one").unwrap().migration.env;
    let shown: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.shown())).collect();
    assert_eq!(shown, [("A", "1"), ("B", "3"), ("C", "***")]);
    assert_eq!(cfg.env("one").unwrap().migration.command, ["m"]);
}

#[test]
fn alembic_versions_resolve_against_the_config_directory() {
    let base = "project = \"x\"\n[env.a]\nprovider = \"local\"\ndatabase = { url = \"sqlite://a.db\" }\n";
    let cfg = parse_str(&format!(
        "{base}migration = {{ command = [\"x\"], alembic = {{ versions = \"alembic/versions\" }} }}\n"
    ))
    .unwrap();
    let a = cfg.env("a").unwrap().migration.alembic.clone().unwrap();
    assert_eq!(a.versions, [Path::new("/srv/app/alembic/versions")]);
    assert_eq!(a.version_table, "alembic_version");

    let cfg = parse_str(&format!(
        "{base}migration = {{ command = [\"x\"], alembic = {{ versions = [\"a/v\", \"/abs/v\"], version_table = \"app.versions\" }} }}\n"
    ))
    .unwrap();
    let a = cfg.env("a").unwrap().migration.alembic.clone().unwrap();
    assert_eq!(a.versions, [Path::new("/srv/app/a/v"), Path::new("/abs/v")]);
    assert_eq!(a.version_table, "app.versions");

    let e = error_of(&format!("{base}migration = {{ command = [\"x\"], alembic = {{ versions = [] }} }}\n"));
    assert!(e.starts_with("/srv/app/ferry.toml:5:55: "), "{e}");
    assert!(e.contains("needs a directory of revision files"), "{e}");
    let e = error_of(&format!(
        "{base}migration = {{ command = [\"x\"], alembic = {{ versions = \"v\", version_table = \"x; drop\" }} }}\n"
    ));
    assert!(e.starts_with("/srv/app/ferry.toml:5:76: "), "{e}");
    assert!(e.contains("must be a table name"), "{e}");
    let e = error_of(&format!("{base}migration = {{ command = [\"x\"], alembic = {{ dir = \"v\" }} }}\n"));
    assert!(e.contains("unknown field `dir`"), "{e}");
}

#[test]
fn an_aws_env_may_set_a_url_next_to_its_cluster() {
    let base = "project = \"x\"\n[env.p]\nprovider = \"aws\"\nmigration = { runner = \"ecs\", cluster = \"c\", task_definition = \"t\", subnets = \"s\", security_groups = \"g\", container = \"m\", command = [\"x\"] }\n";
    let cfg = parse_str(&format!(
        "{base}database = {{ cluster = \"app\", url = \"postgres://ro:pw@127.0.0.1:5433/app\" }}\n"
    ))
    .unwrap();
    let p = cfg.env("p").unwrap();
    assert!(matches!(p.session_url(), Some(DbUrl::Postgres(u)) if u.ends_with(":5433/app")));
    let shown = serde_json::to_string(p).unwrap();
    assert!(shown.contains("postgres://ro:***@127.0.0.1:5433/app") && !shown.contains("pw@"), "{shown}");
    assert!(cfg.env("p").is_ok_and(|p| p.database_label() == "app"));
    let e = error_of(&format!("{base}database = {{ cluster = \"app\", url = \"sqlite://x.db\" }}\n"));
    assert!(e.contains("must be a postgres:// URL"), "{e}");
    let e = error_of(&format!("{base}database = {{ url = \"postgres://h/app\" }}\n"));
    assert!(e.contains("missing database.cluster"), "{e}");
    let e = error_of(
        "project = \"x\"\n[env.a]\nprovider = \"local\"\ndatabase = { cluster = \"c\", url = \"sqlite://a.db\" }\nmigration = { command = [\"x\"] }\n",
    );
    assert!(e.contains("takes only `url`"), "{e}");
}

const LOCAL_REHEARSE: &str = r#"
project = "p"
[defaults]
rehearse = { when = "always", max_duration = "5m", database_env = { DB_HOST = "${clone.endpoint}", DB_PORT = "${clone.port}" } }
[env.a]
provider = "local"
database = { url = "postgres://u@127.0.0.1/app" }
migration = { command = ["true"] }
rehearse = { max_exclusive_lock = "2s" }
[env.b]
provider = "local"
database = { url = "sqlite://./b.db" }
migration = { command = ["true"] }
"#;

#[test]
fn rehearse_inherits_from_defaults_and_has_defaults_of_its_own() {
    let cfg = parse_str(LOCAL_REHEARSE).unwrap();
    let a = &cfg.env("a").unwrap().rehearse;
    assert_eq!(a.when, RehearseWhen::Always);
    assert_eq!(a.max_duration, Duration::from_secs(300));
    assert_eq!(a.max_exclusive_lock, Duration::from_secs(2));
    assert!(a.max_exclusive_lock_set && a.configured && !a.keep_clone);
    assert_eq!(a.database_env["DB_HOST"], "${clone.endpoint}");
    let b = &cfg.env("b").unwrap().rehearse;
    assert_eq!(b.max_exclusive_lock, REHEARSE_MAX_EXCLUSIVE_LOCK);
    assert!(!b.max_exclusive_lock_set);
    let none = parse_str(&LOCAL_REHEARSE.replace("[defaults]\nrehearse", "[defaults]\nx_rehearse")).unwrap_err();
    assert!(none.message.contains("x_rehearse"), "{none}");
}

#[test]
fn rehearse_refuses_what_it_cannot_do() {
    let cases = [
        ("rehearse = { when = \"sometimes\" }", "sometimes"),
        ("rehearse = { keep = true }", "keep"),
        ("rehearse = { database_env = { H = \"${clone.host}\" } }", "${clone.host} is not known"),
        ("rehearse = { database_env = { DATABASE_URL = \"x\" } }", "DATABASE_URL is set by ferry"),
        ("rehearse = { max_duration = \"0s\" }", "greater than zero"),
    ];
    for (line, wanted) in cases {
        let text = format!(
            "project = \"p\"\n[env.a]\nprovider = \"local\"\ndatabase = {{ url = \"sqlite://./a.db\" }}\nmigration = {{ command = [\"true\"] }}\n{line}\n"
        );
        let e = parse_str(&text).unwrap_err();
        assert!(e.message.contains(wanted), "{line}: {e}");
    }
    // On aws the migration must be pointed at the clone, or it would run against the real database.
    let aws = |table: &str| GOOD.replace("[env.production]\n", &format!("[env.production]\n{table}\n"));
    for table in ["rehearse = { when = \"never\" }", "rehearse = { database_env = { DB_PORT = \"${clone.port}\" } }"] {
        let e = parse_str(&aws(table)).unwrap_err();
        assert!(e.message.contains("must contain") && e.message.contains("against the real database"), "{table}: {e}");
    }
    let good = parse_str(&aws(
        "rehearse = { when = \"always\", instance_class = \"db.t4g.medium\", database_env = { DATABASE_URL = \"postgresql://app@${clone.endpoint}:${clone.port}/app\" } }",
    ))
    .unwrap();
    let env = good.env("production").unwrap();
    assert_eq!(env.rehearse.instance_class.as_deref(), Some("db.t4g.medium"));
    assert_eq!(rehearsal_refusal(env), None);
}

#[test]
fn api_budget_inherits_key_by_key_and_refuses_a_zero_rate() {
    let text = "project = \"p\"\n[defaults]\napi_budget = { rds = 3 }\n\
                [env.a]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./a.db\" }\nmigration = { command = [\"true\"] }\n\
                api_budget = { logs = 0.5 }\n\
                [env.b]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./b.db\" }\nmigration = { command = [\"true\"] }\n";
    let cfg = parse_str(text).unwrap();
    let a = cfg.env("a").unwrap().api_budget;
    assert_eq!((a.rds, a.logs, a.ecs), (3.0, 0.5, crate::config::DEFAULT_API_BUDGET.ecs));
    assert_eq!(cfg.env("b").unwrap().api_budget.logs, crate::config::DEFAULT_API_BUDGET.logs);
    let e = parse_str(&text.replace("logs = 0.5", "logs = 0")).unwrap_err();
    assert!(e.message.contains("api_budget.logs = 0 must be a number of requests a second from 0.01 to 1000"), "{e}");
    let e = parse_str(&text.replace("logs = 0.5", "s3 = 1")).unwrap_err();
    assert!(e.message.contains("s3"), "{e}");
}

#[test]
fn lock_timeout_reaches_the_migration_as_pgoptions_and_only_where_it_can_apply() {
    let pg = |extra: &str| {
        format!(
            "project = \"p\"\n[env.e]\nprovider = \"local\"\ndatabase = {{ url = \"postgres://u@127.0.0.1/app\" }}\nmigration = {{ command = [\"true\"]{extra} }}\n"
        )
    };
    let cfg = parse(Path::new("/x/ferry.toml"), &pg(", lock_timeout = \"5s\"")).unwrap();
    let m = &cfg.env("e").unwrap().migration;
    assert_eq!(m.task_environment().get("PGOPTIONS").map(String::as_str), Some("-c lock_timeout=5000"));
    let cfg = parse(
        Path::new("/x/ferry.toml"),
        &pg(", lock_timeout = \"250ms\", env = { PGOPTIONS = \"-c statement_timeout=60000\" }"),
    )
    .unwrap();
    let m = &cfg.env("e").unwrap().migration;
    assert_eq!(
        m.task_environment().get("PGOPTIONS").map(String::as_str),
        Some("-c statement_timeout=60000 -c lock_timeout=250"),
        "the migration's own PGOPTIONS are kept"
    );
    let none = parse(Path::new("/x/ferry.toml"), &pg("")).unwrap();
    assert!(!none.env("e").unwrap().migration.task_environment().contains_key("PGOPTIONS"));

    let sqlite = "project = \"p\"\n[env.e]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./a.db\" }\nmigration = { command = [\"true\"], lock_timeout = \"5s\" }\n";
    let err = parse(Path::new("/x/ferry.toml"), sqlite).unwrap_err().to_string();
    assert!(err.contains("lock_timeout is PostgreSQL's") && err.contains("ferry.toml:5:"), "{err}");
    let err = parse(Path::new("/x/ferry.toml"), &pg(", lock_timeout = \"soon\"")).unwrap_err().to_string();
    assert!(err.contains("invalid duration"), "{err}");
}

#[test]
fn lock_retries_is_0_to_10_beside_lock_timeout_and_only_where_lock_timeout_applies() {
    let pg = |extra: &str| {
        format!(
            "project = \"p\"\n[env.e]\nprovider = \"local\"\ndatabase = {{ url = \"postgres://u@127.0.0.1/app\" }}\nmigration = {{ command = [\"true\"]{extra} }}\n"
        )
    };
    let parsed = |extra: &str| parse(Path::new("/x/ferry.toml"), &pg(extra));
    assert_eq!(parsed("").unwrap().env("e").unwrap().migration.lock_retries, 0, "default 0");
    let cfg = parsed(", lock_timeout = \"5s\", lock_retries = 3").unwrap();
    assert_eq!(cfg.env("e").unwrap().migration.lock_retries, 3);
    assert_eq!(
        parsed(", lock_timeout = \"5s\", lock_retries = 10").unwrap().env("e").unwrap().migration.lock_retries,
        10
    );
    for bad in ["11", "-1"] {
        let err = parsed(&format!(", lock_timeout = \"5s\", lock_retries = {bad}")).unwrap_err().to_string();
        assert!(err.contains("lock_retries must be between 0 and 10") && err.contains("ferry.toml:5:"), "{err}");
    }
    let err = parsed(", lock_retries = 2").unwrap_err().to_string();
    assert!(err.contains("migration.lock_retries needs migration.lock_timeout"), "{err}");
    let sqlite = "project = \"p\"\n[env.e]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./a.db\" }\nmigration = { command = [\"true\"], lock_retries = 1 }\n";
    let err = parse(Path::new("/x/ferry.toml"), sqlite).unwrap_err().to_string();
    assert!(err.contains("lock_retries retries a PostgreSQL lock timeout; this database is SQLite"), "{err}");
}
