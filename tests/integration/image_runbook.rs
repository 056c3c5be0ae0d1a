//! Layer 1: `--image` in the deploy runbook against the fake cloud: the image
//! is prepared once per run (a task definition revision on ECS), recorded, and
//! a run killed anywhere around it resumes with that revision, never a second.

use std::path::Path;
use std::sync::{Arc, Mutex};

use ferry_core::config;
use ferry_core::output::{Redactor, Reporter};
use ferry_core::provider::fake::{FakeCloud, FaultKind, Op};
use ferry_core::runbook::journal::{self, Journal};
use ferry_core::runbook::record::{Outcome, RunKind, RunOptions, RunRecord, new_run_id};
use ferry_core::runbook::{NoOneToAsk, Run, deploy, plan, prepare_resume};

const IMAGE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/app:2.0.0";

fn env() -> config::EnvConfig {
    let text = r#"
project = "app"
[env.prod]
stack = "prod-stack"
database = { cluster = "app-prod" }
migration = { cluster = "${output:ClusterName}", task_definition = "td", subnets = "${output:PrivateSubnetIds}", security_groups = ["sg-1"], container = "migrate", command = ["alembic", "upgrade", "head"] }
"#;
    config::parse(Path::new("/virtual/ferry.toml"), text).unwrap().env("prod").unwrap().clone()
}

/// A deploy with `--image`; a Kill fault ends the "process" where it fires, and
/// `ferry resume` continues from the journal. Returns the final record.
async fn deploy_with_image(fake: &FakeCloud, dir: &Path) -> RunRecord {
    let env = env();
    let options = RunOptions::default();
    let steps = plan::deploy_plan(&env, &ferry_core::provider::fake::FakeWords, &options).names();
    let mut record = RunRecord::new(new_run_id("prod", chrono::Utc::now()), "prod", RunKind::Deploy, options, &steps);
    record.image = Some(IMAGE.into());
    let run_id = record.run_id.clone();
    let out = || Arc::new(Reporter::new(Arc::new(Mutex::new(Vec::new())), false, false, Redactor::default()));
    let run = |journal, record| Run {
        env: env.clone(),
        cloud: fake.cloud(),
        out: out(),
        confirm: Arc::new(NoOneToAsk),
        journal,
        record,
    };
    let killed = fake.killed();
    let journal = Journal::create(&ferry_core::state::Store::local(dir), &record, Redactor::default()).unwrap();
    let first = {
        let mut r = run(journal, record);
        tokio::select! {
            r = deploy(&mut r) => Some(r),
            () = killed.notified() => None,
        }
    };
    if let Some(r) = first {
        return r;
    }
    fake.clear_faults();
    let store = ferry_core::state::Store::local(dir);
    let mut record = journal::read_run(&store, &run_id).unwrap();
    let journal = Journal::attach(&store, &run_id, Redactor::default());
    prepare_resume(&mut record).unwrap();
    let mut r = run(journal, record);
    deploy(&mut r).await
}

#[tokio::test(start_paused = true)]
async fn the_task_runs_the_prepared_revision_and_the_record_names_it() {
    let fake = FakeCloud::new("app-prod", "v1", false);
    let dir = tempfile::tempdir().unwrap();
    let r = deploy_with_image(&fake, dir.path()).await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:?}");
    let revisions = fake.revisions();
    assert_eq!(revisions.len(), 1);
    assert_eq!((revisions[0].1.as_str(), revisions[0].2.as_str()), (r.run_id.as_str(), IMAGE));
    assert_eq!(r.image.as_deref(), Some(IMAGE));
    assert_eq!(r.task_definition.as_deref(), Some(revisions[0].0.as_str()));
    let tasks = fake.tasks();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks.values().next().unwrap().task_definition, r.task_definition, "the task ran that revision");
    assert_eq!(journal::read_run(&ferry_core::state::Store::local(dir.path()), &r.run_id).unwrap(), r);
}

#[tokio::test(start_paused = true)]
async fn a_run_killed_around_the_registration_resumes_with_one_revision() {
    // Killed right after registering (before the journal had it), then right
    // after starting the task (the journal had the revision).
    for op in [Op::PrepareImage, Op::StartTask] {
        let fake = FakeCloud::new("app-prod", "v1", false);
        let dir = tempfile::tempdir().unwrap();
        fake.fault(op, FaultKind::Kill);
        let r = deploy_with_image(&fake, dir.path()).await;
        assert_eq!(r.outcome, Outcome::Succeeded, "{op:?}: {r:?}");
        assert_eq!(fake.revisions().len(), 1, "{op:?}: one revision across the resume");
        let expected_calls = if op == Op::PrepareImage { 2 } else { 1 };
        assert_eq!(fake.calls(Op::PrepareImage), expected_calls, "{op:?}: a recorded revision is not prepared again");
        let tasks = fake.tasks();
        assert_eq!(tasks.len(), 1, "{op:?}");
        assert_eq!(tasks.values().next().unwrap().task_definition.as_deref(), Some(fake.revisions()[0].0.as_str()));
        assert_eq!(r.task_definition.as_deref(), Some(fake.revisions()[0].0.as_str()));
    }
}

#[tokio::test(start_paused = true)]
async fn an_image_that_cannot_be_prepared_changes_nothing() {
    let fake = FakeCloud::new("app-prod", "v1", false);
    let dir = tempfile::tempdir().unwrap();
    fake.fault(Op::PrepareImage, FaultKind::Error);
    let r = deploy_with_image(&fake, dir.path()).await;
    assert_eq!(r.outcome, Outcome::Aborted, "{r:?}");
    assert_eq!(r.exit_code, Some(3));
    assert!(r.error.as_deref().unwrap().contains(&format!("image {IMAGE} could not be prepared")), "{r:?}");
    assert!(fake.tasks().is_empty(), "no task started");
    assert_eq!(fake.clusters()["app-prod"].data, "v1");
}
