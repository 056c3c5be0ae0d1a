//! Read-only checks before anything changes.

use super::wait::call;
use super::{Run, StepError};
use crate::config::RunnerKind;

/// Everything that must hold before the run changes anything. Returns a one-line
/// description of what was found.
pub async fn preflight(run: &Run, with_snapshot: bool) -> Result<String, StepError> {
    let db = run.cloud.database.clone();
    let id = db.cluster_id().to_string();
    let info = call("describe the database", || db.describe(&id))
        .await
        .map_err(|e| StepError::Abort(format!("cannot describe database {id}: {e}")))?
        .ok_or_else(|| StepError::Abort(format!("database {id} does not exist")))?;
    if !info.is_available() {
        return Err(StepError::Abort(format!("database {id} is {}, not available", info.state())));
    }
    let mut found = vec![format!("database {id} available")];

    let restoring = run.record.command == "restore";
    let runner = run.cloud.runner.clone();
    // A restore waits for App Runner operations (deployments included) rather
    // than refusing them; a running migration task, though, would go on writing.
    let active = if restoring && run.env.migration.runner == RunnerKind::Apprunner {
        Vec::new()
    } else {
        call("list migration tasks", || runner.active_tasks())
            .await
            .map_err(|e| StepError::Abort(format!("cannot list migration tasks: {e}")))?
    };
    let others: Vec<_> =
        active.iter().filter(|t| Some(t.id.as_str()) != run.record.task.as_ref().map(|t| t.arn.as_str())).collect();
    if !others.is_empty() {
        let ids: Vec<String> = others.iter().map(|t| format!("{} ({})", t.id, t.status)).collect();
        return Err(StepError::Abort(format!(
            "another migration task is already pending or running: {}; wait for it or stop it first",
            ids.join(", ")
        )));
    }
    found.push("no migration running".into());
    match call("check the migration task", || runner.check()).await {
        Ok(Some(line)) => found.push(line),
        Ok(None) => {}
        Err(e) => return Err(StepError::Abort(format!("the migration task cannot run: {e}"))),
    }

    if let Some(service) = run.cloud.service.clone() {
        let s = call("describe the service", || service.status())
            .await
            .map_err(|e| StepError::Abort(format!("cannot describe the App Runner service: {e}")))?;
        match s.status.as_str() {
            "RUNNING" => {}
            // The restore pauses it anyway, waiting for an operation in progress to end.
            "PAUSED" | "OPERATION_IN_PROGRESS" if restoring => {}
            "OPERATION_IN_PROGRESS" => {
                return Err(StepError::Abort(format!(
                    "App Runner service {} has an operation in progress; wait for it to end (`ferry service status {}`)",
                    s.id, run.env.name
                )));
            }
            other => {
                return Err(StepError::Abort(format!("App Runner service {} is {other}, not RUNNING", s.id)));
            }
        }
        found.push(format!("service {}", s.status));
    }

    if with_snapshot {
        let quota = call("read the snapshot quota", || db.snapshot_quota())
            .await
            .map_err(|e| StepError::Abort(format!("cannot read the snapshot quota: {e}")))?;
        if let Some(q) = quota {
            if q.used >= q.max {
                return Err(StepError::Abort(format!(
                    "the manual snapshot quota is full ({}/{}); free room with `ferry snapshot prune {} --keep N`",
                    q.used, q.max, run.env.name
                )));
            }
            found.push(format!("snapshot quota {}/{}", q.used, q.max));
        }
    }
    Ok(found.join(", "))
}
