//! What `ferry restore` restores and, before anyone confirms it, what it will do.

use chrono::{DateTime, Utc};

use super::CommandError;
use ferry_core::config::values::format_duration;
use ferry_core::config::{EnvConfig, HumanDuration, ProviderKind, RestoreStrategy};
use ferry_core::provider::{Cloud, Snapshot, SnapshotStatus, TAG_RUN_ID};
use ferry_core::runbook::journal::read_run;
use ferry_core::runbook::record::{RunRecord, StepStatus};
use ferry_core::state::Store;

/// The snapshot to restore: the one named, or for `latest` the newest available
/// pre-deploy snapshot ferry took for this environment.
pub async fn source(cloud: &Cloud, env: &EnvConfig, wanted: &str) -> Result<Snapshot, CommandError> {
    let db = cloud.database.cluster_id().to_string();
    if wanted != "latest" {
        return match cloud.database.describe_snapshot(wanted).await? {
            Some(s) if s.status == SnapshotStatus::Available => Ok(s),
            Some(s) => Err(CommandError::Usage(format!(
                "snapshot {wanted} is {}, not available; nothing was done (`ferry snapshot list {}` shows the others)",
                s.status, env.name
            ))),
            None => Err(CommandError::Usage(format!(
                "snapshot {wanted} not found; nothing was done (`ferry snapshot list {}` shows those of {db})",
                env.name
            ))),
        };
    }
    let mut snaps = cloud.database.list_snapshots().await?;
    snaps.retain(|s| s.status == SnapshotStatus::Available && s.is_ferry_pre_deploy(&env.name));
    snaps.sort_by_key(|s| s.created_at);
    snaps.pop().ok_or_else(|| {
        CommandError::Failed(format!(
            "{db} has no available pre-deploy snapshot taken by ferry for {}; nothing was done. \
             `ferry snapshot list {}` shows every snapshot; pass one with --snapshot <id>",
            env.name, env.name
        ))
    })
}

/// What a restore brings back, for the lines shown before it asks.
pub enum Restoring<'a> {
    Snapshot(&'a Snapshot),
    PointInTime(DateTime<Utc>),
}

/// `--to-time`: RFC 3339 (`2026-12-07T14:02:00Z`, any offset) or a duration
/// ago (`45m`, `2h`, counted back from `now`). A time in the future is refused.
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let at = match DateTime::parse_from_rfc3339(text.trim()) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => match HumanDuration::parse(text.trim()) {
            Ok(ago) => now - chrono::Duration::from_std(ago.0).map_err(|e| format!("--to-time {text:?}: {e}"))?,
            Err(_) => {
                return Err(format!(
                    "--to-time {text:?} is neither an RFC 3339 time (2026-12-07T14:02:00Z) nor a duration ago (45m, \
                     2h); nothing was done"
                ));
            }
        },
    };
    if at > now {
        return Err(format!("--to-time {} is in the future; nothing was done", ferry_core::output::timestamp(at)));
    }
    Ok(at)
}

/// `--before-run RUN`: the pre-deploy snapshot that run took, from its record.
pub fn snapshot_of_run(store: &Store, env: &EnvConfig, run_id: &str) -> Result<String, CommandError> {
    let run_id = ferry_core::runbook::record::RunId::parse(run_id)
        .map_err(|e| CommandError::Usage(format!("--before-run {e}; nothing was done")))?;
    let record = read_run(store, &run_id).map_err(|e| {
        CommandError::Usage(format!("--before-run {run_id}: {e}; nothing was done (`ferry runs list` shows the runs)"))
    })?;
    if record.env != env.name {
        return Err(CommandError::Usage(format!(
            "--before-run {run_id} is a run of environment {}, not {}; nothing was done",
            record.env, env.name
        )));
    }
    match record.snapshot {
        Some(s) if s.status == SnapshotStatus::Available => Ok(s.id),
        Some(s) => Err(CommandError::Usage(format!(
            "run {run_id}'s snapshot {} is {}, not available; nothing was done",
            s.id, s.status
        ))),
        None => Err(CommandError::Usage(format!(
            "run {run_id} took no snapshot; nothing was done (`ferry snapshot list {}` shows the ones there are)",
            env.name
        ))),
    }
}

/// `--to-time`: the provider can restore to a point in time, and `at` is in
/// the window it can reach now. Otherwise exit 2, naming the window.
pub async fn check_window(cloud: &Cloud, env: &EnvConfig, at: DateTime<Utc>) -> Result<(), CommandError> {
    let shown = ferry_core::output::timestamp;
    match cloud.database.restorable_window().await? {
        None => Err(CommandError::Usage(format!(
            "{}: the {} provider has no point-in-time restore; restore a snapshot instead (--snapshot, `ferry \
             snapshot list {}`); nothing was done",
            env.name,
            env.provider.as_str(),
            env.name
        ))),
        Some((earliest, latest)) if at < earliest || at > latest => Err(CommandError::Usage(format!(
            "--to-time {} is outside the window {} can be restored to, {} to {}; nothing was done",
            shown(at),
            cloud.database.cluster_id(),
            shown(earliest),
            shown(latest)
        ))),
        Some(_) => Ok(()),
    }
}

