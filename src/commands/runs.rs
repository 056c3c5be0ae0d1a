//! The commands that create a run: deploy, migrate, restore, and resume.

use chrono::Utc;

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::{DeployArgs, MigrateArgs, RehearseArgs, RestoreArgs};
use ferry_core::config::{self, EnvConfig, RestoreStrategy, RunnerKind, check_restore_snapshot};
use ferry_core::output::append_step_summary;
use ferry_core::provider::Cloud;
use ferry_core::runbook::journal::{Journal, Listed, read_run, readable_runs};
use ferry_core::runbook::record::{
    RestoreSource, RunId, RunKind, RunOptions, RunRecord, StepName, is_run_of, new_run_id,
};
use ferry_core::runbook::{Run, drive, plan, prepare_resume};

pub async fn deploy(ctx: &Context, a: DeployArgs) -> CmdResult {
    let (env, _) = super::image::apply(ctx.env(&a.env)?, a.image.as_deref())?;
    let env = &env;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "deploy")?;
    let options =
        RunOptions { no_snapshot: a.no_snapshot, no_restore: a.no_restore, force: a.force, ..RunOptions::default() };
    let steps = plan::deploy_plan(env, super::describe(env).as_ref(), &options).names();
    start(ctx, env, RunKind::Deploy, options, &steps).await
}

pub async fn migrate(ctx: &Context, a: MigrateArgs) -> CmdResult {
    let (env, _) = super::image::apply(ctx.env(&a.env)?, a.image.as_deref())?;
    let env = &env;
    refuse_before_running(env, a.no_snapshot)?;
    ctx.guard(env, "run the migration")?;
    let options = RunOptions { no_snapshot: a.no_snapshot, force: a.force, ..RunOptions::default() };
    let steps = plan::migrate_plan(env, super::describe(env).as_ref(), &options).names();
    start(ctx, env, RunKind::Migrate, options, &steps).await
}

/// `ferry rehearse`: the migration on a clone of the environment's database,
/// holding the lock like a deploy; nothing of the environment changes.
pub async fn rehearse(ctx: &Context, a: RehearseArgs) -> CmdResult {
    let (env, _) = super::image::apply(ctx.env(&a.env)?, a.image.as_deref())?;
    let env = &env;
    if let Some(why) = config::rehearsal_refusal(env) {
        return Err(CommandError::Usage(format!("{}: {why}; nothing was done", env.name)));
    }
    let options = RunOptions { keep_clone: a.keep_clone, ..RunOptions::default() };
    let steps = plan::rehearse_plan(env, super::describe(env).as_ref(), &options).names();
    start(ctx, env, RunKind::Rehearse, options, &steps).await
}

/// What deploy and migrate refuse before touching anything (ARCHITECTURE.md promise 1):
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
    if a.finish {
        return finish(ctx, env).await;
    }
    let strategy = a.strategy.map_or(env.restore_strategy, RestoreStrategy::from);
    if strategy == RestoreStrategy::NewCluster && env.migration.runner == RunnerKind::Apprunner {
        return Err(CommandError::Usage(format!("{}: {}", env.name, config::APPRUNNER_NEW_CLUSTER)));
    }
    if let Some(text) = &a.to_time {
        let at = super::restore::parse_time(text, Utc::now()).map_err(CommandError::Usage)?;
        return restore_to_time(ctx, env, at, strategy).await;
    }
    let store = ctx.store(env)?;
    let wanted = match (&a.snapshot, &a.before_run) {
        (Some(s), _) => s.clone(),
        (None, Some(run)) => super::restore::snapshot_of_run(&store, env, run)?,
        (None, None) => {
            return Err(CommandError::Usage("say what to restore: --snapshot, --to-time or --before-run".into()));
        }
    };
    if wanted != "latest" {
        check_restore_snapshot(&wanted).map_err(CommandError::Usage)?;
    }
    let cloud = ctx.cloud(env).await?;
    let snapshot = super::restore::source(&cloud, env, &wanted).await?;
    let out = ctx.reporter(Some(env));
    let history = readable_runs(&store, Some(&env.name));
    let what = super::restore::Restoring::Snapshot(&snapshot);
    for line in super::restore::describe(env, &cloud, &what, strategy, &history) {
        out.info(&line);
    }
    ctx.ask_before_restore(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore")?;
    let resolves = restore_may_settle(ctx, &store, env, cloud.database.cluster_id(), &snapshot.id)?;
    let source = RestoreSource::Snapshot(snapshot.id.clone());
    let steps = plan::restore_plan(env, super::describe(env).as_ref(), &source, strategy).names();
    let options = RunOptions { snapshot: Some(snapshot.id), strategy: Some(strategy), ..RunOptions::default() };
    let code =
        start_with(ctx, Started { env, cloud, store: &store, run_id, command: RunKind::Restore, options }, &steps)
            .await?;
    if code == 0 {
        settle(&store, &resolves, &lock, &out);
    }
    Ok(code)
}

