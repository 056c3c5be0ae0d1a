//! The runbook: deploy, migrate and restore as state machines over the provider
//! traits. The run record is the state; the journal persists it before and after
//! every step, and every step is idempotent, so `ferry resume` re-runs whatever
//! was in flight and finds what the earlier attempt did.

mod deploy;
mod fence;
pub mod journal;
pub mod logs;
mod migrate;
pub mod plan;
pub mod preflight;
pub mod record;
pub mod recover;
pub mod rehearse;
pub mod report;
mod restore;
pub mod revisions;
pub mod service;
pub mod snapshot;
mod verify;
pub mod wait;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

pub use deploy::{deploy, migrate_only, rehearse_only, restore_only};
use journal::{Journal, JournalError};
pub use plan::{Plan, PlannedStep};
use record::{Outcome, RunKind, RunRecord, StepName, StepStatus};
pub use snapshot::{snapshot_id_for, snapshot_tags, wait_new_snapshot, wait_snapshot};

use crate::config::EnvConfig;
use crate::output::Reporter;
use crate::provider::Cloud;

/// Make a journaled run ready to continue. A running or interrupted run goes on
/// from its first unsettled step; a run whose restore failed retries the
/// restore. A run that finished otherwise has nothing to resume, and a run
/// with a command or step this ferry does not know is not driven: `Err` says so.
pub fn prepare_resume(record: &mut RunRecord) -> Result<(), String> {
    if let Some(name) = record.unknown_name() {
        return Err(format!(
            "run {} was written by a newer ferry (it has `{name}`, which this ferry does not know); resume it with \
             that ferry",
            record.run_id
        ));
    }
    let retry_restore =
        record.outcome == Outcome::NeedsAttention && record.step_status(StepName::Restore) == StepStatus::Failed;
    // A rehearsal's clone that could not be deleted: the resume tries again.
    let retry_cleanup =
        record.outcome == Outcome::NeedsAttention && record.step_status(StepName::Cleanup) == StepStatus::Failed;
    if record.outcome.is_final() && !retry_restore && !retry_cleanup {
        return Err(format!("run {} already finished ({}); nothing to resume", record.run_id, record.outcome.as_str()));
    }
    if retry_restore {
        record.step_mut(StepName::Restore).status = StepStatus::Pending;
    }
    if retry_cleanup {
        record.step_mut(StepName::Cleanup).status = StepStatus::Pending;
    }
    record.outcome = Outcome::Running;
    record.exit_code = None;
    record.ended_at = None;
    record.error = None;
    record.state = None;
    record.next = None;
    Ok(())
}

/// The command that drives a run of this kind.
pub async fn drive(run: &mut Run) -> Option<RunRecord> {
    match run.record.command.known()? {
        RunKind::Deploy => Some(deploy(run).await),
        RunKind::Migrate => Some(migrate_only(run).await),
        RunKind::Restore => Some(restore_only(run).await),
        RunKind::Rehearse => Some(rehearse_only(run).await),
    }
}

/// How questions are answered: `--yes`, a person at a TTY, or nobody.
pub trait Confirm: Send + Sync {
    /// `Some(answer)`, or `None` when nobody can be asked.
    fn ask(&self, question: &str) -> Option<bool>;
}

/// Nobody to ask (CI, tests): every question stays unanswered.
pub struct NoOneToAsk;

impl Confirm for NoOneToAsk {
    fn ask(&self, _question: &str) -> Option<bool> {
        None
    }
}

/// `--yes`: every question is answered yes.
pub struct AssumeYes;

impl Confirm for AssumeYes {
    fn ask(&self, _question: &str) -> Option<bool> {
        Some(true)
    }
}

/// One run in progress: its configuration, the cloud it drives, where it reports,
/// and its record and journal.
pub struct Run {
    pub env: EnvConfig,
    pub cloud: Cloud,
    pub out: Arc<Reporter>,
    pub confirm: Arc<dyn Confirm>,
    pub journal: Journal,
    pub record: RunRecord,
}

