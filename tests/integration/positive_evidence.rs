//! Layer 1, decisions on positive evidence: the deploy runbook against the fake
//! cloud (virtual time), with the migration task's final answer replaced by a
//! sparse one, and an App Runner deployment that lands while a restore waits
//! for it. What is asserted is what an operator relies on: the outcome and
//! exit code, whether the database was restored, and the `state:`/`next:`
//! lines, never an empty reason.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::config::{self, EnvConfig};
use ferry_core::output::{Redactor, Reporter};
use ferry_core::provider::fake::{FakeCloud, FaultKind, Op, TaskScript};
use ferry_core::provider::{
    AppService, MigrationRunner, OperationInfo, PResult, ServiceInfo, TaskHandle, TaskSpec, TaskState, TaskSummary,
};
use ferry_core::runbook::journal::Journal;
use ferry_core::runbook::record::{Outcome, RunKind, RunOptions, RunRecord, StepStatus, new_run_id};
use ferry_core::runbook::{AssumeYes, Confirm, NoOneToAsk, Run, deploy, plan};

const CLUSTER: &str = "app-prod";

fn env() -> EnvConfig {
    env_with("")
}

/// [`env`] with `extra` keys in the environment's table.
fn env_with(extra: &str) -> EnvConfig {
    let text = format!(
        r#"
project = "app"
[env.prod]
provider = "aws"
database = {{ cluster = "{CLUSTER}" }}
migration = {{ cluster = "c", task_definition = "td", subnets = ["s"], security_groups = ["sg-1"], container = "migrate", command = ["alembic", "upgrade", "head"] }}
service = {{ apprunner_arn = "arn:aws:apprunner:us-east-1:1:service/app/x" }}
{extra}
"#
    );
    config::parse(Path::new("/virtual/ferry.toml"), &text).unwrap().env("prod").unwrap().clone()
}

/// The fake's migration task, except that once it has stopped ferry is told
/// `last` instead: what a sparse or forgetful backend answers.
struct Sparse {
    fake: FakeCloud,
    last: TaskState,
}

#[async_trait]
impl MigrationRunner for Sparse {
    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        MigrationRunner::start(&self.fake, spec).await
    }
    async fn poll(&self, task_id: &str) -> PResult<TaskState> {
        Ok(match MigrationRunner::poll(&self.fake, task_id).await? {
            TaskState::Stopped { .. } => self.last.clone(),
            other => other,
        })
    }
    async fn stop(&self, task_id: &str, reason: &str) -> PResult<()> {
        MigrationRunner::stop(&self.fake, task_id, reason).await
    }
    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>> {
        MigrationRunner::active_tasks(&self.fake).await
    }
    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        MigrationRunner::find_by_run(&self.fake, run_id).await
    }
}

/// The fake's App Runner service, which also tells which operation is in
/// progress (a deployment someone started) and what image it deploys.
struct Deploying {
    fake: FakeCloud,
    deployment: Mutex<Option<String>>,
}

#[async_trait]
impl AppService for Deploying {
    fn platform(&self) -> &'static str {
        AppService::platform(&self.fake)
    }
    async fn status(&self) -> PResult<ServiceInfo> {
        AppService::status(&self.fake).await
    }
    async fn operation_in_progress(&self) -> PResult<Option<OperationInfo>> {
        let busy = self.fake.service_status().as_deref() == Some("OPERATION_IN_PROGRESS");
        let id = self.deployment.lock().unwrap().clone();
        Ok(id.filter(|_| busy).map(|id| OperationInfo {
            id,
            kind: ferry_core::provider::OperationKind::Deployment("START_DEPLOYMENT".into()),
        }))
    }
    async fn image(&self) -> PResult<Option<String>> {
        Ok(Some("image registry.example/app:v2".into()))
    }
    async fn pause(&self) -> PResult<Option<String>> {
        self.fake.pause().await
    }
    async fn resume(&self) -> PResult<Option<String>> {
        self.fake.resume().await
    }
    async fn replace_env_host(&self, var: &str, host: &str) -> PResult<Option<String>> {
        self.fake.replace_env_host(var, host).await
    }
    async fn operation_done(&self, operation_id: &str) -> PResult<Option<bool>> {
        self.fake.operation_done(operation_id).await
    }
}

/// A person at a terminal who answers no.
struct SaysNo;

impl Confirm for SaysNo {
    fn ask(&self, _question: &str) -> Option<bool> {
        Some(false)
    }
}

struct Harness {
    fake: FakeCloud,
    dir: tempfile::TempDir,
    output: Arc<Mutex<Vec<u8>>>,
    runner: Option<Arc<dyn MigrationRunner>>,
    service: Option<Arc<Deploying>>,
    confirm: Arc<dyn Confirm>,
}

impl Harness {
    fn new(script: TaskScript) -> Self {
        let fake = FakeCloud::new(CLUSTER, "v1", true);
        fake.set_task_script(script);
        Harness {
            fake,
            dir: tempfile::tempdir().unwrap(),
            output: Arc::new(Mutex::new(Vec::new())),
            runner: None,
            service: None,
            confirm: Arc::new(NoOneToAsk),
        }
    }

