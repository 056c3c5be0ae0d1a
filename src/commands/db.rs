//! `ferry db exec`: SQL against a local-provider database, for seeding a
//! rehearsal, inspecting after a restore, or a responder's repair.

use super::{CmdResult, CommandError, Context};
use crate::cli::DbCommand;
use ferry_core::config::ProviderKind;
use ferry_core::provider::{ProviderError, REHEARSAL_OF};
use ferry_local::LocalDatabase;

pub async fn run(ctx: &Context, c: DbCommand) -> CmdResult {
    let DbCommand::Exec { env, file, sql, create } = c;
    let env = ctx.env(&env)?;
    if env.provider != ProviderKind::Local {
        return Err(CommandError::Usage(format!(
            "`ferry db exec` works on provider = \"local\" environments; {} uses provider = \"aws\"",
            env.name
        )));
    }
    let sql = match (file, sql) {
        (Some(path), _) => {
            let path = if path.is_absolute() { path } else { std::env::current_dir().unwrap_or_default().join(path) };
            std::fs::read_to_string(&path)
                .map_err(|e| CommandError::Usage(format!("cannot read SQL file {}: {e}", path.display())))?
        }
        (None, Some(sql)) => sql,
        (None, None) => return Err(CommandError::Usage("give --file PATH or --sql TEXT".into())),
    };
    ctx.guard(env, "run SQL")?;
    let rehearsal = rehearsal_env(env)?;
    let env = rehearsal.as_ref().unwrap_or(env);
    let db = LocalDatabase::open(env, ctx.config.base_dir(), &ctx.config.state_dir).map_err(|e| match e {
        ProviderError::Rejected(m) => CommandError::Usage(m),
        other => other.into(),
    })?;
    // The migration of a run runs `ferry db exec` under the lock its run holds
    // (FERRY_RUN_ID names that run); anyone else takes the lock.
    let store = ctx.store(env)?;
    let database = match &rehearsal {
        // The lock is the real database's: the rehearsal's run holds it.
        Some(_) => LocalDatabase::open(ctx.env(&env.name)?, ctx.config.base_dir(), &ctx.config.state_dir)?
            .as_database()
            .cluster_id()
            .to_string(),
        None => db.as_database().cluster_id().to_string(),
    };
    let own_run = match &rehearsal {
        Some(_) => std::env::var(REHEARSAL_OF).ok(),
        None => std::env::var("FERRY_RUN_ID").ok(),
    };
    let held_by_own_run = match (&own_run, ferry_core::state::lock::read(&store, &database)) {
        (Some(run), Ok(Some((holder, _)))) => holder.run_id.as_deref() == Some(run.as_str()),
        _ => false,
    };
    if rehearsal.is_some() && !held_by_own_run {
        return Err(CommandError::Failed(format!(
            "{REHEARSAL_OF} names a rehearsal whose run does not hold the lock of {database}; nothing was done"
        )));
    }
    let _lock = if held_by_own_run { None } else { Some(ctx.lock(&store, env, &database, None, "db exec")?) };
    // Statements before a failing one may have been applied (SQLite): a person must look.
    let rows = db.exec(&sql, create).await.map_err(|e| match e.error {
        ProviderError::NotFound(what) => {
            CommandError::Failed(format!("{what} does not exist (--create makes a new SQLite file)"))
        }
        other if e.maybe_partial => CommandError::NeedsAttention(other.to_string()),
        other => CommandError::Failed(format!("{other}; nothing was applied")),
    })?;
    for row in rows {
        crate::outln!("{row}")?;
    }
    Ok(0)
}

/// Inside a rehearsal's migration: the environment with its database replaced
/// by the clone (`DATABASE_URL`), so the migration's SQL never reaches the real one.
fn rehearsal_env(env: &ferry_core::config::EnvConfig) -> Result<Option<ferry_core::config::EnvConfig>, CommandError> {
    if std::env::var_os(REHEARSAL_OF).is_none() {
        return Ok(None);
    }
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let url = ferry_core::config::DbUrl::parse(&url).map_err(|e| {
        CommandError::Usage(format!(
            "{REHEARSAL_OF} is set but DATABASE_URL does not name the clone ({e}); nothing was done"
        ))
    })?;
    let mut env = env.clone();
    env.database = ferry_core::config::DatabaseConfig::Url(url);
    Ok(Some(env))
}
