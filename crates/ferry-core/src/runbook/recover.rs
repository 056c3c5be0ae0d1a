//! What the cloud itself says about an environment in the middle of a change,
//! for when no run record survived (the CI runner that held it is gone, the
//! state was lost): the environment's database, the databases restores left
//! beside it (`-restored-`, `-failed-`, tagged with the run), the migration
//! tasks ferry started and the app service. From that picture, the state
//! in plain words and the one command that finishes the job.

use super::record::{RestoreRecord, RunId, RunKind, RunOptions, RunRecord, StepName, StepStatus};
use crate::config::RestoreStrategy;
use crate::config::values::format_duration;
use crate::provider::{Cloud, ClusterInfo, Leftover, LeftoverKind, PResult, ServiceInfo, TAG_RUN_ID, TaskSummary};

/// Everything read, read-only.
#[derive(Debug, Clone)]
pub struct Picture {
    pub cluster: String,
    pub original: Option<ClusterInfo>,
    pub restored: Vec<Leftover>,
    pub failed: Vec<Leftover>,
    /// Rehearsal clones left behind (a rehearsal killed before its cleanup):
    /// no part of a restore, but they cost money until deleted.
    pub clones: Vec<Leftover>,
    pub tasks: Vec<TaskSummary>,
    pub service: Option<ServiceInfo>,
}

/// What finishing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The environment's database is in place and no restore is half done.
    Settled,
    /// A restored database waits beside the original: a restore stopped before
    /// its swap (or used the new-cluster strategy on purpose).
    SwapNotStarted { restored: String },
    /// The original id is free, the original kept aside, the restored database
    /// not renamed in yet: the swap stopped halfway.
    SwapHalfDone { restored: String, failed: String },
    /// Nothing ferry can finish safely; a person must look.
    Human(String),
}

pub async fn look(cloud: &Cloud) -> PResult<Picture> {
    let db = cloud.database.clone();
    let original = db.describe(db.cluster_id()).await?;
    let leftovers = db.leftovers().await?;
    let tasks = cloud.runner.active_tasks().await?;
    let service = match &cloud.service {
        Some(s) => Some(s.status().await?),
        None => None,
    };
    Ok(Picture::new(db.cluster_id(), original, leftovers, tasks, service))
}

impl Picture {
    /// The picture from what was read of the environment (`ferry status` has
    /// read all but the leftovers already): the leftovers sorted by kind.
    pub fn new(
        cluster: &str,
        original: Option<ClusterInfo>,
        leftovers: Vec<Leftover>,
        tasks: Vec<TaskSummary>,
        service: Option<ServiceInfo>,
    ) -> Picture {
        let (clones, others): (Vec<Leftover>, Vec<Leftover>) =
            leftovers.into_iter().partition(|l| l.kind == LeftoverKind::Rehearsal);
        let (restored, failed) = others.into_iter().partition(|l| l.kind == LeftoverKind::Restored);
        Picture { cluster: cluster.to_string(), original, restored, failed, clones, tasks, service }
    }
}

/// The newest leftover: ids end in `-<yyyymmdd-hhmmss>-<run hex>` (older
/// ferry versions: `-<yyyymmdd-hhmmss>`), so the greatest id.
fn newest(list: &[Leftover]) -> Option<&Leftover> {
    list.iter().max_by(|a, b| a.id.cmp(&b.id))
}

