//! `ferry runs list|show|abandon` and `ferry unlock`: the runs and locks in the
//! state backends, and the two decisions only a person makes about them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::runs::env_of_run;
use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::RunsCommand;
use ferry_core::config::{EnvConfig, HumanDuration};
use ferry_core::output::{Redactor, timestamp};
use ferry_core::runbook::journal::{Journal, Listed, list_runs, read_run};
use ferry_core::runbook::record::{Abandoned, Outcome};
use ferry_core::state::{Store, lock};

pub fn runs(ctx: &Context, c: RunsCommand) -> CmdResult {
    match c {
        RunsCommand::List { env, since } => list(ctx, env.as_deref(), since.as_deref()),
        RunsCommand::Show { run_id } => show(ctx, &run_id),
        RunsCommand::Abandon { run_id, reason } => abandon(ctx, &run_id, &reason),
    }
}

/// The distinct backends of the environments asked about.
fn stores(ctx: &Context, env: Option<&str>) -> Result<Vec<(Store, Vec<String>)>, CommandError> {
    let envs: Vec<&EnvConfig> = match env {
        Some(name) => vec![ctx.env(name)?],
        None => ctx.config.envs.values().collect(),
    };
    let mut by_location: BTreeMap<String, (Store, Vec<String>)> = BTreeMap::new();
    for e in envs {
        let store = ctx.store(e)?;
        by_location.entry(store.describe()).or_insert_with(|| (store, Vec::new())).1.push(e.name.clone());
    }
    if by_location.is_empty() {
        let store = Store::local(&ctx.config.state_dir);
        by_location.insert(store.describe(), (store, Vec::new()));
    }
    Ok(by_location.into_values().collect())
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, CommandError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = HumanDuration::parse(text).map_err(|e| {
        CommandError::Usage(format!(
            "--since {text:?}: {e}; give a duration back from now (90m, 7d) or an RFC 3339 time (2026-12-01T09:00:00Z)"
        ))
    })?;
    Ok(Utc::now() - chrono::Duration::from_std(d.0).unwrap_or_default())
}

fn list(ctx: &Context, env: Option<&str>, since: Option<&str>) -> CmdResult {
    let cutoff = since.map(parse_since).transpose()?;
    let mut all: Vec<Listed> = Vec::new();
    for (store, _) in stores(ctx, env)? {
        let listed = list_runs(&store, env).map_err(|e| CommandError::Failed(e.to_string()))?;
        all.extend(listed.into_iter().filter(|l| match (l, cutoff) {
            (Listed::Run(r), Some(c)) => r.started_at >= c,
            _ => true,
        }));
    }
    let redactor = Redactor::default();
    if ctx.json() {
        let items: Vec<serde_json::Value> = all
            .iter()
            .map(|l| match l {
                Listed::Run(r) => serde_json::to_value(r).unwrap_or_default(),
                Listed::Unreadable { run_id, location, error } => serde_json::json!({
                    "format_version": ferry_core::runbook::record::FORMAT_VERSION,
                    "run_id": run_id, "outcome": "unreadable", "location": location, "error": error,
                }),
            })
            .collect();
        print_json(&serde_json::json!({ "runs": items }), &redactor)?;
        return Ok(0);
    }
    if all.is_empty() {
        eprintln!("no runs{}", env.map(|e| format!(" of {e}")).unwrap_or_default());
        return Ok(0);
    }
    crate::outln!("{:<44} {:<8} {:<16} {:<4} {:<20} ACTOR", "RUN", "COMMAND", "OUTCOME", "EXIT", "STARTED")?;
    for l in &all {
        match l {
            Listed::Run(r) => {
                let actor = r.actor.as_ref().map(|a| format!("{}@{}", a.user, a.host)).unwrap_or_else(|| "-".into());
                let exit = r.exit_code.map_or("-".to_string(), |c| c.to_string());
                // A run a later one settled is not running, whatever its own record last said.
                let outcome = if r.resolved_by.is_some() { "settled" } else { r.outcome.as_str() };
                crate::outln!(
                    "{:<44} {:<8} {:<16} {exit:<4} {:<20} {actor}",
                    r.run_id,
                    r.command,
                    outcome,
                    timestamp(r.started_at)
                )?;
            }
            Listed::Unreadable { run_id, location, error } => {
                crate::outln!(
                    "{run_id:<44} {:<8} {:<16} {:<4} {:<20} {location}: {error}",
                    "?",
                    "unreadable",
                    "-",
                    "-"
                )?;
            }
        }
    }
    Ok(0)
}

fn show(ctx: &Context, run_id: &str) -> CmdResult {
    let env = env_of_run(ctx, run_id)?;
    let r = read_run(&ctx.store(env)?, run_id).map_err(|e| CommandError::Usage(e.to_string()))?;
    let redactor = Redactor::new(env.secrets());
    if ctx.json() {
        print_json(&r, &redactor)?;
        return Ok(0);
    }
    let report = ferry_core::runbook::report::of(&r);
    for line in report.summary() {
        crate::outln!("{}", redactor.clean(&line))?;
    }
    crate::outln!("steps:")?;
    for line in report.steps_table() {
        crate::outln!("{}", redactor.clean(&line))?;
    }
    for line in report.log_tail_lines() {
        crate::outln!("{}", redactor.clean(&line))?;
    }
    Ok(0)
}

