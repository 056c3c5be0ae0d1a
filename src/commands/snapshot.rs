//! `ferry snapshot create|list|wait|delete|prune`.

use chrono::Utc;

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::SnapshotCommand;
use ferry_core::config::check_snapshot_id;
use ferry_core::output::Redactor;
use ferry_core::provider::{Snapshot, SnapshotStatus};
use ferry_core::runbook::record::name_stamp;
use ferry_core::runbook::snapshot_tags;
use ferry_core::runbook::wait::call;

pub async fn run(ctx: &Context, c: SnapshotCommand) -> CmdResult {
    match c {
        SnapshotCommand::Create { env, wait, id } => create(ctx, &env, wait, id).await,
        SnapshotCommand::List { env, all } => list(ctx, &env, all).await,
        SnapshotCommand::Wait { env, id } => wait_for(ctx, &env, &id).await,
        SnapshotCommand::Delete { env, id } => delete(ctx, &env, &id).await,
        SnapshotCommand::Prune { env, keep } => prune(ctx, &env, keep).await,
    }
}

fn usage_id(id: &str) -> Result<(), CommandError> {
    check_snapshot_id(id).map_err(CommandError::Usage)
}

fn show(ctx: &Context, snaps: &[Snapshot]) -> Result<(), CommandError> {
    if ctx.json() {
        return print_json(&serde_json::json!({ "snapshots": snaps }), &Redactor::default());
    }
    if !snaps.is_empty() {
        crate::outln!(
            "{:<52} {:<9} {:<9} {:>4} {:<20} {:<10} RUN",
            "SNAPSHOT",
            "TYPE",
            "STATUS",
            "DONE",
            "CREATED",
            "PURPOSE"
        )?;
    }
    for s in snaps {
        let at = s.created_at.map(ferry_core::output::timestamp).unwrap_or_default();
        let purpose = s.tags.get(ferry_core::provider::TAG_PURPOSE).map(String::as_str).unwrap_or("-");
        let run = s.tags.get(ferry_core::provider::TAG_RUN_ID).map(String::as_str).unwrap_or("-");
        crate::outln!(
            "{:<52} {:<9} {:<9} {:>3}% {at:<20} {purpose:<10} {run}",
            s.id,
            s.kind.as_str(),
            s.status.to_string(),
            s.percent
        )?;
    }
    Ok(())
}

async fn create(ctx: &Context, env_name: &str, wait: bool, id: Option<String>) -> CmdResult {
    let env = ctx.env(env_name)?;
    // Not the pre-deploy prefix: a manual snapshot must not look like one `prune` may delete.
    let id = id.unwrap_or_else(|| format!("{}-{}-manual-{}", env.project, env.name, name_stamp(Utc::now())));
    usage_id(&id)?;
    ctx.guard(env, "create a snapshot")?;
    let cloud = ctx.cloud(env).await?;
    let _lock = lock(ctx, env, &cloud, "snapshot create")?;
    let db = cloud.database.clone();
    if db.describe_snapshot(&id).await?.is_some() {
        return Err(CommandError::Failed(format!(
            "snapshot {id} already exists; nothing was done (a snapshot is never overwritten): pick another --id"
        )));
    }
    let tags = snapshot_tags(&env.name, "manual", "manual");
    let mut snap = call("create the snapshot", || db.create_snapshot(&id, &tags)).await?;
    let out = ctx.reporter(Some(env));
    out.info(&format!("snapshot {id} of {}: {}", db.cluster_id(), snap.status));
    if wait && snap.status != SnapshotStatus::Available {
        snap = ferry_core::runbook::wait_new_snapshot(db.as_ref(), &id, env.timeouts.snapshot, &out, |_| {})
            .await
            .map_err(CommandError::Failed)?;
    }
    show(ctx, &[snap])?;
    Ok(0)
}

async fn list(ctx: &Context, env_name: &str, all: bool) -> CmdResult {
    let env = ctx.env(env_name)?;
    let cloud = ctx.cloud(env).await?;
    let mut snaps =
        if all { cloud.database.list_all_snapshots().await? } else { cloud.database.list_snapshots().await? };
    snaps.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    if snaps.is_empty() && !ctx.json() {
        eprintln!("no snapshots of {}", cloud.database.cluster_id());
    }
    show(ctx, &snaps)?;
    Ok(0)
}

async fn wait_for(ctx: &Context, env_name: &str, id: &str) -> CmdResult {
    let env = ctx.env(env_name)?;
    usage_id(id)?;
    let cloud = ctx.cloud(env).await?;
    let out = ctx.reporter(Some(env));
    let snap = ferry_core::runbook::wait_snapshot(cloud.database.as_ref(), id, env.timeouts.snapshot, &out, |_| {})
        .await
        .map_err(CommandError::Failed)?;
    show(ctx, &[snap])?;
    Ok(0)
}

