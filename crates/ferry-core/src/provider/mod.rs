//! The provider traits, in ferry's own terms. No SDK or driver type crosses them:
//! the runbook drives any provider (fake, local, aws) through these alone.
//!
//! Every mutating call is idempotent with respect to its identifiers: calling it
//! again after a crash finds what the earlier attempt did instead of doing it twice.
//! That is what lets `ferry resume` re-run the step that was in flight.

pub mod describe;
#[cfg(any(test, feature = "test-support"))]
pub mod fake;
pub mod http;

pub use describe::{Describe, OperationKind, RehearsalWords, RunnerProfile, ServiceState};
pub use describe::{NO_MIGRATION_RUNNING, task_watch_lines};

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub type Tags = BTreeMap<String, String>;

/// Attempts per provider request, the first included: a throttled request is
/// retried by the platform's client (the AWS SDK's standard mode, set in
/// `ferry-aws`; the fake cloud imitates it) and reaches the runbook as
/// [`ProviderError::Throttled`] only after these. Five: a throttling burst
/// from other callers of the account's budget gets about 15 s to pass, while
/// an unreachable endpoint (a wrong `AWS_ENDPOINT_URL`, no network) is
/// reported within seconds.
pub const RETRY_MAX_ATTEMPTS: u32 = 5;
/// The exponential backoff between those attempts: a random delay up to 1 s,
/// then up to 2, 4 and 8 s (full jitter, so N ferries throttled together do
/// not retry in step), never more than [`RETRY_MAX_BACKOFF`].
pub const RETRY_INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
pub const RETRY_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(20);

pub const TAG_RUN_ID: &str = "ferry:run-id";
pub const TAG_ENV: &str = "ferry:env";
pub const TAG_PURPOSE: &str = "ferry:purpose";
pub const PURPOSE_PRE_DEPLOY: &str = "pre-deploy";
/// `ferry:purpose` of a database ferry restored from a snapshot (set in the create call).
pub const PURPOSE_RESTORE: &str = "restore";
/// `ferry:purpose` of a clone a rehearsal made (set when it is created).
pub const PURPOSE_REHEARSAL: &str = "rehearsal";
/// Set on a rehearsal's migration: the run it rehearses for. `ferry db exec`
/// run by that migration works on the clone its `DATABASE_URL` names.
pub const REHEARSAL_OF: &str = "FERRY_REHEARSAL_OF";

/// Errors a provider reports, classified so the runbook can decide without
/// looking at message text.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    /// The API asked us to slow down, and the SDK's own retries (the retry
    /// policy in provider/aws/mod.rs) did not get through: reported, not
    /// retried again.
    #[error("throttled: {0}")]
    Throttled(String),
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The request was rejected as invalid (bad identifier, quota, wrong state).
    #[error("{0}")]
    Rejected(String),
    /// Another operation is in progress on the resource: App Runner's
    /// InvalidStateException while an operation runs, RDS's
    /// InvalidDBClusterStateFault on a rename, a SQLite file another
    /// connection writes, a PostgreSQL server refusing connections for now.
    /// A state that ends: `runbook::wait::call` retries it with backoff.
    #[error("{0}")]
    Busy(String),
    /// The platform has no room for the task right now and started nothing
    /// (ECS RunTask `failures[]` with a capacity reason): a later attempt may
    /// get through. The runbook retries it within the migration's timeout.
    #[error("{0}")]
    NoCapacity(String),
    /// Credentials or permissions are missing.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Anything else: network, server error, local I/O.
    #[error("{0}")]
    Other(String),
}

impl ProviderError {
    /// A later attempt may succeed: throttled, or busy. Of the two only
    /// `Busy` is ferry's to retry; throttling the SDK has retried already.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Throttled(_) | ProviderError::Busy(_))
    }
}

pub type PResult<T> = Result<T, ProviderError>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    /// The identifier the provider knows the database by (RDS cluster id,
    /// SQLite file path, PostgreSQL database name).
    pub id: String,
    /// `available` when usable; anything else is reported as is.
    pub status: String,
    /// Where clients connect (secrets already removed).
    pub endpoint: Option<String>,
    pub engine: String,
    /// Instances that are not serving yet (`<id> <status>`), or `no instance
    /// yet` for a cluster that has none: what a wait for the whole database
    /// still waits for. Empty where the provider has no instances.
    #[serde(default)]
    pub pending_instances: Vec<String>,
}