/// `ferry restore ENV --to-time T`: the database as it was at `at`, through
/// the same twin, swap, lock and journal as a snapshot restore. A provider
/// without point-in-time restore, or a time outside the window the database
/// can be restored to, is exit 2 before anything is created.
async fn restore_to_time(
    ctx: &Context,
    env: &EnvConfig,
    at: chrono::DateTime<Utc>,
    strategy: RestoreStrategy,
) -> CmdResult {
    let cloud = ctx.cloud(env).await?;
    super::restore::check_window(&cloud, env, at).await?;
    let store = ctx.store(env)?;
    let out = ctx.reporter(Some(env));
    let history = readable_runs(&store, Some(&env.name));
    for line in super::restore::describe(env, &cloud, &super::restore::Restoring::PointInTime(at), strategy, &history) {
        out.info(&line);
    }
    ctx.ask_before_restore(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore")?;
    ctx.refuse_unfinished(&store, env, cloud.database.cluster_id(), None)?;
    let steps =
        plan::restore_plan(env, super::describe(env).as_ref(), &RestoreSource::PointInTime(at), strategy).names();
    let options = RunOptions { to_time: Some(at), strategy: Some(strategy), ..RunOptions::default() };
    start_with(ctx, Started { env, cloud, store: &store, run_id, command: RunKind::Restore, options }, &steps).await
}

/// `ferry restore ENV --finish`: complete, from the cloud alone, a rename swap
/// that a restore began and did not end. Not blocked by unfinished runs (it is
/// how one is settled when its record is gone), but it holds the lock.
async fn finish(ctx: &Context, env: &EnvConfig) -> CmdResult {
    use ferry_core::runbook::recover::{Verdict, finishing_record, lines, look, verdict};
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let out = ctx.reporter(Some(env));
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore --finish")?;
    let picture = look(&cloud).await.map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
    for line in lines(&picture, &env.name) {
        out.info(&line);
    }
    let v = verdict(&picture);
    let steps = plan::restore_plan(
        env,
        super::describe(env).as_ref(),
        &RestoreSource::Snapshot("(from the cloud)".into()),
        RestoreStrategy::Rename,
    )
    .names();
    let Some(mut record) = finishing_record(run_id, &env.name, &v, &picture, &steps) else {
        return match v {
            Verdict::Settled => {
                out.info(&format!("nothing to finish: {} is in place and no restore is half done", picture.cluster));
                Ok(0)
            }
            Verdict::Human(why) => Err(CommandError::Failed(format!("nothing was done: {why}"))),
            _ => Ok(0),
        };
    };
    ctx.guard(env, "finish the restore")?;
    if ctx.confirmer().ask("Finish the restore as described above?") == Some(false) {
        return Err(CommandError::Usage("declined; nothing was done".into()));
    }
    record.config_sha256 = ferry_core::provenance::file_sha256(&ctx.config.path);
    let journal = Journal::create(&store, &record, out.redactor().clone())
        .map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
    out.info(&format!("ferry restore {} --finish (run {}, journal {})", env.name, record.run_id, journal.location()));
    let mut run = Run { env: env.clone(), cloud, out, confirm: ctx.confirmer(), journal, record };
    execute(ctx, &mut run).await
}

/// An unfinished run blocks a restore, except a restore of that run's own
/// snapshot, confirmed by a person (or `--yes`): that is how a failed run that
/// did not restore is settled. Returns the runs the restore will settle.
fn restore_may_settle(
    ctx: &Context,
    store: &ferry_core::state::Store,
    env: &EnvConfig,
    database: &str,
    snapshot: &str,
) -> Result<Vec<String>, CommandError> {
    let blocking = ctx.unfinished_runs(store, env, database, None)?;
    let own = |l: &Listed| matches!(l, Listed::Run(r) if r.snapshot.as_ref().is_some_and(|s| s.id == snapshot));
    if let Some(other) = blocking.iter().find(|l| !own(l)) {
        return Err(CommandError::Failed(super::unfinished_message(env, other, blocking.len())));
    }
    if blocking.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = blocking.iter().map(|l| l.run_id().to_string()).collect();
    let question = format!(
        "Run {} is unfinished and {snapshot} is its pre-deploy snapshot. Restore it, and record the run as settled by this restore?",
        ids.join(", ")
    );
    match ctx.confirmer().ask(&question) {
        Some(true) => Ok(ids),
        Some(false) => Err(CommandError::Usage("declined; nothing was done".into())),
        None => Err(CommandError::Usage(format!(
            "run {} is unfinished; restoring its snapshot settles it, which needs a person's yes: pass --yes (or run at a terminal); nothing was done",
            ids.join(", ")
        ))),
    }
}

/// Record on each run that the restore `lock` belongs to settled it.
fn settle(
    store: &ferry_core::state::Store,
    runs: &[String],
    lock: &ferry_core::state::EnvLock,
    out: &ferry_core::output::Reporter,
) {
    let by = lock.holder().run_id.unwrap_or_default();
    for id in runs {
        let done = read_run(store, id).and_then(|mut r| {
            r.resolved_by = Some(by.clone());
            Journal::attach(store, id, out.redactor().clone()).save(&r)
        });
        match done {
            Ok(()) => out.info(&format!("run {id} is recorded as settled by run {by}")),
            Err(e) => out.warn(&format!("cannot record that run {by} settled run {id}: {e}")),
        }
    }
}

/// What a new run starts from.
struct Started<'a> {
    env: &'a EnvConfig,
    cloud: Cloud,
    store: &'a ferry_core::state::Store,
    run_id: RunId,
    command: RunKind,
    options: RunOptions,
}

