//! `ferry restore`: what it restores (a snapshot, the run's snapshot, a point
//! in time), what it will do before anyone confirms it, and the run that does
//! it; `--finish` completes a restore from what the cloud shows.

use chrono::{DateTime, Utc};

use super::start::{Started, execute, start_with};
use super::{CmdResult, CommandError, Context};
use crate::cli::RestoreArgs;
use ferry_core::config::values::format_duration;
use ferry_core::config::{
    self, EnvConfig, HumanDuration, ProviderKind, RestoreStrategy, RunnerKind, check_restore_snapshot,
};
use ferry_core::provider::{Cloud, Snapshot, SnapshotStatus, TAG_RUN_ID};
use ferry_core::runbook::journal::{Journal, Listed, read_run, readable_runs};
use ferry_core::runbook::record::{RestoreSource, RunKind, RunOptions, RunRecord, StepStatus, new_run_id};
use ferry_core::runbook::{Run, plan};
use ferry_core::state::Store;

pub async fn restore(ctx: &Context, a: RestoreArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    if a.finish {
        return finish(ctx, env).await;
    }
    let strategy = a.strategy.map_or(env.restore_strategy, RestoreStrategy::from);
    if strategy == RestoreStrategy::NewCluster && env.migration.runner == RunnerKind::Apprunner {
        return Err(CommandError::Usage(format!("{}: {}", env.name, config::APPRUNNER_NEW_CLUSTER)));
    }
    if let Some(text) = &a.to_time {
        let at = parse_time(text, Utc::now()).map_err(CommandError::Usage)?;
        return restore_to_time(ctx, env, at, strategy).await;
    }
    let store = ctx.store(env)?;
    let wanted = match (&a.snapshot, &a.before_run) {
        (Some(s), _) => s.clone(),
        (None, Some(run)) => snapshot_of_run(&store, env, run)?,
        (None, None) => {
            return Err(CommandError::Usage("say what to restore: --snapshot, --to-time or --before-run".into()));
        }
    };
    if wanted != "latest" {
        check_restore_snapshot(&wanted).map_err(CommandError::Usage)?;
    }
    let cloud = ctx.cloud(env).await?;
    let snapshot = source(&cloud, env, &wanted).await?;
    let out = ctx.reporter(Some(env));
    let history = readable_runs(&store, Some(&env.name));
    let what = Restoring::Snapshot(&snapshot);
    for line in describe(env, &cloud, &what, strategy, &history) {
        out.info(&line);
    }
    ctx.ask_before_restore(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore")?;
    let resolves = restore_may_settle(ctx, &store, env, cloud.database.cluster_id(), &snapshot.id)?;
    let source = RestoreSource::Snapshot(snapshot.id.clone());
    let steps = plan::restore_plan(env, super::describe(env).as_ref(), &source, strategy).names();
    let options = RunOptions { snapshot: Some(snapshot.id), strategy: Some(strategy), ..RunOptions::default() };
    let code =
        start_with(ctx, Started { env, cloud, store: &store, run_id, command: RunKind::Restore, options }, &steps)
            .await?;
    if code == 0 {
        settle(&store, &resolves, &lock, &out);
    }
    Ok(code)
}

/// `ferry restore ENV --to-time T`: the database as it was at `at`, through
/// the same twin, swap, lock and journal as a snapshot restore. A provider
/// without point-in-time restore, or a time outside the window the database
/// can be restored to, is exit 2 before anything is created.
async fn restore_to_time(
    ctx: &Context,
    env: &EnvConfig,
    at: chrono::DateTime<Utc>,
    strategy: RestoreStrategy,
) -> CmdResult {
    let cloud = ctx.cloud(env).await?;
    check_window(&cloud, env, at).await?;
    let store = ctx.store(env)?;
    let out = ctx.reporter(Some(env));
    let history = readable_runs(&store, Some(&env.name));
    for line in describe(env, &cloud, &Restoring::PointInTime(at), strategy, &history) {
        out.info(&line);
    }
    ctx.ask_before_restore(env)?;
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore")?;
    ctx.refuse_unfinished(&store, env, cloud.database.cluster_id(), None)?;
    let steps =
        plan::restore_plan(env, super::describe(env).as_ref(), &RestoreSource::PointInTime(at), strategy).names();
    let options = RunOptions { to_time: Some(at), strategy: Some(strategy), ..RunOptions::default() };
    start_with(ctx, Started { env, cloud, store: &store, run_id, command: RunKind::Restore, options }, &steps).await
}

/// `ferry restore ENV --finish`: complete, from the cloud alone, a rename swap
/// that a restore began and did not end. Not blocked by unfinished runs (it is
/// how one is settled when its record is gone), but it holds the lock.
async fn finish(ctx: &Context, env: &EnvConfig) -> CmdResult {
    use ferry_core::runbook::recover::{Verdict, finishing_record, lines, look, verdict};
    let cloud = ctx.cloud(env).await?;
    let store = ctx.store(env)?;
    let out = ctx.reporter(Some(env));
    let run_id = new_run_id(&env.name, Utc::now());
    let _lock = ctx.lock(&store, env, cloud.database.cluster_id(), Some(&run_id), "restore --finish")?;
    let picture = look(&cloud).await.map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
    for line in lines(&picture, &env.name) {
        out.info(&line);
    }
    let v = verdict(&picture);
    let steps = plan::restore_plan(
        env,
        super::describe(env).as_ref(),
        &RestoreSource::Snapshot("(from the cloud)".into()),
        RestoreStrategy::Rename,
    )
    .names();
    let Some(mut record) = finishing_record(run_id, &env.name, &v, &picture, &steps) else {
        return match v {
            Verdict::Settled => {
                out.info(&format!("nothing to finish: {} is in place and no restore is half done", picture.cluster));
                Ok(0)
            }
            Verdict::Human(why) => Err(CommandError::Failed(format!("nothing was done: {why}"))),
            _ => Ok(0),
        };
    };
    ctx.guard(env, "finish the restore")?;
    if ctx.confirmer().ask("Finish the restore as described above?") == Some(false) {
        return Err(CommandError::Usage("declined; nothing was done".into()));
    }
    record.config_sha256 = ferry_core::provenance::file_sha256(&ctx.config.path);
    let journal = Journal::create(&store, &record, out.redactor().clone())
        .map_err(|e| CommandError::Failed(format!("{e}; nothing was done")))?;
    out.info(&format!("ferry restore {} --finish (run {}, journal {})", env.name, record.run_id, journal.location()));
    let mut run = Run { env: env.clone(), cloud, out, confirm: ctx.confirmer(), journal, record };
    execute(ctx, &mut run).await
}

/// An unfinished run blocks a restore, except a restore of that run's own
/// snapshot, confirmed by a person (or `--yes`): that is how a failed run that
/// did not restore is settled. Returns the runs the restore will settle.
fn restore_may_settle(
    ctx: &Context,
    store: &ferry_core::state::Store,
    env: &EnvConfig,
    database: &str,
    snapshot: &str,
) -> Result<Vec<String>, CommandError> {
    let blocking = ctx.unfinished_runs(store, env, database, None)?;
    let own = |l: &Listed| matches!(l, Listed::Run(r) if r.snapshot.as_ref().is_some_and(|s| s.id == snapshot));
    if let Some(other) = blocking.iter().find(|l| !own(l)) {
        return Err(CommandError::Failed(super::unfinished_message(env, other, blocking.len())));
    }
    if blocking.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = blocking.iter().map(|l| l.run_id().to_string()).collect();
    let question = format!(
        "Run {} is unfinished and {snapshot} is its pre-deploy snapshot. Restore it, and record the run as settled by this restore?",
        ids.join(", ")
    );
    match ctx.confirmer().ask(&question) {
        Some(true) => Ok(ids),
        Some(false) => Err(CommandError::Usage("declined; nothing was done".into())),
        None => Err(CommandError::Usage(format!(
            "run {} is unfinished; restoring its snapshot settles it, which needs a person's yes: pass --yes (or run at a terminal); nothing was done",
            ids.join(", ")
        ))),
    }
}

/// Record on each run that the restore `lock` belongs to settled it.
fn settle(
    store: &ferry_core::state::Store,
    runs: &[String],
    lock: &ferry_core::state::EnvLock,
    out: &ferry_core::output::Reporter,
) {
    let by = lock.holder().run_id.unwrap_or_default();
    for id in runs {
        let done = read_run(store, id).and_then(|mut r| {
            r.resolved_by = Some(by.clone());
            Journal::attach(store, id, out.redactor().clone()).save(&r)
        });
        match done {
            Ok(()) => out.info(&format!("run {id} is recorded as settled by run {by}")),
            Err(e) => out.warn(&format!("cannot record that run {by} settled run {id}: {e}")),
        }
    }
}

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
