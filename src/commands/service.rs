//! `ferry service status|pause|resume`: the App Runner service of an environment.

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::ServiceCommand;
use ferry_core::output::Redactor;
use ferry_core::runbook::service::Change;

pub async fn run(ctx: &Context, c: ServiceCommand) -> CmdResult {
    let (env_name, action) = match &c {
        ServiceCommand::Status { env } => (env, None),
        ServiceCommand::Pause { env } => (env, Some("pause")),
        ServiceCommand::Resume { env } => (env, Some("resume")),
    };
    let env = ctx.env(env_name)?;
    if env.service.is_none() {
        return Err(CommandError::Usage(format!(
            "environment {} has no [service] (App Runner) in ferry.toml",
            env.name
        )));
    }
    if let Some(action) = action {
        ctx.guard(env, &format!("{action} the App Runner service"))?;
    }
    let cloud = ctx.cloud(env).await?;
    let service = cloud.service.clone().ok_or_else(|| CommandError::Usage("no App Runner service".into()))?;
    let out = ctx.reporter(Some(env));
    let _lock = match action {
        Some(a) => Some(ctx.lock(&ctx.store(env)?, env, cloud.database.cluster_id(), None, &format!("service {a}"))?),
        None => None,
    };
    // Unreachable or missing: exit 3, before anything is asked of it.
    service.status().await?;
    let change = match action {
        Some("pause") => Some(Change::Pause),
        Some(_) => Some(Change::Resume),
        None => None,
    };
    if let Some(c) = change {
        ferry_core::runbook::service::change(service.as_ref(), c, env.timeouts.service, &out)
            .await
            .map_err(CommandError::NeedsAttention)?;
    }
    let info = service.status().await?;
    if ctx.json() {
        print_json(&info, &Redactor::default())?;
    } else {
        crate::outln!("{} {}", info.id, info.status)?;
    }
    Ok(0)
}
