//! Read-only checks before anything changes. `ferry deploy` (and migrate,
//! restore) refuse on any refusal; `ferry plan` runs the same checks and
//! exits 3 on them.
//!
//! Only checks that protect data refuse: the database is there and
//! available, no migration task is running, the migration can start, the
//! app service is not in the middle of an operation. An advisory read
//! (the snapshot quota) that cannot be made — access denied, an operation the
//! endpoint does not know, anything but a clear answer — is a warning: the
//! call it forecasts reports the same problem itself.

use serde::Serialize;

use super::record::{RunKind, StepName};
use super::wait::call;
use super::{Run, StepError};
use crate::config::EnvConfig;
use crate::provider::{Cloud, ServiceState};

/// What the checks found: lines that passed, advisory reads that could not be
/// made, and what would stop the run.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub found: Vec<String>,
    pub warnings: Vec<String>,
    pub refusals: Vec<String>,
}

/// What to check, and for which command.
pub struct Scope<'a> {
    pub env: &'a EnvConfig,
    pub cloud: &'a Cloud,
    /// `ferry restore`: the service's operations in progress are waited for, not refused.
    pub restoring: bool,
    /// The run's own migration task (a resumed run), which does not block it.
    pub own_task: Option<&'a str>,
    /// A snapshot will be taken: its quota is looked at.
    pub with_snapshot: bool,
    /// The migration will be rehearsed on a clone first: `rehearse.database_env`
    /// must be able to point it there.
    pub rehearsing: bool,
}

/// Everything that must hold before the run changes anything. Returns a one-line
/// description of what was found; warnings are printed and kept in it.
pub async fn preflight(run: &Run, with_snapshot: bool) -> Result<String, StepError> {
    let scope = Scope {
        env: &run.env,
        cloud: &run.cloud,
        restoring: run.record.command == RunKind::Restore,
        own_task: run.record.task.as_ref().map(|t| t.arn.as_str()),
        with_snapshot,
        rehearsing: run.record.steps.iter().any(|s| s.name == StepName::Clone),
    };
    let f = inspect(&scope).await;
    for w in &f.warnings {
        run.out.warn(w);
    }
    if !f.refusals.is_empty() {
        return Err(StepError::Abort(f.refusals.join("; ")));
    }
    let mut found = f.found;
    found.extend(f.warnings.iter().map(|w| format!("warning: {w}")));
    Ok(found.join(", "))
}

/// Run every read-only check and collect what each found.
pub async fn inspect(scope: &Scope<'_>) -> Findings {
    let mut f = Findings::default();
    database(scope, &mut f).await;
    tasks(scope, &mut f).await;
    match call("check the migration task", || scope.cloud.runner.check()).await {
        Ok(Some(line)) => f.found.push(line),
        Ok(None) => {}
        Err(e) => f.refusals.push(format!("the migration task cannot run: {e}")),
    }
    if scope.rehearsing {
        secrets(scope, &mut f).await;
    }
    service(scope, &mut f).await;
    if scope.with_snapshot {
        quota(scope, &mut f).await;
    }
    f
}

/// A `rehearse.database_env` variable the platform gives the migration from a
/// secret ([`MigrationRunner::secret_variables`](crate::provider::MigrationRunner)):
/// setting it on the migration is not documented to replace it, so the
/// rehearsal's migration could reach the real database. Refused.
async fn secrets(scope: &Scope<'_>, f: &mut Findings) {
    let keys = &scope.env.rehearse.database_env;
    if keys.is_empty() {
        return;
    }
    match call("read the migration's secrets", || scope.cloud.runner.secret_variables()).await {
        Ok(secret) => {
            for name in secret.iter().filter(|n| keys.contains_key(n.as_str())) {
                f.refusals.push(format!(
                    "rehearse.database_env.{name} is given to the migration by a secret of its task definition, \
                     which an override is not documented to replace: the rehearsal's migration could reach the \
                     real database. Give {name} in the container's environment instead of its secrets, or point \
                     the migration at the clone with another variable"
                ));
            }
        }
        Err(e) => f.refusals.push(format!("cannot tell whether rehearse.database_env reaches the clone: {e}")),
    }
}

