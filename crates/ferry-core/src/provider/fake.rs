//! An in-memory cloud for tests: databases, snapshots, tasks, logs and an app
//! service with state that changes over (tokio) time, plus scripted faults.
//! Not canned replies: the runbook's calls change its state, and tests inspect
//! that state afterwards to check the safety invariants.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

/// The operations faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Op {
    Describe,
    CreateSnapshot,
    DescribeSnapshot,
    ListSnapshots,
    DeleteSnapshot,
    RestoreSnapshot,
    CompleteRestore,
    Compare,
    Rename,
    StopSetAside,
    StartTask,
    PollTask,
    StopTask,
    ActiveTasks,
    ReadLogs,
    ServiceStatus,
    ServicePause,
    ServiceResume,
    OperationDone,
    Health,
    VersionRows,
    PrepareImage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The call fails (not retryable) without saying whether it took effect
    /// (a network error, a server error).
    Error,
    /// The platform refuses the request outright: it took no effect.
    Refused,
    /// The thing is gone from the platform's view for good (a task whose
    /// state was lost): describing it answers "not found" from now on.
    Lost,
    /// The call is throttled this many times, then goes through. As on AWS,
    /// the provider's own retry policy (provider/aws/mod.rs's attempts and
    /// backoff) absorbs it: every attempt counts as a call, and only when the
    /// attempts run out does the caller see [`ProviderError::Throttled`].
    Throttle(u32),
    /// The thing never finishes: a snapshot stays `creating`, a task keeps
    /// running, a restored database never becomes available, a service
    /// operation never ends; for other calls the call itself never answers.
    Hang,
    /// The platform has no room for it now and takes no effect (ECS RunTask's
    /// capacity failures): [`ProviderError::NoCapacity`].
    NoCapacity,
    /// The call takes effect, then the process "dies": [`FakeCloud::killed`]
    /// fires and the call never returns.
    Kill,
}

/// What the migration task does when it runs.
#[derive(Debug, Clone)]
pub struct TaskScript {
    pub runtime: Duration,
    pub exit_code: Option<i32>,
    /// Reason when the task never gets to run (PENDING → STOPPED).
    pub start_failure: Option<String>,
    pub logs: Vec<String>,
    /// How long after a line is written it becomes readable (a log service
    /// that ingests asynchronously: the last lines arrive after the stop).
    pub ingest_delay: Duration,
    /// A failure that leaves the data as it was (the migration's transaction
    /// rolled back): nothing is appended to the data, so the schema's
    /// fingerprint stays.
    pub rolls_back: bool,
    /// The version table's rows once it ends, when it changes them.
    pub versions_after: Option<Vec<String>>,
}

impl TaskScript {
    pub fn succeeds() -> Self {
        TaskScript {
            runtime: Duration::from_secs(20),
            exit_code: Some(0),
            start_failure: None,
            logs: vec!["upgrading 001 -> 002".into(), "done".into()],
            ingest_delay: Duration::ZERO,
            rolls_back: false,
            versions_after: None,
        }
    }

    /// Alembic in one transaction, failing on `lock_timeout` and rolling back.
    pub fn lock_timeout() -> Self {
        TaskScript {
            exit_code: Some(1),
            rolls_back: true,
            logs: vec![
                "INFO  [alembic.runtime.migration] Will assume transactional DDL.".into(),
                "INFO  [alembic.runtime.migration] Running upgrade 002 -> 003".into(),
                "psycopg.errors.LockNotAvailable: canceling statement due to lock timeout".into(),
            ],
            ..TaskScript::succeeds()
        }
    }
    pub fn fails_halfway() -> Self {
        TaskScript {
            exit_code: Some(1),
            logs: vec!["upgrading 002 -> 003".into(), "ERROR: column \"x\" does not exist".into()],
            ..TaskScript::succeeds()
        }
    }
}

#[derive(Debug, Clone)]
pub struct FakeDb {
    /// Stands for the data: every change appends to it.
    pub data: String,
    /// Each change: when it was made and the data before it (what a
    /// point-in-time restore to an earlier time gets).
    pub history: Vec<(chrono::DateTime<Utc>, String)>,
    /// When it was created: the start of its restorable window.
    pub created: chrono::DateTime<Utc>,
    /// Stopped by `stop_set_aside`.
    pub stopped: bool,
    /// Tags, as the create call and renames set them.
    pub tags: Tags,
    /// Its instances (the writer first) and when each serves.
    pub instances: Vec<String>,
    instances_ready_at: Vec<Instant>,
    ready_at: Instant,
    never_ready: bool,
}

#[derive(Debug, Clone)]
struct FakeSnapshot {
    snapshot: Snapshot,
    data: String,
    created: Instant,
    ready_at: Instant,
    never_ready: bool,
}

#[derive(Debug, Clone)]
pub struct FakeTask {
    pub run_id: String,
    /// Whether a snapshot tagged with this run was `available` when it started (ARCHITECTURE.md promise 1).
    pub snapshot_available_at_start: bool,
    started: Instant,
    script: TaskScript,
    hang: bool,
    stopped_at: Option<Instant>,
    applied: bool,
    /// The revision it ran (`--image`), as `TaskSpec::task_definition` named it.
    pub task_definition: Option<String>,
    /// Which attempt of the run's migration it is (`TaskSpec::attempt`).
    pub attempt: u32,
}

