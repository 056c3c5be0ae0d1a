//! Layer 1: the deploy runbook against the fake cloud under virtual time.
//! Every step × every fault (error, throttling then success, hang past its
//! timeout, process killed then resumed) → expected outcome, exit code and
//! journal, with ARCHITECTURE.md's promises checked in every case.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::config::{self, EnvConfig};
use ferry_core::output::{Redactor, Reporter};
use ferry_core::provider::fake::{FakeCloud, FakeTask, FaultKind, Op, TaskScript};
use ferry_core::runbook::journal::{self, Journal};
use ferry_core::runbook::record::{Outcome, RunKind, RunOptions, RunRecord, StepStatus, new_run_id};
use ferry_core::runbook::{AssumeYes, Confirm, NoOneToAsk, Run, deploy, plan, prepare_resume};
use ferry_core::state::Store;

const SECRET: &str = "s3cr3t-t0ken-value";
const CLUSTER: &str = "app-prod";
const ORIGINAL: &str = "v1";

fn env_config(extra: &str) -> EnvConfig {
    parse_env(&config_text(extra))
}

fn parse_env(text: &str) -> EnvConfig {
    let cfg = config::parse(Path::new("/virtual/ferry.toml"), text).expect("test config parses");
    cfg.env("prod").expect("env").clone()
}

fn config_text(extra: &str) -> String {
    format!(
        r#"
project = "app"
[env.prod]
provider = "aws"
stack = "prod-stack"
database = {{ cluster = "{CLUSTER}" }}
migration = {{ cluster = "${{output:ClusterName}}", task_definition = "td", subnets = "${{output:PrivateSubnetIds}}", security_groups = ["sg-1"], container = "migrate", command = ["alembic", "upgrade", "head"], env = {{ API_TOKEN = {{ value = "{SECRET}", secret = true }} }} }}
service = {{ apprunner_arn = "arn:aws:apprunner:us-east-1:1:service/app/x" }}
health = {{ url = "https://app.example.com/readyz", timeout = "5m" }}
{extra}
"#
    )
}

struct Harness {
    fake: FakeCloud,
    env: EnvConfig,
    dir: tempfile::TempDir,
    output: Arc<Mutex<Vec<u8>>>,
    options: RunOptions,
    confirm: Arc<dyn Confirm>,
}

impl Harness {
    fn new(env: EnvConfig) -> Self {
        Harness {
            fake: FakeCloud::new(CLUSTER, ORIGINAL, true),
            env,
            dir: tempfile::tempdir().expect("tempdir"),
            output: Arc::new(Mutex::new(Vec::new())),
            options: RunOptions::default(),
            confirm: Arc::new(NoOneToAsk),
        }
    }

    fn reporter(&self) -> Arc<Reporter> {
        let redactor = Redactor::new(self.env.secrets());
        Arc::new(Reporter::new(self.output.clone(), false, false, redactor))
    }

    fn run(&self, journal: Journal, record: RunRecord) -> Run {
        Run {
            env: self.env.clone(),
            cloud: self.fake.cloud(),
            out: self.reporter(),
            confirm: self.confirm.clone(),
            journal,
            record,
        }
    }