/// Deploy and migrate: the provider, the lock, no unfinished run, then the run.
async fn start(ctx: &Context, env: &EnvConfig, command: RunKind, options: RunOptions, steps: &[StepName]) -> CmdResult {
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), command.as_str())?;
    ctx.refuse_unfinished(&store, env, cloud.database.cluster_id(), None)?;
    start_with(ctx, Started { env, cloud, store: &store, run_id, command, options }, steps).await
}

/// Write the run's first record (it must reach the state backend) and drive it.
/// The caller holds the environment's lock.
async fn start_with(ctx: &Context, s: Started<'_>, steps: &[StepName]) -> CmdResult {
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

/// The environment a run id belongs to (the longest env name that fits).
pub fn env_of_run<'a>(ctx: &'a Context, run_id: &str) -> Result<&'a EnvConfig, CommandError> {
    ctx.config
        .envs
        .values()
        .filter(|e| is_run_of(run_id, &e.name))
        .max_by_key(|e| e.name.len())
        .ok_or_else(|| {
            CommandError::Usage(format!(
                "{run_id:?} is not a run id of any environment in {} (run ids look like <env>-<yyyymmddThhmmssZ>-<4 hex>; `ferry runs list` shows them)",
                ctx.config.path.display()
            ))
        })
}

/// `ferry resume <run-id>`: continue a run its journal says is unfinished; a run
/// whose restore failed retries the restore; a finished run is reported again.
pub async fn resume(ctx: &Context, run_id: &str) -> CmdResult {
    let env = env_of_run(ctx, run_id)?;
    let store = ctx.store(env)?;
    let out = ctx.reporter(Some(env));
    let probe = read_run(&store, run_id).map_err(|e| CommandError::Usage(e.to_string()))?;
    if let Some(name) = probe.unknown_name() {
        return Err(CommandError::Usage(format!(
            "run {run_id} was written by a newer ferry (it has `{name}`, which this ferry does not know); resume it \
             with that ferry; nothing was done"
        )));
    }
    let mut check = probe.clone();
    if let Err(why) = prepare_resume(&mut check) {
        out.info(&why);
        report(ctx, &probe, &out)?;
        return Ok(probe.outcome.exit_code());
    }
    ctx.guard(env, "resume the run")?;
    let cloud = ctx.cloud(env).await?;
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(run_id), "resume")?;
    // Read again under the lock: another ferry may have resumed it meanwhile.
    let mut record = read_run(&store, run_id).map_err(|e| CommandError::Failed(e.to_string()))?;
    let last = record.outcome;
    if let Err(why) = prepare_resume(&mut record) {
        out.info(&why);
        report(ctx, &record, &out)?;
        return Ok(record.outcome.exit_code());
    }
    out.info(&format!("resuming run {run_id} ({} {}), last recorded as {}", record.command, record.env, last.as_str()));
    // Only what is left: the settled steps are not run again.
    let left: Vec<&str> = record.steps.iter().filter(|s| !s.status.is_settled()).map(|s| s.name.as_str()).collect();
    let done: Vec<&str> = record.steps.iter().filter(|s| s.status.is_settled()).map(|s| s.name.as_str()).collect();
    if !done.is_empty() {
        out.info(&format!("already done: {}", done.join(", ")));
    }
    out.info(&format!("still to run: {}", if left.is_empty() { "nothing".to_string() } else { left.join(", ") }));
    let journal = Journal::attach(&store, run_id, out.redactor().clone());
    // The run goes on with the image it started with, whatever the config says now.
    let mut env = env.clone();
    env.migration.image = record.image.clone();
    let mut run = Run { env, cloud, out, confirm: ctx.confirmer(), journal, record };
    run.save().map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
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

fn report(ctx: &Context, record: &RunRecord, out: &ferry_core::output::Reporter) -> Result<(), CommandError> {
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