impl FakeTask {
    /// Its failure leaves the data as it was.
    pub fn rolls_back(&self) -> bool {
        self.script.rolls_back
    }
}

#[derive(Debug, Clone)]
struct FakeOperation {
    ready_at: Instant,
    never: bool,
    then_status: &'static str,
    /// As App Runner names it: PAUSE_SERVICE, RESUME_SERVICE, UPDATE_SERVICE, START_DEPLOYMENT.
    kind: &'static str,
}

#[derive(Debug, Default)]
struct State {
    clusters: BTreeMap<String, FakeDb>,
    snapshots: BTreeMap<String, FakeSnapshot>,
    tasks: BTreeMap<String, FakeTask>,
    service_status: Option<String>,
    busy_calls: u32,
    service_env: BTreeMap<String, String>,
    operations: BTreeMap<String, FakeOperation>,
    health: Vec<u16>,
    health_calls: usize,
    /// The app answers this while the database holds the migrated data.
    unhealthy_while_migrated: Option<u16>,
    faults: Vec<(Op, FaultKind, u32)>,
    calls: BTreeMap<Op, u32>,
    next_id: u32,
    /// The rows of the migration version table (`Session::version_rows`).
    version_rows: Vec<String>,
    /// Set: the cloud cannot see inside the database, for this reason.
    session_unavailable: Option<String>,
    diagnosis: Diagnosis,
    /// What `Database::compare` reports.
    twin: TwinReport,
    /// Task definition revisions registered for `--image`: (ARN, run id, image).
    revisions: Vec<(String, String, String)>,
    /// The process "dies" right after the nth call of this operation took effect.
    kill_at: Option<(Op, u32)>,
    /// What the next tasks do, one script each, before the default script.
    next_scripts: std::collections::VecDeque<TaskScript>,
    /// What `Session::lock_blockers` reports while a task runs.
    blockers: Vec<LockBlocker>,
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub snapshot: Duration,
    pub restore: Duration,
    pub rename: Duration,
    pub service: Duration,
    pub instance: Duration,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            snapshot: Duration::from_secs(90),
            restore: Duration::from_secs(600),
            rename: Duration::from_secs(60),
            service: Duration::from_secs(45),
            instance: Duration::from_secs(300),
        }
    }
}

/// The fake cloud. Clones share state.
#[derive(Clone)]
pub struct FakeCloud {
    state: Arc<Mutex<State>>,
    cluster_id: String,
    latency: Latency,
    script: Arc<Mutex<TaskScript>>,
    killed: Arc<Notify>,
}

impl FakeCloud {
    /// One available cluster holding `data` with a writer and a reader, an App
    /// Runner service if `with_service`.
    pub fn new(cluster_id: &str, data: &str, with_service: bool) -> Self {
        let mut state = State::default();
        let now = Instant::now();
        state.clusters.insert(
            cluster_id.to_string(),
            FakeDb {
                data: data.to_string(),
                history: Vec::new(),
                created: Utc::now(),
                stopped: false,
                tags: Tags::new(),
                instances: vec![format!("{cluster_id}-writer"), format!("{cluster_id}-reader")],
                instances_ready_at: vec![now, now],
                ready_at: now,
                never_ready: false,
            },
        );
        state.service_status = with_service.then(|| "RUNNING".to_string());
        state.service_env.insert("DATABASE_URL".into(), format!("postgres://app@{cluster_id}.cluster:5432/app"));
        state.health = vec![200];
        FakeCloud {
            state: Arc::new(Mutex::new(state)),
            cluster_id: cluster_id.to_string(),
            latency: Latency::default(),
            script: Arc::new(Mutex::new(TaskScript::succeeds())),
            killed: Arc::new(Notify::new()),
        }
    }

    pub fn with_latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    pub fn set_task_script(&self, script: TaskScript) {
        *self.script.lock().unwrap_or_else(|e| e.into_inner()) = script;
    }

    /// What the next tasks do, in order; after them, the script of
    /// [`FakeCloud::set_task_script`].
    pub fn set_next_task_scripts(&self, scripts: Vec<TaskScript>) {
        self.lock().next_scripts = scripts.into();
    }

    /// Who `Session::lock_blockers` says blocks the running migration.
    pub fn set_lock_blockers(&self, blockers: Vec<LockBlocker>) {
        self.lock().blockers = blockers;
    }

    /// Health answers in order; the last one repeats.
    pub fn set_health(&self, statuses: Vec<u16>) {
        self.lock().health = statuses;
    }

    /// The new code breaks on the migrated schema: health answers `status` until
    /// the database is restored.
    pub fn set_unhealthy_while_migrated(&self, status: u16) {
        self.lock().unhealthy_while_migrated = Some(status);
    }

