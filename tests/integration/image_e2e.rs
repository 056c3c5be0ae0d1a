//! `--image` end to end: the real `ferry` binary and the AWS SDK against the
//! emulator (tests/emulator/). On ECS the run registers a task definition
//! revision copied from the stack's, only the migration container's image
//! changed, tagged with the run, and the task runs that revision; on App Runner
//! the deployment is the UpdateService that sets the image. An image that
//! cannot be pulled fails before the migration: exit 3, nothing changed.
//!
//! Needs FERRY_EMULATOR_PYTHON and FERRY_TEST_PG_URL (scripts/test sets both);
//! the input checks at the end need neither.

use crate::common;
use crate::common::emulator::{Emulator, strs};
use serde_json::{Value, json};

const DIGEST: &str = "sha256:3f1c0d1e9a5b7c2d4e6f80912a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d";

/// The fields ECS sets itself for a revision: they differ between any two.
const READ_ONLY: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
    "deleteRequestedAt",
];

fn task_definition(emu: &Emulator, arn: &str) -> Value {
    serde_json::from_str(&emu.scenario(&["task-definition", "--arn", arn])).unwrap()
}

/// The definition without its read-only fields, the migration container's image set to `image`.
fn comparable(td: &Value, image: Option<&str>) -> Value {
    let mut td = td.clone();
    let o = td.as_object_mut().unwrap();
    o.retain(|k, _| !READ_ONLY.contains(&k.as_str()));
    if let Some(image) = image {
        for c in o["containerDefinitions"].as_array_mut().unwrap() {
            if c["name"] == "migrate" {
                c["image"] = json!(image);
            }
        }
    }
    td
}

/// Run `ferry <command> stage --image <image>` and check what an operator relies
/// on: the revision has the image and nothing else changed, it is tagged with
/// the run, and the task ran it.
fn run_with_image(
    emu: &Emulator,
    p: &common::emulator::Project,
    command: &str,
    original_arn: &str,
    image: &str,
) -> Value {
    let r = p.ferry(&[command, "stage", "--image", image, "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["image"], image);
    let revision = rec["task_definition"].as_str().unwrap().to_string();
    assert_ne!(revision, original_arn, "a new revision");

    let original = task_definition(emu, original_arn);
    let new = task_definition(emu, &revision);
    let migrate = new["taskDefinition"]["containerDefinitions"].as_array().unwrap();
    assert_eq!(migrate.iter().find(|c| c["name"] == "migrate").unwrap()["image"], image);
    assert_eq!(
        comparable(&new["taskDefinition"], None),
        comparable(&original["taskDefinition"], Some(image)),
        "every other field as in {original_arn}"
    );
    let kept = comparable(&original["taskDefinition"], None);
    for field in
        ["family", "taskRoleArn", "executionRoleArn", "networkMode", "cpu", "memory", "requiresCompatibilities"]
    {
        assert!(
            !kept[field].is_null(),
            "the stack's task definition sets {field}, so the comparison covers it: {kept}"
        );
    }
    let mut tags: Vec<Value> = original["tags"].as_array().cloned().unwrap_or_default();
    tags.retain(|t| t["key"] != "ferry:run-id");
    tags.push(json!({"key": "ferry:run-id", "value": rec["run_id"]}));
    assert_eq!(new["tags"], json!(tags), "the original's tags and the run's");

    let tasks = emu.get("/_emulator/tasks");
    let task = &tasks[rec["task"]["arn"].as_str().unwrap()];
    assert_eq!(task["taskDefinitionArn"], revision.as_str(), "the task ran that revision: {task}");
    assert_eq!(task["containers"]["migrate"]["image"], image);
    assert!(r.stderr.contains(&format!("task definition {revision}: image {image}")), "{}", r.stderr);
    rec
}

#[test]
fn deploy_and_migrate_run_a_revision_that_differs_from_the_stacks_only_in_the_image() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let plan = p.ferry(&["plan", "stage", "--output", "json"]).json();
    let original_arn = plan["stack_outputs"]["MigrationTaskDefinitionArn"].as_str().unwrap().to_string();

    let shown = p.ferry(&["plan", "stage", "--image", "registry.example.com/app-migrations:1.2.3"]);
    assert_eq!(shown.code, 0, "{shown:?}");
    assert!(shown.stdout.contains("image: registry.example.com/app-migrations:1.2.3 (from --image)"), "{shown:?}");
    assert!(shown.stdout.contains("register a new revision of task definition"), "{shown:?}");

    let rec = run_with_image(&emu, &p, "deploy", &original_arn, "registry.example.com/app-migrations:1.2.3");
    let cluster = s["cluster"].as_str().unwrap();
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), json!([["0003b_split_name_part2"]]));
    let shown = p.ferry(&["runs", "show", rec["run_id"].as_str().unwrap()]);
    let line = format!(
        "image:    registry.example.com/app-migrations:1.2.3 (task definition {})",
        rec["task_definition"].as_str().unwrap()
    );
    assert!(shown.stdout.contains(&line), "{shown:?}");

    // By digest.
    let image = format!("registry.example.com/app-migrations@{DIGEST}");
    let again = run_with_image(&emu, &p, "migrate", &original_arn, &image);
    assert_ne!(again["task_definition"], rec["task_definition"], "each run its own revision");
}