/// `ferry runs abandon RUN --reason`: the run stops blocking its environment.
/// Its lock, if it still holds one, is released; a journal that cannot be read
/// is kept aside (never deleted) and replaced by a record of the decision.
fn abandon(ctx: &Context, run_id: &str, reason: &str) -> CmdResult {
    if reason.trim().is_empty() {
        return Err(CommandError::Usage("--reason is empty: say why the run needs nothing more".into()));
    }
    let env = env_of_run(ctx, run_id)?;
    let store = ctx.store(env)?;
    ctx.guard(env, &format!("abandon run {run_id}"))?;
    let out = ctx.reporter(Some(env));
    let listed = list_runs(&store, Some(&env.name)).map_err(|e| CommandError::Failed(e.to_string()))?;
    let Some(entry) = listed.into_iter().find(|l| l.run_id() == run_id) else {
        return Err(CommandError::Usage(format!("no run {run_id} in {}", store.describe())));
    };
    let abandoned = |was| Abandoned {
        by: ferry_core::provenance::Actor::current(),
        at: Utc::now(),
        reason: reason.to_string(),
        was,
    };
    let record = match entry {
        Listed::Run(r) if !r.blocks_env() => {
            out.info(&format!("run {run_id} is {} and blocks nothing; left as it is", r.outcome.as_str()));
            return Ok(0);
        }
        Listed::Run(mut r) => {
            r.abandoned = Some(abandoned(r.outcome));
            r.outcome = Outcome::Abandoned;
            r.exit_code = Some(Outcome::Abandoned.exit_code());
            r.ended_at.get_or_insert_with(Utc::now);
            *r
        }
        Listed::Unreadable { location, .. } => {
            let key = ferry_core::runbook::journal::run_key(run_id);
            let raw = store.get(&key).map_err(|e| CommandError::Failed(e.to_string()))?;
            let aside = format!("runs/unreadable/{run_id}-{}.json", Utc::now().format("%Y%m%dT%H%M%SZ"));
            if let Some(v) = raw {
                store.put(&aside, &v.body).map_err(|e| CommandError::Failed(e.to_string()))?;
            }
            out.info(&format!("the unreadable journal {location} is kept as {}", store.location_of(&aside)));
            let mut r = ferry_core::runbook::record::RunRecord::unreadable(
                ferry_core::runbook::record::RunId::recorded(run_id.to_string()),
                &env.name,
            );
            r.error =
                Some(format!("the journal could not be read; its bytes are kept at {}", store.location_of(&aside)));
            r.abandoned = Some(abandoned(Outcome::NeedsAttention));
            r.outcome = Outcome::Abandoned;
            r.exit_code = Some(Outcome::Abandoned.exit_code());
            r
        }
    };
    Journal::attach(&store, run_id, out.redactor().clone())
        .save(&record)
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    out.info(&format!("run {run_id} is recorded as abandoned ({reason}); it no longer blocks {}", env.name));
    // Its lock, if the run still holds it (its ferry was killed).
    if let Some(db) = ctx.database_key(env)
        && let Ok(Some((holder, etag))) = lock::read(&store, &db)
        && holder.run_id.as_deref() == Some(run_id)
    {
        let shown = lock::Found::Holder(holder);
        match lock::force_unlock(&store, &db, &shown, &etag, Some(&format!("run {run_id} abandoned: {reason}"))) {
            Ok(Some(at)) => out.info(&format!("released its lock on {db} (recorded at {at})")),
            Ok(None) => out.warn(&format!("the lock on {db} changed while it was being released; left as it is")),
            Err(e) => out.warn(&format!("cannot release the lock on {db}: {e}")),
        }
    }
    Ok(0)
}

/// `ferry unlock ENV`: show the holder, ask, then remove the lock and record it.
pub async fn unlock(ctx: &Context, env_name: &str, reason: Option<&str>) -> CmdResult {
    let env = ctx.env(env_name)?;
    let store = ctx.store(env)?;
    let db = match ctx.database_key(env) {
        Some(db) => db,
        None => ctx.cloud(env).await?.database.cluster_id().to_string(),
    };
    let out = ctx.reporter(Some(env));
    let (found, etag) = match lock::inspect(&store, &db) {
        Ok(Some(found)) => found,
        Ok(None) => {
            out.info(&format!("{db} is not locked; nothing to do"));
            return Ok(0);
        }
        Err(e) => return Err(CommandError::Failed(format!("cannot read the lock on {db}: {e}"))),
    };
    match &found {
        lock::Found::Holder(holder) => out.info(&format!("{db} is locked by {}", holder.describe())),
        lock::Found::Unreadable { text, why } => {
            out.info(&format!(
                "{db} is locked, but its lock {} cannot be read ({why}): it is damaged, or a newer ferry wrote it. It holds:",
                store.location_of(&lock::lock_key(&db))
            ));
            out.info(&format!("  {}", text.trim()));
        }
    }
    out.info("Remove the lock only if that ferry is gone: two ferries changing one database can lose data.");
    let question = format!("Remove the lock on {db}?");
    match ctx.confirmer().ask(&question) {
        Some(true) => {}
        Some(false) => return Err(CommandError::Usage("declined; the lock is kept".into())),
        None => {
            return Err(CommandError::Usage(format!(
                "removing a lock needs a person's yes: pass --yes (or run at a terminal); the lock on {db} is kept"
            )));
        }
    }
    match lock::force_unlock(&store, &db, &found, &etag, reason).map_err(|e| CommandError::Failed(e.to_string()))? {
        Some(at) => {
            out.info(&format!("removed the lock on {db}; recorded at {at}"));
            if let lock::Found::Holder(lock::Holder { run_id: Some(run), .. }) = &found {
                out.info(&format!(
                    "next: `ferry resume {run}` continues that run (or `{}`)",
                    super::abandon_command(run)
                ));
            }
            Ok(0)
        }
        None => Err(CommandError::Failed(format!(
            "the lock on {db} changed while you were deciding (another ferry took or refreshed it); nothing was removed"
        ))),
    }
}