    /// The cloud recovers: faults end, and whatever was stuck finishes.
    pub fn recover(&self) {
        let mut s = self.lock();
        s.faults.clear();
        for db in s.clusters.values_mut() {
            db.never_ready = false;
        }
        for op in s.operations.values_mut() {
            op.never = false;
        }
    }

    pub fn fault(&self, op: Op, kind: FaultKind) {
        let times = match kind {
            FaultKind::Throttle(n) => n,
            _ => 1,
        };
        self.lock().faults.push((op, kind, times));
    }

    /// Arm `kind` for the next `times` calls of `op`.
    pub fn fault_times(&self, op: Op, kind: FaultKind, times: u32) {
        self.lock().faults.push((op, kind, times));
    }

    /// Set a tag on a database (another run's work under a name, for tests).
    pub fn set_cluster_tag(&self, id: &str, key: &str, value: &str) {
        if let Some(db) = self.lock().clusters.get_mut(id) {
            db.tags.insert(key.to_string(), value.to_string());
        }
    }

    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Like a [`FaultKind::Kill`] fault, on the `nth` call of `op` (1 for the first).
    pub fn kill_at_call(&self, op: Op, nth: u32) {
        self.lock().kill_at = Some((op, nth));
    }

    /// Fires when a [`FaultKind::Kill`] fault has taken effect.
    pub fn killed(&self) -> Arc<Notify> {
        self.killed.clone()
    }

    /// The revisions the database's version table holds.
    pub fn set_version_rows(&self, rows: &[&str]) {
        self.lock().version_rows = rows.iter().map(|r| r.to_string()).collect();
    }

    /// The cloud cannot see inside the database (aws without `database.url`).
    pub fn set_session_unavailable(&self, why: &str) {
        self.lock().session_unavailable = Some(why.to_string());
    }

    /// What `Session::diagnose` reports.
    pub fn set_diagnosis(&self, d: Diagnosis) {
        self.lock().diagnosis = d;
    }

    /// What comparing a restored database with the one it replaced finds.
    pub fn set_twin_report(&self, report: TwinReport) {
        self.lock().twin = report;
    }

    pub fn cloud(&self) -> Cloud {
        let this = Arc::new(self.clone());
        let session = match self.lock().session_unavailable.clone() {
            Some(why) => Err(why),
            None => Ok(this.clone() as Arc<dyn Session>),
        };
        Cloud {
            session,
            database: this.clone(),
            runner: this.clone(),
            logs: this.clone(),
            service: self.lock().service_status.is_some().then(|| this.clone() as Arc<dyn AppService>),
            health: this,
            describe: Arc::new(FakeWords),
        }
    }

    /// A database a restore creates: `data`, no instances yet, ready after
    /// the restore latency (never, when `hang`).
    fn restored_db(&self, data: String, tags: &Tags, hang: bool) -> FakeDb {
        FakeDb {
            data,
            history: Vec::new(),
            created: Utc::now(),
            stopped: false,
            tags: tags.clone(),
            instances: Vec::new(),
            instances_ready_at: Vec::new(),
            ready_at: Instant::now() + self.latency.restore,
            never_ready: hang,
        }
    }

    pub fn clusters(&self) -> BTreeMap<String, FakeDb> {
        self.tick();
        self.lock().clusters.clone()
    }

    pub fn tasks(&self) -> BTreeMap<String, FakeTask> {
        self.tick();
        self.lock().tasks.clone()
    }

    pub fn snapshot_ids(&self) -> Vec<String> {
        self.lock().snapshots.keys().cloned().collect()
    }

    pub fn service_status(&self) -> Option<String> {
        self.tick();
        self.lock().service_status.clone()
    }

    /// Someone else's operation (a deployment, say) that keeps the service
    /// busy for `lasts`: until then App Runner refuses pause, resume and update.
    pub fn start_foreign_operation(&self, lasts: std::time::Duration) -> String {
        let id = self.new_id("op");
        let mut s = self.lock();
        s.operations.insert(
            id.clone(),
            FakeOperation {
                ready_at: Instant::now() + lasts,
                never: false,
                then_status: "RUNNING",
                kind: "START_DEPLOYMENT",
            },
        );
        s.service_status = Some("OPERATION_IN_PROGRESS".into());
        s.busy_calls = 0;
        id
    }

    /// Calls refused with Busy since the last foreign operation started.
    pub fn busy_refusals(&self) -> u32 {
        self.lock().busy_calls
    }

    /// App Runner refuses a change while an operation is in progress.
    fn refuse_if_busy(&self) -> PResult<()> {
        self.tick();
        let mut s = self.lock();
        if s.service_status.as_deref() == Some("OPERATION_IN_PROGRESS") {
            s.busy_calls += 1;
            return Err(ProviderError::Busy("InvalidStateException: an operation is in progress".into()));
        }
        Ok(())
    }

    pub fn service_env(&self) -> BTreeMap<String, String> {
        self.lock().service_env.clone()
    }

    /// The task definition revisions registered for `--image`: (ARN, run id, image).
    pub fn revisions(&self) -> Vec<(String, String, String)> {
        self.lock().revisions.clone()
    }