async fn database(scope: &Scope<'_>, f: &mut Findings) {
    let db = scope.cloud.database.clone();
    let id = db.cluster_id().to_string();
    match call("describe the database", || db.describe(&id)).await {
        Ok(Some(info)) if info.is_available() => f.found.push(format!("database {id} available")),
        Ok(Some(info)) => f.refusals.push(format!("database {id} is {}, not available", info.state())),
        Ok(None) => f.refusals.push(format!("database {id} does not exist")),
        Err(e) => f.refusals.push(format!("cannot describe database {id}: {e}")),
    }
}

/// A running migration would go on writing: it always refuses.
async fn tasks(scope: &Scope<'_>, f: &mut Findings) {
    // A restore waits for the service's operations (deployments included)
    // rather than refusing them; a running migration task, though, would go on
    // writing.
    if scope.restoring && scope.cloud.runner.profile().is_service_deployment {
        return;
    }
    let runner = scope.cloud.runner.clone();
    let active = match call("list migration tasks", || runner.active_tasks()).await {
        Ok(active) => active,
        Err(e) => return f.refusals.push(format!("cannot list migration tasks: {e}")),
    };
    let others: Vec<_> = active.iter().filter(|t| Some(t.id.as_str()) != scope.own_task).collect();
    if others.is_empty() {
        return f.found.push("no migration running".into());
    }
    let ids: Vec<String> = others.iter().map(|t| format!("{} ({})", t.id, t.status)).collect();
    f.refusals.push(format!(
        "another migration task is already pending or running: {}; wait for it or stop it first",
        ids.join(", ")
    ));
}

async fn service(scope: &Scope<'_>, f: &mut Findings) {
    let Some(service) = scope.cloud.service.clone() else { return };
    let s = match call("describe the service", || service.status()).await {
        Ok(s) => s,
        Err(e) => return f.refusals.push(format!("cannot describe the {} service: {e}", service.platform())),
    };
    let platform = service.platform();
    match s.state {
        ServiceState::Running => {}
        // The restore pauses it anyway, waiting for an operation in progress to end.
        ServiceState::Paused | ServiceState::Busy if scope.restoring => {}
        ServiceState::Busy => {
            return f.refusals.push(format!(
                "{platform} service {} has an operation in progress; wait for it to end (`ferry service status {}`)",
                s.id, scope.env.name
            ));
        }
        _ => return f.refusals.push(format!("{platform} service {} is {}, not running", s.id, s.status)),
    }
    f.found.push(format!("service {}", s.status));
}

/// Advisory: a full quota read as such refuses (the snapshot would be
/// refused); a quota that cannot be read is a warning.
async fn quota(scope: &Scope<'_>, f: &mut Findings) {
    let db = scope.cloud.database.clone();
    match call("read the snapshot quota", || db.snapshot_quota()).await {
        Ok(Some(q)) if q.used >= q.max => f.refusals.push(format!(
            "the manual snapshot quota is full ({}/{}); free room with `ferry snapshot prune {} --keep N`",
            q.used, q.max, scope.env.name
        )),
        Ok(Some(q)) => f.found.push(format!("snapshot quota {}/{}", q.used, q.max)),
        Ok(None) => {}
        Err(e) => f.warnings.push(format!(
            "the snapshot quota was not checked ({e}); if it is full, taking the snapshot fails and nothing is changed"
        )),
    }
}

/// The revision graph's refusal, before anything is read from the database:
/// unreadable, or several heads on one branch.
pub fn revisions_refusal(env: &EnvConfig) -> Option<String> {
    let alembic = env.migration.alembic.as_ref()?;
    match super::revisions::graph(alembic) {
        Err(e) => Some(e),
        Ok(g) => {
            let merge = g.heads_to_merge();
            (!merge.is_empty()).then(|| super::revisions::heads_refusal(&merge))
        }
    }
}
