//! Starting and driving a run, for every command that makes one: the
//! provider, the lock, no unfinished run, the first record written, the plan
//! driven, the closing report and the exit code.

use super::{CmdResult, CommandError, Context, print_json};
use chrono::Utc;
use ferry_core::config::EnvConfig;
use ferry_core::output::append_step_summary;
use ferry_core::provider::Cloud;
use ferry_core::runbook::journal::Journal;
use ferry_core::runbook::record::{RunId, RunKind, RunOptions, RunRecord, StepName, new_run_id};
use ferry_core::runbook::{Run, drive};

/// What a new run starts from.
pub(super) struct Started<'a> {
    pub(super) env: &'a EnvConfig,
    pub(super) cloud: Cloud,
    pub(super) store: &'a ferry_core::state::Store,
    pub(super) run_id: RunId,
    pub(super) command: RunKind,
    pub(super) options: RunOptions,
}

/// Deploy and migrate: the provider, the lock, no unfinished run, then the run.
pub(super) async fn start(
    ctx: &Context,
    env: &EnvConfig,
    command: RunKind,
    options: RunOptions,
    steps: &[StepName],
) -> CmdResult {
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), command.as_str())?;
    ctx.refuse_unfinished(&store, env, cloud.database.cluster_id(), None)?;
    start_with(ctx, Started { env, cloud, store: &store, run_id, command, options }, steps).await
}

/// Write the run's first record (it must reach the state backend) and drive it.
/// The caller holds the environment's lock.
pub(super) async fn start_with(ctx: &Context, s: Started<'_>, steps: &[StepName]) -> CmdResult {
    let Started { env, cloud, store, run_id, command, options } = s;
    let out = ctx.reporter(Some(env));
    let mut record = RunRecord::new(run_id, &env.name, command, options, steps);
    record.config_sha256 = ferry_core::provenance::file_sha256(&ctx.config.path);
    if command != RunKind::Restore {
        record.image = env.migration.image.clone();
    }
    let journal = Journal::create(store, &record, out.redactor().clone())
        .map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
    out.info(&format!("ferry {command} {} (run {}, journal {})", env.name, record.run_id, journal.location()));
    if let Some(image) = &record.image {
        out.info(&format!("image {image}"));
    }
    if out.is_verbose() {
        out.info(&format!(
            "config {}, provider {:?}, database {}",
            ctx.config.path.display(),
            env.provider,
            env.database_label()
        ));
    }
    let mut run = Run { env: env.clone(), cloud, out, confirm: ctx.confirmer(), journal, record };
    execute(ctx, &mut run).await
}

/// Drive the run until it ends or a signal arrives. A signal never stops the
/// migration: the run is recorded as interrupted, and `ferry resume` continues.
pub(super) async fn execute(ctx: &Context, run: &mut Run) -> CmdResult {
    let finished = {
        let work = drive(run);
        tokio::pin!(work);
        tokio::select! {
            record = &mut work => Some(record),
            () = shutdown_signal() => None,
        }
    };
    let record = match finished {
        Some(Some(r)) => r,
        Some(None) => return Err(CommandError::Usage(format!("a `{}` run cannot be driven", run.record.command))),
        None => {
            // The migration's log group may be open: close it, so what follows is seen.
            run.out.group_end();
            let rehearsing = run.record.rehearsal.as_ref().is_some_and(|r| r.clone.is_some() && r.clone_fate.is_none());
            run.out.warn(if rehearsing {
                "interrupted: recording the run's state, then stopping the rehearsal and deleting its clone"
            } else {
                "interrupted: recording the run's state (nothing running is stopped)"
            });
            run.interrupted();
            // A rehearsal's clone is deleted at once (its migration, on the clone, is stopped).
            ferry_core::runbook::rehearse::cleanup_after_signal(run).await;
            run.record.clone()
        }
    };
    report(ctx, &record, &run.out)?;
    Ok(record.outcome.exit_code())
}

pub(super) fn report(
    ctx: &Context,
    record: &RunRecord,
    out: &ferry_core::output::Reporter,
) -> Result<(), CommandError> {
    let report = ferry_core::runbook::report::of(record);
    out.summary(&report.summary());
    if let Err(e) = append_step_summary(&report, out.redactor()) {
        out.warn(&format!("cannot write the GitHub step summary: {e}"));
    }
    if ctx.json() {
        print_json(record, out.redactor())?;
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}