    pub fn calls(&self, op: Op) -> u32 {
        self.lock().calls.get(&op).copied().unwrap_or(0)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let time act: tasks that have run their course change the data and stop;
    /// finished service operations settle.
    fn tick(&self) {
        let now = Instant::now();
        let mut s = self.lock();
        let cluster = self.cluster_id.clone();
        let mut changes = Vec::new();
        let mut versions = None;
        for task in s.tasks.values_mut() {
            if task.applied || task.script.start_failure.is_some() {
                continue;
            }
            let natural_end = (!task.hang).then(|| task.started + task.script.runtime);
            let end = match (natural_end, task.stopped_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if end.is_some_and(|e| now >= e) {
                task.applied = true;
                let ok = task.stopped_at.is_none() && task.script.exit_code == Some(0);
                if ok || !task.script.rolls_back {
                    changes.push(if ok { "+migrated" } else { "+half-migrated" });
                }
                if let Some(v) = &task.script.versions_after {
                    versions = Some(v.clone());
                }
            }
        }
        if let Some(v) = versions {
            s.version_rows = v;
        }
        if let Some(db) = s.clusters.get_mut(&cluster) {
            for c in changes {
                db.history.push((Utc::now(), db.data.clone()));
                db.data.push_str(c);
            }
        }
        // The service's status follows its newest operation.
        let newest = s.operations.iter().max_by_key(|(id, _)| (*id).clone()).map(|(_, o)| o.clone());
        if let Some(op) = newest
            && !op.never
            && now >= op.ready_at
        {
            s.service_status = Some(op.then_status.to_string());
        }
    }

    /// Count the call and apply any fault. Returns whether the thing should hang.
    async fn enter(&self, op: Op) -> PResult<bool> {
        use crate::provider::{RETRY_INITIAL_BACKOFF, RETRY_MAX_ATTEMPTS, RETRY_MAX_BACKOFF};
        self.tick();
        let mut attempts = 1;
        let mut backoff = RETRY_INITIAL_BACKOFF;
        loop {
            match self.attempt(op) {
                Some(FaultKind::Throttle(_)) if attempts < RETRY_MAX_ATTEMPTS => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX_BACKOFF);
                    attempts += 1;
                }
                Some(FaultKind::Throttle(_)) => {
                    return Err(ProviderError::Throttled(format!("{op:?}: rate exceeded")));
                }
                Some(FaultKind::Error) => return Err(ProviderError::Other(format!("injected failure in {op:?}"))),
                Some(FaultKind::Refused) => return Err(ProviderError::Rejected(format!("{op:?}: request refused"))),
                Some(FaultKind::NoCapacity) => {
                    return Err(ProviderError::NoCapacity(format!(
                        "{op:?}: Capacity is unavailable at this time. Please try again later or in a different \
                         availability zone"
                    )));
                }
                Some(FaultKind::Hang) => return Ok(true),
                Some(FaultKind::Kill | FaultKind::Lost) | None => return Ok(false),
            }
        }
    }

    /// One attempt of a call: counted, and the fault armed for it taken.
    fn attempt(&self, op: Op) -> Option<FaultKind> {
        let mut s = self.lock();
        *s.calls.entry(op).or_default() += 1;
        let found = s.faults.iter().position(|(o, _, n)| *o == op && *n > 0);
        found.map(|i| {
            let kind = s.faults[i].1;
            if kind != FaultKind::Kill {
                s.faults[i].2 -= 1;
            }
            kind
        })
    }

    /// After a call took effect: if a Kill fault is armed for it, die now.
    async fn leave(&self, op: Op) {
        let kill = {
            let mut s = self.lock();
            let calls = s.calls.get(&op).copied().unwrap_or(0);
            if s.kill_at == Some((op, calls)) {
                s.kill_at = None;
                true
            } else {
                match s.faults.iter().position(|(o, k, n)| *o == op && *k == FaultKind::Kill && *n > 0) {
                    Some(i) => {
                        s.faults[i].2 = 0;
                        true
                    }
                    None => false,
                }
            }
        };
        if kill {
            self.killed.notify_one();
            std::future::pending::<()>().await;
        }
    }

    /// For calls whose hang means "never answers".
    async fn call(&self, op: Op) -> PResult<()> {
        if self.enter(op).await? {
            std::future::pending::<()>().await;
        }
        self.leave(op).await;
        Ok(())
    }

    fn new_id(&self, prefix: &str) -> String {
        let mut s = self.lock();
        s.next_id += 1;
        format!("{prefix}-{:04}", s.next_id)
    }

    fn new_operation(&self, kind: &'static str, then_status: &'static str, never: bool) -> String {
        let id = self.new_id("op");
        let mut s = self.lock();
        let ready_at = Instant::now() + self.latency.service;
        s.operations.insert(id.clone(), FakeOperation { ready_at, never, then_status, kind });
        s.service_status = Some("OPERATION_IN_PROGRESS".into());
        id
    }
}

