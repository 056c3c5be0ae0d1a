//! The commands that change things, as state machines over the run record:
//! steps already settled in the journal are not run again, the one in flight is
//! re-run (idempotently), and the outcome follows from the record.

use super::fence::fence_summary;
use super::migrate::run_migration;
use super::plan::{self, Plan};
use super::preflight::preflight;
use super::record::{Outcome, RestoreSource, RunKind, RunRecord, StepName, StepStatus};
use super::rehearse;
use super::restore::{restore, twin_summary};
use super::revisions;
use super::snapshot::take_snapshot;
use super::verify::verify;
use super::{Run, StepError};
use crate::config::RestoreOnFailure;
use crate::provider::SnapshotStatus;
use crate::runbook::wait::call;

/// `ferry deploy` (and its resume).
pub async fn deploy(run: &mut Run) -> RunRecord {
    let plan = plan::deploy_plan(&run.env, run.cloud.describe.as_ref(), &run.record.options);
    match drive(run, &plan).await {
        Ok(record) => record,
        Err(e) => journal_failure(run, e),
    }
}

/// `ferry migrate`: preflight, snapshot and the migration task; no restore.
pub async fn migrate_only(run: &mut Run) -> RunRecord {
    let plan = plan::migrate_plan(&run.env, run.cloud.describe.as_ref(), &run.record.options);
    match drive(run, &plan).await {
        Ok(record) => record,
        Err(e) => journal_failure(run, e),
    }
}

/// `ferry rehearse`: the migration on a clone, then the clone deleted.
pub async fn rehearse_only(run: &mut Run) -> RunRecord {
    let plan = plan::rehearse_plan(&run.env, run.cloud.describe.as_ref(), &run.record.options);
    match drive(run, &plan).await {
        Ok(record) => record,
        Err(e) => journal_failure(run, e),
    }
}

/// `ferry restore`: bring the snapshot in `record.options.snapshot` back.
pub async fn restore_only(run: &mut Run) -> RunRecord {
    let strategy = run.record.options.strategy.unwrap_or(run.env.restore_strategy);
    let plan = plan::restore_plan(&run.env, run.cloud.describe.as_ref(), &restore_source(run), strategy);
    match drive(run, &plan).await {
        Ok(record) => record,
        Err(e) => journal_failure(run, e),
    }
}

fn journal_failure(run: &mut Run, e: StepError) -> RunRecord {
    // The journal could not be written: say so, and keep the outcome honest.
    // Once the migration step began, something may have changed: never exit 3.
    let migrating = run.record.task.is_some()
        || !matches!(run.record.step_status(StepName::Migrate), StepStatus::Pending | StepStatus::Skipped);
    // A rehearsal's clone that may still exist needs a person too (it costs, and only ferry marked it).
    let clone_left = run.record.rehearsal.as_ref().is_some_and(|r| r.clone.is_some() && r.clone_fate.is_none());
    let outcome = if migrating || clone_left { Outcome::NeedsAttention } else { Outcome::Aborted };
    let next = format!("ferry status {}", run.env.name);
    run.finish(
        outcome,
        Some(e.to_string()),
        Some("the journal could not be written; check the state before acting".into()),
        Some(next),
    )
}