/// Why a step did not succeed, in the terms that decide the outcome.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Nothing was changed.
    #[error("{0}")]
    Abort(String),
    /// The database may have changed: the restore path decides what follows.
    #[error("{0}")]
    Failed(String),
    /// A changing step began and the platform no longer says what became of it
    /// (task state lost, an ambiguous answer): no automatic restore, which would
    /// throw away the writes of a migration that in fact succeeded; a person
    /// decides (exit 5).
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl Run {
    pub fn save(&self) -> Result<(), JournalError> {
        self.journal.save(&self.record)
    }

    fn begin(&mut self, step: StepName, what: &str) -> Result<(), JournalError> {
        self.out.step(step.as_str(), what);
        let s = self.record.step_mut(step);
        s.status = StepStatus::Running;
        s.started_at = Some(Utc::now());
        s.ended_at = None;
        s.detail = None;
        self.save()
    }

    fn end(&mut self, step: StepName, status: StepStatus, detail: &str) -> Result<(), JournalError> {
        let detail = self.out.redactor().clean(detail);
        match status {
            StepStatus::Failed => self.out.failure(step.as_str(), &detail),
            StepStatus::Skipped => {}
            _ => self.out.info(&format!("    {step}: {detail}")),
        }
        let s = self.record.step_mut(step);
        s.status = status;
        s.ended_at = Some(Utc::now());
        s.detail = Some(detail);
        self.save()
    }

    /// Close the run with an outcome; the record is saved and returned.
    fn finish(
        &mut self,
        outcome: Outcome,
        error: Option<String>,
        state: Option<String>,
        next: Option<String>,
    ) -> RunRecord {
        let clean = |s: Option<String>| s.map(|s| self.out.redactor().clean(&s));
        self.record.outcome = outcome;
        self.record.exit_code = Some(outcome.exit_code());
        self.record.ended_at = Some(Utc::now());
        self.record.error = clean(error);
        self.record.state = clean(state);
        self.record.next = clean(next);
        if let Err(e) = self.save() {
            self.out.warn(&format!("{e}; the record below is the only copy"));
            if let Ok(text) = serde_json::to_string_pretty(&self.record) {
                self.out.warn(&self.out.redactor().clean_json(&text));
            }
        }
        self.record.clone()
    }

    /// Record that the run was stopped by a signal: running steps become
    /// `interrupted`, and the state says what may still be running.
    pub fn interrupted(&mut self) -> RunRecord {
        for s in &mut self.record.steps {
            if s.status == StepStatus::Running {
                s.status = StepStatus::Interrupted;
                s.ended_at = Some(Utc::now());
            }
        }
        let interrupted_step =
            self.record.steps.iter().find(|s| s.status == StepStatus::Interrupted).map(|s| s.name.clone());
        let state = match interrupted_step.as_ref().map(|s| s.known()) {
            Some(Some(StepName::Migrate)) => {
                let arn =
                    self.record.task.as_ref().map(|t| t.arn.clone()).unwrap_or_else(|| "(not started yet)".into());
                format!("the migration task {arn} may still be running; ferry did not stop it")
            }
            Some(Some(StepName::Clone | StepName::Rehearse | StepName::Cleanup)) => {
                let clone = self.record.rehearsal.as_ref().and_then(|r| r.clone.clone()).unwrap_or_default();
                format!(
                    "nothing of {} was changed; the rehearsal on clone {clone} was interrupted",
                    self.cloud.database.cluster_id()
                )
            }
            Some(Some(StepName::Snapshot)) => {
                let id = self.record.snapshot.as_ref().map(|s| s.id.clone()).unwrap_or_default();
                format!("snapshot {id} may still be creating; no migration was started")
            }
            Some(Some(StepName::Restore)) if self.cloud.service.is_some() => format!(
                "the restore was in progress; the databases named in this record are kept as they are; the app \
                 service may be paused (the resume finishes the restore and resumes it; `ferry service resume {}` \
                 resumes it at once)",
                self.env.name
            ),
            Some(Some(StepName::Restore)) => {
                "the restore was in progress; the databases named in this record are kept as they are".to_string()
            }
            None => "ferry stopped between steps; nothing is left running by ferry".to_string(),
            Some(_) => format!(
                "ferry stopped during {}; nothing was changed by that step",
                interrupted_step.map(|s| s.to_string()).unwrap_or_default()
            ),
        };
        let next = format!("ferry resume {}", self.record.run_id);
        self.finish(Outcome::Interrupted, Some("interrupted by a signal".into()), Some(state), Some(next))
    }

    fn progress(&self, what: &str, state: &str, waited: Duration) {
        self.out.progress(what, state, waited);
    }
}