#[async_trait]
impl Database for FakeCloud {
    fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    fn sibling_id(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.cluster_id)
    }

    async fn describe(&self, id: &str) -> PResult<Option<ClusterInfo>> {
        self.call(Op::Describe).await?;
        let now = Instant::now();
        Ok(self.lock().clusters.get(id).map(|db| {
            let mut pending: Vec<String> = db
                .instances
                .iter()
                .zip(&db.instances_ready_at)
                .filter(|(_, at)| now < **at)
                .map(|(i, _)| format!("{i} creating"))
                .collect();
            if db.instances.is_empty() {
                pending.push("no instance yet".into());
            }
            ClusterInfo {
                id: id.to_string(),
                status: if !db.never_ready && now >= db.ready_at { "available" } else { "creating" }.into(),
                endpoint: Some(format!("{id}.cluster.fake.local")),
                engine: "aurora-postgresql".into(),
                pending_instances: pending,
            }
        }))
    }

    async fn run_of(&self, id: &str) -> PResult<Option<String>> {
        self.call(Op::Describe).await?;
        Ok(self.lock().clusters.get(id).and_then(|db| db.tags.get(TAG_RUN_ID).cloned()))
    }

    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot> {
        let hang = self.enter(Op::CreateSnapshot).await?;
        let snapshot = {
            let mut s = self.lock();
            if let Some(existing) = s.snapshots.get(id) {
                existing.snapshot.clone()
            } else {
                let data = s
                    .clusters
                    .get(&self.cluster_id)
                    .ok_or_else(|| ProviderError::NotFound(format!("cluster {}", self.cluster_id)))?
                    .data
                    .clone();
                let snapshot = Snapshot {
                    id: id.to_string(),
                    cluster_id: self.cluster_id.clone(),
                    status: SnapshotStatus::Creating,
                    percent: 0,
                    created_at: Some(Utc::now()),
                    tags: tags.clone(),
                    kind: Default::default(),
                };
                s.snapshots.insert(
                    id.to_string(),
                    FakeSnapshot {
                        snapshot: snapshot.clone(),
                        data,
                        created: Instant::now(),
                        ready_at: Instant::now() + self.latency.snapshot,
                        never_ready: hang,
                    },
                );
                snapshot
            }
        };
        self.leave(Op::CreateSnapshot).await;
        Ok(snapshot)
    }

    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>> {
        self.call(Op::DescribeSnapshot).await?;
        Ok(self.lock().snapshots.get(id).map(current))
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.call(Op::ListSnapshots).await?;
        Ok(self.lock().snapshots.values().map(current).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> PResult<()> {
        self.call(Op::DeleteSnapshot).await?;
        self.lock().snapshots.remove(id).map(|_| ()).ok_or_else(|| ProviderError::NotFound(format!("snapshot {id}")))
    }

    async fn snapshot_quota(&self) -> PResult<Option<SnapshotQuota>> {
        let used = self.lock().snapshots.len() as u32;
        Ok(Some(SnapshotQuota { used, max: 100 }))
    }

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()> {
        let hang = self.enter(Op::RestoreSnapshot).await?;
        {
            let mut s = self.lock();
            if !s.clusters.contains_key(target) {
                let snap = s
                    .snapshots
                    .get(snapshot_id)
                    .ok_or_else(|| ProviderError::NotFound(format!("snapshot {snapshot_id}")))?;
                if current(snap).status != SnapshotStatus::Available {
                    return Err(ProviderError::Rejected(format!("snapshot {snapshot_id} is not available")));
                }
                let db = self.restored_db(snap.data.clone(), tags, hang);
                s.clusters.insert(target.to_string(), db);
            }
        }
        self.leave(Op::RestoreSnapshot).await;
        Ok(())
    }

    async fn restorable_window(&self) -> PResult<Option<(chrono::DateTime<Utc>, chrono::DateTime<Utc>)>> {
        self.call(Op::Describe).await?;
        let s = self.lock();
        let db = s.clusters.get(&self.cluster_id).ok_or_else(|| ProviderError::NotFound(self.cluster_id.clone()))?;
        Ok(Some((db.created, Utc::now())))
    }

    /// The data as it was at `at`: before the first change made after it.
    async fn restore_to_time(&self, at: chrono::DateTime<Utc>, target: &str, tags: &Tags) -> PResult<()> {
        let hang = self.enter(Op::RestoreSnapshot).await?;
        {
            let mut s = self.lock();
            if !s.clusters.contains_key(target) {
                let source =
                    s.clusters.get(&self.cluster_id).ok_or_else(|| ProviderError::NotFound(self.cluster_id.clone()))?;
                let data = source.history.iter().find(|(t, _)| *t > at).map_or(&source.data, |(_, before)| before);
                let db = self.restored_db(data.clone(), tags, hang);
                s.clusters.insert(target.to_string(), db);
            }
        }
        self.leave(Op::RestoreSnapshot).await;
        Ok(())
    }

    async fn stop_set_aside(&self, id: &str, run_id: &str) -> PResult<Stopped> {
        self.call(Op::StopSetAside).await?;
        let mut s = self.lock();
        let Some(db) = s.clusters.get_mut(id) else {
            return Ok(Stopped::NotPossible(format!("{id} does not exist")));
        };
        if db.tags.get(TAG_RUN_ID).map(String::as_str) != Some(run_id) {
            return Ok(Stopped::NotPossible(format!("{id} does not carry this run's tag")));
        }
        if db.stopped {
            return Ok(Stopped::Already);
        }
        db.stopped = true;
        Ok(Stopped::Stopped(String::new()))
    }

    async fn complete_restore(&self, target: &str, _tags: &Tags) -> PResult<Option<RestoreWork>> {
        self.call(Op::CompleteRestore).await?;
        let mut s = self.lock();
        let wanted = s.clusters.get(&self.cluster_id).map_or(0, |c| c.instances.len());
        let db = s.clusters.get_mut(target).ok_or_else(|| ProviderError::NotFound(format!("cluster {target}")))?;
        let have = db.instances.len();
        if have >= wanted {
            return Ok(None);
        }
        // The writer alone first, then every reader at once.
        let upto = if have == 0 { 1 } else { wanted };
        let ready_at = Instant::now() + self.latency.instance;
        let created: Vec<String> = (have..upto).map(|n| format!("{target}-{}", n + 1)).collect();
        for id in &created {
            db.instances.push(id.clone());
            db.instances_ready_at.push(ready_at);
        }
        Ok(Some(RestoreWork::Instances(created)))
    }

    async fn compare(&self, _original: &str, _restored: &str) -> PResult<TwinReport> {
        self.call(Op::Compare).await?;
        Ok(self.lock().twin.clone())
    }

    async fn rename(&self, from: &str, to: &str, run_id: &str) -> PResult<()> {
        let hang = self.enter(Op::Rename).await?;
        {
            let mut s = self.lock();
            match (s.clusters.contains_key(from), s.clusters.contains_key(to)) {
                (false, true) => {}
                (true, true) => return Err(ProviderError::Rejected(format!("cluster {to} already exists"))),
                (false, false) => return Err(ProviderError::NotFound(format!("cluster {from}"))),
                (true, false) => {
                    let mut db = s.clusters.remove(from).ok_or_else(|| ProviderError::NotFound(from.to_string()))?;
                    db.tags.insert(TAG_RUN_ID.to_string(), run_id.to_string());
                    db.ready_at = Instant::now() + self.latency.rename;
                    db.never_ready = hang;
                    s.clusters.insert(to.to_string(), db);
                }
            }
        }
        self.leave(Op::Rename).await;
        Ok(())
    }
}

fn current(s: &FakeSnapshot) -> Snapshot {
    let now = Instant::now();
    let mut snap = s.snapshot.clone();
    if !s.never_ready && now >= s.ready_at {
        snap.status = SnapshotStatus::Available;
        snap.percent = 100;
    } else if !s.never_ready {
        let total = (s.ready_at - s.created).as_secs_f64().max(1.0);
        snap.percent = ((now - s.created).as_secs_f64() / total * 100.0).min(99.0) as u8;
    }
    snap
}

#[async_trait]
impl MigrationRunner for FakeCloud {
    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        let hang = self.enter(Op::StartTask).await?;
        let existing = self
            .lock()
            .tasks
            .iter()
            .find(|(_, t)| t.run_id == spec.run_id && t.attempt == spec.attempt)
            .map(|(id, _)| id.clone());
        let id = match existing {
            Some(id) => id,
            None => {
                let id = format!("arn:aws:ecs:fake:task/{}", self.new_id("task"));
                let now = Instant::now();
                let default = self.script.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let mut s = self.lock();
                let script = s.next_scripts.pop_front().unwrap_or(default);
                let snapshot_available_at_start = s.snapshots.values().any(|snap| {
                    snap.snapshot.tags.get(TAG_RUN_ID) == Some(&spec.run_id)
                        && current(snap).status == SnapshotStatus::Available
                });
                s.tasks.insert(
                    id.clone(),
                    FakeTask {
                        run_id: spec.run_id.clone(),
                        snapshot_available_at_start,
                        started: now,
                        script,
                        hang,
                        stopped_at: None,
                        applied: false,
                        task_definition: spec.task_definition.clone(),
                        attempt: spec.attempt,
                    },
                );
                id
            }
        };
        self.leave(Op::StartTask).await;
        Ok(TaskHandle { id: id.clone(), container: "migrate".into(), log_stream: id })
    }

    async fn poll(&self, task_id: &str) -> PResult<TaskState> {
        if self.lock().faults.iter().any(|(op, kind, _)| *op == Op::PollTask && *kind == FaultKind::Lost) {
            return Ok(TaskState::Missing);
        }
        self.call(Op::PollTask).await?;
        let now = Instant::now();
        let s = self.lock();
        let Some(t) = s.tasks.get(task_id) else { return Ok(TaskState::Missing) };
        if let Some(reason) = &t.script.start_failure {
            return Ok(if now < t.started + Duration::from_secs(5) {
                TaskState::Pending
            } else {
                TaskState::Stopped { started: false, exit_code: None, reason: Some(reason.clone()) }
            });
        }
        if t.applied {
            return Ok(match t.stopped_at {
                Some(_) => TaskState::Stopped {
                    started: true,
                    exit_code: Some(143),
                    reason: Some("Task stopped by ferry".into()),
                },
                None => TaskState::Stopped {
                    started: true,
                    exit_code: t.script.exit_code,
                    reason: Some("Essential container in task exited".into()),
                },
            });
        }
        Ok(if now < t.started + Duration::from_secs(2) { TaskState::Pending } else { TaskState::Running })
    }

    async fn stop(&self, task_id: &str, _reason: &str) -> PResult<()> {
        self.call(Op::StopTask).await?;
        if let Some(t) = self.lock().tasks.get_mut(task_id) {
            t.stopped_at.get_or_insert(Instant::now());
        }
        Ok(())
    }

    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>> {
        self.call(Op::ActiveTasks).await?;
        Ok(self
            .lock()
            .tasks
            .iter()
            .filter(|(_, t)| !t.applied && t.script.start_failure.is_none())
            .map(|(id, t)| TaskSummary { id: id.clone(), status: "RUNNING".into(), started_by: Some(t.run_id.clone()) })
            .collect())
    }

    /// Like ECS: a revision tagged with the run, found again on a second call.
    async fn prepare_image(&self, run_id: &str, image: &str) -> PResult<Option<String>> {
        if self.enter(Op::PrepareImage).await? {
            std::future::pending::<()>().await;
        }
        let arn = {
            let mut s = self.lock();
            match s.revisions.iter().find(|(_, r, _)| r == run_id) {
                Some((arn, _, _)) => arn.clone(),
                None => {
                    let arn = format!("arn:aws:ecs:fake:task-definition/td:{}", s.revisions.len() + 2);
                    s.revisions.push((arn.clone(), run_id.to_string(), image.to_string()));
                    arn
                }
            }
        };
        self.leave(Op::PrepareImage).await;
        Ok(Some(arn))
    }

    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        self.find_attempt(run_id, 1).await
    }

    async fn find_attempt(&self, run_id: &str, attempt: u32) -> PResult<Option<TaskHandle>> {
        Ok(self
            .lock()
            .tasks
            .iter()
            .find(|(_, t)| t.run_id == run_id && t.attempt == attempt)
            .map(|(id, _)| TaskHandle { id: id.clone(), container: "migrate".into(), log_stream: id.clone() }))
    }
}

