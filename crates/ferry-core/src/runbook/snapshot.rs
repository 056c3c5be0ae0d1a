//! The snapshot step: take a snapshot tagged with the run and wait until it is
//! `available` (ARCHITECTURE.md promise 1: no migration starts before that).

use std::time::Duration;

use tokio::time::Instant;

use super::record::{RunRecord, SnapshotRecord, name_stamp, run_suffix};
use super::wait::{Poll, PollPolicy, WaitError, call, wait_for};
use super::{Run, StepError};
use crate::config::EnvConfig;
use crate::output::Reporter;
use crate::provider::{
    Database, PURPOSE_PRE_DEPLOY, ProviderError, Snapshot, SnapshotStatus, TAG_ENV, TAG_PURPOSE, TAG_RUN_ID,
    TableWrites, Tags,
};

/// The run's snapshot id: `<prefix>-<yyyymmdd-hhmmss>-<run hex>` of the run's
/// start and the run id's last 4 hex digits, so a resumed run finds the snapshot
/// its first attempt created, and two runs started in the same second never
/// share one.
pub fn snapshot_id_for(env: &EnvConfig, record: &RunRecord) -> String {
    format!("{}-{}-{}", env.snapshot_prefix, name_stamp(record.started_at), run_suffix(&record.run_id))
}

pub fn snapshot_tags(env: &str, run_id: &str, purpose: &str) -> Tags {
    Tags::from([
        (TAG_RUN_ID.to_string(), run_id.to_string()),
        (TAG_ENV.to_string(), env.to_string()),
        (TAG_PURPOSE.to_string(), purpose.to_string()),
    ])
}

pub async fn take_snapshot(run: &mut Run) -> Result<String, StepError> {
    // A run that already named its snapshot keeps that name.
    let id = run.record.snapshot.as_ref().map_or_else(|| snapshot_id_for(&run.env, &run.record), |s| s.id.clone());
    let tags = snapshot_tags(&run.env.name, &run.record.run_id, PURPOSE_PRE_DEPLOY);
    let baseline = match run.record.snapshot.as_ref().and_then(|s| s.baseline.clone()) {
        Some(kept) => Some(kept),
        None => write_counts(run).await,
    };
    let record = |status, percent| SnapshotRecord { id: id.clone(), status, percent, baseline: baseline.clone() };
    run.record.snapshot = Some(record(SnapshotStatus::Creating, 0));
    run.save()?;
    let db = run.cloud.database.clone();
    let created = call("create the snapshot", || db.create_snapshot(&id, &tags))
        .await
        .map_err(|e| StepError::Abort(format!("cannot create snapshot {id}: {e}")))?;
    if created.tags.get(TAG_RUN_ID).map(String::as_str) != Some(run.record.run_id.as_str()) {
        return Err(StepError::Abort(format!(
            "snapshot {id} already exists and was not taken by this run; it was left as it is (a snapshot is never overwritten)"
        )));
    }
    let out = run.out.clone();
    let limit = run.env.timeouts.snapshot;
    let result = wait_new_snapshot(db.as_ref(), &id, limit, &out, |snap| {
        run.record.snapshot = Some(record(snap.status, snap.percent));
        let _ = run.journal.save(&run.record);
    })
    .await;
    match result {
        Ok(s) => {
            run.record.snapshot = Some(record(s.status, s.percent));
            run.save()?;
            Ok(format!("snapshot {id} available"))
        }
        Err(e) => Err(StepError::Abort(e)),
    }
}

/// The database's per-table write counts now, where ferry can read them:
/// the baseline a restore from this snapshot measures discarded writes from.
/// Advisory: any failure leaves it out.
async fn write_counts(run: &Run) -> Option<Vec<TableWrites>> {
    let session = run.cloud.session.as_ref().ok()?.clone();
    match tokio::time::timeout(Duration::from_secs(15), session.write_counts()).await {
        Ok(Ok(counts)) => counts,
        _ => None,
    }
}

/// Wait for a snapshot to become available, reporting percent; `failed`, a
/// snapshot that does not exist, or the time limit end the wait with a message
/// naming the snapshot.
pub async fn wait_snapshot(
    db: &dyn Database,
    id: &str,
    limit: Duration,
    out: &Reporter,
    seen: impl FnMut(&Snapshot),
) -> Result<Snapshot, String> {
    wait_visible_snapshot(db, id, limit, Duration::ZERO, out, seen).await
}

/// [`wait_snapshot`] for a snapshot just created: the provider may not list it for a
/// while, so not finding it is waited out for [`VISIBILITY_GRACE`].
///
/// [`VISIBILITY_GRACE`]: super::service::VISIBILITY_GRACE
pub async fn wait_new_snapshot(
    db: &dyn Database,
    id: &str,
    limit: Duration,
    out: &Reporter,
    seen: impl FnMut(&Snapshot),
) -> Result<Snapshot, String> {
    wait_visible_snapshot(db, id, limit, super::service::VISIBILITY_GRACE, out, seen).await
}

async fn wait_visible_snapshot(
    db: &dyn Database,
    id: &str,
    limit: Duration,
    grace: Duration,
    out: &Reporter,
    mut seen: impl FnMut(&Snapshot),
) -> Result<Snapshot, String> {
    let what = format!("snapshot {id}");
    let latest: std::sync::Mutex<Option<Snapshot>> = std::sync::Mutex::new(None);
    let unseen: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last_percent = None;
    let waited = wait_for(
        &what,
        limit,
        PollPolicy::default(),
        || async {
            match db.describe_snapshot(id).await? {
                // Just created: the provider may not list it yet.
                None => {
                    let since = *unseen.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
                    if grace.is_zero() {
                        return Err(ProviderError::NotFound(format!("snapshot {id}")));
                    }
                    if since.elapsed() < grace {
                        return Ok(Poll::Pending("not visible yet".into()));
                    }
                    Err(ProviderError::Other(format!(
                        "snapshot {id} is still not visible {}s after it was created",
                        grace.as_secs()
                    )))
                }
                Some(s) if matches!(s.status, SnapshotStatus::Available | SnapshotStatus::Failed) => Ok(Poll::Ready(s)),
                Some(s) => {
                    let state = format!("{} {}%", s.status, s.percent);
                    let done = f64::from(s.percent) / 100.0;
                    *latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(s);
                    // PercentProgress guides when to look next.
                    Ok(Poll::Progress(state, done))
                }
            }
        },
        |state, waited| {
            out.progress(&what, state, waited);
            if let Some(s) = latest.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
                && last_percent != Some(s.percent)
            {
                last_percent = Some(s.percent);
                seen(s);
            }
        },
    )
    .await;
    match waited {
        Ok(s) if s.status == SnapshotStatus::Failed => Err(format!("snapshot {id} failed")),
        Ok(s) => Ok(s),
        Err(WaitError::TimedOut { waited, last, .. }) => {
            Err(format!("snapshot {id} was not available after {waited} (last seen: {last}); it was left as is"))
        }
        Err(WaitError::Failed(e)) => Err(format!("while waiting for snapshot {id}: {e}")),
    }
}
