//! scripts/deploy-stage.sh, deploy-prod.sh and run-migration-task.sh against a
//! project whose staging and production environments use the local provider
//! (SQLite): the plan is printed before anything changes, production is refused
//! without the confirmation flag (exit 2, database untouched), and ferry's exit
//! code is the script's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{FERRY, Project, Run};

const TOML: &str = r#"project = "scripts"

[defaults]
provider = "local"
database = { url = "sqlite://./app.db" }
migration = { command = ["sh", "migrate.sh"], env = { MIGRATIONS = "migrations" } }
timeouts = { snapshot = "1m", migration = "1m", restore = "1m" }

[env.staging]

[env.production]
confirm = true

# Same database, a migration that fails halfway: the deploy restores (exit 4).
[env.broken]
migration = { command = ["sh", "migrate.sh"], env = { MIGRATIONS = "migrations-broken" } }
"#;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A project with the quickstart's migration tool and seed, and TOML above.
fn project() -> Project {
    let p = Project::new(TOML);
    let quickstart = repo().join("examples/quickstart");
    for dir in ["migrations", "migrations-broken"] {
        std::fs::create_dir_all(p.path().join(dir)).unwrap();
        for e in std::fs::read_dir(quickstart.join(dir)).unwrap().filter_map(Result::ok) {
            std::fs::copy(e.path(), p.path().join(dir).join(e.file_name())).unwrap();
        }
    }
    for f in ["migrate.sh", "seed.sql"] {
        std::fs::copy(quickstart.join(f), p.path().join(f)).unwrap();
    }
    let seeded = p.ferry(&["db", "exec", "staging", "--create", "--file", "seed.sql", "--yes"]);
    assert_eq!(seeded.code, 0, "{seeded:?}");
    p
}

/// Runs scripts/<name> in the project directory with FERRY set.
fn script(p: &Project, name: &str, args: &[&str]) -> Run {
    script_cmd(p, name, args).env("FERRY", FERRY).output().unwrap().into()
}

fn script_cmd(p: &Project, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(repo().join("scripts").join(name));
    c.args(args)
        .current_dir(p.path())
        .env_remove("FERRY")
        .env_remove("FERRY_BIN")
        .env_remove("FERRY_CONFIG")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null());
    c
}