async fn drive(run: &mut Run, plan: &Plan) -> Result<RunRecord, StepError> {
    let env = run.env.name.clone();
    let mut failed = Failures {
        // A failure of migrate/verify recorded by an earlier attempt.
        migration: recorded_failure(run, [StepName::Migrate, StepName::Verify]),
        // A failure of the rehearsal (or of making its clone) recorded by an earlier attempt.
        rehearsal: recorded_failure(run, [StepName::Clone, StepName::Rehearse]),
    };

    for step in &plan.steps {
        if run.record.step_status(step.name).is_settled() {
            continue;
        }
        if let Some(reason) = &step.skipped
            && (!step.only_on_failure || failed.migration.is_some())
        {
            run.begin(step.name, &format!("skipped ({reason})"))?;
            run.end(step.name, StepStatus::Skipped, reason)?;
            continue;
        }
        if step.only_on_failure && failed.migration.is_none() && plan.command == RunKind::Deploy {
            let s = run.record.step_mut(step.name);
            s.status = StepStatus::Skipped;
            s.detail = Some("not needed".into());
            run.save()?;
            continue;
        }
        if step.name == StepName::Restore && plan.command == RunKind::Deploy && run.record.nothing_changed().is_some() {
            run.begin(step.name, &format!("skipped ({NOTHING_TO_UNDO})"))?;
            run.end(step.name, StepStatus::Skipped, NOTHING_TO_UNDO)?;
            continue;
        }
        let was_in_flight = matches!(run.record.step_status(step.name), StepStatus::Running | StepStatus::Interrupted);
        let what = resumed_words(run, step.name, was_in_flight)
            .unwrap_or_else(|| step.does.first().cloned().unwrap_or_default());
        run.begin(step.name, &what)?;
        if let Some(ended) = run_step(run, plan, step.name, was_in_flight, &mut failed).await? {
            return Ok(ended);
        }
    }
    // A failed rehearsal whose cleanup an earlier attempt (or the signal path) settled.
    if let Some(error) = failed.rehearsal {
        return Ok(rehearsal_refused(run, error));
    }
    Ok(conclude(run, plan, &env, failed.migration))
}

/// Why a deploy's restore is skipped after a migration that failed on a lock
/// timeout with proof that it changed nothing.
const NOTHING_TO_UNDO: &str = "nothing to undo: the migration failed on a lock timeout and changed nothing";

/// A migrate step an interrupted attempt began says what a resume does: it
/// follows the migration already started, or looks for one before starting
/// anything; never the plan's words for starting one.
fn resumed_words(run: &Run, step: StepName, was_in_flight: bool) -> Option<String> {
    if !was_in_flight || step != StepName::Migrate {
        return None;
    }
    let unit = run.cloud.runner.profile().unit;
    Some(match &run.record.task {
        Some(t) => format!("follow {unit} {} that an earlier attempt started (nothing new is started)", t.arn),
        None => format!("look for a {unit} an earlier attempt started, and start one only if there is none"),
    })
}

/// What failed so far without ending the run.
struct Failures {
    /// The migration or the health check: the restore follows.
    migration: Option<String>,
    /// The clone or the rehearsal: the cleanup follows, then the run ends (exit 3).
    rehearsal: Option<String>,
}

/// The detail of the first of `steps` the record shows as failed.
fn recorded_failure(run: &Run, steps: [StepName; 2]) -> Option<String> {
    steps
        .into_iter()
        .find_map(|n| run.record.step(n).filter(|s| s.status == StepStatus::Failed).and_then(|s| s.detail.clone()))
}

/// One step, begun. A failed migrate or verify is noted in `failed` and the
/// run goes on (to the restore); `Some` ends the run.
async fn run_step(
    run: &mut Run,
    plan: &Plan,
    name: StepName,
    was_in_flight: bool,
    failed: &mut Failures,
) -> Result<Option<RunRecord>, StepError> {
    let result = match name {
        StepName::Preflight => return preflight_step(run, plan).await,
        StepName::Restore => return restore_step(run, plan, failed.migration.as_deref()).await,
        StepName::Clone | StepName::Rehearse | StepName::Cleanup => {
            return rehearsal_step(run, name, was_in_flight, &mut failed.rehearsal).await;
        }
        StepName::Migrate | StepName::Verify if failed.migration.is_some() => {
            run.end(name, StepStatus::Skipped, "an earlier step failed")?;
            return Ok(None);
        }
        StepName::Snapshot => take_snapshot(run).await,
        StepName::Migrate => run_migration(run).await,
        StepName::Verify => verify(run).await.map(|done| done.unwrap_or_else(|| "nothing to check".into())),
    };
    match result {
        Ok(done) => run.end(name, StepStatus::Succeeded, &done)?,
        Err(StepError::Failed(e)) if name != StepName::Snapshot => {
            run.end(name, StepStatus::Failed, &e)?;
            failed.migration = Some(e);
        }
        Err(StepError::Unknown(e)) if name == StepName::Migrate => return unknown(run, name, e).map(Some),
        Err(e) => return abort(run, name, e).map(Some),
    }
    Ok(None)
}

