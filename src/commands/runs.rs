//! `ferry runs list|show|abandon`: the runs in the state backends, and the
//! decision only a person makes about one (abandoning it).

use super::resume::env_of_run;
use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::RunsCommand;
use chrono::{DateTime, Utc};
use ferry_core::config::{EnvConfig, HumanDuration};
use ferry_core::output::{Redactor, timestamp};
use ferry_core::runbook::journal::{Journal, Listed, list_runs, read_run};
use ferry_core::runbook::record::{Abandoned, Outcome};
use ferry_core::state::{Store, lock};
use std::collections::BTreeMap;

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
        by_location.entry(store.describe()).or_insert_with(|| (store, Vec::new())).1.push(e.name.to_string());
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
