//! The run record: what the journal stores and what `--output json` prints.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::RestoreStrategy;
use crate::exit;
use crate::provenance::{Actor, Build};
use crate::provider::{SchemaFingerprint, SnapshotStatus, TableWrites};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// In progress, or its ferry process died (SIGKILL, power loss): `ferry resume`.
    Running,
    Succeeded,
    /// Failed before changing anything.
    Aborted,
    /// The migration failed and the database was restored from the snapshot.
    Restored,
    /// Failed and needs a human: not restored, or the restore failed.
    NeedsAttention,
    /// Stopped by a signal; `ferry resume` continues it.
    Interrupted,
    /// A person declared the run over without finishing it (`ferry runs abandon`).
    Abandoned,
    /// The migration failed on a lock timeout and ferry proved it changed
    /// nothing (see [`MigrationAttempt::proof`]): not restored, snapshot kept.
    NothingChanged,
}

impl Outcome {
    /// The run's exit code (the table is [`crate::exit`]).
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Succeeded => exit::SUCCEEDED,
            Outcome::Aborted | Outcome::NothingChanged => exit::REFUSED,
            Outcome::Restored => exit::RESTORED,
            Outcome::NeedsAttention | Outcome::Abandoned => exit::NEEDS_ATTENTION,
            Outcome::Interrupted | Outcome::Running => exit::INTERRUPTED,
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Outcome::Running | Outcome::Interrupted)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Aborted => "aborted",
            Outcome::Restored => "restored",
            Outcome::NeedsAttention => "needs_attention",
            Outcome::Interrupted => "interrupted",
            Outcome::Abandoned => "abandoned",
            Outcome::NothingChanged => "nothing_changed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Interrupted,
}

impl StepStatus {
    pub fn is_settled(self) -> bool {
        matches!(self, StepStatus::Succeeded | StepStatus::Failed | StepStatus::Skipped)
    }
}

/// What a run does: the command that started it (`record.command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Deploy,
    Migrate,
    Restore,
    Rehearse,
}

/// A step of a run, as the plan lists it and the record journals it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepName {
    Preflight,
    Snapshot,
    Migrate,
    Verify,
    Restore,
    Clone,
    Rehearse,
    Cleanup,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Deploy => "deploy",
            RunKind::Migrate => "migrate",
            RunKind::Restore => "restore",
            RunKind::Rehearse => "rehearse",
        }
    }
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::Preflight => "preflight",
            StepName::Snapshot => "snapshot",
            StepName::Migrate => "migrate",
            StepName::Verify => "verify",
            StepName::Restore => "restore",
            StepName::Clone => "clone",
            StepName::Rehearse => "rehearse",
            StepName::Cleanup => "cleanup",
        }
    }
}

/// A closed set of names (`RunKind`, `StepName`) as the record spells them.
pub trait Name: Copy + Eq {
    fn text(self) -> &'static str;
}

impl Name for RunKind {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl Name for StepName {
    fn text(self) -> &'static str {
        self.as_str()
    }
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name as a stored record holds it: one this ferry knows, or one it does
/// not (a record written by a newer ferry). An unknown name is read and shown,
/// never made: `UnknownName` has no constructor outside deserialization, so
/// code can only journal the names it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recorded<T> {
    Known(T),
    Unknown(UnknownName),
}

/// A name this ferry does not know, kept as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnknownName(String);

impl<T: Name> Recorded<T> {
    /// The name, when this ferry knows it.
    pub fn known(&self) -> Option<T> {
        match self {
            Recorded::Known(n) => Some(*n),
            Recorded::Unknown(_) => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Recorded::Known(n) => n.text(),
            Recorded::Unknown(UnknownName(s)) => s,
        }
    }
}

impl<T: Name> From<T> for Recorded<T> {
    fn from(n: T) -> Self {
        Recorded::Known(n)
    }
}

impl<T: Name> PartialEq<T> for Recorded<T> {
    fn eq(&self, other: &T) -> bool {
        self.known() == Some(*other)
    }
}

/// Looking a name up as text (a record read by a tool or a test).
impl<T: Name> PartialEq<&str> for Recorded<T> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl<T: Name> std::fmt::Display for Recorded<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: Recorded<StepName>,
    pub status: StepStatus,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: String,
    pub status: SnapshotStatus,
    pub percent: u8,
    /// The database's per-table write counts, read just before the snapshot
    /// was taken: what a restore from it measures the discarded writes from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Vec<TableWrites>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartAttempt {
    pub at: DateTime<Utc>,
    /// The platform's answer, as it gave it.
    pub reason: String,
}

