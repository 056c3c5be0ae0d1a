//! `ferry resume RUN`: continue a run its journal says is unfinished.

use super::start::{execute, report};
use super::{CmdResult, CommandError, Context};
use ferry_core::config::EnvConfig;
use ferry_core::runbook::journal::{Journal, read_run};
use ferry_core::runbook::record::is_run_of;
use ferry_core::runbook::{Run, prepare_resume};

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
