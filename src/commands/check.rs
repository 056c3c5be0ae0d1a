//! `ferry check`: are the applied migrations the Alembic heads? Read through
//! the database URL (the local provider's, or an aws environment's
//! `database.url`); no AWS credentials needed. Also the migrations part of
//! `ferry plan`.

use super::{CmdResult, CommandError, Context, print_json};
use ferry_alembic::{GraphError, Readiness};
use ferry_aws as aws;
use ferry_core::config::{DatabaseConfig, EnvConfig};
use ferry_core::exit;
use ferry_core::output::Redactor;
use ferry_core::provider::Session;
use ferry_core::runbook::revisions as preflight;
use ferry_local::session;
use serde_json::json;
use std::sync::Arc;

/// The environment's database session, or why there is none (exit 2).
pub(super) fn open_session(ctx: &Context, env: &EnvConfig) -> Result<Arc<dyn Session>, CommandError> {
    match env.session_url() {
        Some(url) => {
            session::open(url, ctx.config.base_dir(), env.provider).map_err(|e| CommandError::Usage(e.to_string()))
        }
        None => {
            let cluster = match &env.database {
                DatabaseConfig::Cluster(t) => t.raw.clone(),
                DatabaseConfig::Url(_) => env.database_label(),
            };
            Err(CommandError::Usage(aws::cannot_see_inside(env, &cluster)))
        }
    }
}

/// `ferry check <env>`: 0 when the version table holds exactly the heads,
/// 3 with the pending revisions otherwise, 2 when it cannot tell.
pub async fn check(ctx: &Context, env_name: &str) -> CmdResult {
    let env = ctx.env(env_name)?;
    let alembic = env.migration.alembic.as_ref().ok_or_else(|| {
        CommandError::Usage(format!(
            "[env.{}] has no migration.alembic: add alembic = {{ versions = \"alembic/versions\" }} to its \
             migration table so ferry can read the revision graph",
            env.name
        ))
    })?;
    let graph = preflight::graph(alembic).map_err(CommandError::Usage)?;
    let session = open_session(ctx, env)?;
    let rows = preflight::current(&session, &alembic.version_table).await.map_err(|e| {
        CommandError::Usage(format!("{e}; check that database.url reaches the database (nothing was read)"))
    })?;
    let r = match Readiness::of(&graph, rows) {
        Ok(r) => r,
        Err(e @ GraphError::UnknownApplied { .. }) => return Err(CommandError::Failed(e.to_string())),
        Err(e) => return Err(CommandError::Usage(e.to_string())),
    };
    let redactor = Redactor::new(env.secrets());
    if ctx.json() {
        print_json(&r, &redactor)?;
    } else {
        let current = if r.current_version.is_empty() {
            format!("none (no rows in {})", alembic.version_table)
        } else {
            r.current_version.join(", ")
        };
        if r.ok {
            crate::outln!("migrations of {}: in sync at {}", env.name, r.expected_heads.join(", "))?;
        } else {
            crate::outln!("migrations of {}: {} pending", env.name, r.pending.len())?;
            crate::outln!("  current: {current}")?;
            crate::outln!("  heads:   {}", r.expected_heads.join(", "))?;
            crate::outln!("  pending: {}", r.pending.join(", "))?;
        }
        let merge = graph.heads_to_merge();
        if !merge.is_empty() {
            crate::outln!(
                "note: heads {} are on one branch; deploy refuses until they are merged: {}",
                merge.join(", "),
                ferry_alembic::merge_command(&merge)
            )?;
        }
    }
    if r.ok {
        Ok(0)
    } else {
        if !ctx.json() {
            eprintln!("the database is not at the heads: `ferry deploy {}` applies the pending revisions", env.name);
        }
        Ok(exit::REFUSED)
    }
}

/// For `ferry plan`: the revision graph as deploy's preflight will read it
/// (files only, no database): `null` without `migration.alembic`.
pub fn plan_summary(env: &EnvConfig) -> serde_json::Value {
    let Some(alembic) = env.migration.alembic.as_ref() else {
        return serde_json::Value::Null;
    };
    match preflight::graph(alembic) {
        Ok(g) => json!({ "revisions": g.len(), "heads": g.heads(), "heads_to_merge": g.heads_to_merge() }),
        Err(e) => json!({ "error": e }),
    }
}

/// The human lines of [`plan_summary`].
pub fn plan_lines(summary: &serde_json::Value) -> Vec<String> {
    if let Some(e) = summary["error"].as_str() {
        return vec![format!("{e}: deploy would refuse")];
    }
    let list = |v: &serde_json::Value| -> String {
        v.as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()
    };
    let mut lines = vec![format!("Alembic revisions: {}, head(s): {}", summary["revisions"], list(&summary["heads"]))];
    if summary["heads_to_merge"].as_array().is_some_and(|a| !a.is_empty()) {
        let merge: Vec<String> = summary["heads_to_merge"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default();
        lines.push(format!(
            "heads {} are on one branch: deploy would refuse; merge them with `{}`",
            merge.join(", "),
            ferry_alembic::merge_command(&merge)
        ));
    }
    lines
}