    /// Deploy; if a Kill fault fires, the "process" dies there (the future is
    /// dropped with no chance to record anything), the faults are cleared, and
    /// `ferry resume` takes over from the journal.
    async fn deploy(&self) -> (RunRecord, bool) {
        let steps = plan::deploy_plan(&self.env, &ferry_core::provider::fake::FakeWords, &self.options).names();
        let record = RunRecord::new(
            new_run_id("prod", chrono::Utc::now()),
            "prod",
            RunKind::Deploy,
            self.options.clone(),
            &steps,
        );
        let run_id = record.run_id.clone();
        let redactor = Redactor::new(self.env.secrets());
        let journal = Journal::create(&Store::local(self.dir.path()), &record, redactor.clone()).expect("journal");
        let killed = self.fake.killed();
        let first = {
            let mut run = self.run(journal, record);
            tokio::select! {
                r = deploy(&mut run) => Some(r),
                () = killed.notified() => None,
            }
        };
        if let Some(r) = first {
            return (r, false);
        }
        // What a SIGKILL leaves behind: a journal saying "running".
        let on_disk = journal::read_run(&Store::local(self.dir.path()), &run_id).expect("journal readable after kill");
        assert_eq!(on_disk.outcome, Outcome::Running, "a killed run is recorded as running, not finished");
        self.fake.clear_faults();
        let store = Store::local(self.dir.path());
        let mut record = journal::read_run(&store, &run_id).expect("reopen");
        let journal = Journal::attach(&store, &run_id, redactor);
        prepare_resume(&mut record).expect("a killed run can be resumed");
        let mut run = self.run(journal, record);
        (deploy(&mut run).await, true)
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().expect("output")).into_owned()
    }

    /// ARCHITECTURE.md's promises, checked after every scenario.
    fn assert_invariants(&self, r: &RunRecord) {
        let tasks = self.fake.tasks();
        let clusters = self.fake.clusters();
        // 1. No migration starts unless this run's snapshot is available.
        for t in tasks.values() {
            assert!(t.snapshot_available_at_start, "task of {} started without an available snapshot", t.run_id);
        }
        // One task per attempt of the migration, even across a resume.
        let attempts: std::collections::BTreeSet<u32> = tasks.values().map(|t| t.attempt).collect();
        assert_eq!(attempts.len(), tasks.len(), "one task per attempt: {tasks:?}");
        assert!(tasks.len() <= r.migration_attempts.len().max(1), "no task outside the record: {tasks:?}");
        // 2. No database deleted or overwritten: the original data survives
        //    somewhere (the snapshot or a cluster), and whatever the migration
        //    did to the database is kept too.
        let at_cluster = clusters.get(CLUSTER).map(|c| c.data.as_str());
        let any = |d: &str| clusters.values().any(|c| c.data == d);
        let migrated = tasks.values().any(|_| any("v1+migrated") || any("v1+half-migrated"));
        let migrated_nothing = r.step("migrate").is_some_and(|s| s.status == StepStatus::Skipped);
        match r.outcome {
            Outcome::Succeeded if migrated_nothing => {
                assert_eq!(at_cluster, Some(ORIGINAL), "nothing to migrate: nothing changed");
                assert!(tasks.is_empty() && self.fake.snapshot_ids().is_empty(), "no task, no snapshot");
                assert_eq!(clusters.len(), 1);
            }
            Outcome::Succeeded => assert_eq!(at_cluster, Some("v1+migrated")),
            Outcome::Aborted => {
                assert_eq!(at_cluster, Some(ORIGINAL), "aborted runs change nothing");
                assert_eq!(clusters.len(), 1, "aborted runs create no database");
            }
            Outcome::Restored => {
                assert_eq!(at_cluster, Some(ORIGINAL), "the original id holds the pre-deploy data");
                let failed = r.restore.as_ref().and_then(|x| x.failed_cluster.clone()).expect("failed copy named");
                let kept = clusters.get(&failed).map(|c| c.data.as_str());
                let left = if tasks.values().all(FakeTask::rolls_back) { "v1" } else { "v1+half-migrated" };
                assert!(
                    kept == Some(left) || kept == Some("v1+migrated"),
                    "failed copy kept as the migration left it: {kept:?}"
                );
                // The clusters ferry renamed or created carry the run, for recovery from the cloud alone.
                let run_tag = |id: &str| clusters.get(id).and_then(|c| c.tags.get("ferry:run-id").cloned());
                assert_eq!(run_tag(&failed), Some(r.run_id.to_string()), "the cluster renamed aside carries the run");
                assert_eq!(run_tag(CLUSTER), Some(r.run_id.to_string()), "the restored cluster carries the run");
                let restored = &clusters[CLUSTER];
                assert_eq!(restored.tags.get("ferry:purpose").map(String::as_str), Some("restore"));
                assert_eq!(restored.instances.len(), 2, "every instance of the original recreated: {restored:?}");
            }
            Outcome::NeedsAttention if r.state.as_deref().is_some_and(|s| s.starts_with("unknown:")) => {
                // What the migration did is unknown: nothing is restored (that
                // could throw away a migration that succeeded), nothing deleted.
                assert!(r.restore.is_none(), "no automatic restore when the outcome is unknown");
                assert!(!self.fake.snapshot_ids().is_empty(), "the snapshot is kept");
                assert!(r.exit_code == Some(5));
            }
            Outcome::NeedsAttention => {
                assert!(!tasks.is_empty() && migrated, "needs_attention only after the migration changed data");
                assert!(!self.fake.snapshot_ids().is_empty(), "the snapshot is kept");
            }
            Outcome::NothingChanged => {
                let proof = r.nothing_changed().expect("nothing_changed only with a proof");
                assert!(proof.missing.is_empty(), "{proof:?}");
                assert_eq!(at_cluster, Some(ORIGINAL), "nothing changed, provably");
                assert_eq!(clusters.len(), 1, "nothing restored, nothing created");
                assert!(r.restore.is_none());
                assert!(!self.fake.snapshot_ids().is_empty(), "the snapshot is kept");
            }
            Outcome::Interrupted | Outcome::Running => panic!("run did not finish: {r:?}"),
            Outcome::Abandoned => panic!("a run is only abandoned by a person: {r:?}"),
        }
        // 3. The journal on disk is the final record, every step accounted for.
        let on_disk = journal::read_run(&Store::local(self.dir.path()), &r.run_id).expect("journal");
        assert_eq!(&on_disk, r, "journal matches the returned record");
        assert_eq!(r.exit_code, Some(r.outcome.exit_code()));
        for s in &r.steps {
            assert_ne!(s.status, StepStatus::Running, "step {} left running", s.name);
            if s.status != StepStatus::Pending {
                assert!(s.started_at.is_some() || s.status == StepStatus::Skipped, "step {} has no start", s.name);
            }
        }
        // 4. A failure names the state and the exact next command.
        if r.outcome != Outcome::Succeeded {
            assert!(r.error.is_some(), "error missing: {r:?}");
            assert!(r.state.as_deref().is_some_and(|s| !s.is_empty()), "state missing: {r:?}");
            assert!(r.next.as_deref().is_some_and(|n| n.starts_with("ferry ")), "next command missing: {r:?}");
        }
        // 5. Secrets reach neither output nor journal.
        let journal_text = std::fs::read_to_string(self.dir.path().join("runs").join(format!("{}.json", r.run_id)))
            .expect("journal text");
        assert!(!journal_text.contains(SECRET), "secret in the journal");
        assert!(!self.output().contains(SECRET), "secret in the output");
        // The service is never left paused after a completed restore or a clean run.
        if matches!(r.outcome, Outcome::Succeeded | Outcome::Restored | Outcome::Aborted | Outcome::NothingChanged) {
            assert_eq!(self.fake.service_status().as_deref(), Some("RUNNING"));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Error,
    Refused,
    /// The task's state is lost once it started (its runner no longer knows it).
    Lost,
    Throttle,
    Hang,
    Kill,
}

/// Arm `fault` at `step` of a deploy. Returns whether the migration should fail
/// (so the restore step runs).
fn arm(h: &Harness, step: &str, fault: Fault) {
    let kind = match fault {
        Fault::Error => FaultKind::Error,
        Fault::Refused => FaultKind::Refused,
        Fault::Lost => FaultKind::Lost,
        Fault::Throttle => FaultKind::Throttle(3),
        Fault::Hang => FaultKind::Hang,
        Fault::Kill => FaultKind::Kill,
    };
    match step {
        "preflight" => h.fake.fault(Op::Describe, kind),
        "snapshot" => h.fake.fault(Op::CreateSnapshot, kind),
        "migrate" if fault == Fault::Lost => h.fake.fault(Op::PollTask, kind),
        "migrate" => h.fake.fault(Op::StartTask, kind),
        "verify" => match fault {
            // The new code answers 500 on the migrated schema, until the restore.
            Fault::Error => h.fake.set_unhealthy_while_migrated(500),
            Fault::Throttle => h.fake.set_health(vec![503, 503, 200]),
            Fault::Hang | Fault::Kill | Fault::Refused | Fault::Lost => h.fake.fault(Op::Health, kind),
        },
        "restore" => {
            h.fake.set_task_script(TaskScript::fails_halfway());
            h.fake.fault(Op::RestoreSnapshot, kind);
        }
        "rename" => {
            h.fake.set_task_script(TaskScript::fails_halfway());
            h.fake.fault(Op::Rename, kind);
        }
        "service" => {
            h.fake.set_task_script(TaskScript::fails_halfway());
            h.fake.fault(Op::ServicePause, kind);
        }
        "twin" => {
            h.fake.set_task_script(TaskScript::fails_halfway());
            h.fake.fault(Op::CompleteRestore, kind);
        }
        "compare" => {
            h.fake.set_task_script(TaskScript::fails_halfway());
            h.fake.fault(Op::Compare, kind);
        }
        other => panic!("unknown step {other}"),
    }
}

fn expected(step: &str, fault: Fault) -> Outcome {
    use Outcome::*;
    match (step, fault) {
        ("preflight" | "snapshot", Fault::Error | Fault::Hang) => Aborted,
        // RunTask refused: proof that nothing started. RunTask failing without
        // an answer: it may have started, so the outcome is unknown (exit 5).
        ("migrate", Fault::Refused) => Aborted,
        ("migrate", Fault::Error) => NeedsAttention,
        // Local task state lost: what the migration did is unknown, exit 5, no restore.
        ("migrate", Fault::Lost) => NeedsAttention,
        ("migrate", Fault::Hang) => Restored,
        ("verify", Fault::Error | Fault::Hang) => Restored,
        ("restore" | "twin" | "rename" | "service", Fault::Error | Fault::Hang) => NeedsAttention,
        ("restore" | "twin" | "rename" | "service", Fault::Throttle | Fault::Kill) => Restored,
        // The comparison never stops a restore; one that cannot be made is itself reported.
        ("compare", _) => Restored,
        (_, Fault::Throttle | Fault::Kill) => Succeeded,
        _ => unreachable!(),
    }
}

async fn scenario(step: &str, fault: Fault) {
    let h = Harness::new(env_config(""));
    arm(&h, step, fault);
    let (r, resumed) = h.deploy().await;
    let want = expected(step, fault);
    assert_eq!(r.outcome, want, "{step} × {fault:?}: {r:#?}\noutput:\n{}", h.output());
    assert_eq!(resumed, matches!(fault, Fault::Kill), "{step} × {fault:?}: kill fault fired iff armed");
    h.assert_invariants(&r);
    if step == "migrate" && matches!(fault, Fault::Error | Fault::Lost) {
        let next = r.next.clone().unwrap_or_default();
        assert!(
            next.starts_with("ferry logs") || next.starts_with("ferry check"),
            "unknown outcome: look first, then decide: {next}"
        );
        return;
    }
    if let Outcome::NeedsAttention = want {
        // A failed restore is retried by `ferry resume`, which then completes it.
        let next = r.next.clone().unwrap_or_default();
        assert!(next.starts_with("ferry resume"), "{step} × {fault:?}: {next}");
        h.fake.recover();
        let redactor = Redactor::new(h.env.secrets());
        let store = Store::local(h.dir.path());
        let mut record = journal::read_run(&store, &r.run_id).expect("reopen");
        let journal = Journal::attach(&store, &r.run_id, redactor);
        prepare_resume(&mut record).expect("failed restore is resumable");
        let mut run = h.run(journal, record);
        let again = deploy(&mut run).await;
        assert_eq!(again.outcome, Outcome::Restored, "resume after {step} × {fault:?}: {again:#?}\n{}", h.output());
        h.assert_invariants(&again);
    }
}

macro_rules! matrix {
    ($($name:ident: $step:literal, $fault:ident;)*) => {
        $(
            #[tokio::test(start_paused = true)]
            async fn $name() {
                scenario($step, Fault::$fault).await;
            }
        )*
    };
}

matrix! {
    preflight_error: "preflight", Error;
    preflight_throttled: "preflight", Throttle;
    preflight_hang: "preflight", Hang;
    preflight_killed: "preflight", Kill;
    snapshot_error: "snapshot", Error;
    snapshot_throttled: "snapshot", Throttle;
    snapshot_hang: "snapshot", Hang;
    snapshot_killed: "snapshot", Kill;
    migrate_error: "migrate", Error;
    migrate_refused: "migrate", Refused;
    migrate_task_state_lost: "migrate", Lost;
    migrate_throttled: "migrate", Throttle;
    migrate_hang: "migrate", Hang;
    migrate_killed: "migrate", Kill;
    verify_error: "verify", Error;
    verify_throttled: "verify", Throttle;
    verify_hang: "verify", Hang;
    verify_killed: "verify", Kill;
    restore_error: "restore", Error;
    restore_throttled: "restore", Throttle;
    restore_hang: "restore", Hang;
    restore_killed: "restore", Kill;
    twin_error: "twin", Error;
    twin_throttled: "twin", Throttle;
    twin_hang: "twin", Hang;
    twin_killed: "twin", Kill;
    compare_error: "compare", Error;
    compare_throttled: "compare", Throttle;
    compare_hang: "compare", Hang;
    compare_killed: "compare", Kill;
    rename_error: "rename", Error;
    rename_throttled: "rename", Throttle;
    rename_hang: "rename", Hang;
    rename_killed: "rename", Kill;
    service_pause_error: "service", Error;
    service_pause_throttled: "service", Throttle;
    service_pause_hang: "service", Hang;
    service_pause_killed: "service", Kill;
}

#[tokio::test(start_paused = true)]
async fn a_migration_that_fails_is_restored_with_the_failed_cluster_kept() {
    let h = Harness::new(env_config(""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored);
    assert_eq!(r.exit_code, Some(4));
    let restore = r.restore.clone().expect("restore record");
    assert_eq!(restore.restored_cluster, CLUSTER);
    assert!(restore.failed_cluster.as_deref().is_some_and(|f| f.starts_with("app-prod-failed-")));
    assert_eq!(r.task.as_ref().and_then(|t| t.exit_code), Some(1));
    let out = h.output();
    assert!(out.contains("ERROR: column \"x\" does not exist"), "task logs streamed:\n{out}");
    assert_eq!(h.fake.calls(Op::ServicePause), 1);
    assert_eq!(h.fake.calls(Op::ServiceResume), 1);
    h.assert_invariants(&r);
}

/// A database under this run's restore name that carries another run's id
/// (two runs in one second once shared names) is never taken for this run's:
/// the resumed restore stops (exit 5) and touches neither database.
#[tokio::test(start_paused = true)]
async fn a_database_under_the_runs_name_made_by_another_run_is_never_taken_for_its_own() {
    let h = Harness::new(env_config(""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    h.fake.fault(Op::RestoreSnapshot, FaultKind::Kill);
    let steps = plan::deploy_plan(&h.env, &ferry_core::provider::fake::FakeWords, &h.options).names();
    let record =
        RunRecord::new(new_run_id("prod", chrono::Utc::now()), "prod", RunKind::Deploy, h.options.clone(), &steps);
    let run_id = record.run_id.clone();
    let store = Store::local(h.dir.path());
    let redactor = Redactor::new(h.env.secrets());
    let journal = Journal::create(&store, &record, redactor.clone()).expect("journal");
    let killed = h.fake.killed();
    {
        let mut run = h.run(journal, record);
        tokio::select! {
            r = deploy(&mut run) => panic!("the kill fault did not fire: {r:?}"),
            () = killed.notified() => {}
        }
    }
    h.fake.clear_faults();
    let mut record = journal::read_run(&store, &run_id).expect("reopen");
    let staging = record.restore.as_ref().expect("names journaled").staging_cluster.clone();
    assert!(staging.ends_with(&format!("-{}", &run_id[run_id.len() - 4..])), "{staging}");
    // Meanwhile the name is another run's work.
    h.fake.set_cluster_tag(&staging, "ferry:run-id", "prod-20260101T000000Z-beef");
    prepare_resume(&mut record).expect("resumable");
    let mut run = h.run(Journal::attach(&store, &run_id, redactor), record);
    let r = deploy(&mut run).await;
    assert_eq!(r.outcome, Outcome::NeedsAttention, "{r:?}");
    assert!(r.error.as_deref().is_some_and(|e| e.contains("not this run's work")), "{r:?}");
    let clusters = h.fake.clusters();
    assert_eq!(clusters[CLUSTER].data, "v1+half-migrated", "the database is left as the migration left it");
    assert_eq!(clusters[&staging].tags["ferry:run-id"], "prod-20260101T000000Z-beef", "the other run's is untouched");
    assert_eq!(h.fake.calls(Op::Rename), 0, "nothing renamed");
}

#[tokio::test(start_paused = true)]
async fn the_swap_waits_for_the_writer_then_the_readers() {
    let h = Harness::new(env_config(""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored);
    let staging = r.restore.clone().expect("restore").staging_cluster;
    let out = h.output();
    let at = |needle: &str| out.find(needle).unwrap_or_else(|| panic!("{needle:?} not in:\n{out}"));
    let writer = at(&format!("creating 1 instance of {staging}: {staging}-1"));
    let wait = at(&format!("instances of {staging}: {staging}-1 creating"));
    let reader = at(&format!("creating 1 instance of {staging}: {staging}-2"));
    let swap = at("renaming app-prod to app-prod-failed-");
    assert!(writer < wait && wait < reader && reader < swap, "writer, its wait, the reader, then the swap:\n{out}");
    assert_eq!(r.restore.as_ref().map(|x| x.differences.len()), Some(0), "a twin: nothing differs");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_restore_that_differs_from_the_original_completes_and_says_so_everywhere() {
    let h = Harness::new(env_config(""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let difference = "StorageType: aurora-iopt1 on the original, aurora on the restored";
    let note = "the master user password of app-prod is in a new Secrets Manager secret";
    h.fake.set_twin_report(ferry_core::provider::TwinReport {
        differences: vec![difference.to_string()],
        notes: vec![note.to_string()],
    });
    let (r, _) = h.deploy().await;
    assert_eq!((r.outcome, r.exit_code), (Outcome::Restored, Some(4)), "the data is back: still restored");
    let restore = r.restore.clone().expect("restore");
    assert_eq!(restore.differences, [difference]);
    assert_eq!(restore.notes, [note]);
    let state = r.state.clone().unwrap_or_default();
    assert!(state.contains("WARNING") && state.contains(difference) && state.contains(note), "{state}");
    let detail = r.step("restore").and_then(|s| s.detail.clone()).unwrap_or_default();
    assert!(detail.contains(difference), "the step summary's detail: {detail}");
    assert!(h.output().contains(&format!("app-prod differs from {}: {difference}", restore.failed_cluster.unwrap())));
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn restore_on_failure_never_leaves_it_to_a_human_with_the_restore_command() {
    let h = Harness::new(env_config("restore_on_failure = \"never\""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NeedsAttention);
    let snap = r.snapshot.clone().expect("snapshot").id;
    assert_eq!(r.next.as_deref(), Some(format!("ferry restore prod --snapshot {snap}").as_str()));
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn no_restore_flag_skips_the_restore() {
    let mut h = Harness::new(env_config(""));
    h.options.no_restore = true;
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NeedsAttention);
    assert_eq!(r.step("restore").map(|s| s.status), Some(StepStatus::Skipped));
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn prompt_without_anyone_to_ask_does_not_restore_but_yes_does() {
    let h = Harness::new(env_config("restore_on_failure = \"prompt\""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NeedsAttention);
    assert!(r.step("restore").and_then(|s| s.detail.clone()).unwrap_or_default().contains("nobody to ask"));

    let mut h = Harness::new(env_config("restore_on_failure = \"prompt\""));
    h.confirm = Arc::new(AssumeYes);
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_task_that_cannot_start_aborts_with_its_reason() {
    let h = Harness::new(env_config(""));
    h.fake.set_task_script(TaskScript {
        start_failure: Some("CannotPullContainerError: image not found".into()),
        ..TaskScript::succeeds()
    });
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted);
    assert_eq!(r.exit_code, Some(3));
    assert!(r.error.as_deref().unwrap_or_default().contains("CannotPullContainerError"), "{r:?}");
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0, "nothing ran, nothing to restore");
}

#[tokio::test(start_paused = true)]
async fn a_start_without_capacity_is_retried_with_backoff_and_each_refusal_journaled() {
    let h = Harness::new(env_config(""));
    h.fake.fault_times(Op::StartTask, FaultKind::NoCapacity, 3);
    let started = tokio::time::Instant::now();
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}", r.error);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.start_attempts.len(), 3, "each refusal is in the record: {:?}", r.start_attempts);
    assert!(r.start_attempts.iter().all(|a| a.reason.contains("Capacity is unavailable")), "{:?}", r.start_attempts);
    assert_eq!(h.fake.calls(Op::StartTask), 4, "three refusals, then the start");
    // 5 s, 10 s, 20 s with +-20% jitter between the attempts.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(28), "backoff between the attempts: {waited:?}");
    let out = h.output();
    assert!(out.contains("no capacity for the migration task (attempt 3"), "{out}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn no_capacity_for_the_whole_migration_timeout_aborts_with_the_evidence_and_restores_nothing() {
    let h = Harness::new(env_config("timeouts = { migration = \"3m\" }"));
    h.fake.fault_times(Op::StartTask, FaultKind::NoCapacity, 1000);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted);
    assert_eq!(r.exit_code, Some(3), "nothing started: nothing changed");
    let error = r.error.as_deref().unwrap_or_default();
    assert!(error.contains("no capacity in") && error.contains("Capacity is unavailable"), "{error}");
    assert!(r.start_attempts.len() >= 4, "attempts until the timeout: {:?}", r.start_attempts);
    assert!(r.start_attempts.len() < 10, "5 s doubling to 60 s within 3 minutes: {:?}", r.start_attempts);
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0, "nothing ran, nothing to restore");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn log_lines_ingested_after_the_task_stopped_are_still_shown() {
    let h = Harness::new(env_config(""));
    // The failing line becomes readable about 5 s after the task stopped.
    h.fake.set_task_script(TaskScript { ingest_delay: Duration::from_secs(12), ..TaskScript::fails_halfway() });
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored, "{:?}", r.error);
    let out = h.output();
    assert!(out.contains("ERROR: column \"x\" does not exist"), "the migration's last line is shown:\n{out}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn the_new_cluster_strategy_points_the_service_at_the_new_endpoint() {
    let h = Harness::new(env_config("restore_strategy = \"new-cluster\""));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored);
    let restore = r.restore.clone().expect("restore");
    assert!(restore.restored_cluster.starts_with("app-prod-restored-"));
    assert_eq!(restore.failed_cluster, None);
    let clusters = h.fake.clusters();
    assert_eq!(clusters.get(CLUSTER).map(|c| c.data.as_str()), Some("v1+half-migrated"), "untouched");
    assert_eq!(clusters.get(&restore.restored_cluster).map(|c| c.data.as_str()), Some(ORIGINAL));
    let url = h.fake.service_env().get("DATABASE_URL").cloned().unwrap_or_default();
    assert!(url.contains(&format!("{}.cluster.fake.local", restore.restored_cluster)), "{url}");
}

#[tokio::test(start_paused = true)]
async fn a_restore_waits_for_an_operation_already_in_progress_on_the_service() {
    let mut h = Harness::new(env_config(""));
    // The operation may have been a deployment: resuming after it needs a yes
    // (tests/integration/positive_evidence.rs has the other answers).
    h.confirm = Arc::new(AssumeYes);
    h.fake.set_task_script(TaskScript::fails_halfway());
    // Someone starts a 4-minute deployment of the service while the migration runs.
    let fake = h.fake.clone();
    let deploying = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        fake.start_foreign_operation(std::time::Duration::from_secs(240));
    });
    let (r, _) = h.deploy().await;
    deploying.await.unwrap();
    assert_eq!(r.outcome, Outcome::Restored, "{r:#?}\n{}", h.output());
    assert!(h.fake.busy_refusals() >= 1, "the pause met the operation in progress");
    assert!(h.output().contains("another App Runner operation is in progress; waiting"), "{}", h.output());
    assert_eq!(h.fake.service_status().as_deref(), Some("RUNNING"));
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_restore_gives_up_on_a_service_busy_past_its_timeout_and_says_so() {
    let h = Harness::new(env_config("timeouts = { service = \"2m\" }"));
    h.fake.set_task_script(TaskScript::fails_halfway());
    let fake = h.fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        fake.start_foreign_operation(std::time::Duration::from_secs(3600));
    });
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NeedsAttention, "{r:#?}");
    assert_eq!(r.exit_code, Some(5));
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0, "nothing restored while the service could not be paused");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_run_interrupted_by_a_signal_is_recorded_and_resumed() {
    let h = Harness::new(env_config(""));
    let steps = plan::deploy_plan(&h.env, &ferry_core::provider::fake::FakeWords, &h.options).names();
    let record =
        RunRecord::new(new_run_id("prod", chrono::Utc::now()), "prod", RunKind::Deploy, RunOptions::default(), &steps);
    let redactor = Redactor::new(h.env.secrets());
    let journal = Journal::create(&Store::local(h.dir.path()), &record, redactor.clone()).expect("journal");
    let mut run = h.run(journal, record);
    // The "signal" arrives 105 s in: the snapshot (90 s) is seen available by
    // 101 s at the latest (10 s poll cap + 10 % jitter), and the task (20 s) runs.
    let first = tokio::time::timeout(std::time::Duration::from_secs(105), deploy(&mut run)).await;
    assert!(first.is_err(), "still running when the signal arrives");
    let r = run.interrupted();
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert_eq!(r.exit_code, Some(130));
    assert!(r.state.as_deref().unwrap_or_default().contains("may still be running"), "{r:?}");
    assert_eq!(r.next.as_deref(), Some(format!("ferry resume {}", r.run_id).as_str()));
    let tasks = h.fake.tasks();
    assert_eq!(tasks.len(), 1);
    drop(run);

    let store = Store::local(h.dir.path());
    let mut record = journal::read_run(&store, &r.run_id).expect("reopen");
    let journal = Journal::attach(&store, &r.run_id, redactor);
    prepare_resume(&mut record).expect("resumable");
    let mut run = h.run(journal, record);
    let done = deploy(&mut run).await;
    assert_eq!(done.outcome, Outcome::Succeeded, "{done:#?}");
    assert_eq!(h.fake.tasks().len(), 1, "the resumed run waited for the same task");
    h.assert_invariants(&done);
}

#[tokio::test(start_paused = true)]
async fn waiting_stays_within_api_budgets() {
    // A 60-minute snapshot wait: at most ~10 describe calls a minute once ramped up.
    let h = Harness::new(env_config("timeouts = { snapshot = \"2h\" }"));
    let fake = FakeCloud::new(CLUSTER, ORIGINAL, true).with_latency(ferry_core::provider::fake::Latency {
        snapshot: std::time::Duration::from_secs(3600),
        ..Default::default()
    });
    let h = Harness { fake, ..h };
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded);
    let calls = h.fake.calls(Op::DescribeSnapshot);
    assert!(calls <= 400, "{calls} DescribeDBClusterSnapshots calls in an hour");
    assert!(calls >= 300, "{calls}: polling should stay near the 10 s cap, not slower");
}

/// An environment whose `migration.alembic` reads `revisions` (file name,
/// text) from a fresh versions directory; the directory lives as long as the harness.
fn alembic_harness(revisions: &[(&str, &str)]) -> (Harness, tempfile::TempDir) {
    let versions = tempfile::tempdir().expect("tempdir");
    for (name, text) in revisions {
        std::fs::write(versions.path().join(name), text).expect("write revision");
    }
    let text = config_text("").replace(
        "command = [\"alembic\", \"upgrade\", \"head\"],",
        &format!(
            "command = [\"alembic\", \"upgrade\", \"head\"], alembic = {{ versions = \"{}\" }},",
            versions.path().display()
        ),
    );
    (Harness::new(parse_env(&text)), versions)
}

const LINEAR: [(&str, &str); 2] = [
    ("a1_init.py", "revision = 'a1'\ndown_revision = None\n"),
    ("b2_next.py", "revision: str = 'b2'\ndown_revision: Union[str, Sequence[str], None] = 'a1'\n"),
];

#[tokio::test(start_paused = true)]
async fn several_heads_refuse_before_any_snapshot_with_the_merge_command() {
    let (h, _dir) =
        alembic_harness(&[LINEAR[0], LINEAR[1], ("c3_other.py", "revision = 'c3'\ndown_revision = 'a1'\n")]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted, "{r:#?}");
    assert_eq!(r.exit_code, Some(3));
    let error = r.error.clone().unwrap_or_default();
    assert!(error.contains("2 heads (b2, c3)"), "{error}");
    assert!(error.contains("`alembic merge -m \"merge heads\" b2 c3`"), "{error}");
    assert_eq!(h.fake.calls(Op::CreateSnapshot), 0, "refused before any snapshot");
    assert_eq!(r.step("snapshot").map(|s| s.status), Some(StepStatus::Pending));
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_broken_revision_graph_refuses_naming_the_file() {
    let (h, _dir) = alembic_harness(&[LINEAR[0], ("b2_next.py", "revision = 'b2'\n\ndown_revision = 'zz'\n")]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted, "{r:#?}");
    let error = r.error.clone().unwrap_or_default();
    assert!(error.contains("b2_next.py:3: down_revision names revision zz"), "{error}");
    assert_eq!(h.fake.calls(Op::CreateSnapshot), 0);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_database_at_the_head_skips_the_snapshot_and_the_migration_but_verifies() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["b2"]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    assert_eq!(r.exit_code, Some(0));
    for name in ["snapshot", "migrate"] {
        let s = r.step(name).expect("step");
        assert_eq!(s.status, StepStatus::Skipped, "{name}");
        assert!(s.detail.as_deref().unwrap_or_default().contains("already at the head (b2)"), "{s:?}");
    }
    assert_eq!(r.step("verify").map(|s| s.status), Some(StepStatus::Succeeded), "verify still runs");
    assert!(r.state.as_deref().unwrap_or_default().contains("nothing was changed"), "{r:?}");
    assert_eq!(h.fake.calls(Op::CreateSnapshot), 0);
    assert_eq!(h.fake.calls(Op::StartTask), 0);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn force_migrates_a_database_already_at_the_head() {
    let (mut h, _dir) = alembic_harness(&LINEAR);
    h.options.force = true;
    h.fake.set_version_rows(&["b2"]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    assert!(r.step("preflight").and_then(|s| s.detail.clone()).unwrap_or_default().contains("--force"), "{r:?}");
    assert_eq!(h.fake.calls(Op::StartTask), 1);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn pending_revisions_are_named_and_migrated() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["a1"]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    let detail = r.step("preflight").and_then(|s| s.detail.clone()).unwrap_or_default();
    assert!(detail.contains("migrations: 1 pending (b2) from a1 to b2"), "{detail}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_database_ferry_cannot_see_into_is_said_and_the_run_goes_on() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["b2"]);
    h.fake.set_session_unavailable("no database.url next to database.cluster");
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    let detail = r.step("preflight").and_then(|s| s.detail.clone()).unwrap_or_default();
    assert!(detail.contains("database version not checked (ferry cannot read inside"), "{detail}");
    assert!(!detail.contains("no database.url"), "the how-to is a note said once, not in the line: {detail}");
    assert_eq!(h.fake.calls(Op::StartTask), 1, "migrated as before");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn killed_while_reading_the_version_table_resumes_to_the_same_skip() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["b2"]);
    h.fake.fault(Op::VersionRows, FaultKind::Kill);
    let (r, resumed) = h.deploy().await;
    assert!(resumed);
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    assert_eq!(r.step("migrate").map(|s| s.status), Some(StepStatus::Skipped));
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_app_with_nothing_migrated_is_aborted_not_restored() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["b2"]);
    h.fake.set_health(vec![500]);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted, "{r:#?}");
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_version_table_that_cannot_be_read_aborts_before_any_snapshot() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.fault(Op::VersionRows, FaultKind::Error);
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Aborted, "{r:#?}");
    assert!(r.error.as_deref().unwrap_or_default().contains("cannot read the migration version table"), "{r:?}");
    assert_eq!(h.fake.calls(Op::CreateSnapshot), 0);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn a_throttled_version_table_read_is_retried() {
    let (h, _dir) = alembic_harness(&LINEAR);
    h.fake.set_version_rows(&["b2"]);
    h.fake.fault(Op::VersionRows, FaultKind::Throttle(2));
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{r:#?}");
    assert_eq!(h.fake.calls(Op::VersionRows), 3);
    assert_eq!(r.step("migrate").map(|s| s.status), Some(StepStatus::Skipped));
    h.assert_invariants(&r);
}

// Lock safety: a migration that failed on a lock timeout and provably changed
// nothing is not restored (exit 3), or runs again with `lock_retries`; any
// missing piece of the proof means a restore, as before.

const LOCKS: &str = "migration = { cluster = \"${output:ClusterName}\", task_definition = \"td\", subnets = \"${output:PrivateSubnetIds}\", security_groups = [\"sg-1\"], container = \"migrate\", command = [\"alembic\", \"upgrade\", \"head\"], lock_timeout = \"2s\"";

/// The harness with `lock_timeout = "2s"` and `extra` inside `migration`, the
/// version table at `002`, and a session holding ACCESS SHARE that blocks it.
fn lock_harness(extra: &str) -> Harness {
    let text = config_text("").replace(
        "migration = { cluster = \"${output:ClusterName}\", task_definition = \"td\", subnets = \"${output:PrivateSubnetIds}\", security_groups = [\"sg-1\"], container = \"migrate\", command = [\"alembic\", \"upgrade\", \"head\"]",
        &format!("{LOCKS}{extra}"),
    );
    assert!(text.contains("lock_timeout"), "{text}");
    let h = Harness::new(parse_env(&text));
    h.fake.set_version_rows(&["002"]);
    h.fake.set_lock_blockers(vec![ferry_core::provider::LockBlocker {
        pid: 4242,
        age_secs: 95.0,
        query: "SELECT * FROM customers WHERE id = 1".into(),
        waiting_pid: 99,
    }]);
    h
}

#[tokio::test(start_paused = true)]
async fn a_lock_timeout_that_provably_changed_nothing_is_not_restored_and_exits_3() {
    let h = lock_harness("");
    h.fake.set_task_script(TaskScript::lock_timeout());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NothingChanged, "{:?}", r.error);
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0, "nothing to undo");
    assert_eq!(h.fake.calls(Op::ServicePause), 0, "the app is never paused");
    let a = &r.migration_attempts;
    assert_eq!(a.len(), 1, "{a:?}");
    let proof = a[0].proof.clone().expect("proof recorded");
    assert!(proof.lock_timeout && proof.transactional_ddl && proof.versions_unchanged && proof.schema_unchanged);
    assert_eq!(a[0].blockers.len(), 1, "the blocker sampled while it waited: {a:?}");
    assert_eq!((a[0].blockers[0].pid, a[0].blockers[0].age_secs), (4242, 95));
    assert_eq!(r.baseline.as_ref().map(|b| b.versions.clone()), Some(vec!["002".to_string()]));
    assert_eq!(r.step_status(ferry_core::runbook::record::StepName::Restore), StepStatus::Skipped);
    assert!(r.state.as_deref().unwrap_or_default().contains("snapshot"), "the snapshot is named as kept: {r:?}");
    assert!(r.next.as_deref().unwrap_or_default().starts_with("ferry doctor prod"), "{r:?}");
    let report = ferry_core::runbook::report::of(&r).summary().join("\n");
    assert!(report.contains("nothing changed, proved"), "{report}");
    assert!(report.contains("blocked by pid 4242"), "{report}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn with_retries_left_the_migration_runs_again_after_a_backoff_and_goes_through() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_next_task_scripts(vec![TaskScript::lock_timeout()]);
    let started = tokio::time::Instant::now();
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}", r.error);
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(h.fake.calls(Op::RestoreSnapshot), 0);
    let a = &r.migration_attempts;
    assert_eq!(a.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2], "{a:?}");
    assert!(a[0].proof.as_ref().is_some_and(|p| p.holds()) && a[1].proof.is_none(), "{a:?}");
    assert_eq!((a[0].exit_code, a[1].exit_code), (Some(1), Some(0)));
    assert_ne!(a[0].task, a[1].task, "a new task per attempt");
    let tasks = h.fake.tasks();
    assert!(tasks.values().all(|t| t.run_id == r.run_id), "the run tag stays the run id: {tasks:?}");
    // Two task runtimes of 20 s, and a backoff of 5 s +-20 % between them.
    assert!(started.elapsed() >= Duration::from_secs(44), "{:?}", started.elapsed());
    assert!(
        r.step(ferry_core::runbook::record::StepName::Migrate)
            .and_then(|s| s.detail.clone())
            .unwrap_or_default()
            .contains("on attempt 2")
    );
    let out = h.output();
    assert!(out.contains("attempt 1 failed on a lock timeout and changed nothing; attempt 2 of 3"), "{out}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn retries_used_up_with_the_proof_still_holding_end_in_nothing_changed() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_task_script(TaskScript::lock_timeout());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NothingChanged, "{:?}", r.error);
    assert_eq!(r.migration_attempts.len(), 3, "the first and two retries");
    assert!(r.error.as_deref().unwrap_or_default().contains("no retry is left (migration.lock_retries = 2)"), "{r:?}");
    assert_eq!(h.fake.calls(Op::StartTask), 3);
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_where_timeouts_migration_would_pass() {
    let h = lock_harness(", lock_retries = 10");
    let text = config_text("timeouts = { migration = \"100s\" }");
    assert!(text.contains("100s"));
    let h = Harness { env: parse_env(&text.replace(
        "migration = { cluster = \"${output:ClusterName}\", task_definition = \"td\", subnets = \"${output:PrivateSubnetIds}\", security_groups = [\"sg-1\"], container = \"migrate\", command = [\"alembic\", \"upgrade\", \"head\"]",
        &format!("{LOCKS}, lock_retries = 10"),
    )), ..h };
    h.fake.set_task_script(TaskScript::lock_timeout());
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::NothingChanged, "{:?}", r.error);
    let n = r.migration_attempts.len();
    // About 35 s per attempt (20 s running, its stop seen, its logs drained),
    // backoffs of 5 and 10 s: a third would not end within 100 s.
    assert!((2..=3).contains(&n), "{n} attempts in 100 s");
    assert!(r.error.as_deref().unwrap_or_default().contains("would not end within timeouts.migration"), "{r:?}");
    assert!(r.migration_attempts.iter().all(|a| a.proof.as_ref().is_some_and(|p| p.holds())), "{r:?}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn killed_as_the_second_attempt_starts_the_resume_follows_that_attempt_and_starts_no_third() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_next_task_scripts(vec![TaskScript::lock_timeout()]);
    h.fake.kill_at_call(Op::StartTask, 2);
    let (r, resumed) = h.deploy().await;
    assert!(resumed, "the kill fired");
    assert_eq!(r.outcome, Outcome::Succeeded, "{:?}", r.error);
    assert_eq!(h.fake.calls(Op::StartTask), 2, "attempt 2's task was found, not started again");
    assert_eq!(r.migration_attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(h.fake.tasks().len(), 2);
    h.assert_invariants(&r);
}

/// A failed migration missing one piece of the proof: restored, exit 4.
async fn restored_without(h: Harness, missing: &str) {
    let (r, _) = h.deploy().await;
    assert_eq!(r.outcome, Outcome::Restored, "{:?}", r.error);
    assert_eq!(r.exit_code, Some(4));
    let proof = r.migration_attempts.last().and_then(|a| a.proof.clone()).expect("proof recorded");
    assert!(!proof.holds());
    assert!(proof.missing.iter().any(|m| m.contains(missing)), "{missing:?} in {proof:?}");
    let report = ferry_core::runbook::report::of(&r).summary().join("\n");
    assert!(report.contains("no proof that nothing changed"), "{report}");
    h.assert_invariants(&r);
}

#[tokio::test(start_paused = true)]
async fn no_lock_timeout_in_the_output_means_a_restore() {
    let h = lock_harness(", lock_retries = 2");
    let mut script = TaskScript::lock_timeout();
    script.logs.retain(|l| !l.contains("lock timeout"));
    script.logs.push("psycopg.errors.UndefinedColumn: column \"x\" does not exist".into());
    h.fake.set_task_script(script);
    restored_without(h, "no lock timeout").await;
}

#[tokio::test(start_paused = true)]
async fn no_transactional_ddl_means_a_restore() {
    let h = lock_harness(", lock_retries = 2");
    let mut script = TaskScript::lock_timeout();
    script.logs.retain(|l| !l.contains("transactional DDL"));
    h.fake.set_task_script(script);
    restored_without(h, "transactional DDL").await;
}

#[tokio::test(start_paused = true)]
async fn a_moved_version_table_means_a_restore() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_task_script(TaskScript { versions_after: Some(vec!["003".into()]), ..TaskScript::lock_timeout() });
    restored_without(h, "the version table holds [003]").await;
}

#[tokio::test(start_paused = true)]
async fn a_changed_schema_means_a_restore() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_task_script(TaskScript { rolls_back: false, ..TaskScript::lock_timeout() });
    restored_without(h, "the schema changed").await;
}

#[tokio::test(start_paused = true)]
async fn no_session_into_the_database_means_a_restore() {
    let h = lock_harness(", lock_retries = 2");
    h.fake.set_session_unavailable("no database.url next to database.cluster");
    h.fake.set_task_script(TaskScript::lock_timeout());
    restored_without(h, "cannot read the database from here").await;
}