    fn answering(mut self, last: TaskState) -> Self {
        self.runner = Some(Arc::new(Sparse { fake: self.fake.clone(), last }));
        self
    }

    async fn deploy(&self) -> RunRecord {
        self.deploy_in(env()).await
    }

    async fn deploy_in(&self, env: EnvConfig) -> RunRecord {
        let steps = plan::deploy_plan(&env, &ferry_core::provider::fake::FakeWords, &RunOptions::default()).names();
        let record = RunRecord::new(
            new_run_id("prod", chrono::Utc::now()),
            "prod",
            RunKind::Deploy,
            RunOptions::default(),
            &steps,
        );
        let journal =
            Journal::create(&ferry_core::state::Store::local(self.dir.path()), &record, Redactor::default()).unwrap();
        let mut cloud = self.fake.cloud();
        if let Some(r) = &self.runner {
            cloud.runner = r.clone();
        }
        if let Some(s) = &self.service {
            cloud.service = Some(s.clone());
        }
        let out = Arc::new(Reporter::new(self.output.clone(), false, false, Redactor::default()));
        let mut run = Run { env, cloud, out, confirm: self.confirm.clone(), journal, record };
        deploy(&mut run).await
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }
}

fn no_empty_reason(r: &RunRecord) {
    let error = r.error.clone().unwrap_or_default();
    for bad in ["()", ": ;", ": (", "could not start: "] {
        assert!(!error.contains(bad), "empty reason ({bad:?}) in {error:?}");
    }
    assert!(!error.ends_with(": ") && !error.ends_with(':'), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_task_without_an_exit_code_or_proof_it_never_ran_is_restored() {
    let h = Harness::new(TaskScript::fails_halfway()).answering(TaskState::Stopped {
        started: true,
        exit_code: None,
        reason: None,
    });
    let r = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Restored, Some(4)), "{r:#?}\n{}", h.output());
    let error = r.error.clone().unwrap();
    assert!(error.contains("stopped without an exit code") && error.contains("may have changed"), "{error}");
    assert_eq!(h.fake.clusters()[CLUSTER].data, "v1", "the pre-deploy data is back");
    no_empty_reason(&r);
}

#[tokio::test(start_paused = true)]
async fn an_exit_code_with_an_empty_reason_prints_no_empty_parentheses() {
    let h = Harness::new(TaskScript::fails_halfway()).answering(TaskState::Stopped {
        started: true,
        exit_code: Some(1),
        reason: Some("  ".into()),
    });
    let r = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored, "{r:#?}");
    assert_eq!(r.error.as_deref(), Some("the migration exited with code 1"));
    assert_eq!(r.task.as_ref().unwrap().stopped_reason, None, "no empty reason in the record either");
}

#[tokio::test(start_paused = true)]
async fn a_task_proven_never_started_without_a_reason_aborts_without_an_empty_reason() {
    let h = Harness::new(TaskScript::succeeds()).answering(TaskState::Stopped {
        started: false,
        exit_code: None,
        reason: Some(String::new()),
    });
    let r = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Aborted, Some(3)), "{r:#?}");
    let task = r.task.as_ref().unwrap().arn.clone();
    assert_eq!(r.error.as_deref(), Some(format!("the migration task {task} could not start").as_str()));
    no_empty_reason(&r);
}

#[tokio::test(start_paused = true)]
async fn a_task_lost_after_it_started_needs_a_human_and_is_not_restored() {
    let h = Harness::new(TaskScript::fails_halfway()).answering(TaskState::Missing);
    let r = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::NeedsAttention, Some(5)), "{r:#?}\n{}", h.output());
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0, "no restore without knowing the migration failed");
    let state = r.state.clone().unwrap();
    let snapshot = r.snapshot.clone().unwrap().id;
    assert!(state.starts_with("unknown:") && state.contains("NOT restored") && state.contains(&snapshot), "{state}");
    let next = r.next.clone().unwrap();
    // This environment has no Alembic project: the migration's logs say what it did.
    let look = format!("ferry logs prod --run {}", r.run_id);
    assert!(next.starts_with(&look) && next.contains(&format!("--snapshot {snapshot}")), "{next}");
    assert!(r.error.clone().unwrap().contains("not found after it started"), "{r:?}");
    assert_eq!(r.step("migrate").unwrap().status, StepStatus::Failed);
}

