//! Restore from a snapshot without ever deleting or overwriting a database
//! (invariant 2): the snapshot is restored beside the failed database, the failed
//! one is renamed aside and kept, and the restored one takes its name.
//! Every sub-step checks what exists first, so a resumed restore continues where
//! the earlier attempt stopped. Names are fixed in the journal at the first attempt.

use std::time::Duration;

use chrono::Utc;

use super::Run;
use super::record::{RestoreRecord, name_stamp};
use super::service::{Change, WaitedOut, change, change_waiting};
use super::verify::verify;
use super::wait::{Poll, PollPolicy, call, wait_for};
use crate::config::RestoreStrategy;
use crate::provider::{AppService, ClusterInfo};

/// A restore that did not complete: what went wrong and what the world looks like.
#[derive(Debug)]
pub struct RestoreFailure {
    pub error: String,
    pub state: String,
    /// The next command, when it is not `ferry resume <run-id>` (a restored
    /// database behind a paused service: `ferry service resume <env>`).
    pub next: Option<String>,
}

/// How far a restore got, for the failure's state and next command.
#[derive(Debug, Default)]
struct Progress {
    /// The restored database is in place under its final name.
    database_in_place: Option<String>,
}

pub async fn restore(run: &mut Run, snapshot_id: &str, strategy: RestoreStrategy) -> Result<String, RestoreFailure> {
    let db = run.cloud.database.clone();
    let cluster = db.cluster_id().to_string();
    let names = match &run.record.restore {
        Some(r) if r.snapshot_id == snapshot_id => r.clone(),
        _ => {
            let stamp = name_stamp(Utc::now());
            let staging = db.sibling_id(&format!("restored-{stamp}"));
            RestoreRecord {
                snapshot_id: snapshot_id.to_string(),
                restored_cluster: staging.clone(),
                strategy,
                failed_cluster: (strategy == RestoreStrategy::Rename)
                    .then(|| db.sibling_id(&format!("failed-{stamp}"))),
                staging_cluster: staging,
                endpoint: None,
            }
        }
    };
    run.record.restore = Some(names.clone());
    if let Err(e) = run.save() {
        return Err(RestoreFailure {
            error: e.to_string(),
            state: "nothing was changed by the restore".into(),
            next: None,
        });
    }
    let mut progress = Progress::default();
    match steps(run, &names, &mut progress).await {
        Ok(done) => Ok(done),
        Err(error) => {
            let (state, paused) = observe(run, &cluster, &names, &progress).await;
            let next = (paused && progress.database_in_place.is_some())
                .then(|| format!("ferry service resume {}", run.env.name));
            Err(RestoreFailure { error, state, next })
        }
    }
}

async fn steps(run: &mut Run, names: &RestoreRecord, progress: &mut Progress) -> Result<String, String> {
    let db = run.cloud.database.clone();
    let cluster = db.cluster_id().to_string();
    let limit = run.env.timeouts.restore;

    let mut landed = None;
    if let Some(service) = run.cloud.service.clone() {
        run.out.info("    pausing the App Runner service");
        let waited = change_waiting(service.as_ref(), Change::Pause, run.env.timeouts.service, &run.out).await?;
        landed = landed_deployment(service.as_ref(), &waited).await;
        if let Some(note) = &landed {
            run.out.warn(note);
        }
    }

    // After a completed swap the staging name is gone and the failed copy exists:
    // restoring again would make a second copy.
    let swapped = match &names.failed_cluster {
        Some(failed) => db_exists(run, failed).await? && !db_exists(run, &names.staging_cluster).await?,
        None => false,
    };
    if !swapped {
        run.out.info(&format!("    restoring {} to {}", names.snapshot_id, names.staging_cluster));
        call("restore the snapshot", || db.restore_snapshot(&names.snapshot_id, &names.staging_cluster))
            .await
            .map_err(|e| format!("cannot restore {} to {}: {e}", names.snapshot_id, names.staging_cluster))?;
        wait_database(run, &names.staging_cluster, limit).await?;
    }

    let final_id = match (&names.strategy, &names.failed_cluster) {
        (RestoreStrategy::Rename, Some(failed)) => {
            if !db_exists(run, failed).await? {
                run.out.info(&format!("    renaming {cluster} to {failed} (kept)"));
                call("rename the failed database", || db.rename(&cluster, failed))
                    .await
                    .map_err(|e| format!("cannot rename {cluster} to {failed}: {e}"))?;
            }
            wait_database(run, failed, limit).await?;
            if db_exists(run, &names.staging_cluster).await? {
                run.out.info(&format!("    renaming {} to {cluster}", names.staging_cluster));
                call("rename the restored database", || db.rename(&names.staging_cluster, &cluster))
                    .await
                    .map_err(|e| format!("cannot rename {} to {cluster}: {e}", names.staging_cluster))?;
            }
            cluster.clone()
        }
        _ => names.staging_cluster.clone(),
    };
    let info = wait_database(run, &final_id, limit).await?;
    progress.database_in_place = Some(final_id.clone());

    if let Some(service) = run.cloud.service.clone() {
        if names.strategy == RestoreStrategy::NewCluster
            && let (Some(endpoint), Some(cfg)) = (&info.endpoint, run.env.service.clone())
        {
            run.out.info(&format!("    pointing {} at {endpoint}", cfg.database_url_var));
            let repoint = Change::Repoint { var: &cfg.database_url_var, host: endpoint };
            change(service.as_ref(), repoint, run.env.timeouts.service, &run.out).await?;
        }
        if let Some(note) = &landed {
            match run.confirm.ask(&format!("{note}. Resume the App Runner service now?")) {
                Some(true) => {}
                answer => {
                    let why = if answer.is_none() { "no terminal to ask at and no --yes" } else { "declined" };
                    return Err(format!(
                        "the database is restored, but the App Runner service was left PAUSED ({why}): {note}"
                    ));
                }
            }
        }
        run.out.info("    resuming the App Runner service");
        change(service.as_ref(), Change::Resume, run.env.timeouts.service, &run.out).await?;
    }

    if let Some(r) = run.record.restore.as_mut() {
        r.restored_cluster = final_id.clone();
        r.endpoint = info.endpoint.clone();
    }
    let _ = run.save();

    let verified =
        verify(run).await.map_err(|e| format!("the restored database is in place, but verify failed: {e}"))?;
    let mut done = format!("{final_id} restored from {}", names.snapshot_id);
    if let Some(failed) = &names.failed_cluster {
        done.push_str(&format!("; failed database kept as {failed}"));
    }
    if let Some(v) = verified {
        done.push_str(&format!("; {v}"));
    }
    Ok(done)
}