/// A database a restore left beside the environment's (see [`Database::leftovers`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftover {
    pub id: String,
    /// What it was made as.
    pub kind: LeftoverKind,
    pub status: String,
    pub tags: Tags,
    /// What the platform does to it by itself, in its words (a stopped
    /// cluster started again after a while), when anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Leftover {
    /// How long ago the restore that left it ran, from the stamp in its id
    /// (`-<kind>-<yyyymmdd-hhmmss>`); `None` for an id without one.
    pub fn age(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        let (_, rest) = self.id.rsplit_once(&format!("-{}-", self.kind))?;
        let stamp = chrono::NaiveDateTime::parse_from_str(rest.get(..15)?, "%Y%m%d-%H%M%S").ok()?;
        Some(now - stamp.and_utc())
    }
}

/// What a database beside the environment's was made as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LeftoverKind {
    /// A restore's new database (`<db>-restored-…`).
    Restored,
    /// The original, renamed aside by a restore (`<db>-failed-…`).
    Failed,
    /// A rehearsal's clone (`<db>-rehearsal-…`).
    Rehearsal,
}

impl LeftoverKind {
    /// The word in the sibling's id, and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LeftoverKind::Restored => "restored",
            LeftoverKind::Failed => "failed",
            LeftoverKind::Rehearsal => "rehearsal",
        }
    }
}

impl std::fmt::Display for LeftoverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a sibling id `<of>-restored-…` / `<of>-failed-…` /
/// `<of>-rehearsal-…` (`<yyyymmdd-hhmmss>-<run hex>`, or the stamp alone as
/// older ferry versions named them: both are recognised, neither is trusted
/// as this run's work).
pub fn leftover_kind(of: &str, id: &str) -> Option<LeftoverKind> {
    let rest = id.strip_prefix(of)?;
    [LeftoverKind::Restored, LeftoverKind::Failed, LeftoverKind::Rehearsal]
        .into_iter()
        .find(|k| rest.starts_with(&format!("-{}-", k.as_str())))
}

impl ClusterInfo {
    /// The database and every instance of it serve.
    pub fn is_available(&self) -> bool {
        self.status == "available" && self.pending_instances.is_empty()
    }

    /// The status with the instances still pending, for messages.
    pub fn state(&self) -> String {
        if self.pending_instances.is_empty() {
            self.status.clone()
        } else {
            format!("{}; instances: {}", self.status, self.pending_instances.join(", "))
        }
    }
}

/// What one call of [`Database::complete_restore`] started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreWork {
    /// These instances are being created (the writer alone first, then the
    /// readers); wait for the database's `pending_instances` to empty.
    Instances(Vec<String>),
    /// These settings are being applied to the restored database (named as
    /// the API names them); wait for it to be available again.
    Settings(Vec<String>),
    /// The platform refused to apply settings; the restore goes on and the
    /// comparison reports what differs.
    Refused(String),
}

/// How a restored database compares with the one it replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwinReport {
    /// Settings that differ beyond what always differs (identifiers,
    /// endpoints, creation times, ARNs, status): each names the setting and
    /// both values.
    pub differences: Vec<String>,
    /// What the operator must know even though it was intended (a new secret
    /// for the master password, for example).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStatus {
    Creating,
    Available,
    Failed,
    Deleting,
}

impl std::fmt::Display for SnapshotStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotStatus::Creating => "creating",
            SnapshotStatus::Available => "available",
            SnapshotStatus::Failed => "failed",
            SnapshotStatus::Deleting => "deleting",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub id: String,
    pub cluster_id: String,
    pub status: SnapshotStatus,
    pub percent: u8,
    pub created_at: Option<DateTime<Utc>>,
    pub tags: Tags,
    /// Who made it: a person or ferry (`manual`), the platform's backups
    /// (`automated`), or another account (`shared`).
    #[serde(default)]
    pub kind: SnapshotKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    #[default]
    Manual,
    Automated,
    Shared,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Manual => "manual",
            SnapshotKind::Automated => "automated",
            SnapshotKind::Shared => "shared",
        }
    }
}