/// Preflight, and for `ferry restore` the snapshot's check; a database
/// already at the heads settles the snapshot and migration as skipped.
async fn preflight_step(run: &mut Run, plan: &Plan) -> Result<Option<RunRecord>, StepError> {
    let with_snapshot = plan.command != RunKind::Restore && !run.record.options.no_snapshot;
    let mut up_to_date = None;
    let result = match preflight(run, with_snapshot).await {
        Ok(found) if plan.command == RunKind::Restore => check_snapshot(run).await.map(|s| format!("{found}, {s}")),
        Ok(found) => match revisions::check(run, run.record.options.force).await {
            Ok(Some(check)) => {
                up_to_date = check.up_to_date;
                Ok(format!("{found}, {}", check.line))
            }
            Ok(None) => Ok(found),
            Err(e) => Err(e),
        },
        other => other,
    };
    // The skips are journaled before preflight is settled: a run
    // killed in between re-runs preflight, never the migration.
    if let (Ok(_), Some(why)) = (&result, &up_to_date) {
        skip_up_to_date(run, plan, why)?;
    }
    match result {
        Ok(found) => run.end(StepName::Preflight, StepStatus::Succeeded, &found)?,
        Err(e) => return abort(run, StepName::Preflight, e).map(Some),
    }
    Ok(None)
}

/// The restore: after a failed deploy (when `restore_on_failure` allows) or as
/// `ferry restore` itself. A failed restore ends the run for a person.
async fn restore_step(run: &mut Run, plan: &Plan, failure: Option<&str>) -> Result<Option<RunRecord>, StepError> {
    if plan.command == RunKind::Deploy && !may_restore(run)? {
        return Ok(None);
    }
    let source = restore_source(run);
    let strategy = run.record.options.strategy.unwrap_or(run.env.restore_strategy);
    match restore(run, &source, strategy).await {
        Ok(done) => {
            run.end(StepName::Restore, StepStatus::Succeeded, &done)?;
            Ok(None)
        }
        Err(f) => {
            run.end(StepName::Restore, StepStatus::Failed, &f.error)?;
            let error = match failure {
                Some(m) => format!("{m}; then the restore failed: {}", f.error),
                None => f.error,
            };
            let next = f.next.unwrap_or_else(|| format!("ferry resume {}", run.record.run_id));
            Ok(Some(run.finish(Outcome::NeedsAttention, Some(error), Some(f.state), Some(next))))
        }
    }
}

/// One step of the rehearsal. A failed clone or rehearsal is noted in
/// `failed` and the cleanup still runs; after the cleanup a failed rehearsal
/// ends the run (exit 3), and a clone that cannot be deleted ends it at exit 5.
async fn rehearsal_step(
    run: &mut Run,
    name: StepName,
    was_in_flight: bool,
    failed: &mut Option<String>,
) -> Result<Option<RunRecord>, StepError> {
    if name != StepName::Cleanup {
        if failed.is_some() {
            run.end(name, StepStatus::Skipped, "an earlier step failed")?;
            return Ok(None);
        }
        let result = if name == StepName::Clone {
            rehearse::make_clone(run).await
        } else {
            rehearse::rehearse(run, was_in_flight).await
        };
        match result {
            Ok(done) => run.end(name, StepStatus::Succeeded, &done)?,
            Err(StepError::Journal(j)) => return Err(StepError::Journal(j)),
            Err(e) => {
                run.end(name, StepStatus::Failed, &e.to_string())?;
                *failed = Some(e.to_string());
            }
        }
        return Ok(None);
    }
    match rehearse::cleanup(run).await {
        Ok(done) => {
            run.end(name, StepStatus::Succeeded, &done)?;
            Ok(failed.take().map(|error| rehearsal_refused(run, error)))
        }
        Err(StepError::Journal(j)) => Err(StepError::Journal(j)),
        Err(e) => {
            run.end(name, StepStatus::Failed, &e.to_string())?;
            let error = match failed.take() {
                Some(f) => format!("{f}; then {e}"),
                None => e.to_string(),
            };
            let state = format!(
                "nothing of {} was changed (the migration ran only on the clone); {e}",
                run.cloud.database.cluster_id()
            );
            let next = format!("ferry resume {}   (tries to delete the clone again)", run.record.run_id);
            Ok(Some(run.finish(Outcome::NeedsAttention, Some(error), Some(state), Some(next))))
        }
    }
}

