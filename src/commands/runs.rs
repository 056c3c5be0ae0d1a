//! The commands that create a run: deploy, migrate, restore, and resume.

use chrono::Utc;

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::{DeployArgs, MigrateArgs, RestoreArgs};
use crate::config::{self, EnvConfig, RestoreStrategy, RunnerKind, check_snapshot_id};
use crate::output::{append_step_summary, render};
use crate::provider::Cloud;
use crate::runbook::journal::Journal;
use crate::runbook::record::{RunOptions, RunRecord, new_run_id};
use crate::runbook::{Run, drive, plan, prepare_resume};

pub async fn deploy(ctx: &Context, a: DeployArgs) -> CmdResult {
    let (env, _) = super::image::apply(ctx.env(&a.env)?, a.image.as_deref())?;
    let env = &env;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "deploy")?;
    let options =
        RunOptions { no_snapshot: a.no_snapshot, no_restore: a.no_restore, force: a.force, ..RunOptions::default() };
    let steps = plan::deploy_plan(env, &options).names();
    start(ctx, env, "deploy", options, &steps).await
}

pub async fn migrate(ctx: &Context, a: MigrateArgs) -> CmdResult {
    let (env, _) = super::image::apply(ctx.env(&a.env)?, a.image.as_deref())?;
    let env = &env;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "run the migration")?;
    let options = RunOptions { no_snapshot: a.no_snapshot, force: a.force, ..RunOptions::default() };
    let steps = plan::migrate_plan(env, &options).names();
    start(ctx, env, "migrate", options, &steps).await
}

/// What deploy and migrate refuse before touching anything (invariant 1):
/// `--no-snapshot` on a `confirm = true` environment.
fn refuse_before_running(env: &EnvConfig, no_snapshot: bool) -> Result<(), CommandError> {
    if no_snapshot && env.confirm {
        return Err(CommandError::Usage(format!(
            "--no-snapshot is refused for {}: it has confirm = true, and a migration there always starts from a snapshot",
            env.name
        )));
    }
    Ok(())
}

pub async fn restore(ctx: &Context, a: RestoreArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    if a.snapshot != "latest" {
        check_snapshot_id(&a.snapshot).map_err(CommandError::Usage)?;
    }
    let strategy = a.strategy.unwrap_or(env.restore_strategy);
    if strategy == RestoreStrategy::NewCluster && env.migration.runner == RunnerKind::Apprunner {
        return Err(CommandError::Usage(format!("{}: {}", env.name, config::APPRUNNER_NEW_CLUSTER)));
    }
    let cloud = ctx.cloud(env).await?;
    let snapshot = super::restore::source(&cloud, env, &a.snapshot).await?;
    let out = ctx.reporter(Some(env));
    let history = crate::runbook::journal::list_runs(&ctx.config.state_dir);
    for line in super::restore::describe(env, &cloud, &snapshot, strategy, &history) {
        out.info(&line);
    }
    ctx.guard(env, "restore the database")?;
    let steps = plan::restore_plan(env, &snapshot.id, strategy).names();
    let options = RunOptions { snapshot: Some(snapshot.id), strategy: Some(strategy), ..RunOptions::default() };
    start_with(ctx, env, cloud, "restore", options, &steps).await
}

async fn start(ctx: &Context, env: &EnvConfig, command: &str, options: RunOptions, steps: &[&str]) -> CmdResult {
    let cloud = ctx.cloud(env).await?;
    start_with(ctx, env, cloud, command, options, steps).await
}

async fn start_with(
    ctx: &Context,
    env: &EnvConfig,
    cloud: Cloud,
    command: &str,
    options: RunOptions,
    steps: &[&str],
) -> CmdResult {
    let out = ctx.reporter(Some(env));
    let mut record = RunRecord::new(new_run_id(&env.name, Utc::now()), &env.name, command, options, steps);
    if command != "restore" {
        record.image = env.migration.image.clone();
    }
    let journal = Journal::create(&ctx.config.state_dir, &record, out.redactor().clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    out.info(&format!("ferry {command} {} (run {}, journal {})", env.name, record.run_id, journal.path().display()));
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

/// `ferry resume <run-id>`: continue a run its journal says is unfinished; a run
/// whose restore failed retries the restore; a finished run is reported again.
pub async fn resume(ctx: &Context, run_id: &str) -> CmdResult {
    let probe = crate::runbook::journal::read_run(&ctx.config.state_dir, run_id)
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    // The run goes on with the image it started with, whatever the config says now.
    let mut env = ctx.env(&probe.env)?.clone();
    env.migration.image = probe.image.clone();
    let env = &env;
    let out = ctx.reporter(Some(env));
    let (journal, mut record) = Journal::open(&ctx.config.state_dir, run_id, out.redactor().clone())
        .map_err(|e| CommandError::Usage(e.to_string()))?;
    let last = record.outcome;
    if let Err(why) = prepare_resume(&mut record) {
        out.info(&why);
        report(ctx, &record, &out);
        return Ok(record.outcome.exit_code());
    }
    ctx.guard(env, "resume the run")?;
    out.info(&format!("resuming run {run_id} ({} {}), last recorded as {}", record.command, record.env, last.as_str()));
    let cloud = ctx.cloud(env).await?;
    let mut run = Run { env: env.clone(), cloud, out, confirm: ctx.confirmer(), journal, record };
    run.save().map_err(|e| CommandError::Failed(e.to_string()))?;
    execute(ctx, &mut run).await
}

/// Drive the run until it ends or a signal arrives. A signal never stops the
/// migration: the run is recorded as interrupted, and `ferry resume` continues.
async fn execute(ctx: &Context, run: &mut Run) -> CmdResult {
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
            run.out.warn("interrupted: recording the run's state (nothing running is stopped)");
            run.interrupted()
        }
    };
    report(ctx, &record, &run.out);
    Ok(record.outcome.exit_code())
}

fn report(ctx: &Context, record: &RunRecord, out: &crate::output::Reporter) {
    out.summary(&render::summary(record));
    if let Err(e) = append_step_summary(record, out.redactor()) {
        out.warn(&format!("cannot write the GitHub step summary: {e}"));
    }
    if ctx.json() {
        print_json(record, out.redactor());
    }
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
