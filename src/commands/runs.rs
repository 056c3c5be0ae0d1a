//! The commands that create a run: deploy, migrate, restore, and resume.

use chrono::Utc;

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::{DeployArgs, MigrateArgs, RestoreArgs};
use crate::config::values::format_duration;
use crate::config::{EnvConfig, RestoreStrategy, check_snapshot_id};
use crate::output::{append_step_summary, render};
use crate::provider::{Cloud, Snapshot, SnapshotStatus, TAG_RUN_ID};
use crate::runbook::journal::Journal;
use crate::runbook::record::{RunOptions, RunRecord, StepStatus, new_run_id};
use crate::runbook::{Run, drive, plan, prepare_resume};

pub async fn deploy(ctx: &Context, a: DeployArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "deploy")?;
    let options = RunOptions { no_snapshot: a.no_snapshot, no_restore: a.no_restore, ..RunOptions::default() };
    let steps = plan::deploy_plan(env, &options).names();
    start(ctx, env, "deploy", options, &steps).await
}

pub async fn migrate(ctx: &Context, a: MigrateArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "run the migration")?;
    let options = RunOptions { no_snapshot: a.no_snapshot, ..RunOptions::default() };
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
    let cloud = ctx.cloud(env).await?;
    let snapshot = restore_source(&cloud, env, &a.snapshot).await?;
    let out = ctx.reporter(Some(env));
    let history = crate::runbook::journal::list_runs(&ctx.config.state_dir);
    for line in describe_restore(env, &cloud, &snapshot, strategy, &history) {
        out.info(&line);
    }
    ctx.guard(env, "restore the database")?;
    let steps = plan::restore_plan(env, &snapshot.id, strategy).names();
    let options = RunOptions { snapshot: Some(snapshot.id), strategy: Some(strategy), ..RunOptions::default() };
    start_with(ctx, env, cloud, "restore", options, &steps).await
}

/// The snapshot to restore: the one named, or for `latest` the newest available
/// pre-deploy snapshot ferry took for this environment.
async fn restore_source(cloud: &Cloud, env: &EnvConfig, wanted: &str) -> Result<Snapshot, CommandError> {
    let db = cloud.database.cluster_id().to_string();
    if wanted != "latest" {
        return match cloud.database.describe_snapshot(wanted).await? {
            Some(s) if s.status == SnapshotStatus::Available => Ok(s),
            Some(s) => Err(CommandError::Usage(format!(
                "snapshot {wanted} is {}, not available; nothing was done (`ferry snapshot list {}` shows the others)",
                s.status, env.name
            ))),
            None => Err(CommandError::Usage(format!(
                "snapshot {wanted} not found; nothing was done (`ferry snapshot list {}` shows those of {db})",
                env.name
            ))),
        };
    }
    let mut snaps = cloud.database.list_snapshots().await?;
    snaps.retain(|s| s.status == SnapshotStatus::Available && s.is_ferry_pre_deploy(&env.name));
    snaps.sort_by_key(|s| s.created_at);
    snaps.pop().ok_or_else(|| {
        CommandError::Failed(format!(
            "{db} has no available pre-deploy snapshot taken by ferry for {}; nothing was done. \
             `ferry snapshot list {}` shows every snapshot; pass one with --snapshot <id>",
            env.name, env.name
        ))
    })
}

/// What a restore will do, in this environment's terms, before anyone confirms it.
fn describe_restore(
    env: &EnvConfig,
    cloud: &Cloud,
    snapshot: &Snapshot,
    strategy: RestoreStrategy,
    history: &[RunRecord],
) -> Vec<String> {
    let db = cloud.database.cluster_id();
    let taken = match snapshot.created_at {
        Some(t) => format!(
            "taken {} ({} ago{})",
            t.format("%Y-%m-%d %H:%M UTC"),
            format_duration(std::time::Duration::from_secs((Utc::now() - t).num_seconds().max(0) as u64)),
            snapshot.tags.get(TAG_RUN_ID).map(|r| format!(", before run {r}")).unwrap_or_default()
        ),
        None => "creation time unknown".into(),
    };
    let mut lines = vec![format!("ferry restore {}: {db} from snapshot {} ({taken})", env.name, snapshot.id)];
    let took = past_restore_minutes(history, &env.name);
    let duration = match took {
        Some(m) => format!("about {m} min (the last restore of {} took that long)", env.name),
        None => format!(
            "the whole restore: Aurora restores usually take 10-30 min, at most the restore timeout of {}",
            format_duration(env.timeouts.restore)
        ),
    };
    let mut steps = Vec::new();
    if env.service.is_some() {
        steps.push(format!("pause the App Runner service: the app is down for {duration}"));
    }
    steps.push(format!("restore the snapshot to a new database beside {db} ({db}-restored-<ts>)"));
    match strategy {
        RestoreStrategy::Rename => steps.push(format!(
            "rename {db} to {db}-failed-<ts> (kept with all its current data, never deleted), and the restored \
             database to {db}: the endpoint stays the same"
        )),
        RestoreStrategy::NewCluster => {
            let repoint = match &env.service {
                Some(s) => format!("; the service's {} is pointed at the new endpoint", s.database_url_var),
                None => "; point your clients at its endpoint (ferry prints it)".into(),
            };
            steps.push(format!("keep the restored database under its new name{repoint}; {db} is left as it is (kept)"));
        }
    }
    if env.service.is_some() {
        steps.push("resume the App Runner service".into());
    }
    if let Some(h) = &env.health {
        steps.push(format!("check {} answers {}", h.url, h.expect_status));
    }
    lines.extend(steps.iter().enumerate().map(|(i, s)| format!("  {}. {s}", i + 1)));
    lines.push(format!(
        "  Writes to {db} after the snapshot are not in the restored database; they stay in the kept copy. \
         Nothing is deleted, the snapshot included."
    ));
    if env.service.is_none() && took.is_none() {
        lines.push(format!("  Expect {duration}."));
    }
    lines
}

/// Minutes the newest completed restore of `env` took, from the journals.
fn past_restore_minutes(history: &[RunRecord], env: &str) -> Option<u64> {
    history
        .iter()
        .filter(|r| r.env == env)
        .filter_map(|r| r.step("restore"))
        .filter(|s| s.status == StepStatus::Succeeded)
        .filter_map(|s| Some((s.ended_at?, (s.ended_at? - s.started_at?).num_seconds())))
        .max_by_key(|(ended, _)| *ended)
        .map(|(_, secs)| (secs.max(0) as u64).div_ceil(60).max(1))
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
    let record = RunRecord::new(new_run_id(&env.name, Utc::now()), &env.name, command, options, steps);
    let journal = Journal::create(&ctx.config.state_dir, &record, out.redactor().clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    out.info(&format!("ferry {command} {} (run {}, journal {})", env.name, record.run_id, journal.path().display()));
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
    let env = ctx.env(&probe.env)?;
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
            run.out.warn("interrupted: recording the run's state (nothing running is stopped)");
            run.interrupted()
        }
    };
    report(ctx, &record, &run.out);
    Ok(record.outcome.exit_code())
}

fn report(ctx: &Context, record: &RunRecord, out: &crate::output::Reporter) {
    for line in render::summary(record) {
        out.info(&line);
    }
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
