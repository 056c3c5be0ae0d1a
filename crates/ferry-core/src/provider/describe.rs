//! How a provider describes itself to the runbook, so the runbook never asks
//! which provider it drives: what its runner can do ([`RunnerProfile`]), its
//! service's states in ferry's terms ([`ServiceState`], [`OperationKind`]), and
//! its words for a plan ([`Describe`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::EnvConfig;

/// What a migration runner can do and what it calls things, for the runbook's
/// decisions and messages ([`super::MigrationRunner::profile`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerProfile {
    /// What one migration is called: `task`, `deployment`.
    pub unit: &'static str,
    /// Who runs it, for messages: `ECS`, `App Runner`, `the local supervisor`.
    pub platform: &'static str,
    /// ferry can stop a migration that outlives its timeout. When it cannot,
    /// ferry follows the migration to its end (at most `timeouts.service`
    /// more) and acts on the real outcome, never on a guess.
    pub can_stop: bool,
    /// The migration ends only as succeeded (exit code 0) or failed, with no
    /// exit code of its own: late is still succeeded (the new version runs on
    /// the migrated schema, and restoring under it would break the app).
    pub pass_fail_only: bool,
    /// The longest pause between two looks at a running migration, when the
    /// runner's status calls are cheap enough to look more often than the
    /// default backoff.
    pub poll_cap: Option<Duration>,
    /// The migration's log references are complete only once it ended: read
    /// them again then, for `ferry logs --run`.
    pub logs_known_at_end: bool,
    /// The migration is the app service's own deployment: a restore waits for
    /// it (pausing the service waits out its operations) instead of refusing.
    pub is_service_deployment: bool,
}

impl Default for RunnerProfile {
    /// A one-off task with an exit code that ferry can stop, whose status is
    /// cheap to read: its stop is seen within 1-2 s however long it runs.
    fn default() -> Self {
        RunnerProfile {
            unit: "task",
            platform: "the runner",
            can_stop: true,
            pass_fail_only: false,
            poll_cap: Some(Duration::from_secs(2)),
            logs_known_at_end: false,
            is_service_deployment: false,
        }
    }
}

/// The app service's state in ferry's terms; the platform's own word stays in
/// [`super::ServiceInfo::status`] for messages and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceState {
    /// Serving, and no operation in progress: a change can start.
    Running,
    /// Paused by ferry or a person: serving nothing.
    Paused,
    /// An operation is in progress; the platform refuses another until it ends.
    Busy,
    /// Anything else (failed, deleted, being created), or not said.
    #[default]
    Other,
}

/// What an operation on the app service does, in ferry's terms; the
/// platform's name for it is kept for messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OperationKind {
    /// Starts a new version of the app (whose start-up may migrate).
    Deployment(String),
    /// Anything else: a pause, a resume, a configuration change.
    Other(String),
    /// The platform did not say (not listed yet): it may be a deployment.
    Unidentified,
}

impl OperationKind {
    /// A deployment, or an operation ferry could not identify (which may be one).
    pub fn may_deploy(&self) -> bool {
        matches!(self, OperationKind::Deployment(_) | OperationKind::Unidentified)
    }
}

impl std::fmt::Display for OperationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OperationKind::Deployment(name) | OperationKind::Other(name) => f.write_str(name),
            OperationKind::Unidentified => f.write_str("an operation ferry could not identify"),
        }
    }
}

/// How the rehearsal's clone is made and observed, for the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RehearsalWords {
    /// How the clone is made.
    pub copy: Vec<String>,
    /// How its locks are observed, or why they are not.
    pub locks: String,
    /// How the migration reaches the clone (appended to "run `cmd` exactly as
    /// the migration step would").
    pub reached: String,
    /// How the clone is removed after the rehearsal.
    pub cleanup: String,
    /// Whether this database can report the locks a migration holds at all
    /// (a SQLite file cannot: one writer locks the whole file).
    pub has_lock_table: bool,
}

/// A provider's words for a plan, from the configuration alone: `ferry plan`
/// prints them before any request, and every run journals the same plan. Each
/// provider crate has one; the binary picks it by the environment's provider.
pub trait Describe: Send + Sync {
    /// The runner's preflight checks, after the database's (`restoring`: as
    /// a restore runs them).
    fn runner_checks(&self, env: &EnvConfig, restoring: bool) -> Vec<String>;
    /// The service's preflight check, when the environment has a service.
    fn service_check(&self, env: &EnvConfig, restoring: bool) -> Option<String>;
    /// The service, as the plan names it (`the App Runner service`).
    fn service_name(&self) -> &'static str;
    /// The migrate step: how the migration starts, is watched and decided.
    fn migration(&self, env: &EnvConfig) -> Vec<String>;
    /// The rehearsal's clone, on this environment's database.
    fn rehearsal(&self, env: &EnvConfig) -> RehearsalWords;
}

/// The plan's lines for a migration that is a one-off task with an exit code
/// ferry can stop: how it is watched and decided.
pub fn task_watch_lines(env: &EnvConfig) -> Vec<String> {
    vec![
        "stream its logs; its exit code decides".to_string(),
        format!("stop it and fail after {}", crate::config::values::format_duration(env.timeouts.migration)),
    ]
}

/// The preflight line every runner has: nothing of this environment's runs.
pub const NO_MIGRATION_RUNNING: &str = "check no migration task of this environment is pending or running";