/// A failing migration; 100 s in, someone starts a 4-minute deployment that
/// succeeds, so the restore's pause has to wait for it.
async fn restore_meeting_a_deployment(confirm: Arc<dyn Confirm>) -> (Harness, RunRecord) {
    let mut h = Harness::new(TaskScript::fails_halfway());
    let service = Arc::new(Deploying { fake: h.fake.clone(), deployment: Mutex::new(None) });
    h.service = Some(service.clone());
    h.confirm = confirm;
    let started = Arc::new(AtomicBool::new(false));
    let (fake, flag) = (h.fake.clone(), started.clone());
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(100)).await;
        let id = fake.start_foreign_operation(Duration::from_secs(240));
        *service.deployment.lock().unwrap() = Some(id);
        flag.store(true, Ordering::SeqCst);
    });
    let r = h.deploy().await;
    assert!(started.load(Ordering::SeqCst), "the deployment started during the run");
    (h, r)
}

#[tokio::test(start_paused = true)]
async fn a_deployment_that_lands_during_the_restore_leaves_the_service_paused_when_nobody_can_answer() {
    let (h, r) = restore_meeting_a_deployment(Arc::new(NoOneToAsk)).await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::NeedsAttention, Some(5)), "{r:#?}\n{}", h.output());
    assert_eq!(h.fake.service_status().as_deref(), Some("PAUSED"));
    assert_eq!(h.fake.clusters()[CLUSTER].data, "v1", "the database itself was restored");
    assert_eq!(r.next.as_deref(), Some("ferry service resume prod"));
    let state = r.state.clone().unwrap();
    assert!(state.contains("App Runner service is PAUSED") && state.contains(&format!("{CLUSTER} holds the data")));
    let error = r.error.clone().unwrap();
    assert!(error.contains("registry.example/app:v2") && error.contains("START_DEPLOYMENT operation"), "{error}");
    assert!(h.output().contains("resuming the service starts image registry.example/app:v2"), "{}", h.output());
    assert_eq!(h.fake.calls(Op::ServiceResume), 0);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_that_lands_during_the_restore_is_resumed_with_yes_and_kept_paused_on_no() {
    let (h, r) = restore_meeting_a_deployment(Arc::new(AssumeYes)).await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Restored, Some(4)), "{r:#?}\n{}", h.output());
    assert_eq!(h.fake.service_status().as_deref(), Some("RUNNING"));

    let (h, r) = restore_meeting_a_deployment(Arc::new(SaysNo)).await;
    assert_eq!(r.exit_code, Some(5), "{r:#?}");
    assert!(r.error.clone().unwrap().contains("declined"), "{r:?}");
    assert_eq!(h.fake.service_status().as_deref(), Some("PAUSED"));
}

/// After the swap the database set aside is fenced off (stopped, as the fake
/// records it) and the writes the restore left out are accounted for: from
/// the snapshot's time to the swap, kept in the set-aside database. With
/// `restore.stop_set_aside = false` it is left running, and the state says so.
#[tokio::test(start_paused = true)]
async fn a_restore_fences_the_set_aside_database_unless_told_not_to() {
    let h = Harness::new(TaskScript::fails_halfway());
    let r = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Restored, Some(4)), "{r:#?}\n{}", h.output());
    let restore = r.restore.clone().unwrap();
    let failed = restore.failed_cluster.clone().unwrap();
    let set_aside = restore.set_aside.clone().unwrap();
    assert_eq!((set_aside.id.as_str(), set_aside.stopped), (failed.as_str(), true), "{set_aside:?}");
    assert!(h.fake.clusters()[&failed].stopped, "the fake's set-aside database is stopped");
    assert!(!h.fake.clusters()[CLUSTER].stopped, "the restored one is not");
    assert_eq!(set_aside.dns_settled, None, "the fake has no names to resolve");
    let discarded = restore.discarded.clone().unwrap();
    assert_eq!(discarded.kept_in, failed);
    assert!(discarded.from.is_some() && discarded.from <= Some(discarded.until), "{discarded:?}");
    let state = r.state.clone().unwrap();
    assert!(state.contains("are not in the restored database") && state.contains(&failed), "{state}");

    let h = Harness::new(TaskScript::fails_halfway());
    let r = h.deploy_in(env_with("restore = { stop_set_aside = false }")).await;
    assert_eq!(r.outcome, Outcome::Restored, "{r:#?}");
    let set_aside = r.restore.clone().unwrap().set_aside.unwrap();
    assert!(!set_aside.stopped && set_aside.note.contains("stop_set_aside = false"), "{set_aside:?}");
    assert_eq!(h.fake.calls(Op::StopSetAside), 0);
}

/// A platform that refuses to stop the set-aside database (or fails to) is
/// a warning: the restore still succeeds, and the state names why.
#[tokio::test(start_paused = true)]
async fn a_set_aside_database_that_cannot_be_stopped_is_a_warning_not_a_failed_restore() {
    let h = Harness::new(TaskScript::fails_halfway());
    h.fake.fault(Op::StopSetAside, FaultKind::Refused);
    let r = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Restored, Some(4)), "{r:#?}\n{}", h.output());
    let set_aside = r.restore.clone().unwrap().set_aside.unwrap();
    assert!(!set_aside.stopped && set_aside.note.starts_with("not stopped"), "{set_aside:?}");
    assert!(r.state.clone().unwrap().contains("not stopped"), "{:?}", r.state);
}