impl Snapshot {
    pub fn is_ferry_pre_deploy(&self, env: &str) -> bool {
        self.tags.get(TAG_PURPOSE).map(String::as_str) == Some(PURPOSE_PRE_DEPLOY)
            && self.tags.get(TAG_ENV).map(String::as_str) == Some(env)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotQuota {
    pub used: u32,
    pub max: u32,
}

/// The database behind one environment.
#[async_trait]
pub trait Database: Send + Sync {
    /// The environment's own database (the configured cluster).
    fn cluster_id(&self) -> &str;
    /// The id of a database beside the environment's own, named for `suffix`
    /// (`restored-<ts>-<run hex>`, `failed-<ts>-<run hex>`), within the
    /// provider's naming rules (the database's part is shortened, never the suffix).
    fn sibling_id(&self, suffix: &str) -> String;
    /// Describe any database by id; `None` when it does not exist.
    async fn describe(&self, id: &str) -> PResult<Option<ClusterInfo>>;
    /// The run recorded with database `id`: its `ferry:run-id` tag (AWS), the
    /// run id ferry recorded beside it (local providers); `None` when it does
    /// not exist or carries none. What proves a database is a run's work: its
    /// name never does.
    async fn run_of(&self, id: &str) -> PResult<Option<String>>;
    /// Start a snapshot of the environment's database. If a snapshot with this
    /// id already exists it is returned as is (idempotent resume).
    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot>;
    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>>;
    /// Snapshots of the environment's database, any order.
    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>>;
    /// Every snapshot of the environment's database the platform keeps: the
    /// manual ones of [`Database::list_snapshots`] and, where the platform has
    /// them, its automated backups. Never used to choose what to delete.
    async fn list_all_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.list_snapshots().await
    }
    async fn delete_snapshot(&self, id: &str) -> PResult<()>;
    /// Manual-snapshot quota, when the provider has one.
    async fn snapshot_quota(&self) -> PResult<Option<SnapshotQuota>>;
    /// Create a new database `target` from `snapshot_id`, copying the
    /// environment's database's settings, with `tags` on it from its creation
    /// (local providers record `ferry:run-id` beside it).
    /// Returns at once; `describe(target)` reports progress. If `target`
    /// already exists, does nothing.
    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()>;
    /// The window a point-in-time restore of the environment's database can
    /// reach now: (earliest, latest). `None`: this provider has none.
    async fn restorable_window(&self) -> PResult<Option<(DateTime<Utc>, DateTime<Utc>)>> {
        Ok(None)
    }
    /// As [`Database::restore_snapshot`], from the environment's database as
    /// it was at `at` (inside [`Database::restorable_window`]).
    async fn restore_to_time(&self, at: DateTime<Utc>, target: &str, tags: &Tags) -> PResult<()> {
        let _ = (at, target, tags);
        Err(ProviderError::Rejected("this provider has no point-in-time restore".into()))
    }
    /// Fence off database `id`, which run `run_id`'s restore set aside: stop
    /// it where the platform can (no connections, no instance billing, its
    /// storage kept, nothing deleted). Advisory: a platform that will not stop
    /// it says why, and the restore goes on.
    async fn stop_set_aside(&self, id: &str, run_id: &str) -> PResult<Stopped> {
        let _ = (id, run_id);
        Ok(Stopped::NotPossible("this provider cannot stop a database".into()))
    }
    /// A read-only session into database `id` beside the environment's (the
    /// one a restore set aside), where ferry can reach it; `None` otherwise.
    async fn session_of(&self, id: &str) -> PResult<Option<Arc<dyn Session>>> {
        let _ = id;
        Ok(None)
    }
    /// For the check after a swap: the host name clients of database `id`
    /// use, and its writer's own host name, where they are names a resolver
    /// answers for. `None`: nothing to resolve (a file, a local server).
    async fn writer_hosts(&self, id: &str) -> PResult<Option<(String, String)>> {
        let _ = id;
        Ok(None)
    }
    /// Take the next step that makes the restored `target` (available) the
    /// twin of the environment's database: create its missing instances (the
    /// writer alone first; once it exists, every reader at once), then apply
    /// the settings the restore could not carry. Idempotent. `None` when there
    /// is nothing left to do.
    async fn complete_restore(&self, _target: &str, _tags: &Tags) -> PResult<Option<RestoreWork>> {
        Ok(None)
    }
    /// Compare the restored database with the one it replaced, setting by setting.
    async fn compare(&self, _original: &str, _restored: &str) -> PResult<TwinReport> {
        Ok(TwinReport::default())
    }
    /// What restores of this database left beside it: databases whose id is
    /// this one's followed by `-restored-` or `-failed-`, with their tags.
    async fn leftovers(&self) -> PResult<Vec<Leftover>> {
        Ok(Vec::new())
    }
    /// Rename a database, tagging it with `ferry:run-id` = `run_id` first
    /// where the provider has tags (local providers record the run beside it).
    /// Idempotent: if `to` exists and `from` does not, it is done (the caller
    /// checks `to`'s run before trusting that). Never overwrites an existing database.
    async fn rename(&self, from: &str, to: &str, run_id: &str) -> PResult<()>;
    /// Take the next step toward `name`, a copy of the environment's database
    /// for a rehearsal, marked with `tags` (`ferry:purpose=rehearsal`,
    /// `ferry:run-id`) so that [`Database::delete_rehearsal_clone`] can prove
    /// it is this run's: [`CloneState::Ready`] once it can be used,
    /// [`CloneState::Making`] while the provider is still making it (call
    /// again; an Aurora clone and its instance take minutes). Idempotent: a
    /// clone of this name carrying this run's mark is used as is; one that
    /// does not carry it is `Rejected` and never touched.
    async fn clone_for_rehearsal(&self, name: &str, tags: &Tags) -> PResult<CloneState> {
        let _ = (name, tags);
        Err(ProviderError::Rejected("this provider cannot make a rehearsal clone".into()))
    }
    /// Take the next step toward deleting clone `id` if it carries the mark of
    /// run `run_id`; refuse (`Rejected`) anything else. `None` once it is gone
    /// or going (already gone is `None` too); `Some(state)` while its deletion
    /// is under way (call again).
    async fn delete_rehearsal_clone(&self, id: &str, run_id: &str) -> PResult<Option<String>> {
        let _ = (id, run_id);
        Err(ProviderError::Rejected("this provider cannot delete a rehearsal clone".into()))
    }
    /// The command(s) that remove rehearsal clone `id` by hand, for the report
    /// of a rehearsal that kept it (or could not remove it).
    fn clone_removal(&self, id: &str) -> String {
        format!("remove the database {id} by hand")
    }
    /// A separate session that samples the locks on `clone` while the
    /// rehearsal's migration runs. `Rejected` says why locks cannot be observed.
    async fn lock_observer(&self, clone: &CloneInfo) -> PResult<Box<dyn LockObserver>> {
        let _ = clone;
        Err(ProviderError::Rejected("this provider cannot observe locks".into()))
    }
}

/// What [`Database::stop_set_aside`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Stopping (or stopped now); the platform's own note, if any (AWS starts
    /// a stopped Aurora cluster again after seven days).
    Stopped(String),
    /// It was stopped already.
    Already,
    /// The platform will not stop it, and why.
    NotPossible(String),
}