/// The database as the migration found it, read through the session before
/// the first attempt: what "nothing changed" is measured against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockBaseline {
    /// The revisions in the version table.
    pub versions: Vec<String>,
    pub schema: SchemaFingerprint,
}

/// One run of the migration (`migration.lock_retries` makes more than one).
/// Journaled when it starts and when it ends, so a resumed run neither
/// repeats a finished attempt nor loses one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationAttempt {
    /// 1 for the first.
    pub attempt: u32,
    /// The task (or process, or deployment) id.
    pub task: String,
    pub started_at: DateTime<Utc>,
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Its output held a lock timeout (SQLSTATE 55P03, "canceling statement
    /// due to lock timeout").
    #[serde(default)]
    pub lock_timeout: bool,
    /// Alembic logged "Will assume transactional DDL.".
    #[serde(default)]
    pub transactional_ddl: bool,
    /// Who held the lock it waited for, as sampled while it ran (one per pid).
    #[serde(default)]
    pub blockers: Vec<BlockerSeen>,
    /// How it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// After a failure: the evidence that it changed nothing, piece by piece.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<NothingChangedProof>,
}

/// A session seen holding a lock the database's other sessions waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockerSeen {
    pub pid: i32,
    /// The longest its transaction was seen open, whole seconds.
    pub age_secs: u64,
    /// The first 80 characters of its query.
    pub query: String,
}

/// The evidence that a failed migration changed nothing. It holds only when
/// every piece does; `missing` says what did not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NothingChangedProof {
    pub lock_timeout: bool,
    pub transactional_ddl: bool,
    /// The version table holds what it held before the migration.
    pub versions_unchanged: bool,
    /// The schema fingerprint is what it was before the migration.
    pub schema_unchanged: bool,
    /// Why the proof does not hold, piece by piece; empty when it holds.
    #[serde(default)]
    pub missing: Vec<String>,
}

impl NothingChangedProof {
    pub fn holds(&self) -> bool {
        self.lock_timeout && self.transactional_ddl && self.versions_unchanged && self.schema_unchanged
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub arn: String,
    pub container: String,
    pub exit_code: Option<i32>,
    pub stopped_reason: Option<String>,
    pub log_stream: String,
    /// Where a person reads the task's logs in a browser, when the provider
    /// knows a page for them (a console URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub snapshot_id: String,
    /// The database created from the snapshot, under its final name.
    pub restored_cluster: String,
    pub strategy: RestoreStrategy,
    /// Where the failed database was kept (rename strategy).
    pub failed_cluster: Option<String>,
    /// Name the restore was first created under (`<cluster>-restored-<ts>-<run hex>`).
    pub staging_cluster: String,
    pub endpoint: Option<String>,
    /// Settings of the restored database that differ from the original's
    /// beyond what always differs (names, endpoints, creation times, ARNs).
    #[serde(default)]
    pub differences: Vec<String>,
    /// What the operator must know about the restored database even though
    /// it was intended (a new secret for the master password, for example).
    #[serde(default)]
    pub notes: Vec<String>,
    /// `restore --finish`: the run whose half-done restore this one completes.
    /// Its databases carry that run's id, which this run accepts as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of_run: Option<String>,
    /// `restore --to-time`: the point in time restored (`snapshot_id` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<DateTime<Utc>>,
    /// The writes that are not in the restored database, and where they are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discarded: Option<Discarded>,
    /// The database set aside by the swap, and how it was fenced off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<SetAside>,
}

impl RestoreRecord {
    /// What was restored, for messages: the snapshot's id, or the point in time.
    pub fn source(&self) -> String {
        match self.to_time {
            Some(t) => format!("its state at {}", crate::output::timestamp(t)),
            None => self.snapshot_id.clone(),
        }
    }

    /// Whether this record is of a restore from `source`.
    pub fn is_of(&self, source: &RestoreSource) -> bool {
        match source {
            RestoreSource::Snapshot(id) => self.to_time.is_none() && self.snapshot_id == *id,
            RestoreSource::PointInTime(t) => self.to_time == Some(*t),
        }
    }
}

/// What a restore brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// A cluster snapshot, by id.
    Snapshot(String),
    /// The environment's database as it was at this time.
    PointInTime(DateTime<Utc>),
}

/// The window of writes a restore leaves out of the restored database: made
/// after `from` (the snapshot's time, or the point in time restored) and
/// before `until` (the swap). They are not lost: `kept_in` holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discarded {
    /// `None` when the platform did not say when the snapshot was taken.
    pub from: Option<DateTime<Utc>>,
    pub until: DateTime<Utc>,
    pub kept_in: String,
    /// Per table, the rows inserted, updated and deleted in the window
    /// (tables with none left out), when ferry could count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tables: Option<Vec<TableWrites>>,
    /// Why there are no per-table counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_counted: Option<String>,
}

