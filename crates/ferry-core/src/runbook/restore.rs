//! Restore from a snapshot without ever deleting or overwriting a database
//! (ARCHITECTURE.md promise 2): the snapshot is restored beside the failed database, the failed
//! one is renamed aside and kept, and the restored one takes its name.
//! Every sub-step checks what exists first, so a resumed restore continues where
//! the earlier attempt stopped. Names are fixed in the journal at the first attempt
//! and carry the run (`<db>-restored-<yyyymmdd-hhmmss>-<run hex>`,
//! `<db>-failed-<…>-<run hex>`); a database found under one of them counts as
//! this run's work only when the provider says it carries this run's id (the
//! `ferry:run-id` tag, the local providers' run mark), never by its name.
//!
//! The restored database is built as the original's twin before the swap: the
//! cluster from the snapshot, then its instances (the writer, then the readers),
//! then the settings the restore call cannot carry, each with its own wait. After
//! the swap the two are compared and every difference is reported, never fixed
//! silently and never a reason to stop: the data is what matters.

use std::time::Duration;

use chrono::Utc;

use super::Run;
use super::fence::{account_discarded, fence, fence_summary};
use super::record::{RestoreRecord, RestoreSource, name_stamp, run_suffix};
use super::service::{Change, WaitedOut, change, change_waiting};
use super::verify::verify;
use super::wait::{Poll, PollPolicy, call, wait_for};
use crate::config::RestoreStrategy;
use crate::provider::{
    AppService, ClusterInfo, LeftoverKind, OperationKind, PURPOSE_RESTORE, RestoreWork, ServiceState, TAG_ENV,
    TAG_PURPOSE, TAG_RUN_ID, Tags, TwinReport,
};

/// Rounds of `complete_restore`: the writer, the readers, the settings, and
/// one spare for a create the platform did not show yet.
const TWIN_ROUNDS: usize = 4;

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

