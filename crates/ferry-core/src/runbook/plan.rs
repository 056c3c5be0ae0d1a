//! The steps a command executes, as data. `ferry plan` prints exactly this list,
//! and the runbook executes it step by step, so the two cannot drift apart.

use serde::Serialize;

use super::record::{RestoreSource, RunKind, RunOptions, RunRecord, StepName};
use crate::config::values::format_duration;
use crate::config::{EnvConfig, RehearseWhen, RestoreOnFailure, RestoreStrategy};
use crate::provider::Describe;

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

fn preflight(env: &EnvConfig, words: &dyn Describe, with_snapshot: bool, restoring: bool) -> PlannedStep {
    let mut does = vec![format!("check database {} exists and is available", env.database_label())];
    does.extend(words.runner_checks(env, restoring));
    if env.service.is_some() {
        does.extend(words.service_check(env, restoring));
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

fn migrate(env: &EnvConfig, words: &dyn Describe) -> PlannedStep {
    let mut does = words.migration(env);
    if !env.migration.env.is_empty() {
        let vars: Vec<String> = env.migration.env.iter().map(|(k, v)| format!("{k}={}", v.shown())).collect();
        does.push(format!("environment: {}", vars.join(" ")));
    }
    if let (Some(t), Some(options)) = (env.migration.lock_timeout, env.migration.pgoptions()) {
        does.push(format!(
            "lock_timeout {}: a statement waiting longer for a lock fails (PGOPTIONS=\"{options}\")",
            format_duration(t)
        ));
        let n = env.migration.lock_retries;
        does.push(if n == 0 {
            "failed on a lock timeout with proof that nothing changed: not restored, exit 3 (lock_retries = 0)".into()
        } else {
            format!(
                "failed on a lock timeout with proof that nothing changed: run again up to {n} time(s) (backoff from \
                 5s, within timeouts.migration), then exit 3 without a restore"
            )
        });
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

fn restore(env: &EnvConfig, words: &dyn Describe, strategy: RestoreStrategy, snapshot: &str) -> PlannedStep {
    let mut does = Vec::new();
    if env.service.is_some() {
        does.push(format!("pause {} and wait", words.service_name()));
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
            does.push(
                "wait until the database's name resolves to the restored writer (where it resolves from here)".into(),
            );
            does.push(if env.restore.stop_set_aside {
                "stop the database set aside (no connections, no instance billing; storage kept, nothing deleted)"
                    .to_string()
            } else {
                "leave the database set aside running (restore.stop_set_aside = false)".to_string()
            });
        }
        RestoreStrategy::NewCluster => {
            does.push("keep the restored database under its new name".into());
            if env.service.is_some() {
                does.push("point the service's database URL at the new endpoint".into());
            }
        }
    }
    does.push("report the window of writes the restored database does not have, and where they are kept".into());
    if env.service.is_some() {
        does.push(format!("resume {} and wait", words.service_name()));
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
pub fn deploy_plan(env: &EnvConfig, words: &dyn Describe, options: &RunOptions) -> Plan {
    let snapshot = snapshot(env, options);
    let mut restore = restore(env, words, env.restore_strategy, "the snapshot");
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
    let mut steps = vec![preflight(env, words, !options.no_snapshot, false)];
    if env.rehearse.when == RehearseWhen::Always {
        steps.extend(rehearsal_steps(env, words, options));
        steps[2]
            .does
            .push("a failed rehearsal ends the deploy here: exit 3, nothing of the environment changed".into());
    }
    steps.extend([snapshot, migrate(env, words), verify(env), restore]);
    Plan { command: RunKind::Deploy, env: env.name.to_string(), steps }
}

/// The clone, the migration on it, and its deletion.
fn rehearsal_steps(env: &EnvConfig, words: &dyn Describe, options: &RunOptions) -> Vec<PlannedStep> {
    let r = &env.rehearse;
    let clone = words.rehearsal(env);
    let mut rehearse = vec![
        format!("run `{}` exactly as the migration step would{}", env.migration.command.join(" "), clone.reached),
        clone.locks,
        format!("fail when the migration fails or runs longer than {} (max_duration)", format_duration(r.max_duration)),
    ];
    if r.max_exclusive_lock_set || clone.has_lock_table {
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
    } else {
        clone.cleanup
    };
    vec![step(StepName::Clone, clone.copy), step(StepName::Rehearse, rehearse), step(StepName::Cleanup, vec![cleanup])]
}

/// `ferry rehearse`: the migration on a clone; nothing of the environment changes.
pub fn rehearse_plan(env: &EnvConfig, words: &dyn Describe, options: &RunOptions) -> Plan {
    let mut steps = vec![preflight(env, words, false, false)];
    steps.extend(rehearsal_steps(env, words, options));
    Plan { command: RunKind::Rehearse, env: env.name.to_string(), steps }
}

/// `ferry migrate`: the migration task without verify or restore — but, like
/// every migration ferry starts, after a snapshot (ARCHITECTURE.md promise 1).
pub fn migrate_plan(env: &EnvConfig, words: &dyn Describe, options: &RunOptions) -> Plan {
    Plan {
        command: RunKind::Migrate,
        env: env.name.to_string(),
        steps: vec![preflight(env, words, !options.no_snapshot, false), snapshot(env, options), migrate(env, words)],
    }
}

/// `ferry restore`: bring a snapshot back under the environment's database.
pub fn restore_plan(env: &EnvConfig, words: &dyn Describe, source: &RestoreSource, strategy: RestoreStrategy) -> Plan {
    let mut check = preflight(env, words, false, true);
    let from = match source {
        RestoreSource::Snapshot(id) => {
            check.does.push(format!("check snapshot {id} is available"));
            id.clone()
        }
        RestoreSource::PointInTime(t) => {
            let t = crate::output::timestamp(*t);
            check.does.push(format!("check {t} is inside the window {} can be restored to", env.database_label()));
            format!("{} as it was at {t} (a point-in-time restore)", env.database_label())
        }
    };
    Plan {
        command: RunKind::Restore,
        env: env.name.to_string(),
        steps: vec![check, restore(env, words, strategy, &from)],
    }
}

/// Shortest `lock_timeout` [`lock_timeout_suggestion`] suggests.
const SUGGEST_MIN: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest.
const SUGGEST_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// What the environment's latest rehearsal that observed locks says about
/// `migration.lock_timeout`: max(5 s, 2 × the longest lock wait it saw), at
/// most 60 s, naming the rehearsal and its numbers. `None` without such a
/// rehearsal, or when it saw neither a lock wait nor an ACCESS EXCLUSIVE hold.
pub fn lock_timeout_suggestion(env: &EnvConfig, runs: &[RunRecord]) -> Option<String> {
    let (run, h) = runs
        .iter()
        .filter(|r| r.env == env.name)
        .filter_map(|r| r.rehearsal.as_ref().filter(|h| h.locks_observed).map(|h| (r, h)))
        .max_by_key(|(r, _)| r.started_at)?;
    let wait = h.waits.iter().map(|w| w.held_for_ms).max();
    let exclusive = h.locks.iter().filter(|l| l.mode == "ACCESS EXCLUSIVE").map(|l| l.held_for_ms).max();
    if wait.is_none() && exclusive.is_none() {
        return None;
    }
    let ms = |v: u64| format!("{:.1}s", v as f64 / 1000.0);
    let mut seen = Vec::new();
    if let Some(w) = wait {
        seen.push(format!("waited at most {} for a lock", ms(w)));
    }
    if let Some(x) = exclusive {
        seen.push(format!("held ACCESS EXCLUSIVE at most {}", ms(x)));
    }
    let twice = std::time::Duration::from_millis(wait.unwrap_or(0).saturating_mul(2));
    let suggested = twice.max(SUGGEST_MIN).min(SUGGEST_MAX);
    let suggested = std::time::Duration::from_secs(suggested.as_millis().div_ceil(1000) as u64);
    let now = match env.migration.lock_timeout {
        Some(t) => format!(" (now {})", format_duration(t)),
        None => String::new(),
    };
    Some(format!(
        "rehearsal {} {}: suggested migration.lock_timeout = \"{}\"{now} (2 × the longest wait, at least 5s, at most 60s)",
        run.run_id,
        seen.join(" and "),
        format_duration(suggested)
    ))
}

#[cfg(test)]
mod suggestion_tests {
    use super::*;
    use crate::runbook::record::{LockHeld, RehearsalRecord, RunKind};

    fn env(extra: &str) -> EnvConfig {
        let text = format!(
            "project = \"p\"\n[env.prod]\nprovider = \"local\"\ndatabase = {{ url = \"postgres://u@127.0.0.1/app\" }}\nmigration = {{ command = [\"true\"]{extra} }}\n"
        );
        crate::config::parse(std::path::Path::new("/x/ferry.toml"), &text).unwrap().env("prod").unwrap().clone()
    }

    fn rehearsal(id: &str, ago_secs: i64, waits: &[u64], exclusive: &[u64]) -> RunRecord {
        let mut r = RunRecord::new(
            crate::runbook::record::RunId::recorded(id),
            "prod",
            RunKind::Rehearse,
            RunOptions::default(),
            &[],
        );
        r.started_at = chrono::Utc::now() - chrono::Duration::seconds(ago_secs);
        let held =
            |mode: &str, ms: &u64| LockHeld { relation: "public.orders".into(), mode: mode.into(), held_for_ms: *ms };
        r.rehearsal = Some(RehearsalRecord {
            locks_observed: true,
            waits: waits.iter().map(|ms| held("ROW EXCLUSIVE", ms)).collect(),
            locks: exclusive.iter().map(|ms| held("ACCESS EXCLUSIVE", ms)).collect(),
            ..RehearsalRecord::default()
        });
        r
    }

    #[test]
    fn the_latest_rehearsal_suggests_twice_its_longest_wait_between_5_and_60_seconds() {
        let e = env("");
        let older = rehearsal("prod-old", 3600, &[40_000], &[]);
        let newer = rehearsal("prod-new", 60, &[3_200, 1_000], &[7_500]);
        let line = lock_timeout_suggestion(&e, &[older.clone(), newer]).unwrap();
        assert!(line.contains("rehearsal prod-new"), "the latest one: {line}");
        assert!(line.contains("waited at most 3.2s") && line.contains("ACCESS EXCLUSIVE at most 7.5s"), "{line}");
        assert!(line.contains("lock_timeout = \"7s\""), "2 x 3.2s, rounded up: {line}");
        let line = lock_timeout_suggestion(&e, &[older]).unwrap();
        assert!(line.contains("lock_timeout = \"1m\""), "capped at 60s: {line}");
        let short = rehearsal("prod-short", 1, &[], &[900]);
        let line = lock_timeout_suggestion(&env(", lock_timeout = \"2s\""), &[short]).unwrap();
        assert!(line.contains("lock_timeout = \"5s\" (now 2s)"), "at least 5s, the setting named: {line}");
    }

    #[test]
    fn no_suggestion_without_an_observed_rehearsal_or_any_lock() {
        let e = env("");
        assert_eq!(lock_timeout_suggestion(&e, &[]), None);
        assert_eq!(lock_timeout_suggestion(&e, &[rehearsal("prod-a", 1, &[], &[])]), None, "nothing seen");
        let mut unobserved = rehearsal("prod-b", 1, &[5_000], &[]);
        unobserved.rehearsal.as_mut().unwrap().locks_observed = false;
        assert_eq!(lock_timeout_suggestion(&e, &[unobserved]), None);
    }
}