/// Where a rehearsal clone is (see [`Database::clone_for_rehearsal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneState {
    Ready(CloneInfo),
    /// Still being made: what it waits for, for the progress line.
    Making(String),
}

/// A clone made for a rehearsal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloneInfo {
    pub id: String,
    /// `${clone.endpoint}`: the host (PostgreSQL, Aurora) or the file (SQLite).
    pub endpoint: String,
    /// `${clone.port}`, where there is one.
    pub port: Option<u16>,
    /// The migration's `DATABASE_URL` on the clone, where the provider sets it.
    #[serde(skip)]
    pub url_for_migration: Option<String>,
}

/// One relation lock seen in one sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenLock {
    /// `schema.table`.
    pub relation: String,
    /// `AccessExclusiveLock`, as the server names it.
    pub mode: String,
    /// `false`: the session waits for it.
    pub granted: bool,
}

/// One sample of the clone's locks and statements.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockSample {
    pub locks: Vec<SeenLock>,
    /// The statement that has been running longest now, and for how long (seconds).
    pub longest: Option<(String, f64)>,
}

#[async_trait]
pub trait LockObserver: Send + Sync {
    async fn sample(&self) -> PResult<LockSample>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Used as the idempotency token: starting twice with one run id yields one task.
    pub run_id: String,
    pub env: String,
    pub command: Vec<String>,
    pub environment: BTreeMap<String, String>,
    /// Run this image in the migration container (`--image`); `None`: the one pinned.
    #[serde(default)]
    pub image: Option<String>,
    /// What [`MigrationRunner::prepare_image`] returned for `image` (ECS: the
    /// task definition revision to run instead of the configured one).
    #[serde(default)]
    pub task_definition: Option<String>,
    /// Which run of the migration this is within the run (1 for the first;
    /// `migration.lock_retries` starts more). Each attempt is its own task,
    /// started and found under [`TaskSpec::start_key`]; the run id stays the
    /// run's tag.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

impl TaskSpec {
    /// The idempotency key of this attempt: see [`attempt_key`].
    pub fn start_key(&self) -> String {
        attempt_key(&self.run_id, self.attempt)
    }
}

/// The key a runner starts (and finds) one attempt of a run's migration under:
/// the run id for the first, `<run id>-attempt-<n>` for a later one, so a
/// resumed run finds each attempt's task and never starts one twice.
pub fn attempt_key(run_id: &str, attempt: u32) -> String {
    if attempt <= 1 { run_id.to_string() } else { format!("{run_id}-attempt-{attempt}") }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskHandle {
    /// Task ARN (ECS) or local task id.
    pub id: String,
    pub container: String,
    /// Where its logs go, for `LogSource::read`.
    pub log_stream: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskState {
    Pending,
    Running,
    /// The task stopped. `started` tells whether the command ever ran;
    /// `exit_code` is the watched container's, absent when unknown.
    Stopped {
        started: bool,
        exit_code: Option<i32>,
        reason: Option<String>,
    },
    /// The provider does not (yet) know the task: eventual consistency
    /// right after start, or a task that vanished.
    Missing,
    /// The migration runs on, but what watched it and would record its end
    /// is gone (a local supervisor killed by the OOM killer): nothing will
    /// ever say how it ended. The runbook stops it before deciding anything.
    Unsupervised {
        detail: String,
    },
    /// The task ended and its exit code was recorded nowhere (its supervisor
    /// died, its state was lost): whether it succeeded cannot be known.
    Lost {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSummary {
    pub id: String,
    pub status: String,
    pub started_by: Option<String>,
}

#[async_trait]
pub trait MigrationRunner: Send + Sync {
    /// Read-only check that the task can be started (preflight); a line to report.
    async fn check(&self) -> PResult<Option<String>> {
        Ok(None)
    }
    /// The environment variables the platform gives the migration from
    /// secrets (ECS: the container definition's `secrets`), which a variable
    /// set on the migration is not documented to replace.
    async fn secret_variables(&self) -> PResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// What this runner can do and what it calls things.
    fn profile(&self) -> RunnerProfile {
        RunnerProfile::default()
    }
    /// One started migration, for the progress line.
    fn describe_task(&self, handle: &TaskHandle) -> String {
        format!("task {} (container {})", handle.id, handle.container)
    }
    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle>;
    async fn poll(&self, task_id: &str) -> PResult<TaskState>;
    async fn stop(&self, task_id: &str, reason: &str) -> PResult<()>;
    /// Migration tasks of this environment that are pending or running.
    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>>;
    /// Find the task a run started (after a crash between start and journal).
    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>>;
    /// Find the task a run started from `spec`. Runners that start differently
    /// with an image (App Runner: UpdateService rather than StartDeployment)
    /// look for that; the rest look by run id.
    async fn find_started(&self, spec: &TaskSpec) -> PResult<Option<TaskHandle>> {
        self.find_attempt(&spec.run_id, spec.attempt).await
    }
    /// Find the task of attempt `attempt` of a run (see [`TaskSpec::attempt`]).
    /// Runners that cannot run a migration again know only the first.
    async fn find_attempt(&self, run_id: &str, attempt: u32) -> PResult<Option<TaskHandle>> {
        if attempt <= 1 {
            return self.find_by_run(run_id).await;
        }
        Err(ProviderError::Rejected("this migration runner runs a migration once per run".into()))
    }
    /// `--image`: make this run's migration use `image`, before `start`.
    /// Returns what goes into [`TaskSpec::task_definition`] (ECS: a new task
    /// definition revision, only the migration container's image changed, tagged
    /// with the run), or `None` when `start` needs nothing prepared (App Runner
    /// deploys the image itself). Idempotent per run id: what an earlier attempt
    /// of this run prepared is found and returned, not made twice.
    async fn prepare_image(&self, run_id: &str, image: &str) -> PResult<Option<String>> {
        let _ = (run_id, image);
        Err(ProviderError::Rejected(
            "this migration runner cannot run a given image (--image needs runner = \"ecs\" or \"apprunner\")".into(),
        ))
    }
    /// The log stream of a task given by id (`ferry logs --task`).
    async fn log_stream_of(&self, task_id: &str) -> PResult<String> {
        Ok(task_id.to_string())
    }
    /// How long a task this runner started may be "not found" and still be
    /// there (a listing that lags behind the start). Past it the task's fate is
    /// unknown.
    fn missing_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(60)
    }
    /// Resolves when the task has stopped, for runners that are told (a local
    /// process's exit); the default never resolves and polling finds the stop.
    async fn stopped(&self, _task_id: &str) {
        std::future::pending::<()>().await;
    }
    /// Whether every log line is readable once the task is stopped, so the
    /// logs need no drain timer after it (true for a local process, whose
    /// output is written before its exit is recorded).
    fn logs_complete_when_stopped(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEvent {
    pub timestamp: DateTime<Utc>,
    pub message: String,
}

/// Opaque position in a log stream; `None` means "from the start".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor(pub Option<String>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub events: Vec<LogEvent>,
    pub next: LogCursor,
}

#[async_trait]
pub trait LogSource: Send + Sync {
    /// Events after `cursor`, oldest first. An empty page means "nothing new yet";
    /// a stream that does not exist yet reads as empty. At the end of what the
    /// source holds now, the page's `next` is the cursor given (CloudWatch
    /// Logs' GetLogEvents returns the token passed in): the runbook's drain
    /// reads that as the source's word that nothing follows yet.
    async fn read(&self, stream: &str, cursor: &LogCursor) -> PResult<LogPage>;

    /// Where a person reads `stream` in a browser (a console page), when the
    /// source has one; the step summary links it.
    fn console_url(&self, _stream: &str) -> Option<String> {
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    pub id: String,
    /// The state as the platform names it, for messages and JSON.
    pub status: String,
    /// The same in ferry's terms: what the runbook decides on.
    #[serde(skip, default)]
    pub state: ServiceState,
}

/// An operation on the app service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationInfo {
    pub id: String,
    pub kind: OperationKind,
}

#[async_trait]
pub trait AppService: Send + Sync {
    /// Who runs the service, for messages: `App Runner`.
    fn platform(&self) -> &'static str {
        "app"
    }
    async fn status(&self) -> PResult<ServiceInfo>;
    /// The operation in progress now, when the provider can tell.
    async fn operation_in_progress(&self) -> PResult<Option<OperationInfo>> {
        Ok(None)
    }
    /// What the service starts when it runs next (its image, or its source
    /// repository and version), when the provider can tell.
    async fn image(&self) -> PResult<Option<String>> {
        Ok(None)
    }
    /// Pause; returns an operation id to wait for (None when already paused).
    async fn pause(&self) -> PResult<Option<String>>;
    async fn resume(&self) -> PResult<Option<String>>;
    /// Point the service's database URL variable `var` at `host` (keeping the
    /// rest of the URL); returns the operation to wait for.
    async fn replace_env_host(&self, var: &str, host: &str) -> PResult<Option<String>>;
    /// `Ok(None)` while in progress, `Ok(Some(true))` succeeded, `Some(false)` failed.
    async fn operation_done(&self, operation_id: &str) -> PResult<Option<bool>>;
}

#[async_trait]
pub trait StackOutputs: Send + Sync {
    async fn outputs(&self, stack: &str) -> PResult<BTreeMap<String, String>>;
}

/// Checks the application answers after a migration.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// One probe: the HTTP status, or an error text when there was no answer.
    async fn probe(&self, url: &str) -> Result<u16, String>;
}

/// Read-only access to what is inside the database (not its infrastructure):
/// the migration version table, and the server's sessions and locks. Never writes.
#[async_trait]
pub trait Session: Send + Sync {
    /// The revision ids in the version table `table` (`alembic_version`, or
    /// `schema.table`). A table that does not exist means nothing is applied: empty.
    async fn version_rows(&self, table: &str) -> PResult<Vec<String>>;
    /// What could block or slow a migration now; `threshold` is how long a
    /// query or transaction may run before it is reported, `lag_threshold` how
    /// far a replica may trail.
    async fn diagnose(&self, threshold: std::time::Duration, lag_threshold: std::time::Duration) -> PResult<Diagnosis>;
    /// The server's running count of rows inserted, updated and deleted, per
    /// table, since its statistics were last reset. `None`: this database
    /// keeps no such count.
    async fn write_counts(&self) -> PResult<Option<Vec<TableWrites>>> {
        Ok(None)
    }
    /// A digest of the schema (tables, columns and their types, indexes,
    /// constraints) and how many of each: equal before and after a migration
    /// means its DDL left nothing behind.
    async fn schema_fingerprint(&self) -> PResult<SchemaFingerprint> {
        Err(ProviderError::Rejected("this database session cannot read the schema".into()))
    }
    /// The sessions that hold a lock another session of the database waits
    /// for, now (what a waiting migration waits behind).
    async fn lock_blockers(&self) -> PResult<Vec<LockBlocker>> {
        Ok(Vec::new())
    }
}

/// Rows written to one table: a running count ([`Session::write_counts`]),
/// or the difference of two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableWrites {
    /// `schema.table`.
    pub table: String,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
}

impl std::fmt::Display for TableWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} inserted, {} updated, {} deleted", self.table, self.inserted, self.updated, self.deleted)
    }
}