/// The database a rename swap set aside, fenced off after the swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAside {
    pub id: String,
    /// ferry stopped it (no connections, no instance billing; storage kept).
    pub stopped: bool,
    /// What was done or why not, and what the platform does next.
    pub note: String,
    /// Whether the environment's name resolved to the restored database
    /// before the service resumed (`None`: not resolvable from here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_settled: Option<bool>,
}

/// What the user asked for; kept so `ferry resume` does the same run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunOptions {
    #[serde(default)]
    pub no_snapshot: bool,
    #[serde(default)]
    pub no_restore: bool,
    /// Run the migration even when the database is already at the heads.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// `restore` command: the snapshot asked for (`latest` already resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<RestoreStrategy>,
    /// `restore --to-time`: the point in time to restore the database to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_time: Option<DateTime<Utc>>,
    /// `--keep-clone`: the rehearsal's clone is kept for inspection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_clone: bool,
}

/// What a rehearsal did and saw: the clone, the migration's time on it, the
/// locks it held, the thresholds and the verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RehearsalRecord {
    /// The clone's id (a file path, a database name, a cluster id).
    pub clone: Option<String>,
    #[serde(default)]
    pub clone_endpoint: Option<String>,
    /// `deleted`, `kept`, or absent while it exists or was never made.
    #[serde(default)]
    pub clone_fate: Option<String>,
    #[serde(default)]
    pub task: Option<TaskRecord>,
    /// Wall time of the migration on the clone.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Locks were sampled; when not, `not_observed` says why.
    #[serde(default)]
    pub locks_observed: bool,
    #[serde(default)]
    pub not_observed: Option<String>,
    /// Per relation, the strongest lock mode the migration held and how long.
    #[serde(default)]
    pub locks: Vec<LockHeld>,
    /// Locks the migration waited for.
    #[serde(default)]
    pub waits: Vec<LockHeld>,
    #[serde(default)]
    pub longest_statement: Option<StatementRecord>,
    #[serde(default)]
    pub thresholds: Thresholds,
    /// `passed` or `failed`, once decided.
    #[serde(default)]
    pub verdict: Option<String>,
    /// Plain sentences: what the rehearsal found and what it means for production.
    #[serde(default)]
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHeld {
    /// `schema.table`.
    pub relation: String,
    /// `ACCESS EXCLUSIVE`, `SHARE`, ...
    pub mode: String,
    /// The longest stretch of consecutive samples it was seen in.
    pub held_for_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatementRecord {
    pub query: String,
    pub ran_for_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_duration_ms: u64,
    pub max_exclusive_lock_ms: u64,
    /// Whether `max_exclusive_lock` was written in ferry.toml (not the default).
    pub max_exclusive_lock_set: bool,
}

/// The version of every JSON document ferry writes or prints.
pub const FORMAT_VERSION: u32 = 1;

/// `ferry runs abandon`: who declared the run over, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Abandoned {
    pub by: Actor,
    pub at: DateTime<Utc>,
    pub reason: String,
    /// The outcome the run had before.
    pub was: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    #[serde(default)]
    pub format_version: u32,
    pub run_id: RunId,
    pub env: String,
    pub command: Recorded<RunKind>,
    pub outcome: Outcome,
    pub exit_code: Option<i32>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub options: RunOptions,
    pub snapshot: Option<SnapshotRecord>,
    pub task: Option<TaskRecord>,
    pub restore: Option<RestoreRecord>,
    pub steps: Vec<StepRecord>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// What changed and what did not, in one or two sentences.
    pub state: Option<String>,
    /// The exact command to run next, when a human must act.
    pub next: Option<String>,
    /// Who ran it, where.
    #[serde(default)]
    pub actor: Option<Actor>,
    /// Which ferry.
    #[serde(default)]
    pub ferry: Option<Build>,
    /// The CI run it belongs to (GitHub Actions).
    #[serde(default)]
    pub ci_url: Option<String>,
    /// SHA-256 of ferry.toml as this run read it.
    #[serde(default)]
    pub config_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<Abandoned>,
    /// A later run that settled what this one left (e.g. the restore of its snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// The image the migration runs (`--image`, `FERRY_IMAGE`, `migration.image`);
    /// null: the one the task definition or the service pins.
    #[serde(default)]
    pub image: Option<String>,
    /// What the runner prepared for `image` (a task definition revision); a
    /// resumed run starts this one instead of registering another.
    #[serde(default)]
    pub task_definition: Option<String>,
    /// Starts the platform refused for want of capacity (nothing started),
    /// retried with backoff within `timeouts.migration`, oldest first.
    #[serde(default)]
    pub start_attempts: Vec<StartAttempt>,
    /// `ferry rehearse`, or the rehearsal a `deploy` with `rehearse.when = "always"` ran first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehearsal: Option<RehearsalRecord>,
    /// The version table and schema before the first migration attempt, when
    /// ferry could read them (what a "nothing changed" proof compares with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<LockBaseline>,
    /// Every run of the migration, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migration_attempts: Vec<MigrationAttempt>,
    /// A failed migration's last lines of output (at most
    /// [`LOG_TAIL_LINES`]), redacted, oldest first: what the step summary
    /// and `ferry runs show` print under the failure.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

/// How many of a failed migration's last lines the record keeps.
pub const LOG_TAIL_LINES: usize = 20;

impl RunRecord {
    pub fn new(run_id: RunId, env: &str, command: RunKind, options: RunOptions, steps: &[StepName]) -> Self {
        RunRecord {
            format_version: FORMAT_VERSION,
            run_id,
            env: env.to_string(),
            command: command.into(),
            outcome: Outcome::Running,
            exit_code: None,
            started_at: Utc::now(),
            ended_at: None,
            options,
            snapshot: None,
            task: None,
            restore: None,
            steps: steps
                .iter()
                .map(|&n| StepRecord {
                    name: n.into(),
                    status: StepStatus::Pending,
                    started_at: None,
                    ended_at: None,
                    detail: None,
                })
                .collect(),
            error: None,
            state: None,
            next: None,
            actor: Some(Actor::current()),
            ferry: Some(crate::provenance::build()),
            ci_url: crate::provenance::ci_url(),
            config_sha256: None,
            abandoned: None,
            resolved_by: None,
            image: None,
            task_definition: None,
            start_attempts: Vec::new(),
            rehearsal: None,
            baseline: None,
            migration_attempts: Vec::new(),
            log_tail: Vec::new(),
        }
    }

    /// What stands in for a record that could not be read (`ferry runs abandon`
    /// of an unreadable journal): its command is not known, and it has no steps.
    pub fn unreadable(run_id: RunId, env: &str) -> Self {
        let mut r = RunRecord::new(run_id, env, RunKind::Deploy, RunOptions::default(), &[]);
        r.command = Recorded::Unknown(UnknownName("unknown".into()));
        r
    }

    /// Whether this run keeps its environment from other changing commands: it
    /// did not finish (running, interrupted) or it ended needing a person, and
    /// nobody has resumed, abandoned or resolved it since.
    /// The steps that change something (snapshot, migrate, restore) this run began.
    pub fn changing_steps_begun(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.started_at.is_some())
            .filter(|s| matches!(s.name.known(), Some(StepName::Snapshot | StepName::Migrate | StepName::Restore)))
            .map(|s| s.name.as_str())
            .collect()
    }

    /// The outcome as a person reads it: settled by a later run, still
    /// running (no exit code yet), or the outcome and its exit code.
    pub fn outcome_words(&self) -> String {
        match (&self.resolved_by, self.outcome) {
            (Some(by), was) => format!("settled by run {by} (it was {})", was.as_str()),
            (None, Outcome::Running) => "running, or its ferry died (no exit code yet)".into(),
            (None, o) => format!("{} (exit {})", o.as_str(), o.exit_code()),
        }
    }

    pub fn blocks_env(&self) -> bool {
        self.resolved_by.is_none()
            && matches!(self.outcome, Outcome::Running | Outcome::Interrupted | Outcome::NeedsAttention)
    }

    /// The step of this name, when the record has it (a `StepName`, or its
    /// text when a tool reads a record).
    pub fn step<N>(&self, name: N) -> Option<&StepRecord>
    where
        Recorded<StepName>: PartialEq<N>,
    {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The step to update; a step the plan has but an older record lacks
    /// (ferry.toml gained a health check since) is added.
    pub fn step_mut(&mut self, name: StepName) -> &mut StepRecord {
        if let Some(i) = self.steps.iter().position(|s| s.name == name) {
            &mut self.steps[i]
        } else {
            self.steps.push(StepRecord {
                name: name.into(),
                status: StepStatus::Pending,
                started_at: None,
                ended_at: None,
                detail: None,
            });
            self.steps.last_mut().expect("just pushed")
        }
    }

    /// The last migration attempt failed and proved it changed nothing.
    pub fn nothing_changed(&self) -> Option<&NothingChangedProof> {
        self.migration_attempts.last().and_then(|a| a.proof.as_ref()).filter(|p| p.holds())
    }

    pub fn step_status(&self, name: StepName) -> StepStatus {
        self.step(name).map_or(StepStatus::Pending, |s| s.status)
    }

    /// The first name this ferry does not know (the command or a step): a
    /// record written by a newer ferry, which only that ferry may drive.
    pub fn unknown_name(&self) -> Option<&str> {
        if let Recorded::Unknown(UnknownName(c)) = &self.command {
            return Some(c);
        }
        self.steps.iter().find(|s| s.name.known().is_none()).map(|s| s.name.as_str())
    }
}

/// `<env>-<yyyymmddThhmmssZ>-<4 hex>`
pub fn new_run_id(env: &str, now: DateTime<Utc>) -> RunId {
    RunId(format!("{env}-{}-{:04x}", now.format("%Y%m%dT%H%M%SZ"), fastrand::u16(..)))
}

/// A run's id, `<env>-<yyyymmddThhmmssZ>-<4 hex>`: made by [`new_run_id`], or
/// read from a record, a tag or the command line through [`RunId::parse`],
/// which refuses anything else. It reads as the string it is (`Deref<str>`)
/// and is journaled as that string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    /// `text` if it has a run id's shape, else why not (for an exit 2).
    pub fn parse(text: &str) -> Result<RunId, String> {
        let shaped =
            text.len() > 22 && text.is_char_boundary(text.len() - 22) && is_run_of(text, &text[..text.len() - 22]);
        if shaped {
            Ok(RunId(text.to_string()))
        } else {
            Err(format!("{text:?} is not a run id (<env>-<yyyymmddThhmmssZ>-<4 hex>, as `ferry runs list` shows them)"))
        }
    }

    /// A run id as ferry itself wrote it (a record's own, the key of a
    /// journal, a `ferry:run-id` tag): taken as written, never from a person.
    pub fn recorded(text: impl Into<String>) -> RunId {
        RunId(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for RunId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RunId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for RunId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for RunId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for RunId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<RunId> for String {
    fn eq(&self, other: &RunId) -> bool {
        *self == other.0
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

/// Whether `run_id` is a run id of environment `env`.
pub fn is_run_of(run_id: &str, env: &str) -> bool {
    let Some(rest) = run_id.strip_prefix(env).and_then(|r| r.strip_prefix('-')) else { return false };
    let b = rest.as_bytes();
    b.len() == 21
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..].iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The 4 hex digits that end a run id.
pub fn run_suffix(run_id: &str) -> &str {
    run_id.rsplit('-').next().unwrap_or(run_id)
}

/// Timestamp used in generated names: `yyyymmdd-hhmmss`.
pub fn name_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d-%H%M%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        let steps = [StepName::Preflight, StepName::Snapshot, StepName::Migrate, StepName::Cleanup];
        RunRecord::new(
            RunId::recorded("prod-20260101T000000Z-abcd"),
            "prod",
            RunKind::Rehearse,
            RunOptions::default(),
            &steps,
        )
    }

    #[test]
    fn names_are_journaled_as_the_words_of_the_json_contract() {
        let r = record();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["command"], "rehearse");
        let steps: Vec<&str> = v["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(steps, ["preflight", "snapshot", "migrate", "cleanup"]);
        let back: RunRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.unknown_name(), None);
    }

    #[test]
    fn a_record_from_a_newer_ferry_is_read_and_says_what_it_does_not_know() {
        let mut v = serde_json::to_value(record()).unwrap();
        v["steps"][1]["name"] = "notify".into();
        let r: RunRecord = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(r.unknown_name(), Some("notify"));
        assert_eq!(r.steps[1].name.to_string(), "notify");
        assert_eq!(r.step(StepName::Snapshot), None);
        // Written back unchanged.
        assert_eq!(serde_json::to_value(&r).unwrap(), v);

        v["command"] = "rollback".into();
        let r: RunRecord = serde_json::from_value(v).unwrap();
        assert_eq!(r.unknown_name(), Some("rollback"));
        assert_eq!(r.command.known(), None);
    }

    #[test]
    fn step_mut_finds_the_step_and_adds_only_a_known_one() {
        let mut r = record();
        r.step_mut(StepName::Migrate).status = StepStatus::Running;
        assert_eq!(r.step_status(StepName::Migrate), StepStatus::Running);
        assert_eq!(r.steps.len(), 4);
        r.step_mut(StepName::Verify).status = StepStatus::Skipped;
        assert_eq!(r.steps.last().map(|s| s.name.known()), Some(Some(StepName::Verify)));
    }
}