#[async_trait]
impl LogSource for FakeCloud {
    async fn read(&self, stream: &str, cursor: &LogCursor) -> PResult<LogPage> {
        self.call(Op::ReadLogs).await?;
        let now = Instant::now();
        let from: usize = cursor.0.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
        let s = self.lock();
        let Some(t) = s.tasks.get(stream) else { return Ok(LogPage { events: Vec::new(), next: cursor.clone() }) };
        let n = t.script.logs.len() as u32;
        // Line i is written at (i+1)/(n+1) of the runtime (or when the task
        // ended, if sooner), and readable `ingest_delay` after that.
        let written = |i: u32| {
            let at = t.started + t.script.runtime * (i + 1) / (n + 1);
            if t.applied { t.stopped_at.map_or(at, |end| at.min(end)) } else { at }
        };
        let visible = (0..n)
            .take_while(|&i| (now >= written(i) || t.applied) && now >= written(i) + t.script.ingest_delay)
            .count();
        let events: Vec<LogEvent> = t.script.logs[from.min(visible)..visible]
            .iter()
            .map(|m| LogEvent { timestamp: Utc::now(), message: m.clone() })
            .collect();
        Ok(LogPage { events, next: LogCursor(Some(visible.max(from).to_string())) })
    }
}

/// The fake cloud's words for a plan: plain, with no platform's names, so a
/// test that reads them reads the runbook's own lines.
pub struct FakeWords;

