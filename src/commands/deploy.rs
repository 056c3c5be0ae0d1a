//! `ferry deploy`, `ferry migrate` and `ferry rehearse`: the commands that start a
//! run of the migration (its rehearsal on a clone, for `rehearse`).

use super::start::start;
use super::{CmdResult, CommandError, Context};
use crate::cli::{DeployArgs, MigrateArgs, RehearseArgs};
use ferry_core::config::{self, EnvConfig};
use ferry_core::runbook::plan;
use ferry_core::runbook::record::{RunKind, RunOptions};

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