pub fn verdict(p: &Picture) -> Verdict {
    if !p.tasks.is_empty() {
        return Verdict::Human(format!(
            "a migration task is still running ({}): wait for it (`ferry logs`) before finishing anything",
            p.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    match (&p.original, newest(&p.restored), newest(&p.failed)) {
        (Some(_), None, _) => Verdict::Settled,
        (Some(_), Some(r), _) => Verdict::SwapNotStarted { restored: r.id.clone() },
        (None, Some(r), Some(f)) => Verdict::SwapHalfDone { restored: r.id.clone(), failed: f.id.clone() },
        (None, Some(r), None) => Verdict::Human(format!(
            "{} does not exist and nothing was kept aside under a -failed- name, but {} does: \
             rename it yourself if it is the database to use",
            p.cluster, r.id
        )),
        (None, None, Some(f)) => Verdict::Human(format!(
            "{} does not exist; the newest database kept aside is {} (the data as the migration left it): \
             decide whether to rename it back or restore a snapshot (`ferry snapshot list`)",
            p.cluster, f.id
        )),
        (None, None, None) => {
            Verdict::Human(format!("{} does not exist and no restore left anything beside it", p.cluster))
        }
    }
}

/// The run a leftover belongs to, from its tags.
fn run_of(l: &Leftover) -> String {
    l.tags.get(TAG_RUN_ID).map(|r| format!(" (run {r})")).unwrap_or_default()
}

/// The state in plain words and the next command, for `ferry status`.
pub fn lines(p: &Picture, env: &str) -> Vec<String> {
    let mut out = Vec::new();
    match &p.original {
        Some(o) => out.push(format!("{} exists ({})", p.cluster, o.state())),
        None => out.push(format!("the id {} is free: no database has it", p.cluster)),
    }
    for l in p.restored.iter().chain(&p.failed) {
        let what =
            if l.kind == LeftoverKind::Restored { "restored from a snapshot" } else { "kept aside by a restore" };
        let age = l
            .age(chrono::Utc::now())
            .map(|a| {
                format!(", {} ago", format_duration(std::time::Duration::from_secs(a.num_seconds().max(0) as u64)))
            })
            .unwrap_or_default();
        let note = l.note.as_deref().map(|n| format!("; {n}")).unwrap_or_default();
        out.push(format!("{} is {} ({what}{}{age}){note}", l.id, l.status, run_of(l)));
    }
    for c in &p.clones {
        let next = match c.tags.get(crate::provider::TAG_RUN_ID) {
            Some(run) => format!("`ferry resume {run}` deletes it (unlock first if its ferry was killed)"),
            None => "it carries no run id: delete it yourself once you know whose it is".into(),
        };
        out.push(format!(
            "{} is {}: a rehearsal clone left behind{}, it costs until deleted; {next}",
            c.id,
            c.status,
            run_of(c)
        ));
    }
    if let Some(s) = &p.service {
        out.push(format!("the app service {} is {}", s.id, s.status));
    }
    match verdict(p) {
        Verdict::Settled => {}
        Verdict::SwapNotStarted { restored } => out.push(format!(
            "a restore stopped before its swap (or kept {restored} on purpose, with the new-cluster strategy); \
             next: ferry restore {env} --finish   (renames {} aside, kept, and {restored} to {})",
            p.cluster, p.cluster
        )),
        Verdict::SwapHalfDone { restored, failed } => out.push(format!(
            "a restore stopped halfway through its swap: {failed} holds the original, {restored} the restored data; \
             next: ferry restore {env} --finish   (renames {restored} to {})",
            p.cluster
        )),
        Verdict::Human(why) => out.push(format!("needs a person: {why}")),
    }
    out
}

/// A restore run that completes the swap `v` describes, as if the run that
/// began it were resumed: the preflight is settled (there is no snapshot to
/// check), the restore step re-runs idempotently from these names.
pub fn finishing_record(run_id: RunId, env: &str, v: &Verdict, p: &Picture, steps: &[StepName]) -> Option<RunRecord> {
    let (restored, failed) = match v {
        Verdict::SwapNotStarted { restored } => (restored.clone(), None),
        Verdict::SwapHalfDone { restored, failed } => (restored.clone(), Some(failed.clone())),
        Verdict::Settled | Verdict::Human(_) => return None,
    };
    // Which snapshot the restored database came from is not recorded in the
    // cloud; the finishing run says so instead of guessing.
    let snapshot = "(unknown: finished from the cloud)".to_string();
    let failed = failed.unwrap_or_else(|| {
        let stamp = super::record::name_stamp(chrono::Utc::now());
        // `<cluster>-failed-<ts>-<run hex>`, the name a restore gives the
        // original, with the finishing run's hex.
        let hex = super::record::run_suffix(&run_id);
        restored.rsplit_once("-restored-").map(|(base, _)| format!("{base}-failed-{stamp}-{hex}")).unwrap_or_default()
    });
    // The databases the half-done restore left carry its run id: the
    // finishing run accepts that run's work, and only that run's.
    let of_run = p.restored.iter().find(|l| l.id == restored).and_then(|l| l.tags.get(TAG_RUN_ID).cloned());
    let options = RunOptions {
        snapshot: Some(snapshot.clone()),
        strategy: Some(RestoreStrategy::Rename),
        ..RunOptions::default()
    };
    let mut record = RunRecord::new(run_id, env, RunKind::Restore, options, steps);
    let pre = record.step_mut(StepName::Preflight);
    pre.status = StepStatus::Skipped;
    pre.detail = Some("restore --finish: completing a restore from what the cloud shows".into());
    record.restore = Some(RestoreRecord {
        snapshot_id: snapshot,
        restored_cluster: restored.clone(),
        strategy: RestoreStrategy::Rename,
        failed_cluster: Some(failed),
        staging_cluster: restored,
        endpoint: None,
        differences: Vec::new(),
        notes: Vec::new(),
        of_run,
        to_time: None,
        discarded: None,
        set_aside: None,
    });
    Some(record)
}
