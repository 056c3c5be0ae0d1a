//! `ferry status`: the environment as it is now, each part read once.

use super::{CmdResult, CommandError, Context, print_json};
use ferry_core::config::EnvConfig;
use ferry_core::output::Redactor;
use ferry_core::provider::{Cloud, ClusterInfo, ServiceInfo, Snapshot, TaskSummary};
use ferry_core::runbook::journal::{Listed, list_runs};
use ferry_core::runbook::record::RunRecord;
use ferry_core::state::Store;
use ferry_core::state::lock::{Holder, LockError};
use serde_json::json;

/// What `ferry status` shows of an environment, each part read once.
struct EnvStatus {
    database: Option<ClusterInfo>,
    /// The newest five.
    snapshots: Vec<Snapshot>,
    tasks: Vec<TaskSummary>,
    service: Option<ServiceInfo>,
    last: Option<RunRecord>,
    lock: Result<Option<(Holder, String)>, LockError>,
    blocking: Vec<Listed>,
    /// Why the runs could not be read: said, never shown as "no runs".
    state_error: Option<String>,
}

pub async fn status(ctx: &Context, env_name: &str) -> CmdResult {
    let env = ctx.env(env_name)?;
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let s = read_status(&cloud, &store, env).await?;
    if ctx.json() {
        let value = json!({
            "env": env.name,
            "database": s.database,
            "snapshots": s.snapshots,
            "running_tasks": s.tasks,
            "service": s.service,
            "last_run": s.last,
            "lock": s.lock.as_ref().ok().and_then(|l| l.as_ref().map(|(h, _)| h.clone())),
            "unfinished_runs": s.blocking.iter().map(|l| l.run_id()).collect::<Vec<_>>(),
            "state": store.describe(),
            "state_error": s.state_error,
        });
        print_json(&value, &Redactor::new(env.secrets()))?;
        return Ok(0);
    }
    print_status(env, cloud.database.cluster_id(), &s)?;
    // What the cloud shows of a restore, whether or not any record survived:
    // the leftovers, with what was read above.
    if let Ok(leftovers) = cloud.database.leftovers().await
        && let picture = ferry_core::runbook::recover::Picture::new(
            cloud.database.cluster_id(),
            s.database.clone(),
            leftovers,
            s.tasks.clone(),
            s.service.clone(),
        )
        && (picture.original.is_none()
            || !picture.restored.is_empty()
            || !picture.failed.is_empty()
            || !picture.clones.is_empty())
    {
        for line in ferry_core::runbook::recover::lines(&picture, &env.name) {
            crate::outln!("cloud      {line}")?;
        }
    }
    Ok(0)
}

async fn read_status(cloud: &Cloud, store: &Store, env: &EnvConfig) -> Result<EnvStatus, CommandError> {
    let db = cloud.database.clone();
    let database = db.describe(db.cluster_id()).await?;
    let mut snapshots = db.list_snapshots().await?;
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    snapshots.truncate(5);
    let tasks = cloud.runner.active_tasks().await?;
    let service = match &cloud.service {
        Some(s) => Some(s.status().await?),
        None => None,
    };
    // The environment's runs, read once (on S3 each is a request): the last
    // one, the unfinished ones, or why they cannot be read.
    let (listed, state_error) = match list_runs(store, Some(&env.name)) {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let last = listed.iter().find_map(|l| match l {
        Listed::Run(r) => Some(r.as_ref().clone()),
        Listed::Unreadable { .. } => None,
    });
    let lock = ferry_core::state::lock::read(store, db.cluster_id());
    let blocking = listed.into_iter().filter(|l| l.blocks()).collect();
    Ok(EnvStatus { database, snapshots, tasks, service, last, lock, blocking, state_error })
}

fn print_status(env: &EnvConfig, database: &str, s: &EnvStatus) -> Result<(), CommandError> {
    match &s.database {
        Some(i) => crate::outln!("database   {} ({}, {})", i.id, i.state(), i.engine)?,
        None => crate::outln!("database   {database} DOES NOT EXIST")?,
    }
    if s.snapshots.is_empty() {
        crate::outln!("snapshots  none")?;
    }
    for snap in &s.snapshots {
        let at = snap.created_at.map(ferry_core::output::timestamp).unwrap_or_default();
        crate::outln!("snapshot   {} {} {}% {at}", snap.id, snap.status, snap.percent)?;
    }
    if s.tasks.is_empty() {
        crate::outln!("migration  none running")?;
    }
    for t in &s.tasks {
        crate::outln!("migration  {} {}", t.id, t.status)?;
    }
    if let Some(svc) = &s.service {
        crate::outln!("service    {} {}", svc.id, svc.status)?;
    }
    match &s.last {
        Some(r) => crate::outln!("last run   {} {} {}", r.run_id, r.command, r.outcome_words())?,
        None => crate::outln!("last run   none")?,
    }
    if let Some(e) = &s.state_error {
        crate::outln!("state      UNREADABLE: {e} (runs and unfinished runs above are unknown)")?;
    }
    match &s.lock {
        Ok(Some((h, _))) => crate::outln!("lock       held: {}", h.describe())?,
        Ok(None) => crate::outln!("lock       free")?,
        Err(e) => crate::outln!("lock       {e}")?,
    }
    for l in &s.blocking {
        crate::outln!("unfinished {}", super::unfinished_status(env, l))?;
    }
    Ok(())
}
