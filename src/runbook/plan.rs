//! The steps a command executes, as data. `ferry plan` prints exactly this list,
//! and the runbook executes it step by step, so the two cannot drift apart.

use serde::Serialize;

use super::record::{RunKind, RunOptions, StepName};
use crate::config::values::format_duration;
use crate::config::{DatabaseConfig, DbUrl, EnvConfig, RehearseWhen, RestoreOnFailure, RestoreStrategy, RunnerKind};
use crate::output::shell;

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    pub name: StepName,
    /// What the step does, in the terms of this environment.
    pub does: Vec<String>,
    /// Runs only after a failure of an earlier step.
    pub only_on_failure: bool,
    /// Will be skipped (with the reason) given the options.
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub command: RunKind,
    pub env: String,
    pub steps: Vec<PlannedStep>,
}

impl Plan {
    pub fn names(&self) -> Vec<StepName> {
        self.steps.iter().map(|s| s.name).collect()
    }
}

fn step(name: StepName, does: Vec<String>) -> PlannedStep {
    PlannedStep { name, does, only_on_failure: false, skipped: None }
}

fn preflight(env: &EnvConfig, with_snapshot: bool) -> PlannedStep {
    let mut does = vec![
        format!("check database {} exists and is available", env.database_label()),
        "check no migration task of this environment is pending or running".to_string(),
    ];
    if env.migration.runner == RunnerKind::Ecs {
        does.push("check the task definition has the container and it logs with awslogs and a stream prefix".into());
    }
    if env.service.is_some() {
        does.push("check the App Runner service is RUNNING (not OPERATION_IN_PROGRESS)".into());
    }
    if with_snapshot {
        does.push("check the manual-snapshot quota has room".into());
    }
    if let Some(a) = &env.migration.alembic {
        let dirs: Vec<String> = a.versions.iter().map(|p| p.display().to_string()).collect();
        does.push(format!(
            "check the Alembic revisions in {} have one head per branch (several on one branch: refuse, with the `alembic merge` command)",
            dirs.join(", ")
        ));
        if env.session_url().is_some() {
            does.push(format!(
                "compare the database's {} with the head: nothing pending skips the snapshot and the migration (--force runs them)",
                a.version_table
            ));
        } else {
            does.push(format!(
                "the database's {} is not read: no database.url next to database.cluster",
                a.version_table
            ));
        }
    }
    step(StepName::Preflight, does)
}

fn migrate(env: &EnvConfig) -> PlannedStep {
    let container = env.migration.ecs.as_ref().map_or("?", |e| e.container.as_str());
    let runner = match (env.migration.runner, &env.migration.image) {
        (RunnerKind::Command, _) => {
            format!("run `{}` locally with DATABASE_URL set", shell::join(&env.migration.command))
        }
        (RunnerKind::Ecs, None) => {
            format!(
                "run `{}` as a one-off ECS Fargate task (container {container})",
                shell::join(&env.migration.command)
            )
        }
        (RunnerKind::Ecs, Some(image)) => format!(
            "register a new revision of task definition {} in which only container {container} changes, to image {image} \
             (every other field copied; tagged ferry:run-id), and run `{}` as a one-off ECS Fargate task of that revision",
            env.migration.ecs.as_ref().map_or("?", |e| e.task_definition.raw.as_str()),
            shell::join(&env.migration.command),
        ),
        (RunnerKind::Apprunner, None) => {
            "start a deployment of the App Runner service, which migrates on start-up".into()
        }
        (RunnerKind::Apprunner, Some(image)) => format!(
            "deploy image {image} to the App Runner service (UpdateService of its ImageIdentifier, every other setting \
             kept), which migrates on start-up"
        ),
    };
    let mut does = vec![runner];
    if env.migration.runner == RunnerKind::Apprunner {
        does.push("tail the service's log groups (.../service and .../application) until the operation ends".into());
        does.push("SUCCEEDED passes; FAILED or ROLLBACK_* fails".into());
        does.push(format!(
            "after {} follow it to its end, at most {} more (App Runner cannot cancel a deployment)",
            format_duration(env.timeouts.migration),
            format_duration(env.timeouts.service)
        ));
    } else {
        does.push("stream its logs; its exit code decides".to_string());
        does.push(format!("stop it and fail after {}", format_duration(env.timeouts.migration)));
    }
    if !env.migration.env.is_empty() {
        let vars: Vec<String> = env.migration.env.iter().map(|(k, v)| format!("{k}={}", v.shown())).collect();
        does.push(format!("environment: {}", vars.join(" ")));
    }
    if let (Some(t), Some(options)) = (env.migration.lock_timeout, env.migration.pgoptions()) {
        does.push(format!(
            "lock_timeout {}: a statement waiting longer for a lock fails (PGOPTIONS=\"{options}\")",
            format_duration(t)
        ));
    }
    step(StepName::Migrate, does)
}