impl Describe for FakeWords {
    fn runner_checks(&self, _env: &crate::config::EnvConfig, _restoring: bool) -> Vec<String> {
        vec![NO_MIGRATION_RUNNING.into()]
    }
    fn service_check(&self, _env: &crate::config::EnvConfig, _restoring: bool) -> Option<String> {
        Some("check the service can be paused".into())
    }
    fn service_name(&self) -> &'static str {
        "the service"
    }
    fn migration(&self, env: &crate::config::EnvConfig) -> Vec<String> {
        let mut lines = vec![format!("start the fake task `{}`", env.migration.command.join(" "))];
        lines.extend(task_watch_lines(env));
        lines
    }
    fn rehearsal(&self, _env: &crate::config::EnvConfig) -> RehearsalWords {
        RehearsalWords {
            copy: vec!["clone the fake database".into()],
            locks: "the fake database's locks are sampled".into(),
            reached: String::new(),
            cleanup: "delete the clone".into(),
            has_lock_table: true,
        }
    }
}

#[async_trait]
impl AppService for FakeCloud {
    /// The fake service imitates App Runner, words and states.
    fn platform(&self) -> &'static str {
        "App Runner"
    }

    async fn status(&self) -> PResult<ServiceInfo> {
        self.call(Op::ServiceStatus).await?;
        let status = self.lock().service_status.clone().ok_or_else(|| ProviderError::NotFound("service".into()))?;
        let state = match status.as_str() {
            "RUNNING" => ServiceState::Running,
            "PAUSED" => ServiceState::Paused,
            "OPERATION_IN_PROGRESS" => ServiceState::Busy,
            _ => ServiceState::Other,
        };
        Ok(ServiceInfo { id: "arn:aws:apprunner:fake:service/app".into(), status, state })
    }

    async fn pause(&self) -> PResult<Option<String>> {
        let hang = self.enter(Op::ServicePause).await?;
        if self.lock().service_status.as_deref() == Some("PAUSED") {
            return Ok(None);
        }
        self.refuse_if_busy()?;
        let op = self.new_operation("PAUSE_SERVICE", "PAUSED", hang);
        self.leave(Op::ServicePause).await;
        Ok(Some(op))
    }

    async fn resume(&self) -> PResult<Option<String>> {
        let hang = self.enter(Op::ServiceResume).await?;
        if self.lock().service_status.as_deref() == Some("RUNNING") {
            return Ok(None);
        }
        self.refuse_if_busy()?;
        let op = self.new_operation("RESUME_SERVICE", "RUNNING", hang);
        self.leave(Op::ServiceResume).await;
        Ok(Some(op))
    }

    async fn replace_env_host(&self, var: &str, host: &str) -> PResult<Option<String>> {
        self.refuse_if_busy()?;
        {
            let mut s = self.lock();
            let old = s.service_env.get(var).cloned().unwrap_or_default();
            let new = crate::db_url::replace_host(&old, host).unwrap_or_else(|| host.to_string());
            s.service_env.insert(var.to_string(), new);
        }
        Ok(Some(self.new_operation("UPDATE_SERVICE", "RUNNING", false)))
    }

    async fn operation_in_progress(&self) -> PResult<Option<OperationInfo>> {
        let now = Instant::now();
        let s = self.lock();
        Ok(s.operations.iter().find(|(_, op)| op.never || now < op.ready_at).map(|(id, op)| OperationInfo {
            id: id.clone(),
            kind: match op.kind {
                "START_DEPLOYMENT" | "UPDATE_SERVICE" => OperationKind::Deployment(op.kind.to_string()),
                other => OperationKind::Other(other.to_string()),
            },
        }))
    }

    async fn operation_done(&self, operation_id: &str) -> PResult<Option<bool>> {
        self.call(Op::OperationDone).await?;
        let now = Instant::now();
        let s = self.lock();
        let op = s
            .operations
            .get(operation_id)
            .ok_or_else(|| ProviderError::NotFound(format!("operation {operation_id}")))?;
        Ok((!op.never && now >= op.ready_at).then_some(true))
    }
}