pub async fn restore(
    run: &mut Run,
    source: &RestoreSource,
    strategy: RestoreStrategy,
) -> Result<String, RestoreFailure> {
    let db = run.cloud.database.clone();
    let cluster = db.cluster_id().to_string();
    let names = match &run.record.restore {
        Some(r) if r.is_of(source) => r.clone(),
        _ => {
            // The names this run gave an earlier attempt, found by the run id
            // the databases carry (the record of them may have reached only
            // another machine's fallback file): never a second restore.
            let earlier = earlier_attempt(run).await;
            let stamp =
                earlier.unwrap_or_else(|| format!("{}-{}", name_stamp(Utc::now()), run_suffix(&run.record.run_id)));
            let staging = db.sibling_id(&format!("restored-{stamp}"));
            let (snapshot_id, to_time) = match source {
                RestoreSource::Snapshot(id) => (id.clone(), None),
                RestoreSource::PointInTime(t) => (String::new(), Some(*t)),
            };
            RestoreRecord {
                snapshot_id,
                to_time,
                discarded: None,
                set_aside: None,
                restored_cluster: staging.clone(),
                strategy,
                failed_cluster: (strategy == RestoreStrategy::Rename)
                    .then(|| db.sibling_id(&format!("failed-{stamp}"))),
                staging_cluster: staging,
                endpoint: None,
                differences: Vec::new(),
                notes: Vec::new(),
                of_run: None,
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

/// `<stamp>-<run hex>` of the databases an earlier attempt of this run left
/// beside the environment's (a `-failed-` or `-restored-` one carrying this
/// run's id), when there are any.
async fn earlier_attempt(run: &Run) -> Option<String> {
    let db = run.cloud.database.clone();
    let leftovers = call("list what restores left", || db.leftovers()).await.ok()?;
    leftovers.iter().find_map(|l| {
        let ours = l.tags.get(TAG_RUN_ID).map(String::as_str) == Some(run.record.run_id.as_str());
        if !ours || !matches!(l.kind, LeftoverKind::Restored | LeftoverKind::Failed) {
            return None;
        }
        let (_, rest) = l.id.rsplit_once(&format!("-{}-", l.kind))?;
        // `yyyymmdd-hhmmss-hhhh`, then a database file's extension, if any.
        let stamp = rest.get(..20)?;
        let b = stamp.as_bytes();
        let shaped = b[..8].iter().all(u8::is_ascii_digit)
            && b[8] == b'-'
            && b[9..15].iter().all(u8::is_ascii_digit)
            && b[15] == b'-'
            && b[16..].iter().all(|c| c.is_ascii_hexdigit());
        shaped.then(|| stamp.to_string())
    })
}

async fn steps(run: &mut Run, names: &RestoreRecord, progress: &mut Progress) -> Result<String, String> {
    let landed = pause_service(run).await?;
    // The original is renamed aside only once the restored twin is complete:
    // after that, building it again would make a second copy.
    let renamed_aside = match &names.failed_cluster {
        Some(failed) => ours(run, names, failed).await?,
        None => false,
    };
    if !renamed_aside {
        build_twin(run, names).await?;
    }
    let final_id = swap(run, names).await?;
    let info = wait_database(run, &final_id, run.env.timeouts.restore).await?;
    progress.database_in_place = Some(final_id.clone());
    let original = names.failed_cluster.clone().unwrap_or_else(|| run.cloud.database.cluster_id().to_string());
    compare_twin(run, &original, &final_id).await;
    account_discarded(run, names, &original).await;
    if let Some(failed) = &names.failed_cluster {
        fence(run, &final_id, failed).await;
    }
    resume_service(run, names, info.endpoint.as_deref(), landed.as_deref()).await?;

    if let Some(r) = run.record.restore.as_mut() {
        r.restored_cluster = final_id.clone();
        r.endpoint = info.endpoint.clone();
    }
    let _ = run.save();

    let verified =
        verify(run).await.map_err(|e| format!("the restored database is in place, but verify failed: {e}"))?;
    let mut done = format!("{final_id} restored from {}", names.source());
    if let Some(failed) = &names.failed_cluster {
        done.push_str(&format!("; failed database kept as {failed}"));
    }
    if let Some(r) = &run.record.restore {
        done.push_str(&fence_summary(r));
    }
    if let Some(v) = verified {
        done.push_str(&format!("; {v}"));
    }
    if let Some(r) = &run.record.restore {
        done.push_str(&twin_summary(r));
    }
    Ok(done)
}

/// Pause the app service, if any. `Some`: a deployment the pause waited
/// for landed, which the resume must ask about.
async fn pause_service(run: &Run) -> Result<Option<String>, String> {
    let Some(service) = run.cloud.service.clone() else { return Ok(None) };
    run.out.info(&format!("    pausing the {} service", service.platform()));
    let waited = change_waiting(service.as_ref(), Change::Pause, run.env.timeouts.service, &run.out).await?;
    let landed = landed_deployment(service.as_ref(), &waited).await;
    if let Some(note) = &landed {
        run.out.warn(note);
    }
    Ok(landed)
}

/// Put the restored twin in place: with the rename strategy the original goes
/// aside (kept) and the twin takes its name. Returns the twin's final id.
async fn swap(run: &Run, names: &RestoreRecord) -> Result<String, String> {
    let (RestoreStrategy::Rename, Some(failed)) = (&names.strategy, &names.failed_cluster) else {
        return Ok(names.staging_cluster.clone());
    };
    let db = run.cloud.database.clone();
    let cluster = db.cluster_id().to_string();
    let run_id = run.record.run_id.clone();
    if !ours(run, names, failed).await? {
        run.out.info(&format!("    renaming {cluster} to {failed} (kept)"));
        call("rename the failed database", || db.rename(&cluster, failed, &run_id))
            .await
            .map_err(|e| format!("cannot rename {cluster} to {failed}: {e}"))?;
    }
    wait_database(run, failed, run.env.timeouts.restore).await?;
    if ours(run, names, &names.staging_cluster).await? {
        run.out.info(&format!("    renaming {} to {cluster}", names.staging_cluster));
        call("rename the restored database", || db.rename(&names.staging_cluster, &cluster, &run_id))
            .await
            .map_err(|e| format!("cannot rename {} to {cluster}: {e}", names.staging_cluster))?;
    } else if !ours(run, names, &cluster).await? {
        // Renamed in by an earlier attempt only if the database now under
        // the environment's id is this run's restored one: its name alone
        // proves nothing.
        return Err(format!(
            "neither {} nor {cluster} is this run's restored database; where the restored data went is not known",
            names.staging_cluster
        ));
    }
    Ok(cluster)
}

/// Point the service at a new cluster (new-cluster strategy) and resume it;
/// after a landed deployment only with a person's yes.
async fn resume_service(
    run: &Run,
    names: &RestoreRecord,
    endpoint: Option<&str>,
    landed: Option<&str>,
) -> Result<(), String> {
    let Some(service) = run.cloud.service.clone() else { return Ok(()) };
    if names.strategy == RestoreStrategy::NewCluster
        && let (Some(endpoint), Some(cfg)) = (endpoint, run.env.service.clone())
    {
        run.out.info(&format!("    pointing {} at {endpoint}", cfg.database_url_var));
        let repoint = Change::Repoint { var: &cfg.database_url_var, host: endpoint };
        change(service.as_ref(), repoint, run.env.timeouts.service, &run.out).await?;
    }
    if let Some(note) = landed {
        let platform = service.platform();
        match run.confirm.ask(&format!("{note}. Resume the {platform} service now?")) {
            Some(true) => {}
            answer => {
                let why = if answer.is_none() { "no terminal to ask at and no --yes" } else { "declined" };
                return Err(format!(
                    "the database is restored, but the {platform} service was left paused ({why}): {note}"
                ));
            }
        }
    }
    run.out.info(&format!("    resuming the {} service", service.platform()));
    change(service.as_ref(), Change::Resume, run.env.timeouts.service, &run.out).await?;
    Ok(())
}

/// The tags of a database this run restores, set in the create call.
fn restore_tags(run: &Run) -> Tags {
    Tags::from([
        (TAG_RUN_ID.to_string(), run.record.run_id.to_string()),
        (TAG_ENV.to_string(), run.env.name.to_string()),
        (TAG_PURPOSE.to_string(), PURPOSE_RESTORE.to_string()),
    ])
}

/// The snapshot restored beside the original, then made its twin: instances
/// (the writer, then the readers) and the settings the restore cannot carry.
/// Returns once the database and every instance of it are available.
async fn build_twin(run: &mut Run, names: &RestoreRecord) -> Result<(), String> {
    let db = run.cloud.database.clone();
    let limit = run.env.timeouts.restore;
    let staging = names.staging_cluster.clone();
    let tags = restore_tags(run);
    // A database already under this name must be this run's earlier attempt.
    ours(run, names, &staging).await?;
    run.out.info(&format!("    restoring {} to {staging}", names.source()));
    match names.to_time {
        Some(at) => call("restore to the point in time", || db.restore_to_time(at, &staging, &tags)).await,
        None => call("restore the snapshot", || db.restore_snapshot(&names.snapshot_id, &staging, &tags)).await,
    }
    .map_err(|e| format!("cannot restore {} to {staging}: {e}", names.source()))?;
    wait_cluster(run, &staging, limit).await?;
    for _ in 0..TWIN_ROUNDS {
        let work = call("complete the restored database", || db.complete_restore(&staging, &tags))
            .await
            .map_err(|e| format!("cannot complete {staging} as the twin of {}: {e}", db.cluster_id()))?;
        match work {
            None => break,
            Some(RestoreWork::Instances(ids)) => {
                run.out.info(&format!(
                    "    creating {} of {staging}: {}",
                    plural(ids.len(), "instance"),
                    ids.join(", ")
                ));
                wait_instances(run, &staging, limit).await?;
            }
            Some(RestoreWork::Settings(settings)) => {
                run.out.info(&format!(
                    "    applying to {staging} what the restore call cannot carry: {}",
                    settings.join(", ")
                ));
                wait_database(run, &staging, limit).await?;
                break;
            }
            Some(RestoreWork::Refused(why)) => {
                run.out.warn(&format!("{why}; the restore goes on and the comparison will show what differs"));
                if let Some(r) = run.record.restore.as_mut()
                    && !r.notes.contains(&why)
                {
                    r.notes.push(why);
                }
                let _ = run.save();
                break;
            }
        }
    }
    // The swap waits for the whole database: the cluster and every instance.
    wait_database(run, &staging, limit).await.map(|_| ())
}

/// Compare the restored database with the one it replaced and record what
/// differs. Never fails the restore: a comparison that cannot be made is
/// itself reported as a difference.
async fn compare_twin(run: &mut Run, original: &str, restored: &str) {
    let db = run.cloud.database.clone();
    let report = match call("compare the restored database", || db.compare(original, restored)).await {
        Ok(report) => report,
        Err(e) => TwinReport {
            differences: vec![format!("could not compare {restored} with {original}: {e}")],
            notes: Vec::new(),
        },
    };
    for d in &report.differences {
        run.out.warn(&format!("{restored} differs from {original}: {d}"));
    }
    for n in &report.notes {
        run.out.warn(n);
    }
    if let Some(r) = run.record.restore.as_mut() {
        r.differences = report.differences;
        for n in report.notes {
            if !r.notes.contains(&n) {
                r.notes.push(n);
            }
        }
    }
    let _ = run.save();
}

/// What the comparison found, to append to a restore's summary and `state:`;
/// empty when the restored database is the original's twin.
pub fn twin_summary(r: &RestoreRecord) -> String {
    let mut out = String::new();
    if !r.differences.is_empty() {
        out.push_str(&format!(
            "; WARNING: {} differs from the database it replaced in {}: {}",
            r.restored_cluster,
            plural(r.differences.len(), "setting"),
            r.differences.join("; ")
        ));
    }
    for n in &r.notes {
        out.push_str(&format!("; NOTE: {n}"));
    }
    out
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Whether database `id` exists as this run's work: `false` when it does not
/// exist, `true` when it carries this run's id (or, for `restore --finish`, the
/// id of the run it completes), an error when it exists as anyone else's. A
/// name that exists is never proof by itself: two runs in one second once
/// shared a name.
async fn ours(run: &Run, names: &RestoreRecord, id: &str) -> Result<bool, String> {
    let db = run.cloud.database.clone();
    if call("describe a database", || db.describe(id))
        .await
        .map_err(|e| format!("cannot describe {id}: {e}"))?
        .is_none()
    {
        return Ok(false);
    }
    let carries = call("read a database's run", || db.run_of(id))
        .await
        .map_err(|e| format!("cannot read which run made {id}: {e}"))?;
    let mine = [Some(run.record.run_id.as_str()), names.of_run.as_deref()];
    match carries {
        Some(r) if mine.contains(&Some(r.as_str())) => Ok(true),
        other => Err(format!(
            "{id} exists but is not this run's work ({}); ferry never takes a database for its own by its name: \
             look at it, then finish by hand",
            match other {
                Some(r) => format!("it carries run {r}"),
                None => "it carries no ferry run id".to_string(),
            }
        )),
    }
}

/// What a wait waits for.
#[derive(Clone, Copy)]
enum Until {
    /// The cluster itself (not its instances, which may not exist yet).
    Cluster,
    /// Every instance of it.
    Instances,
    /// The cluster and every instance: the whole database serves.
    Database,
}

async fn wait_database(run: &Run, id: &str, limit: Duration) -> Result<ClusterInfo, String> {
    wait_until(run, id, Until::Database, limit).await
}

async fn wait_cluster(run: &Run, id: &str, limit: Duration) -> Result<ClusterInfo, String> {
    wait_until(run, id, Until::Cluster, limit).await
}

async fn wait_instances(run: &Run, id: &str, limit: Duration) -> Result<ClusterInfo, String> {
    wait_until(run, id, Until::Instances, limit).await
}

async fn wait_until(run: &Run, id: &str, until: Until, limit: Duration) -> Result<ClusterInfo, String> {
    let db = run.cloud.database.clone();
    let what = match until {
        Until::Cluster | Until::Database => format!("database {id}"),
        Until::Instances => format!("instances of {id}"),
    };
    wait_for(
        &what,
        limit,
        // A restore is the app's downtime: its clusters and instances report no
        // progress to estimate from, so they are looked at every 1-2 s (about
        // one describe call a second, well inside the provider's request budget).
        PollPolicy { cap: Duration::from_secs(2), ..PollPolicy::default() },
        || async {
            let Some(info) = db.describe(id).await? else { return Ok(Poll::Pending("not visible yet".into())) };
            let ready = match until {
                Until::Cluster => info.status == "available",
                Until::Instances => info.pending_instances.is_empty(),
                Until::Database => info.is_available(),
            };
            Ok(if ready {
                Poll::Ready(info)
            } else if matches!(until, Until::Instances) {
                Poll::Pending(info.pending_instances.join(", "))
            } else {
                Poll::Pending(info.state())
            })
        },
        |state, waited| run.progress(&what, state, waited),
    )
    .await
    .map_err(|e| e.to_string())
}

/// A deployment the pause waited out that succeeded (or whose end is unknown):
/// resuming would start its version on the restored database. What to tell.
async fn landed_deployment(service: &dyn AppService, waited: &[WaitedOut]) -> Option<String> {
    let w = waited.iter().find(|w| w.op.kind.may_deploy() && w.succeeded != Some(false))?;
    let image = match service.image().await {
        Ok(Some(image)) => image,
        _ => "the service's current version".to_string(),
    };
    let ended = if w.succeeded == Some(true) { "succeeded" } else { "ended (how is not known)" };
    let what = if w.op.kind == OperationKind::Unidentified {
        format!(
            "an {} operation ferry could not identify (it was not listed yet; it may have been a deployment)",
            service.platform()
        )
    } else {
        format!("{} operation {}", w.op.kind, w.op.id)
    };
    Some(format!(
        "{what} {ended} while the restore waited for it: resuming the service starts {image} against the restored \
         database, and a start-up migration in it runs again"
    ))
}

/// Describe, from what exists now, where each database is; and whether the
/// app service is paused.
async fn observe(run: &Run, cluster: &str, names: &RestoreRecord, progress: &Progress) -> (String, bool) {
    let mut ids = vec![cluster.to_string(), names.staging_cluster.clone()];
    ids.extend(names.failed_cluster.clone());
    let mut parts = Vec::new();
    for id in ids {
        let db = run.cloud.database.clone();
        let seen = match tokio::time::timeout(Duration::from_secs(30), db.describe(&id)).await {
            Ok(Ok(Some(info))) => info.state(),
            Ok(Ok(None)) => "does not exist".into(),
            Ok(Err(e)) => format!("unknown ({e})"),
            Err(_) => "unknown (no answer)".into(),
        };
        parts.push(format!("{id}: {seen}"));
    }
    let mut paused = false;
    if let Some(service) = run.cloud.service.clone() {
        let platform = service.platform();
        let (seen, state) = match tokio::time::timeout(Duration::from_secs(30), service.status()).await {
            Ok(Ok(s)) => (s.status, s.state),
            _ => ("unknown".into(), ServiceState::Other),
        };
        paused = state == ServiceState::Paused;
        if paused {
            parts.push(format!(
                "the {platform} service is {seen}: the app is down until `ferry service resume {}`",
                run.env.name
            ));
        } else {
            parts.push(format!("{platform} service: {seen}"));
        }
    }
    let head = match &progress.database_in_place {
        Some(id) if names.to_time.is_some() => format!("{id} holds the data of {}", names.source()),
        Some(id) => format!("{id} holds the data of snapshot {}", names.snapshot_id),
        None => "restore incomplete".to_string(),
    };
    (format!("{head}; {}; no database was deleted", parts.join("; ")), paused)
}