async fn db_exists(run: &Run, id: &str) -> Result<bool, String> {
    let db = run.cloud.database.clone();
    call("describe a database", || db.describe(id))
        .await
        .map(|d| d.is_some())
        .map_err(|e| format!("cannot describe {id}: {e}"))
}

async fn wait_database(run: &Run, id: &str, limit: Duration) -> Result<ClusterInfo, String> {
    let db = run.cloud.database.clone();
    let what = format!("database {id}");
    wait_for(
        &what,
        limit,
        PollPolicy::default(),
        || async {
            match db.describe(id).await? {
                Some(info) if info.is_available() => Ok(Poll::Ready(info)),
                Some(info) => Ok(Poll::Pending(info.status)),
                None => Ok(Poll::Pending("not visible yet".into())),
            }
        },
        |state, waited| run.progress(&what, state, waited),
    )
    .await
    .map_err(|e| e.to_string())
}

/// A deployment the pause waited out that succeeded (or whose end is unknown):
/// resuming would start its version on the restored database. What to tell.
async fn landed_deployment(service: &dyn AppService, waited: &[WaitedOut]) -> Option<String> {
    let w = waited.iter().find(|w| w.op.may_deploy() && w.succeeded != Some(false))?;
    let image = match service.image().await {
        Ok(Some(image)) => image,
        _ => "the service's current version".to_string(),
    };
    let ended = if w.succeeded == Some(true) { "succeeded" } else { "ended (how is not known)" };
    let what = if w.op.kind == "UNKNOWN" {
        "an App Runner operation ferry could not identify (it was not listed yet; it may have been a deployment)"
            .to_string()
    } else {
        format!("{} operation {}", w.op.kind, w.op.id)
    };
    Some(format!(
        "{what} {ended} while the restore waited for it: resuming the service starts {image} against the restored \
         database, and a start-up migration in it runs again"
    ))
}

/// Describe, from what exists now, where each database is; and whether the
/// App Runner service is paused.
async fn observe(run: &Run, cluster: &str, names: &RestoreRecord, progress: &Progress) -> (String, bool) {
    let mut ids = vec![cluster.to_string(), names.staging_cluster.clone()];
    ids.extend(names.failed_cluster.clone());
    let mut parts = Vec::new();
    for id in ids {
        let db = run.cloud.database.clone();
        let seen = match tokio::time::timeout(Duration::from_secs(30), db.describe(&id)).await {
            Ok(Ok(Some(info))) => info.status,
            Ok(Ok(None)) => "does not exist".into(),
            Ok(Err(e)) => format!("unknown ({e})"),
            Err(_) => "unknown (no answer)".into(),
        };
        parts.push(format!("{id}: {seen}"));
    }
    let mut paused = false;
    if let Some(service) = run.cloud.service.clone() {
        let seen = match tokio::time::timeout(Duration::from_secs(30), service.status()).await {
            Ok(Ok(s)) => s.status,
            _ => "unknown".into(),
        };
        paused = seen == "PAUSED";
        if paused {
            parts.push(format!(
                "the App Runner service is PAUSED: the app is down until `ferry service resume {}`",
                run.env.name
            ));
        } else {
            parts.push(format!("App Runner service: {seen}"));
        }
    }
    let head = match &progress.database_in_place {
        Some(id) => format!("{id} holds the data of snapshot {}", names.snapshot_id),
        None => "restore incomplete".to_string(),
    };
    (format!("{head}; {}; no database was deleted", parts.join("; ")), paused)
}