/// The one value a query returns, read through env `staging` (all envs share the database).
fn value(p: &Project, sql: &str) -> String {
    let r = p.ferry(&["db", "exec", "staging", "--sql", sql, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    r.stdout.lines().nth(1).unwrap_or_default().to_string()
}

fn versions(p: &Project) -> String {
    value(p, "SELECT group_concat(version, ' ') FROM schema_migrations")
}

fn order_count(p: &Project) -> String {
    value(p, "SELECT count(*) FROM orders")
}

fn runs(p: &Project) -> usize {
    std::fs::read_dir(p.runs_dir())
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
        .unwrap_or(0)
}

fn snapshots(p: &Project) -> usize {
    std::fs::read_dir(p.path().join(".ferry/snapshots")).map(|d| d.count()).unwrap_or(0)
}

fn position(haystack: &str, needle: &str, r: &Run) -> usize {
    haystack.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the output\n{r:?}"))
}

#[test]
fn production_is_refused_without_the_flag_after_printing_the_plan() {
    let p = project();
    let before = (versions(&p), order_count(&p));
    let r = script(&p, "deploy-prod.sh", &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("ferry deploy production will:"), "the plan is printed: {r:?}");
    assert!(r.stderr.contains("not deploying production: nothing was changed"), "{r:?}");
    assert!(r.stderr.contains("--i-have-reviewed-the-plan"), "says how to go on: {r:?}");
    assert_eq!((versions(&p), order_count(&p)), before, "the database changed");
    assert_eq!(runs(&p), 0, "a run was journaled");
    assert_eq!(snapshots(&p), 0, "a snapshot was taken");

    // --yes is not a way around the review.
    let r = script(&p, "deploy-prod.sh", &["--yes"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(runs(&p), 0);
}

#[test]
fn production_deploys_with_the_flag_and_the_plan_comes_first() {
    let p = project();
    let r = script(&p, "deploy-prod.sh", &["--i-have-reviewed-the-plan", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let plan = position(&r.stderr, "ferry deploy production will:", &r);
    let deploy = position(&r.stderr, "ferry deploy production (run ", &r);
    assert!(plan < deploy, "the plan must be printed before the deploy starts: {r:?}");
    // stdout is the deploy's run record only: the plan went to stderr.
    let record = r.json();
    assert_eq!(record["env"], "production");
    assert_eq!(record["outcome"], "succeeded");
    assert_eq!(versions(&p), "0001_init 0002_add_email");

    // --confirm is the short spelling.
    let r = script(&p, "deploy-prod.sh", &["--confirm"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(runs(&p), 2);
}

#[test]
fn deploy_stage_prints_the_plan_then_deploys_and_passes_ferrys_exit_code_through() {
    let p = project();
    let r = script(&p, "deploy-stage.sh", &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        position(&r.stderr, "ferry deploy staging will:", &r) < position(&r.stderr, "ferry deploy staging (run ", &r)
    );
    assert_eq!(versions(&p), "0001_init 0002_add_email");

    // A failed migration restored by ferry: exit 4, as ferry's own.
    let r = script(&p, "deploy-stage.sh", &["--env", "broken"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert_eq!(versions(&p), "0001_init 0002_add_email", "restored");
    assert_eq!(order_count(&p), "7", "every row restored");

    // A plan that fails (unknown environment): its exit code, and no deploy.
    let runs_before = runs(&p);
    let r = script(&p, "deploy-stage.sh", &["--env", "nope"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("not deploying"), "{r:?}");
    assert_eq!(runs(&p), runs_before);
}

#[test]
fn an_image_given_to_the_wrapper_reaches_the_plan_as_well_as_the_deploy() {
    let p = project();
    // The quickstart runs a local command, which takes no image: the plan says
    // so, naming FERRY_IMAGE, which shows the plan was given the image.
    let r = script(&p, "deploy-stage.sh", &["--image", "app:1.2.3"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("FERRY_IMAGE=app:1.2.3 ferry plan staging"), "{r:?}");
    assert!(r.stderr.contains("FERRY_IMAGE sets an image (app:1.2.3)"), "{r:?}");
    assert!(r.stderr.contains("not deploying"), "{r:?}");
}

#[test]
fn config_is_passed_through_to_plan_and_deploy() {
    let p = project();
    let sub = p.path().join("elsewhere");
    std::fs::create_dir(&sub).unwrap();
    let config = p.path().join("ferry.toml");
    let mut c = script_cmd(&p, "deploy-stage.sh", &["--config", config.to_str().unwrap()]);
    let r: Run = c.current_dir(&sub).env("FERRY", FERRY).output().unwrap().into();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains(&format!("# staging ({})", config.display())), "{r:?}");
    assert_eq!(versions(&p), "0001_init 0002_add_email");

    let missing = p.path().join("missing.toml");
    let r = script(&p, "deploy-stage.sh", &["--config", missing.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("does not exist"), "{r:?}");
}

#[test]
fn run_migration_task_runs_ferry_migrate_and_exits_with_its_code() {
    let p = project();
    let r = script(&p, "run-migration-task.sh", &["staging"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("ferry migrate staging succeeded"), "{r:?}");
    assert_eq!(versions(&p), "0001_init 0002_add_email");
    assert_eq!(p.only_run()["command"], "migrate");

    // A failed migration: ferry migrate does not restore and exits 5.
    let r = script(&p, "run-migration-task.sh", &["broken"]);
    assert_eq!(r.code, 5, "{r:?}");
    assert!(r.stderr.contains("ferry restore broken --snapshot"), "names the way back: {r:?}");

    // confirm = true without a terminal: ferry's refusal (exit 2) comes through.
    let r = script(&p, "run-migration-task.sh", &["production"]);
    assert_eq!(r.code, 2, "{r:?}");

    let r = script(&p, "run-migration-task.sh", &[]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("the first argument must be the environment"), "{r:?}");
}

#[test]
fn scripts_find_ferry_on_path_when_ferry_is_unset() {
    let p = project();
    let bin = tempfile::tempdir().unwrap();
    link(Path::new(FERRY), &bin.path().join("ferry"));
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let r: Run = script_cmd(&p, "deploy-stage.sh", &[]).env("PATH", path).output().unwrap().into();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("ferry deploy staging succeeded"), "{r:?}");
}

/// The wrappers copied into an application's repository (with
/// scripts/lib/wrappers.sh, as docs/github-actions.md says): ferry from
/// FERRY_BIN, the config path as an argument; with no ferry at all, a clear
/// refusal and never a build (the app's own Cargo.toml is not ferry's).
#[test]
fn copied_into_an_app_repo_they_use_the_installed_ferry_and_never_build_one() {
    use std::os::unix::fs::PermissionsExt;
    let p = project();
    let app = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(app.path().join("ci/lib")).unwrap();
    for f in ["deploy-stage.sh", "deploy-prod.sh", "lib/wrappers.sh"] {
        let to = app.path().join("ci").join(f);
        std::fs::copy(repo().join("scripts").join(f), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(app.path().join("Cargo.toml"), "[package]\nname = \"shop\"\n").unwrap();
    let config = p.path().join("ferry.toml");
    let config = config.to_str().unwrap();
    let run = |name: &str, args: &[&str], ferry_bin: Option<&str>| -> Run {
        let mut c = Command::new(app.path().join("ci").join(name));
        c.args(args)
            .current_dir(app.path())
            .env("PATH", "/usr/bin:/bin")
            .env_remove("FERRY")
            .env_remove("FERRY_BIN")
            .env_remove("FERRY_CONFIG")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("GITHUB_STEP_SUMMARY")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null());
        if let Some(bin) = ferry_bin {
            c.env("FERRY_BIN", bin);
        }
        c.output().unwrap().into()
    };

    let r = run("deploy-stage.sh", &["--config", config], None);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("ferry is not on PATH: install it"), "{r:?}");
    assert!(!r.stderr.contains("building"), "it tried to build ferry: {r:?}");

    let r = run("deploy-prod.sh", &["--config", config], Some(FERRY));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("ferry deploy production will:"), "{r:?}");
    assert_eq!(runs(&p), 0);

    let r = run("deploy-stage.sh", &["--config", config], Some(FERRY));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("ferry deploy staging succeeded"), "{r:?}");
    assert_eq!(versions(&p), "0001_init 0002_add_email");
}

fn link(from: &Path, to: &Path) {
    std::os::unix::fs::symlink(from, to).unwrap();
}

#[test]
fn each_script_explains_itself() {
    let p = Project::new(TOML);
    for (name, says) in [
        ("deploy-stage.sh", "--env NAME"),
        ("deploy-prod.sh", "--i-have-reviewed-the-plan"),
        ("run-migration-task.sh", "ferry migrate"),
    ] {
        let r = script(&p, name, &["--help"]);
        assert_eq!(r.code, 0, "{name} --help: {r:?}");
        assert!(r.stdout.contains(says) && !r.stdout.contains("set -euo"), "{name} --help: {r:?}");
    }
    let r = script(&p, "deploy-stage.sh", &["--env"]);
    assert_eq!(r.code, 2, "{r:?}");
}