#[test]
fn an_image_that_does_not_exist_could_not_start_and_changes_nothing() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup(false);
    let cmd = emu.alembic();
    let p = emu.project(&s, &strs(&cmd), "");
    let cluster = s["cluster"].as_str().unwrap();
    let before = emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id");

    let image = "registry.example.com/app-migrations-does-not-exist:9.9.9";
    let r = p.ferry(&["deploy", "stage", "--image", image, "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "aborted");
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("could not start") && error.contains("CannotPullContainerError"), "{rec}");
    assert!(error.contains(image), "ECS's reason names the image: {rec}");
    assert!(rec["state"].as_str().unwrap().starts_with("nothing was changed"), "{rec}");
    assert!(rec["restore"].is_null(), "nothing ran, nothing restored");
    assert_eq!(rec["snapshot"]["status"], "available", "the snapshot came first");
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), json!([["0002_add_email"]]));
    assert_eq!(emu.query(cluster, "SELECT id, customer_id, total_cents FROM orders ORDER BY id"), before);
    let tasks = emu.get("/_emulator/tasks");
    let task = &tasks[rec["task"]["arn"].as_str().unwrap()];
    assert!(task["startedAt"].is_null(), "the container never started: {task}");
}

#[test]
fn an_app_runner_deployment_of_an_image_is_its_update_service() {
    let Some(emu) = Emulator::start() else { return };
    let s = emu.setup_with(true, true);
    let cluster = s["cluster"].as_str().unwrap();
    let release = format!("{}-release-2", s["image"].as_str().unwrap().trim_end_matches(":latest"));
    let cwd = emu.dir.path().to_str().unwrap().to_string();
    let head = json!({"revision": "head"}).to_string();
    emu.scenario(&["push-image", "--task-cwd", &cwd, "--image", &release, "--release", &head]);
    let toml = format!(
        "project = \"{project}\"\n[env.stage]\nregion = \"us-east-1\"\ndatabase = {{ cluster = \"{cluster}\" }}\n\
         timeouts = {{ snapshot = \"2m\", migration = \"2m\", restore = \"3m\", service = \"1m\" }}\n\
         migration = {{ runner = \"apprunner\" }}\nservice = {{ apprunner_arn = \"{}\" }}\n",
        s["service_arn"].as_str().unwrap(),
        project = s["name"].as_str().unwrap(),
    );
    let p = emu.project_with(&s, &toml);
    let source_before = emu.service(&s)["source"].clone();

    let r = p.ferry_with(&["deploy", "stage", "--output", "json"], &[("FERRY_IMAGE", &release)]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["image"], release.as_str(), "FERRY_IMAGE chose it");
    assert!(rec["task_definition"].is_null(), "App Runner registers nothing");
    let op = rec["task"]["arn"].as_str().unwrap();
    let newest = &emu.service(&s)["operations"][0];
    assert_eq!((newest["Id"].as_str(), newest["Type"].as_str()), (Some(op), Some("UPDATE_SERVICE")));
    let mut expected = source_before;
    expected["ImageRepository"]["ImageIdentifier"] = json!(release);
    assert_eq!(emu.service(&s)["source"], expected, "only the image changed");
    assert_eq!(emu.query(cluster, "SELECT version_num FROM alembic_version"), json!([["0003b_split_name_part2"]]));
}

/// Input checks: nothing touched, exit 2, the reason named.
#[test]
fn a_malformed_image_or_one_for_a_local_command_is_refused_before_anything() {
    let aws = common::Project::new(
        "project = \"t\"\n[env.stage]\nregion = \"us-east-1\"\ndatabase = { cluster = \"db\" }\n\
         migration = { cluster = \"c\", task_definition = \"td\", subnets = [\"s\"], security_groups = [\"g\"], container = \"migrate\", command = [\"m\"] }\n\
         [env.local]\nprovider = \"local\"\ndatabase = { url = \"sqlite://./app.db\" }\nmigration = { command = [\"true\"] }\n",
    );
    let r = aws.ferry(&["deploy", "stage", "--image", "Registry.Example/App:1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--image image \"Registry.Example/App:1\" is not a valid image reference"), "{r:?}");
    let r = aws.run(["migrate", "stage"]).env("FERRY_IMAGE", "app@sha256:123").expect_exit(2);
    assert!(r.stderr.contains("FERRY_IMAGE image") && r.stderr.contains("64 hex digits, not 3"), "{r:?}");
    let r = aws.ferry(&["plan", "stage", "--image", "app:"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = aws.ferry(&["deploy", "local", "--image", "app:1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("runs a local command"), "{r:?}");
    assert!(!aws.path().join(".ferry").exists(), "nothing touched");
}