async fn delete(ctx: &Context, env_name: &str, id: &str) -> CmdResult {
    let env = ctx.env(env_name)?;
    usage_id(id)?;
    let cloud = ctx.cloud(env).await?;
    if cloud.database.describe_snapshot(id).await?.is_none() {
        return Err(CommandError::Usage(format!(
            "snapshot {id} does not exist; `ferry snapshot list {}` shows the ones that do",
            env.name
        )));
    }
    let _lock = lock(ctx, env, &cloud, "snapshot delete")?;
    let (needed, unreadable) = needed_by(ctx)?;
    if let Some(run) = unreadable.first().filter(|r| ferry_core::runbook::record::is_run_of(r, &env.name)) {
        return Err(CommandError::Failed(format!(
            "run {run} has a journal that cannot be read, so whether it needs snapshot {id} is unknown; nothing was deleted \
             (`ferry runs list --env {}`; `{}` once it is settled)",
            env.name,
            super::abandon_command(run)
        )));
    }
    if let Some(run) = needed.into_iter().find(|(s, _)| s == id).map(|(_, r)| r) {
        return Err(CommandError::Usage(format!(
            "snapshot {id} is the pre-deploy snapshot of run {run}, which needs attention and may need it: \
             `ferry resume {run}` or `{}` first (`ferry runs show {run}`)",
            ferry_core::output::shell::join(&["ferry", "restore", &env.name, "--snapshot", id])
        )));
    }
    ctx.guard(env, &format!("delete snapshot {id}"))?;
    cloud.database.delete_snapshot(id).await?;
    eprintln!("deleted snapshot {id}");
    Ok(0)
}

/// Snapshots that runs may still restore from: those of runs that are running,
/// interrupted or need attention, unless a later `ferry restore` from that
/// snapshot succeeded. `(snapshot, run)`. Snapshot ids are unique per database,
/// so every environment's runs count (two environments may share a database).
/// The second list holds runs whose journal cannot be read: what they need is
/// unknown, so nothing of theirs may go.
/// `(snapshot, run)` pairs that are still needed, and unreadable run ids.
type Needed = (Vec<(String, String)>, Vec<String>);

fn needed_by(ctx: &Context) -> Result<Needed, CommandError> {
    use ferry_core::runbook::journal::{Listed, list_runs};
    use ferry_core::runbook::record::Outcome;
    let mut runs = Vec::new();
    let mut unreadable = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for env in ctx.config.envs.values() {
        let store = ctx.store(env)?;
        if !seen.insert(store.describe()) {
            continue;
        }
        for l in list_runs(&store, None).map_err(|e| CommandError::Failed(format!("{e}; nothing was deleted")))? {
            match l {
                Listed::Run(r) => runs.push(*r),
                Listed::Unreadable { run_id, .. } => unreadable.push(run_id),
            }
        }
    }
    let restored_later = |snapshot: &str, after: chrono::DateTime<Utc>| {
        runs.iter().any(|r| {
            r.command == ferry_core::runbook::record::RunKind::Restore
                && r.outcome == Outcome::Succeeded
                && r.started_at > after
                && r.restore.as_ref().is_some_and(|x| x.snapshot_id == snapshot)
        })
    };
    let needed = runs
        .iter()
        .filter(|r| r.blocks_env())
        .filter_map(|r| Some((r.snapshot.as_ref()?.id.clone(), r.run_id.to_string(), r.started_at)))
        .filter(|(snap, _, at)| !restored_later(snap, *at))
        .map(|(snap, run, _)| (snap, run))
        .collect();
    Ok((needed, unreadable))
}

/// Take the environment's lock for a snapshot change.
fn lock(
    ctx: &Context,
    env: &ferry_core::config::EnvConfig,
    cloud: &ferry_core::provider::Cloud,
    what: &str,
) -> Result<ferry_core::state::EnvLock, CommandError> {
    let store = ctx.store(env)?;
    ctx.lock(&store, env, cloud.database.cluster_id(), None, what)
}

/// Only ferry's own pre-deploy snapshots of this environment are candidates
/// (ARCHITECTURE.md promise 2); the newest `keep` of them stay.
async fn prune(ctx: &Context, env_name: &str, keep: usize) -> CmdResult {
    let env = ctx.env(env_name)?;
    let cloud = ctx.cloud(env).await?;
    let mut ours: Vec<Snapshot> = cloud
        .database
        .list_snapshots()
        .await?
        .into_iter()
        .filter(|s| s.is_ferry_pre_deploy(&env.name) && s.status == SnapshotStatus::Available)
        .collect();
    ours.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let _lock = lock(ctx, env, &cloud, "snapshot prune")?;
    let (needed, unreadable) = needed_by(ctx)?;
    if let Some(run) = unreadable.iter().find(|r| ferry_core::runbook::record::is_run_of(r, &env.name)) {
        return Err(CommandError::Failed(format!(
            "run {run} has a journal that cannot be read, so which snapshots it needs is unknown; nothing was deleted \
             (`{}` once it is settled)",
            super::abandon_command(run)
        )));
    }
    let doomed: Vec<Snapshot> = ours
        .into_iter()
        .skip(keep)
        .filter(|s| match needed.iter().find(|(id, _)| *id == s.id) {
            Some((_, run)) => {
                eprintln!("keeping snapshot {}: run {run} has not finished well and may need it", s.id);
                false
            }
            None => true,
        })
        .collect();
    if doomed.is_empty() {
        eprintln!("nothing to prune: at most {keep} ferry pre-deploy snapshots of {}", env.name);
        show(ctx, &[])?;
        return Ok(0);
    }
    ctx.guard(env, &format!("delete {} snapshots", doomed.len()))?;
    let mut deleted = Vec::new();
    for s in doomed {
        if let Err(e) = cloud.database.delete_snapshot(&s.id).await {
            return Err(CommandError::NeedsAttention(format!(
                "deleted {} snapshots, then {} failed: {e}",
                deleted.len(),
                s.id
            )));
        }
        eprintln!("deleted snapshot {}", s.id);
        deleted.push(s);
    }
    show(ctx, &deleted)?;
    Ok(0)
}