/// The rehearsal failed (the clone is gone or kept): the run ends before any
/// change to the environment, exit 3, with the evidence.
fn rehearsal_refused(run: &mut Run, error: String) -> RunRecord {
    let db = run.cloud.database.cluster_id().to_string();
    let evidence = run.record.rehearsal.as_ref().map(|r| r.findings.join("; ")).unwrap_or_default();
    let cleanup = run.record.step(StepName::Cleanup).and_then(|s| s.detail.clone()).unwrap_or_default();
    let mut state = format!("nothing of {db} was changed: the migration ran only on the clone; {cleanup}");
    if !evidence.is_empty() {
        state.push_str(&format!("; the rehearsal saw: {evidence}"));
    }
    let next = format!("ferry {} {}   (after fixing the migration)", run.record.command, run.env.name);
    run.finish(Outcome::Aborted, Some(error), Some(state), Some(next))
}

/// Nothing to migrate: the snapshot and the migration are settled as skipped
/// (in the journal, so a resumed run skips them too), and so is the restore,
/// which would have nothing to undo.
fn skip_up_to_date(run: &mut Run, plan: &Plan, why: &str) -> Result<(), StepError> {
    run.out.info(&format!("    {why}: the snapshot and the migration are skipped (--force runs them anyway)"));
    let now = chrono::Utc::now();
    for step in plan.steps.iter().filter(|s| {
        matches!(
            s.name,
            StepName::Snapshot
                | StepName::Migrate
                | StepName::Restore
                | StepName::Clone
                | StepName::Rehearse
                | StepName::Cleanup
        )
    }) {
        let s = run.record.step_mut(step.name);
        s.status = StepStatus::Skipped;
        s.ended_at = Some(now);
        s.detail = Some(format!("{UP_TO_DATE}: {why}"));
    }
    run.save()?;
    Ok(())
}

const UP_TO_DATE: &str = "nothing to migrate";

/// The run found the database at the heads and migrated nothing. The migrate
/// step is skipped for no other reason: it has no plan-level skip, and a
/// failure is only ever recorded after it.
fn migrated_nothing(run: &Run) -> bool {
    run.record.step_status(StepName::Migrate) == StepStatus::Skipped
}

