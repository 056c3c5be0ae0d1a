//! The preflight's migrations check, when `migration.alembic` is configured:
//! the revision graph must have one head per branch (several heads on one
//! branch are refused before any snapshot, with the `alembic merge` command;
//! branches kept apart on purpose carry `branch_labels`), and when the database's version
//! table already equals the heads there is nothing to migrate, so deploy and
//! migrate skip the snapshot and the migration (unless `--force`).

use std::sync::Arc;

use super::wait::call;
use super::{Run, StepError};
use crate::config::AlembicConfig;
use crate::provider::Session;
use ferry_alembic::{Graph, Readiness};

/// What the check found.
pub struct Check {
    /// For the preflight line.
    pub line: String,
    /// Nothing to migrate: why, for the skipped steps and the run record.
    pub up_to_date: Option<String>,
}

/// The revision graph, or why it cannot be used (exit 3 before any change).
pub fn graph(alembic: &AlembicConfig) -> Result<Graph, String> {
    ferry_alembic::load(&alembic.versions).map_err(|e| format!("the Alembic revision graph is not usable: {e}"))
}

/// Several heads on one branch: the refusal, naming them and the command
/// that merges them.
pub fn heads_refusal(heads: &[String]) -> String {
    format!(
        "the Alembic revisions have {} heads ({}) on one branch: `alembic upgrade head` would fail and \
         `upgrade heads` would apply unmerged work; merge them first with `{}`, commit the new revision, and deploy again",
        heads.len(),
        heads.join(", "),
        ferry_alembic::merge_command(heads)
    )
}

/// The version table's rows, through the session.
pub async fn current(session: &Arc<dyn Session>, table: &str) -> Result<Vec<String>, String> {
    let s = session.clone();
    call("read the version table", || s.version_rows(table))
        .await
        .map_err(|e| format!("cannot read the migration version table {table}: {e}"))
}

pub async fn check(run: &Run, force: bool) -> Result<Option<Check>, StepError> {
    let Some(alembic) = run.env.migration.alembic.as_ref() else {
        return Ok(None);
    };
    let graph = graph(alembic).map_err(StepError::Abort)?;
    let merge = graph.heads_to_merge();
    if !merge.is_empty() {
        return Err(StepError::Abort(heads_refusal(&merge)));
    }
    let heads = graph.heads();
    let head = heads.join(", ");
    let session = match &run.cloud.session {
        Ok(s) => s.clone(),
        Err(why) => {
            // The how-to is long: said once, as a note, not in every line that concerns it.
            run.out.advise(why);
            return Ok(Some(Check {
                line: format!(
                    "migrations: head {head}; database version not checked (ferry cannot read inside the database \
                     from here: see the note above)"
                ),
                up_to_date: None,
            }));
        }
    };
    let rows = current(&session, &alembic.version_table).await.map_err(StepError::Abort)?;
    let r = Readiness::of(&graph, rows).map_err(|e| StepError::Abort(e.to_string()))?;
    let at =
        if r.current_version.is_empty() { "no revision applied".to_string() } else { r.current_version.join(", ") };
    if r.ok {
        let why = format!("the database is already at the head ({head}); nothing to migrate");
        if force {
            return Ok(Some(Check {
                line: format!("migrations: {why}; --force runs the migration anyway"),
                up_to_date: None,
            }));
        }
        return Ok(Some(Check { line: format!("migrations: {why}"), up_to_date: Some(why) }));
    }
    Ok(Some(Check {
        line: format!("migrations: {} pending ({}) from {at} to {head}", r.pending.len(), r.pending.join(", ")),
        up_to_date: None,
    }))
}