fn verify(env: &EnvConfig) -> PlannedStep {
    let mut s = step(StepName::Verify, Vec::new());
    match &env.health {
        Some(h) => s.does.push(format!(
            "GET {} until it answers {} (within {})",
            h.url,
            h.expect_status,
            format_duration(h.timeout)
        )),
        None => s.skipped = Some("no health.url configured".into()),
    }
    s
}

fn restore(env: &EnvConfig, strategy: RestoreStrategy, snapshot: &str) -> PlannedStep {
    let mut does = Vec::new();
    if env.service.is_some() {
        does.push("pause the App Runner service and wait".into());
    }
    does.push(format!(
        "restore {snapshot} to a new database beside {} (named ...-restored-<ts>-<run hex>) and wait (within {})",
        env.database_label(),
        format_duration(env.timeouts.restore)
    ));
    match strategy {
        RestoreStrategy::Rename => {
            does.push(format!(
                "rename {} aside to ...-failed-<ts>-<run hex> (kept, never deleted)",
                env.database_label()
            ));
            does.push(format!("rename the restored database to {}", env.database_label()));
        }
        RestoreStrategy::NewCluster => {
            does.push("keep the restored database under its new name".into());
            if env.service.is_some() {
                does.push("point the service's database URL at the new endpoint".into());
            }
        }
    }
    if env.service.is_some() {
        does.push("resume the App Runner service and wait".into());
        does.push(
            "if a deployment the pause waited for succeeded, ask before resuming: its version would start against \
             the restored database (--yes resumes; with nobody to ask the service stays paused, exit 5)"
                .into(),
        );
    }
    if env.health.is_some() {
        does.push("verify health again".into());
    }
    step(StepName::Restore, does)
}

fn snapshot(env: &EnvConfig, options: &RunOptions) -> PlannedStep {
    let mut snapshot = step(
        StepName::Snapshot,
        vec![
            format!(
                "create snapshot {}-<yyyymmdd-hhmmss>-<run hex> of {}, tagged with the run",
                env.snapshot_prefix,
                env.database_label()
            ),
            format!("wait until it is available (within {})", format_duration(env.timeouts.snapshot)),
        ],
    );
    if options.no_snapshot {
        snapshot.skipped = Some("--no-snapshot".into());
    }
    snapshot
}

/// `ferry deploy`: preflight → snapshot → migrate → verify → restore on failure.
pub fn deploy_plan(env: &EnvConfig, options: &RunOptions) -> Plan {
    let snapshot = snapshot(env, options);
    let mut restore = restore(env, env.restore_strategy, "the snapshot");
    restore.only_on_failure = true;
    restore.skipped = if options.no_restore {
        Some("--no-restore".into())
    } else if options.no_snapshot {
        Some("no snapshot to restore from (--no-snapshot)".into())
    } else {
        match env.restore_on_failure {
            RestoreOnFailure::Never => Some("restore_on_failure = \"never\"".into()),
            RestoreOnFailure::Prompt => {
                restore.does.insert(0, "ask first (restore_on_failure = \"prompt\"; --yes answers yes)".into());
                None
            }
            RestoreOnFailure::Auto => None,
        }
    };
    let mut steps = vec![preflight(env, !options.no_snapshot)];
    if env.rehearse.when == RehearseWhen::Always {
        steps.extend(rehearsal_steps(env, options));
        steps[2]
            .does
            .push("a failed rehearsal ends the deploy here: exit 3, nothing of the environment changed".into());
    }
    steps.extend([snapshot, migrate(env), verify(env), restore]);
    Plan { command: RunKind::Deploy, env: env.name.clone(), steps }
}