#[async_trait]
impl HealthCheck for FakeCloud {
    async fn probe(&self, _url: &str) -> Result<u16, String> {
        self.call(Op::Health).await.map_err(|e| e.to_string())?;
        let mut s = self.lock();
        if let Some(status) = s.unhealthy_while_migrated
            && s.clusters.get(&self.cluster_id).is_some_and(|c| c.data.contains("+migrated"))
        {
            return Ok(status);
        }
        let i = s.health_calls.min(s.health.len().saturating_sub(1));
        s.health_calls += 1;
        s.health.get(i).copied().ok_or_else(|| "no answer".to_string())
    }
}

#[async_trait]
impl StackOutputs for FakeCloud {
    async fn outputs(&self, _stack: &str) -> PResult<BTreeMap<String, String>> {
        Ok(BTreeMap::from([
            ("ClusterName".to_string(), "fake-ecs".to_string()),
            ("PrivateSubnetIds".to_string(), "subnet-a,subnet-b".to_string()),
        ]))
    }
}

#[async_trait]
impl Session for FakeCloud {
    async fn version_rows(&self, _table: &str) -> PResult<Vec<String>> {
        self.call(Op::VersionRows).await?;
        Ok(self.lock().version_rows.clone())
    }

    async fn diagnose(&self, _threshold: Duration, _lag: Duration) -> PResult<Diagnosis> {
        Ok(self.lock().diagnosis.clone())
    }

    /// The data stands for the schema too: a migration that changed the data
    /// changed the fingerprint.
    async fn schema_fingerprint(&self) -> PResult<SchemaFingerprint> {
        self.tick();
        let data = self.lock().clusters.get(&self.cluster_id).map(|c| c.data.clone()).unwrap_or_default();
        let parts = data.split('+').count() as u32;
        Ok(SchemaFingerprint {
            digest: crate::state::fingerprint(data.as_bytes()),
            tables: parts,
            columns: parts * 2,
            indexes: parts,
            constraints: parts,
        })
    }

    async fn lock_blockers(&self) -> PResult<Vec<LockBlocker>> {
        self.tick();
        let s = self.lock();
        let running = s.tasks.values().any(|t| !t.applied && t.script.start_failure.is_none());
        Ok(if running { s.blockers.clone() } else { Vec::new() })
    }
}