/// The outcome, from the record once every step is settled.
fn conclude(run: &mut Run, plan: &Plan, env: &str, failure: Option<String>) -> RunRecord {
    if plan.command == RunKind::Rehearse {
        let done = run.record.step(StepName::Rehearse).and_then(|s| s.detail.clone()).unwrap_or_default();
        let cleanup = run.record.step(StepName::Cleanup).and_then(|s| s.detail.clone()).unwrap_or_default();
        let state = format!(
            "{done}; nothing of {} was changed (the migration ran only on the clone); {cleanup}",
            run.cloud.database.cluster_id()
        );
        return run.finish(Outcome::Succeeded, None, Some(state), None);
    }
    if plan.command != RunKind::Restore && migrated_nothing(run) {
        let why = run.record.step(StepName::Migrate).and_then(|s| s.detail.clone()).unwrap_or_default();
        return match failure {
            None => run.finish(Outcome::Succeeded, None, Some(format!("{why}; nothing was changed")), None),
            // Nothing changed, so nothing to restore: the app is unhealthy on its own.
            Some(error) => run.finish(
                Outcome::Aborted,
                Some(error),
                Some(format!("nothing was changed ({why}); the health check fails without any migration")),
                Some(format!("ferry status {env}")),
            ),
        };
    }
    if plan.command != RunKind::Restore
        && let Some(error) = failure.clone()
        && run.record.nothing_changed().is_some()
    {
        return nothing_changed(run, env, error);
    }
    let restored = run.record.step_status(StepName::Restore) == StepStatus::Succeeded;
    match (plan.command, failure) {
        (RunKind::Restore, _) => {
            let state = run.record.restore.clone().map(|r| {
                let twin = twin_summary(&r);
                match &r.failed_cluster {
                    Some(f) => format!(
                        "{} holds the data of {}; the database it replaced is kept as {f}{twin}{}",
                        r.restored_cluster,
                        r.source(),
                        fence_summary(&r)
                    ),
                    None => format!(
                        "{} holds the data of {}{}{twin}{}",
                        r.restored_cluster,
                        r.source(),
                        new_cluster_note(run),
                        fence_summary(&r)
                    ),
                }
            });
            run.finish(Outcome::Succeeded, None, state, None)
        }
        (_, None) => {
            let state = match kept_snapshot(run) {
                Some(s) => format!("the migration is applied; snapshot {s} is kept"),
                None => "the migration is applied".to_string(),
            };
            run.finish(Outcome::Succeeded, None, Some(state), None)
        }
        (_, Some(error)) if restored => {
            let state = run.record.restore.clone().map(|r| {
                let kept = match &r.failed_cluster {
                    Some(f) => format!("; the failed database is kept as {f}"),
                    None => new_cluster_note(run),
                };
                let twin = twin_summary(&r);
                format!(
                    "{} holds the data of snapshot {} (taken before the migration){kept}{twin}{}",
                    r.restored_cluster,
                    r.snapshot_id,
                    fence_summary(&r)
                )
            });
            let next = format!("ferry logs {env} --run {}", run.record.run_id);
            run.finish(Outcome::Restored, Some(error), state, Some(next))
        }
        (command, Some(error)) => not_restored(run, command, env, error),
    }
}

