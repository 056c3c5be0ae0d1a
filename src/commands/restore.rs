//! What `ferry restore` restores and, before anyone confirms it, what it will do.

use chrono::Utc;

use super::CommandError;
use ferry_core::config::values::format_duration;
use ferry_core::config::{EnvConfig, ProviderKind, RestoreStrategy};
use ferry_core::provider::{Cloud, Snapshot, SnapshotStatus, TAG_RUN_ID};
use ferry_core::runbook::record::{RunRecord, StepStatus};

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

/// What a restore will do, in this environment's names.
pub fn describe(
    env: &EnvConfig,
    cloud: &Cloud,
    snapshot: &Snapshot,
    strategy: RestoreStrategy,
    history: &[RunRecord],
) -> Vec<String> {
    let db = cloud.database.cluster_id();
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
    steps.push(format!("restore the snapshot to a new database, {restored}"));
    match strategy {
        RestoreStrategy::Rename => steps.push(format!(
            "rename {db} to {} (kept with all its current data, never deleted), and {restored} to {db}: \
             clients keep using the same name",
            cloud.database.sibling_id("failed-<ts>-<run hex>")
        )),
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
    let mut lines = vec![format!("ferry restore {}: {db} from snapshot {} ({taken})", env.name, snapshot.id)];
    lines.extend(steps.iter().enumerate().map(|(i, s)| format!("  {}. {s}", i + 1)));
    if env.service.is_none() {
        lines.push(format!("  The restore takes {estimate}."));
    }
    lines.push(format!(
        "  Writes to {db} after the snapshot are not in the restored database: they stay in the kept copy. \
         Nothing is deleted, the snapshot included."
    ));
    lines
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