/// How the clone is made, how its locks are looked at, and how the migration reaches it.
fn clone_lines(env: &EnvConfig) -> (Vec<String>, String, &'static str) {
    const SAMPLE: &str = "sample pg_locks and pg_stat_activity on the clone every 250ms: per table the strongest \
         lock held and for how long, lock waits, the longest statement";
    match &env.database {
        DatabaseConfig::Url(DbUrl::Sqlite(_)) => (
            vec!["copy the database file with SQLite's online backup to <stem>-rehearsal-<run hex>.<ext>, marked with the run".into()],
            "locks are not observed: SQLite has no lock table (a writer locks the whole file)".into(),
            ", with DATABASE_URL set to the clone",
        ),
        DatabaseConfig::Url(_) => (
            vec!["CREATE DATABASE <db>-rehearsal-<run hex> TEMPLATE <db> (a pg_dump copy when sessions are connected), \
                  marked with the run"
                .into()],
            SAMPLE.into(),
            ", with DATABASE_URL set to the clone",
        ),
        DatabaseConfig::Cluster(_) => (
            vec![
                "RestoreDBClusterToPointInTime <cluster>-rehearsal-<run hex>: RestoreType copy-on-write, the latest \
                 restorable time, the cluster's subnet group, security groups, cluster parameter group, port, IAM \
                 authentication and serverless v2 scaling; no deletion protection; tagged ferry:purpose=rehearsal, \
                 ferry:run-id, ferry:env in the call (billed for the pages the migration changes and the instance's hours)"
                    .into(),
                format!(
                    "CreateDBInstance <clone>-1 ({}, the writer's parameter group), tagged the same; wait until both are \
                     available (within {}, timeouts.restore)",
                    env.rehearse.instance_class.as_deref().map_or("the writer's instance class".into(), |c| format!("class {c}")),
                    format_duration(env.timeouts.restore)
                ),
            ],
            match env.database_url {
                Some(DbUrl::Postgres(_)) => format!("{SAMPLE} (through database.url with the clone's endpoint and port)"),
                _ => "locks are not observed: database.url is not set (ferry reaches the clone through it)".into(),
            },
            " (same task definition, container and image), with rehearse.database_env pointing it at the clone",
        ),
    }
}

/// The clone, the migration on it, and its deletion.
fn rehearsal_steps(env: &EnvConfig, options: &RunOptions) -> Vec<PlannedStep> {
    let r = &env.rehearse;
    let (copy, locks, reached) = clone_lines(env);
    let mut rehearse = vec![
        format!("run `{}` exactly as the migration step would{reached}", env.migration.command.join(" ")),
        locks,
        format!("fail when the migration fails or runs longer than {} (max_duration)", format_duration(r.max_duration)),
    ];
    if r.max_exclusive_lock_set || !matches!(env.database, DatabaseConfig::Url(DbUrl::Sqlite(_))) {
        rehearse.push(format!(
            "fail when it holds ACCESS EXCLUSIVE on a table longer than {} (max_exclusive_lock){}",
            format_duration(r.max_exclusive_lock),
            if r.max_exclusive_lock_set { "; locks that cannot be observed fail too" } else { "" }
        ));
    }
    if !r.database_env.is_empty() {
        let vars: Vec<String> = r.database_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rehearse.push(format!("also set: {}", vars.join(" ")));
    }
    let cleanup = if r.keep_clone || options.keep_clone {
        "keep the clone for inspection (keep_clone / --keep-clone) and say how to remove it".to_string()
    } else if matches!(env.database, DatabaseConfig::Cluster(_)) {
        "stop the rehearsal's migration if it still runs, then delete the clone's instance (waiting until it is gone) \
         and the clone with no final snapshot, only if tagged ferry:purpose=rehearsal and this run's ferry:run-id; \
         always, also after a failure or Ctrl-C; a clone that cannot be deleted is exit 5"
            .to_string()
    } else {
        "stop the rehearsal's migration if it still runs, then delete the clone (only one marked with this run); \
         always, also after a failure or Ctrl-C; a clone that cannot be deleted is exit 5"
            .to_string()
    };
    vec![step(StepName::Clone, copy), step(StepName::Rehearse, rehearse), step(StepName::Cleanup, vec![cleanup])]
}

/// `ferry rehearse`: the migration on a clone; nothing of the environment changes.
pub fn rehearse_plan(env: &EnvConfig, options: &RunOptions) -> Plan {
    let mut steps = vec![preflight(env, false)];
    steps.extend(rehearsal_steps(env, options));
    Plan { command: RunKind::Rehearse, env: env.name.clone(), steps }
}

/// `ferry migrate`: the migration task without verify or restore — but, like
/// every migration ferry starts, after a snapshot (ARCHITECTURE.md promise 1).
pub fn migrate_plan(env: &EnvConfig, options: &RunOptions) -> Plan {
    Plan {
        command: RunKind::Migrate,
        env: env.name.clone(),
        steps: vec![preflight(env, !options.no_snapshot), snapshot(env, options), migrate(env)],
    }
}

/// `ferry restore`: bring a snapshot back under the environment's database.
pub fn restore_plan(env: &EnvConfig, snapshot: &str, strategy: RestoreStrategy) -> Plan {
    let mut check = preflight(env, false);
    for line in &mut check.does {
        if line.starts_with("check the App Runner service") {
            *line = "check the App Runner service exists (an operation in progress is waited for)".into();
        }
        if line.starts_with("check no migration task") && env.migration.runner == RunnerKind::Apprunner {
            *line = "wait for a deployment in progress to end (when pausing the service)".into();
        }
    }
    check.does.push(format!("check snapshot {snapshot} is available"));
    Plan { command: RunKind::Restore, env: env.name.clone(), steps: vec![check, restore(env, strategy, snapshot)] }
}