/// The migration failed on a lock timeout and ferry proved it changed nothing
/// (its output, the version table, the schema): exit 3, nothing restored,
/// the snapshot kept.
fn nothing_changed(run: &mut Run, env: &str, error: String) -> RunRecord {
    let db = run.cloud.database.cluster_id().to_string();
    let n = run.record.migration_attempts.len();
    let blockers: Vec<String> = run
        .record
        .migration_attempts
        .iter()
        .flat_map(|a| a.blockers.iter().map(|b| format!("pid {}", b.pid)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut state = format!(
        "nothing was changed: the migration ran {n} time(s), each time it waited for a lock past lock_timeout and \
         rolled back; {db}'s version table and schema are as they were before it, so it was not restored"
    );
    if let Some(s) = kept_snapshot(run) {
        state.push_str(&format!("; snapshot {s} is kept"));
    }
    if !blockers.is_empty() {
        state.push_str(&format!("; the lock was held by {}", blockers.join(", ")));
    }
    let next =
        format!("ferry doctor {env}   (find what holds the lock; then ferry {} {env} again)", run.record.command);
    run.finish(Outcome::NothingChanged, Some(error), Some(state), Some(next))
}

/// The pre-deploy snapshot, when it became available.
fn kept_snapshot(run: &Run) -> Option<String> {
    run.record.snapshot.as_ref().filter(|s| s.status == SnapshotStatus::Available).map(|s| s.id.clone())
}

/// The migration or the health check failed and nothing was restored:
/// `ferry migrate` never restores, and a deploy's restore was skipped.
fn not_restored(run: &mut Run, command: RunKind, env: &str, error: String) -> RunRecord {
    let why = run.record.step(StepName::Restore).and_then(|s| s.detail.clone()).unwrap_or_default();
    let what = if command == RunKind::Migrate {
        "the migration failed and `ferry migrate` does not restore; the database may be partly migrated".to_string()
    } else {
        format!("the database was NOT restored ({why}) and may be partly migrated")
    };
    let (state, next) = match kept_snapshot(run) {
        Some(s) if command == RunKind::Migrate => (
            format!("{what}; snapshot {s} holds the data from before it"),
            format!("ferry restore {env} --snapshot {s}"),
        ),
        Some(s) => (
            format!("{what}; snapshot {s} holds the data from before the migration"),
            format!("ferry restore {env} --snapshot {s}"),
        ),
        None if command == RunKind::Migrate => (
            "the migration failed and nothing was restored; the database may be partly migrated; this run took no snapshot (--no-snapshot)".to_string(),
            format!("ferry snapshot list {env}"),
        ),
        None => (format!("{what}; this run took no snapshot"), format!("ferry snapshot list {env}")),
    };
    run.finish(Outcome::NeedsAttention, Some(error), Some(state), Some(next))
}

/// After a new-cluster restore without an app service to repoint, the app and
/// ferry.toml still name the old database: say so.
fn new_cluster_note(run: &Run) -> String {
    if run.cloud.service.is_some() {
        return format!(
            "; the app service now points at it, but ferry.toml (database.cluster) and anything else naming {} \
             still name the old database: update them before the next deploy",
            run.cloud.database.cluster_id()
        );
    }
    format!(
        "; the environment's database setting still names {}: point the app (and ferry.toml) at the restored database to use it",
        run.cloud.database.cluster_id()
    )
}

/// The migration began and what became of it is not known: the database may be
/// migrated, partly migrated or untouched. No automatic restore (it would throw
/// away a migration that succeeded): the state and the two ways on.
fn unknown(run: &mut Run, step: StepName, message: String) -> Result<RunRecord, StepError> {
    run.end(step, StepStatus::Failed, &message)?;
    let db = run.cloud.database.cluster_id().to_string();
    let env = run.env.name.clone();
    let snapshot = run.record.snapshot.as_ref().filter(|s| s.status == SnapshotStatus::Available).map(|s| s.id.clone());
    let (state, next) = match snapshot {
        Some(s) => (
            format!(
                "unknown: the migration may have run, fully or in part; {db} was NOT restored, because a restore would \
                 throw away the migration's writes if it succeeded; snapshot {s} holds the data from before it"
            ),
            format!(
                "{}   (then, if the migration did not complete: ferry restore {env} --snapshot {s})",
                look_first(run)
            ),
        ),
        None => (
            format!(
                "unknown: the migration may have run, fully or in part; {db} was not restored and this run took no snapshot"
            ),
            look_first(run),
        ),
    };
    Ok(run.finish(Outcome::NeedsAttention, Some(message), Some(state), Some(next)))
}

/// How to find out what an unknown migration did: the database's migration
/// version when ferry knows the Alembic project, else the migration's logs.
fn look_first(run: &Run) -> String {
    if run.env.migration.alembic.is_some() {
        format!("ferry check {}", run.env.name)
    } else {
        format!("ferry logs {} --run {}", run.env.name, run.record.run_id)
    }
}

fn abort(run: &mut Run, step: StepName, e: StepError) -> Result<RunRecord, StepError> {
    let message = match e {
        StepError::Journal(j) => return Err(StepError::Journal(j)),
        StepError::Unknown(m) => return unknown(run, step, m),
        StepError::Abort(m) | StepError::Failed(m) => m,
    };
    run.end(step, StepStatus::Failed, &message)?;
    let mut state = format!("nothing was changed: {} is as it was", run.cloud.database.cluster_id());
    if let Some(s) = run.record.snapshot.as_ref().filter(|s| s.status != SnapshotStatus::Available) {
        state.push_str(&format!(
            "; snapshot {} was left {} (delete it with `ferry snapshot delete {} {}`)",
            s.id, s.status, run.env.name, s.id
        ));
    }
    let next = match run.record.command.known() {
        Some(RunKind::Restore) => format!("ferry snapshot list {}", run.env.name),
        _ => format!("ferry {} {}   (after fixing the cause above)", run.record.command, run.env.name),
    };
    Ok(run.finish(Outcome::Aborted, Some(message), Some(state), Some(next)))
}

/// Decide, per `restore_on_failure`, whether to restore now. When not, the
/// restore step is recorded as skipped with the reason.
fn may_restore(run: &mut Run) -> Result<bool, StepError> {
    let decision = match run.env.restore_on_failure {
        RestoreOnFailure::Auto => Ok(()),
        RestoreOnFailure::Never => Err("restore_on_failure = \"never\"".to_string()),
        RestoreOnFailure::Prompt => {
            let question = format!(
                "The migration failed. Restore {} from snapshot {}?",
                run.cloud.database.cluster_id(),
                snapshot_to_restore(run)
            );
            match run.confirm.ask(&question) {
                Some(true) => Ok(()),
                Some(false) => Err("declined at the prompt".to_string()),
                None => Err("restore_on_failure = \"prompt\" and nobody to ask (no TTY, no --yes)".to_string()),
            }
        }
    };
    match decision {
        Ok(()) => Ok(true),
        Err(reason) => {
            run.end(StepName::Restore, StepStatus::Skipped, &reason)?;
            Ok(false)
        }
    }
}

/// What a restore brings back: the point in time asked for, else the
/// snapshot ([`snapshot_to_restore`]).
fn restore_source(run: &Run) -> RestoreSource {
    match run.record.options.to_time {
        Some(t) => RestoreSource::PointInTime(t),
        None => RestoreSource::Snapshot(snapshot_to_restore(run)),
    }
}

/// The snapshot asked for (`ferry restore`), else the run's own.
fn snapshot_to_restore(run: &Run) -> String {
    run.record
        .options
        .snapshot
        .clone()
        .or_else(|| run.record.snapshot.as_ref().map(|s| s.id.clone()))
        .unwrap_or_default()
}

/// `ferry restore`'s own check: the snapshot exists and is available, or
/// the point in time is inside the window the database can be restored to.
async fn check_snapshot(run: &Run) -> Result<String, StepError> {
    if let Some(at) = run.record.options.to_time {
        return check_point_in_time(run, at).await;
    }
    let id = snapshot_to_restore(run);
    let db = run.cloud.database.clone();
    match call("describe the snapshot", || db.describe_snapshot(&id)).await {
        Ok(Some(s)) if s.status == SnapshotStatus::Available => Ok(format!("snapshot {id} available")),
        Ok(Some(s)) => Err(StepError::Abort(format!("snapshot {id} is {}, not available", s.status))),
        Ok(None) => Err(StepError::Abort(format!(
            "snapshot {id} does not exist; `ferry snapshot list {}` shows the ones that do",
            run.env.name
        ))),
        Err(e) => Err(StepError::Abort(format!("cannot describe snapshot {id}: {e}"))),
    }
}

/// `restore --to-time`: the time is still inside the restorable window (the
/// command checked it before anything; a resumed run checks again).
async fn check_point_in_time(run: &Run, at: chrono::DateTime<chrono::Utc>) -> Result<String, StepError> {
    let db = run.cloud.database.clone();
    let shown = crate::output::timestamp;
    match call("read the restorable window", || db.restorable_window()).await {
        Ok(Some((earliest, latest))) if earliest <= at && at <= latest => {
            Ok(format!("{} is inside the restorable window ({} to {})", shown(at), shown(earliest), shown(latest)))
        }
        Ok(Some((earliest, latest))) => Err(StepError::Abort(format!(
            "{} is outside the window {} can be restored to ({} to {})",
            shown(at),
            db.cluster_id(),
            shown(earliest),
            shown(latest)
        ))),
        Ok(None) => Err(StepError::Abort("this provider has no point-in-time restore".into())),
        Err(e) => Err(StepError::Abort(format!("cannot read the restorable window: {e}"))),
    }
}