/// See [`Session::schema_fingerprint`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaFingerprint {
    /// Hex SHA-256 of the sorted catalog rows.
    pub digest: String,
    pub tables: u32,
    pub columns: u32,
    pub indexes: u32,
    pub constraints: u32,
}

impl std::fmt::Display for SchemaFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tables, {} columns, {} indexes, {} constraints ({})",
            self.tables,
            self.columns,
            self.indexes,
            self.constraints,
            self.digest.get(..12).unwrap_or(&self.digest)
        )
    }
}

/// A session holding a lock another session waits for (see [`Session::lock_blockers`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockBlocker {
    pub pid: i32,
    /// How long its transaction (else its query) has been open, seconds.
    pub age_secs: f64,
    /// Its current or last query, at most 80 characters.
    pub query: String,
    /// The session that waits for it.
    pub waiting_pid: i32,
}

/// `ferry doctor`'s findings about one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// `postgresql 16.2`, `sqlite 3.46.0`.
    pub server: String,
    /// What was looked at, so a clean result says what it covers.
    pub checked: Vec<String>,
    pub findings: Vec<Finding>,
}

/// One thing found, with plain advice. `blocks_migration` findings make doctor exit 3.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// advisory_lock, blocked_query, long_transaction, long_query, standby,
    /// replica_lag, write_lock
    pub kind: String,
    pub blocks_migration: bool,
    pub summary: String,
    pub advice: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// When the session, transaction or query (per `kind`) started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub blocked_by: Vec<i32>,
    /// The advisory lock's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_key: Option<String>,
}

/// One environment's view of a cloud: the parts the runbook drives.
#[derive(Clone)]
pub struct Cloud {
    pub database: Arc<dyn Database>,
    pub runner: Arc<dyn MigrationRunner>,
    pub logs: Arc<dyn LogSource>,
    pub service: Option<Arc<dyn AppService>>,
    pub health: Arc<dyn HealthCheck>,
    /// Inside the database, when ferry can reach it from here; otherwise why
    /// not and how to make it possible (aws without `database.url`).
    pub session: Result<Arc<dyn Session>, String>,
    /// The provider's words for plans.
    pub describe: Arc<dyn Describe>,
}