/// What a restore will do, in this environment's names.
pub fn describe(
    env: &EnvConfig,
    cloud: &Cloud,
    what: &Restoring<'_>,
    strategy: RestoreStrategy,
    history: &[RunRecord],
) -> Vec<String> {
    let db = cloud.database.cluster_id();
    let (source, from, restored_what) = match what {
        Restoring::Snapshot(snapshot) => {
            (format!("snapshot {} ({})", snapshot.id, taken(snapshot)), "the snapshot", "the snapshot")
        }
        Restoring::PointInTime(at) => (
            format!("its state at {} (a point-in-time restore)", ferry_core::output::timestamp(*at)),
            "that time",
            "that state",
        ),
    };
    let estimate = match past_restore_minutes(history, &env.name) {
        Some(m) => format!("about {m} min, as long as the last restore of {} took", env.name),
        None => match env.provider {
            ProviderKind::Aws => "usually 10-30 min for Aurora".to_string(),
            ProviderKind::Local => "seconds to minutes for a local database".to_string(),
        },
    };
    let estimate = format!("{estimate} (at most the restore timeout, {})", format_duration(env.timeouts.restore));

    let restored = cloud.database.sibling_id("restored-<ts>-<run hex>");
    let mut steps = Vec::new();
    if env.service.is_some() {
        steps.push(format!("pause the App Runner service: the app is down for the whole restore, {estimate}"));
    }
    steps.push(format!("restore {restored_what} to a new database, {restored}"));
    match strategy {
        RestoreStrategy::Rename => {
            let failed = cloud.database.sibling_id("failed-<ts>-<run hex>");
            steps.push(format!(
                "rename {db} to {failed} (kept with all its current data, never deleted), and {restored} to {db}: \
                 clients keep using the same name"
            ));
            steps.push(if env.restore.stop_set_aside {
                format!(
                    "once {db}'s name resolves to the restored database, stop {failed}: a client holding its old \
                     address cannot write into it (storage kept; restore.stop_set_aside = false keeps it running)"
                )
            } else {
                format!("leave {failed} running (restore.stop_set_aside = false)")
            });
        }
        RestoreStrategy::NewCluster => {
            let repoint = match &env.service {
                Some(s) => format!("point the service's {} at its endpoint", s.database_url_var),
                None => "point your clients at it (ferry prints its endpoint)".into(),
            };
            steps.push(format!("keep {restored} under its new name and {repoint}; {db} is left as it is"));
        }
    }
    if env.service.is_some() {
        steps.push(
            "resume the App Runner service (if a deployment in progress had to be waited for and succeeded, ferry \
             asks first: that version would start against the restored database; --yes resumes)"
                .into(),
        );
    }
    if let Some(h) = &env.health {
        steps.push(format!("check {} answers {}", h.url, h.expect_status));
    }
    let mut lines = vec![format!("ferry restore {}: {db} from {source}", env.name)];
    lines.extend(steps.iter().enumerate().map(|(i, s)| format!("  {}. {s}", i + 1)));
    if env.service.is_none() {
        lines.push(format!("  The restore takes {estimate}."));
    }
    lines.push(format!(
        "  Writes to {db} after {from} are not in the restored database: they stay in the kept copy. \
         Nothing is deleted, the snapshot included."
    ));
    lines
}

/// When the snapshot was taken, and before which run.
fn taken(snapshot: &Snapshot) -> String {
    let mut taken = match snapshot.created_at {
        Some(t) => format!(
            "taken {}, {} ago",
            ferry_core::output::timestamp(t),
            format_duration(std::time::Duration::from_secs((Utc::now() - t).num_seconds().max(0) as u64))
        ),
        None => "creation time unknown".into(),
    };
    if let Some(run) = snapshot.tags.get(TAG_RUN_ID) {
        taken.push_str(&format!(", before run {run}"));
    }
    taken
}

/// Minutes the newest completed restore of `env` took, from the journals.
fn past_restore_minutes(history: &[RunRecord], env: &str) -> Option<u64> {
    history
        .iter()
        .filter(|r| r.env == env)
        .filter_map(|r| r.step(ferry_core::runbook::record::StepName::Restore))
        .filter(|s| s.status == StepStatus::Succeeded)
        .filter_map(|s| Some((s.ended_at?, (s.ended_at? - s.started_at?).num_seconds())))
        .max_by_key(|(ended, _)| *ended)
        .map(|(_, secs)| (secs.max(0) as u64).div_ceil(60).max(1))
}
