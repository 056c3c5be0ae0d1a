//! The migrate step: start the task (idempotently, keyed by the run id), stream
//! its logs while it runs, drain them after it stops, and let the watched
//! container's exit code decide.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::logs::Streams;
use super::record::{BlockerSeen, LockBaseline, MigrationAttempt, NothingChangedProof, StartAttempt, TaskRecord};
use super::wait::{Backoff, PollPolicy, call};
use super::{Run, StepError};
use crate::config::values::format_duration;
use crate::provider::{LogSource, ProviderError, RunnerProfile, Session, TaskHandle, TaskSpec, TaskState};

/// One log read per second per stream while the task runs.
const LOG_INTERVAL: Duration = Duration::from_secs(1);
/// After the task stops, read its logs at least this long: a log service that
/// ingests events asynchronously makes a task's last lines readable seconds
/// after the runner reports it stopped (docs/aws-decisions.md has the numbers).
const INGEST_GRACE: Duration = Duration::from_secs(10);
/// After the task stops, read its logs at most this long.
const DRAIN_CAP: Duration = Duration::from_secs(30);
/// A start refused for want of capacity is asked again after this, doubling...
const CAPACITY_FIRST_DELAY: Duration = Duration::from_secs(5);
/// ... up to this.
const CAPACITY_MAX_DELAY: Duration = Duration::from_secs(60);
/// A migration that failed on a lock timeout and changed nothing runs again
/// after this, doubling per attempt...
const RETRY_FIRST_DELAY: Duration = Duration::from_secs(5);
/// ... up to this.
const RETRY_MAX_DELAY: Duration = Duration::from_secs(60);
/// Look for sessions blocking the migration at least this often.
const BLOCKER_SAMPLE_MAX: Duration = Duration::from_secs(3);
/// After StopTask, how long to wait for the task to stop.
const STOP_WAIT: Duration = Duration::from_secs(90);
/// A migration running on without its supervisor: SIGTERM, then SIGKILL after this.
const UNSUPERVISED_GRACE: Duration = Duration::from_secs(10);

pub async fn run_migration(run: &mut Run) -> Result<String, StepError> {
    // A later attempt's time counts from the first one's start.
    let origin = match run.record.migration_attempts.first() {
        Some(first) if run.record.migration_attempts.len() > 1 || first.ended_at.is_some() => {
            let ago = (chrono::Utc::now() - first.started_at).to_std().unwrap_or_default();
            Instant::now().checked_sub(ago).unwrap_or_else(Instant::now)
        }
        _ => Instant::now(),
    };
    read_baseline(run).await?;
    loop {
        let n = match run.record.migration_attempts.last() {
            // Ended: this run decided on it before (a resumed run decides the same way).
            Some(last) if last.ended_at.is_some() => {
                let n = last.attempt;
                let Some(error) = last.error.clone() else {
                    return Ok(format!("task {} exited with code 0, on attempt {n}", last.task));
                };
                let took = last.ended_at.map(|end| (end - last.started_at).to_std().unwrap_or_default());
                retry_or_fail(run, origin, error, took.unwrap_or_default()).await?;
                n + 1
            }
            Some(last) => last.attempt,
            None => 1,
        };
        let began = Instant::now();
        match one_attempt(run, n, origin).await {
            Ok(done) if n > 1 => return Ok(format!("{done}, on attempt {n} (after {} lock timeout(s))", n - 1)),
            Ok(done) => return Ok(done),
            Err(StepError::Failed(e)) => retry_or_fail(run, origin, e, began.elapsed()).await?,
            Err(e) => return Err(e),
        }
    }
}

/// After a failed attempt: `Ok` when it proved it changed nothing, retries are
/// left and `timeouts.migration` leaves room for the backoff (5 s doubling to
/// 60 s, ±20 % jitter) and another attempt as long as this one (`took`), once
/// the backoff has passed; else the failure, with the evidence.
async fn retry_or_fail(run: &mut Run, origin: Instant, error: String, took: Duration) -> Result<(), StepError> {
    let Some(last) = run.record.migration_attempts.last() else { return Err(StepError::Failed(error)) };
    let n = last.attempt;
    if !last.proof.as_ref().is_some_and(NothingChangedProof::holds) {
        return Err(StepError::Failed(error));
    }
    let retries = run.env.migration.lock_retries;
    if n > retries {
        return Err(StepError::Failed(format!(
            "{error}; it failed on a lock timeout and changed nothing, and no retry is left (migration.lock_retries = \
             {retries})"
        )));
    }
    let delay = RETRY_FIRST_DELAY.saturating_mul(1 << (n - 1).min(8)).min(RETRY_MAX_DELAY);
    let wait = delay.mul_f64(0.8 + fastrand::f64() * 0.4);
    let budget = run.env.timeouts.migration;
    if origin.elapsed() + wait + took >= budget {
        return Err(StepError::Failed(format!(
            "{error}; it failed on a lock timeout and changed nothing, and another attempt (after {}s, as long as \
             this one took) would not end within timeouts.migration = {}",
            wait.as_secs(),
            format_duration(budget)
        )));
    }
    run.out.warn(&format!(
        "attempt {n} failed on a lock timeout and changed nothing; attempt {} of {} in {}s",
        n + 1,
        retries + 1,
        wait.as_secs()
    ));
    sleep(wait).await;
    Ok(())
}

/// The version table and the schema before the first attempt, when ferry can
/// read them: what a "nothing changed" proof compares with. Read once per run
/// (journaled); what cannot be read leaves no baseline, and so no proof.
async fn read_baseline(run: &mut Run) -> Result<(), StepError> {
    if run.record.baseline.is_some() || !run.record.migration_attempts.is_empty() || run.record.task.is_some() {
        return Ok(());
    }
    let Ok(session) = run.cloud.session.clone() else { return Ok(()) };
    match database_state(run, session.as_ref()).await {
        Ok(b) => {
            run.record.baseline = Some(b);
            run.save()?;
        }
        // Worth a warning where a lock timeout is expected: without this
        // reading, no failure of the migration can be proved harmless.
        Err(e) if run.env.migration.lock_timeout.is_some() => run.out.warn(&format!(
            "cannot read the database's schema before the migration ({e}); if it fails, even on a lock timeout, it \
             is restored"
        )),
        Err(_) => {}
    }
    Ok(())
}

/// The version table's revisions (sorted) and the schema fingerprint, now.
async fn database_state(run: &Run, session: &dyn Session) -> Result<LockBaseline, ProviderError> {
    let table = version_table(run);
    let mut versions = call("read the version table", || session.version_rows(&table)).await?;
    versions.sort();
    let schema = call("read the schema", || session.schema_fingerprint()).await?;
    Ok(LockBaseline { versions, schema })
}

fn version_table(run: &Run) -> String {
    run.env.migration.alembic.as_ref().map_or_else(|| "alembic_version".into(), |a| a.version_table.clone())
}

/// Whether a failed attempt changed nothing: its output shows a lock timeout
/// and Alembic's transactional DDL, and the version table and the schema are
/// what they were before the first attempt. Each piece is recorded.
async fn prove(run: &mut Run, eligible: Option<&str>) -> NothingChangedProof {
    let Some(a) = run.record.migration_attempts.last().cloned() else { return NothingChangedProof::default() };
    let mut p = NothingChangedProof {
        lock_timeout: a.lock_timeout,
        transactional_ddl: a.transactional_ddl,
        ..NothingChangedProof::default()
    };
    if let Some(why) = eligible {
        p.missing.push(why.to_string());
    }
    if !a.lock_timeout {
        p.missing.push("its output shows no lock timeout (SQLSTATE 55P03)".into());
    }
    if !a.transactional_ddl {
        p.missing.push("Alembic did not log \"Will assume transactional DDL.\"".into());
    }
    if !p.missing.is_empty() {
        p.missing.push("the database was not compared (the failure is not a rolled-back lock timeout)".into());
        return p;
    }
    let session = match run.cloud.session.clone() {
        Ok(s) => s,
        Err(why) => {
            p.missing.push(format!("ferry cannot read the database from here ({why})"));
            return p;
        }
    };
    let Some(before) = run.record.baseline.clone() else {
        p.missing.push("ferry could not read the database before the migration".into());
        return p;
    };
    match database_state(run, session.as_ref()).await {
        Ok(after) => {
            p.versions_unchanged = after.versions == before.versions;
            p.schema_unchanged = after.schema.digest == before.schema.digest;
            if !p.versions_unchanged {
                p.missing.push(format!(
                    "the version table holds [{}], not [{}] as before",
                    after.versions.join(", "),
                    before.versions.join(", ")
                ));
            }
            if !p.schema_unchanged {
                p.missing.push(format!("the schema changed: {} before, {} after", before.schema, after.schema));
            }
        }
        Err(e) => p.missing.push(format!("ferry cannot read the database after the failure: {e}")),
    }
    p
}

/// One run of the migration: start (or find) attempt `n`'s task, stream its
/// logs while it runs, sample who blocks it, and let its exit code decide.
async fn one_attempt(run: &mut Run, n: u32, origin: Instant) -> Result<String, StepError> {
    let limit = run.env.timeouts.migration.saturating_sub(origin.elapsed()).max(Duration::from_secs(1));
    let handle = start(run, n, origin).await?;
    run.out.group_start(&format!("migration logs ({})", handle.id));
    let mut stream = LogStream::new(run.cloud.logs.as_ref(), &handle.log_stream);
    let seen = Arc::new(Mutex::new(Vec::<BlockerSeen>::new()));
    let (state, timed_out) = {
        let watching = watch(run, &handle, &mut stream, limit);
        tokio::pin!(watching);
        match run.cloud.session.clone() {
            Ok(session) => tokio::select! {
                biased;
                r = &mut watching => r,
                () = sample_blockers(session.as_ref(), sample_every(run), seen.clone()) => unreachable!("sampling never ends"),
            },
            Err(_) => watching.await,
        }
    };
    stream.drain(run).await;
    // Redacted once here, not per line read; then each cut to what a summary shows.
    let tail: Vec<String> =
        stream.tail.iter().map(|l| shorten(&run.out.redactor().clean(l), TAIL_LINE_CHARS)).collect();
    run.out.group_end();
    let found = stream.found;
    let blockers = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    if let Some(a) = run.record.migration_attempts.last_mut() {
        a.lock_timeout |= found.lock_timeout;
        a.transactional_ddl |= found.transactional_ddl;
        for b in blockers {
            merge_blocker(&mut a.blockers, b);
        }
    }
    let result = attempt_result(run, &handle, state, timed_out).await;
    // A failed migration's last lines stay with the run (the step summary, `runs show`).
    run.record.log_tail = if result.is_err() { tail } else { Vec::new() };
    let eligible = match &result {
        Err(StepError::Failed(_)) => Some(attempt_eligible(run, timed_out)),
        _ => None,
    };
    let proof = match eligible {
        Some(why) => Some(prove(run, why.as_deref()).await),
        None => None,
    };
    if let Some(a) = run.record.migration_attempts.last_mut() {
        a.ended_at = Some(chrono::Utc::now());
        a.exit_code = run.record.task.as_ref().and_then(|t| t.exit_code);
        a.error = match &result {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        a.proof = proof;
        if matches!(result, Err(StepError::Failed(_))) {
            run.save()?;
        }
    }
    result
}

/// Why a failed attempt cannot be proved to have changed nothing whatever the
/// database shows (`None`: it can, if the evidence holds).
fn attempt_eligible(run: &Run, timed_out: bool) -> Option<String> {
    let exit = run.record.task.as_ref().and_then(|t| t.exit_code);
    if timed_out {
        return Some("ferry stopped it at timeouts.migration: it did not end on its own".into());
    }
    if run.cloud.runner.profile().pass_fail_only {
        return Some("the runner tells only pass or fail".into());
    }
    match exit {
        Some(c) if c != 0 => None,
        _ => Some("it ended without an exit code of its own".into()),
    }
}

/// A session seen again keeps its longest age; a new one is added.
fn merge_blocker(into: &mut Vec<BlockerSeen>, b: BlockerSeen) {
    match into.iter_mut().find(|x| x.pid == b.pid) {
        Some(x) => {
            x.age_secs = x.age_secs.max(b.age_secs);
            if x.query.is_empty() {
                x.query = b.query;
            }
        }
        None => into.push(b),
    }
}

/// How often to look for sessions blocking the migration: twice per
/// `lock_timeout` (so a whole wait is seen), between 250 ms and 3 s.
fn sample_every(run: &Run) -> Duration {
    run.env
        .migration
        .lock_timeout
        .map_or(BLOCKER_SAMPLE_MAX, |t| (t / 2).clamp(Duration::from_millis(250), BLOCKER_SAMPLE_MAX))
}

/// Sample who holds the locks the database's sessions wait for, forever (the
/// caller stops it when the migration ends). Errors are ignored: what blocked
/// the migration is evidence for the report, never a reason to fail.
async fn sample_blockers(session: &dyn Session, every: Duration, into: Arc<Mutex<Vec<BlockerSeen>>>) {
    loop {
        let at = Instant::now();
        if let Ok(Ok(found)) = tokio::time::timeout(every.max(Duration::from_secs(1)), session.lock_blockers()).await {
            let mut seen = into.lock().unwrap_or_else(|e| e.into_inner());
            for b in found {
                let query: String = b.query.chars().take(80).collect();
                merge_blocker(&mut seen, BlockerSeen { pid: b.pid, age_secs: b.age_secs.max(0.0) as u64, query });
            }
        }
        sleep(every.saturating_sub(at.elapsed())).await;
    }
}

/// What the attempt's end means: the decision on the watched task's state.
async fn attempt_result(
    run: &mut Run,
    handle: &TaskHandle,
    state: TaskState,
    timed_out: bool,
) -> Result<String, StepError> {
    let profile = run.cloud.runner.profile();
    if profile.logs_known_at_end {
        bound_logs(run, handle).await;
    }
    let logs = run.cloud.logs.clone();
    if let Some(t) = run.record.task.as_mut() {
        t.log_url = t.log_stream.split_whitespace().next().and_then(|s| logs.console_url(s));
    }
    let state = match state {
        // Nothing would ever record how it ends: it is stopped first, and the
        // decision is taken on a migration that no longer writes.
        TaskState::Unsupervised { detail } => {
            let (what, after) = stop_unsupervised(run, handle, &detail).await;
            match after {
                stopped @ TaskState::Stopped { exit_code: Some(_), .. } => stopped,
                _ => return lost(run, &format!("{detail}; {what}")),
            }
        }
        TaskState::Lost { reason } => return lost(run, &reason),
        other => other,
    };
    let (started, exit_code, reason) = match state {
        TaskState::Stopped { started, exit_code, reason } => (started, exit_code, reason),
        TaskState::Missing => {
            let noun = if profile.unit == "task" { "migration task" } else { profile.unit };
            return Err(StepError::Unknown(format!(
                "the {noun} {} is no longer known to the runner (not found after it started): whether it ran, and how far, is unknown",
                handle.id
            )));
        }
        other => {
            return Err(StepError::Unknown(format!(
                "the migration task {} ended in an unknown state: {other:?}",
                handle.id
            )));
        }
    };
    // Empty reasons are dropped: a message never ends in "could not start: ".
    let reason = reason.map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    if let Some(t) = run.record.task.as_mut() {
        t.exit_code = exit_code;
        t.stopped_reason = reason.clone();
    }
    run.save()?;
    if profile.pass_fail_only {
        return pass_fail_result(run, handle, profile.unit, exit_code, reason.as_deref(), timed_out);
    }
    let because = |prefix: String| match &reason {
        Some(r) => format!("{prefix} ({r})"),
        None => prefix,
    };
    if timed_out {
        return Err(StepError::Failed(because(format!(
            "the migration did not finish within {}; ferry stopped task {}",
            format_duration(run.env.timeouts.migration),
            handle.id
        ))));
    }
    match (started, exit_code) {
        (false, _) => Err(StepError::Abort(match &reason {
            Some(r) => format!("the migration task {} could not start: {r}", handle.id),
            None => format!("the migration task {} could not start", handle.id),
        })),
        (true, Some(0)) => Ok(format!("task {} exited with code 0", handle.id)),
        (true, Some(code)) if reason.as_deref() == Some(format!("exited with code {code}").as_str()) => {
            Err(StepError::Failed(format!("the migration exited with code {code}")))
        }
        (true, Some(code)) => Err(StepError::Failed(because(format!("the migration exited with code {code}")))),
        (true, None) => Err(StepError::Failed(format!(
            "the migration task {} stopped without an exit code{}; nothing shows it never started, so it counts as \
             a failed migration that may have changed the database",
            handle.id,
            reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
        ))),
    }
}

/// The migration's end was recorded nowhere: journal what is known and end
/// the step as unknown (exit 5, no automatic restore: a restore would throw
/// away the writes of a migration that may have succeeded).
fn lost(run: &mut Run, what: &str) -> Result<String, StepError> {
    if let Some(t) = run.record.task.as_mut() {
        t.exit_code = None;
        t.stopped_reason = Some(what.to_string());
    }
    run.save()?;
    Err(StepError::Unknown(format!(
        "{what}: the migration's exit code was recorded nowhere, so whether it succeeded is unknown and nothing was \
         restored (a restore would throw away its writes if it did)"
    )))
}

/// Stop a migration that runs on without its supervisor (SIGTERM, then SIGKILL
/// after [`UNSUPERVISED_GRACE`]) and wait until it no longer runs. Returns what
/// ferry did, in words for the output and the record, and the state after.
async fn stop_unsupervised(run: &Run, handle: &TaskHandle, detail: &str) -> (String, TaskState) {
    let runner = run.cloud.runner.clone();
    let grace = UNSUPERVISED_GRACE.as_secs();
    run.out.warn(&format!(
        "{detail}: nothing would record how it ends, so ferry stops it before deciding anything (SIGTERM, then \
         SIGKILL after {grace}s)"
    ));
    let why = "its supervisor died; ferry stops it before any restore decision";
    if let Err(e) = runner.stop(&handle.id, why).await {
        run.out.warn(&format!("cannot stop task {}: {e}", handle.id));
    }
    let start = Instant::now();
    let mut killed = false;
    loop {
        sleep(Duration::from_millis(200)).await;
        match runner.poll(&handle.id).await {
            Ok(TaskState::Unsupervised { .. }) | Err(_) => {
                if !killed && start.elapsed() >= UNSUPERVISED_GRACE {
                    run.out.warn(&format!("task {} did not stop after SIGTERM: SIGKILL", handle.id));
                    let _ = runner.stop(&handle.id, why).await;
                    killed = true;
                } else if start.elapsed() >= UNSUPERVISED_GRACE * 3 {
                    let what = format!(
                        "ferry could not stop it (SIGTERM, then SIGKILL): it may still be running; stop task {} \
                         before anything else",
                        handle.id
                    );
                    run.out.warn(&what);
                    return (what, TaskState::Unsupervised { detail: detail.to_string() });
                }
            }
            Ok(after) => {
                let what = if killed {
                    format!("ferry stopped it before deciding anything (SIGTERM, then SIGKILL after {grace}s)")
                } else {
                    "ferry stopped it before deciding anything (SIGTERM)".to_string()
                };
                run.out.info(&format!("    task {}: {what}", handle.id));
                return (what, after);
            }
        }
    }
}

/// A migration with no exit code of its own (a deployment): it succeeded or it did not.
fn pass_fail_result(
    run: &Run,
    handle: &TaskHandle,
    unit: &str,
    exit_code: Option<i32>,
    why: Option<&str>,
    timed_out: bool,
) -> Result<String, StepError> {
    match exit_code {
        // Late is still succeeded: the new version runs on the migrated schema,
        // and restoring under it would break the app.
        Some(0) if timed_out => Ok(format!(
            "{unit} {} succeeded, after the migration timeout of {}",
            handle.id,
            format_duration(run.env.timeouts.migration)
        )),
        Some(0) => Ok(format!("{unit} {} succeeded", handle.id)),
        // The runner's reason does not name the migration: this line does, once.
        _ => Err(StepError::Failed(format!("{unit} {} {}", handle.id, why.unwrap_or("did not succeed")))),
    }
}

/// Once the migration ended, its log references are bounded to it (none of
/// what the platform logs next), for `ferry logs --run`.
async fn bound_logs(run: &mut Run, handle: &TaskHandle) {
    let runner = run.cloud.runner.clone();
    if let Ok(refs) = call("find the migration's logs", || runner.log_stream_of(&handle.id)).await
        && let Some(t) = run.record.task.as_mut()
    {
        t.log_stream = refs;
    }
}

/// Start attempt `n`'s task once: reuse the journal's, then the provider's
/// record of one this run started for that attempt, and only then start a
/// new one. The task and the attempt are journaled together.
async fn start(run: &mut Run, n: u32, origin: Instant) -> Result<TaskHandle, StepError> {
    let in_flight = match run.record.migration_attempts.last() {
        Some(a) => a.attempt == n && a.ended_at.is_none(),
        // Journaled by a ferry that kept no attempts: its one task is attempt 1.
        None => n == 1,
    };
    if in_flight && let Some(t) = &run.record.task {
        let handle = TaskHandle { id: t.arn.clone(), container: t.container.clone(), log_stream: t.log_stream.clone() };
        if run.record.migration_attempts.is_empty() {
            run.record.migration_attempts.push(new_attempt(n, &handle));
            run.save()?;
        }
        return Ok(handle);
    }
    let runner = run.cloud.runner.clone();
    let spec = TaskSpec {
        run_id: run.record.run_id.to_string(),
        env: run.env.name.to_string(),
        command: run.env.migration.command.clone(),
        environment: run.env.migration.task_environment(),
        image: run.record.image.clone(),
        task_definition: run.record.task_definition.clone(),
        attempt: n,
    };
    let found = call("look for this run's task", || runner.find_started(&spec))
        .await
        .map_err(|e| StepError::Abort(format!("cannot look for an earlier attempt's task: {e}")))?;
    let handle = match found {
        Some(h) => {
            run.out.info(&format!("    found task {} started by an earlier attempt of this run", h.id));
            h
        }
        None => {
            let spec = prepare_image(run, spec).await?;
            start_with_capacity_retries(run, &spec, origin).await?
        }
    };
    let attempt = if n > 1 { format!(" (attempt {n})") } else { String::new() };
    run.out.info(&format!("    {}{attempt}", runner.describe_task(&handle)));
    run.record.task = Some(task_record(&handle));
    if !in_flight || run.record.migration_attempts.last().is_none_or(|a| a.attempt != n) {
        run.record.migration_attempts.push(new_attempt(n, &handle));
    }
    run.save()?;
    Ok(handle)
}

fn new_attempt(n: u32, handle: &TaskHandle) -> MigrationAttempt {
    MigrationAttempt {
        attempt: n,
        task: handle.id.clone(),
        started_at: chrono::Utc::now(),
        ended_at: None,
        exit_code: None,
        lock_timeout: false,
        transactional_ddl: false,
        blockers: Vec::new(),
        error: None,
        proof: None,
    }
}

/// Start the task; a start the platform refused for want of capacity (nothing
/// started) is asked again after 5 s, doubling to 60 s with jitter, while
/// `timeouts.migration` lasts; each refusal is journaled. Out of time: exit 3
/// with that evidence.
async fn start_with_capacity_retries(run: &mut Run, spec: &TaskSpec, origin: Instant) -> Result<TaskHandle, StepError> {
    let runner = run.cloud.runner.clone();
    let deadline = origin + run.env.timeouts.migration;
    let mut delay = CAPACITY_FIRST_DELAY;
    loop {
        match call("start the migration task", || runner.start(spec)).await {
            Ok(handle) => return Ok(handle),
            Err(ProviderError::NoCapacity(why)) => {
                run.record.start_attempts.push(StartAttempt { at: chrono::Utc::now(), reason: why.clone() });
                run.save()?;
                let attempts = run.record.start_attempts.len();
                let wait = delay.mul_f64(0.8 + fastrand::f64() * 0.4);
                if Instant::now() + wait >= deadline {
                    return Err(StepError::Abort(format!(
                        "the migration task could not be started: no capacity in {attempts} attempt(s) within {} \
                         (last answer: {why}); nothing started",
                        format_duration(run.env.timeouts.migration)
                    )));
                }
                run.out.warn(&format!(
                    "no capacity for the migration task (attempt {attempts}: {why}); nothing started; trying again in {}s",
                    wait.as_secs()
                ));
                sleep(wait).await;
                delay = (delay * 2).min(CAPACITY_MAX_DELAY);
            }
            // The platform refused the request: nothing started.
            Err(e @ (ProviderError::Rejected(_) | ProviderError::AccessDenied(_) | ProviderError::NotFound(_))) => {
                return Err(StepError::Abort(format!("the migration task could not be started: {e}")));
            }
            // No answer, or one that does not say: it may have started.
            Err(e) => {
                return Err(StepError::Unknown(format!(
                    "starting the migration task failed without a clear answer ({e}); it may have started"
                )));
            }
        }
    }
}

/// At most this many characters of each line the record keeps of a failed migration.
const TAIL_LINE_CHARS: usize = 2000;

/// `line` in at most `max` characters, `…` where it was cut.
fn shorten(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The record of a task just started: no exit code or reason yet.
pub(super) fn task_record(handle: &TaskHandle) -> TaskRecord {
    TaskRecord {
        arn: handle.id.clone(),
        container: handle.container.clone(),
        exit_code: None,
        stopped_reason: None,
        log_stream: handle.log_stream.clone(),
        log_url: None,
    }
}

/// `--image`: have the runner prepare it (a new task definition revision, say)
/// once per run; the journal keeps what it prepared, so a resumed
/// run uses that instead of preparing again.
async fn prepare_image(run: &mut Run, mut spec: TaskSpec) -> Result<TaskSpec, StepError> {
    let Some(image) = spec.image.clone() else { return Ok(spec) };
    if spec.task_definition.is_none() {
        let runner = run.cloud.runner.clone();
        let run_id = spec.run_id.clone();
        let prepared = call("prepare the image", || runner.prepare_image(&run_id, &image))
            .await
            .map_err(|e| StepError::Abort(format!("image {image} could not be prepared: {e}")))?;
        if let Some(revision) = &prepared {
            run.out.info(&format!("    task definition {revision}: image {image}, every other field as configured"));
            run.record.task_definition = prepared.clone();
            run.save()?;
        }
        spec.task_definition = prepared;
    }
    Ok(spec)
}

/// Follow the task until it stops or `limit` passes (then stop it). Returns the
/// last state and whether the time limit was hit.
pub(super) async fn watch(
    run: &Run,
    handle: &TaskHandle,
    stream: &mut LogStream<'_>,
    limit: Duration,
) -> (TaskState, bool) {
    let mut w = Watch::new(run, handle, limit);
    let mut stop_seen = false;
    loop {
        stream.read_page(run).await;
        let now = Instant::now();
        if now >= w.next_poll
            && let Some(state) = w.poll(now).await
        {
            return (state, w.stop_sent.is_some());
        }
        if now >= w.start + limit
            && let Some(state) = w.past_deadline(now).await
        {
            return (state, true);
        }
        // Wake for the next log read, or at once when the runner tells of the
        // task's stop (a local process's exit).
        tokio::select! {
            () = sleep(LOG_INTERVAL) => {}
            () = run.cloud.runner.stopped(&handle.id), if !stop_seen => {
                stop_seen = true;
                w.next_poll = Instant::now();
            }
        }
    }
}

/// What `watch` keeps between its rounds: when to poll next, since when the
/// task is missing, and when ferry asked it to stop.
struct Watch<'a> {
    run: &'a Run,
    handle: &'a TaskHandle,
    limit: Duration,
    start: Instant,
    backoff: Backoff,
    next_poll: Instant,
    missing_since: Option<Instant>,
    stop_sent: Option<Instant>,
    /// What the runner can do: one that cannot stop a migration is followed
    /// past the timeout until it ends (at most `timeouts.service` more), so
    /// what ferry acts on is the real outcome, never a guess.
    profile: RunnerProfile,
    stop_wait: Duration,
}

impl<'a> Watch<'a> {
    fn new(run: &'a Run, handle: &'a TaskHandle, limit: Duration) -> Self {
        let profile = run.cloud.runner.profile();
        // A runner whose status calls are cheap looks more often: a task's
        // stop is seen within its cap however long it runs.
        let policy = match profile.poll_cap {
            Some(cap) => PollPolicy { cap, ..PollPolicy::default() },
            None => PollPolicy::default(),
        };
        let start = Instant::now();
        Watch {
            run,
            handle,
            limit,
            start,
            backoff: Backoff::new(policy),
            next_poll: start,
            missing_since: None,
            stop_sent: None,
            stop_wait: if profile.can_stop { STOP_WAIT } else { run.env.timeouts.service },
            profile,
        }
    }

    /// Ask the runner for the task's state: `Some` once it stopped, or once it
    /// has been missing past the runner's grace.
    async fn poll(&mut self, now: Instant) -> Option<TaskState> {
        let (run, id) = (self.run, &self.handle.id);
        let runner = run.cloud.runner.clone();
        match call("describe the migration task", || runner.poll(id)).await {
            Ok(state @ (TaskState::Stopped { .. } | TaskState::Unsupervised { .. } | TaskState::Lost { .. })) => {
                return Some(state);
            }
            Ok(TaskState::Missing) => {
                // Never "did not start": a task that is not found may have
                // run. After the grace the outcome is unknown.
                let since = *self.missing_since.get_or_insert(now);
                if now - since >= runner.missing_grace() {
                    return Some(TaskState::Missing);
                }
            }
            Ok(state) => {
                self.missing_since = None;
                let label = if state == TaskState::Running { "running" } else { "pending" };
                run.progress(&format!("{} {id}", self.profile.unit), label, self.start.elapsed());
            }
            Err(e) => run.out.warn(&format!("cannot describe task {id}: {e}; still trying")),
        }
        self.next_poll = now + self.backoff.next_delay();
        None
    }

    /// Past the time limit: stop the task (or follow one that cannot be stopped),
    /// ask again, and give up once it has not stopped in `stop_wait`.
    async fn past_deadline(&mut self, now: Instant) -> Option<TaskState> {
        let (run, id, limit) = (self.run, &self.handle.id, self.limit);
        let runner = run.cloud.runner.clone();
        match self.stop_sent {
            None => {
                let reason = format!("migration timed out after {}", format_duration(limit));
                if !self.profile.can_stop {
                    run.out.warn(&format!(
                        "{reason}; {} cannot cancel {} {id}: following it until it ends (at most {} more)",
                        self.profile.platform,
                        self.profile.unit,
                        format_duration(self.stop_wait)
                    ));
                } else {
                    run.out.warn(&format!("{reason}; stopping task {id}"));
                    if let Err(e) = call("stop the task", || runner.stop(id, &reason)).await {
                        run.out.warn(&format!("cannot stop task {id}: {e}"));
                    }
                }
                self.stop_sent = Some(now);
                self.next_poll = now;
            }
            Some(at) if now - at >= self.stop_wait => {
                let reason = if !self.profile.can_stop {
                    format!(
                        "did not finish within {}, nor in the {} after it",
                        format_duration(limit),
                        format_duration(self.stop_wait)
                    )
                } else {
                    format!("ferry asked it to stop {}s ago and it has not stopped", STOP_WAIT.as_secs())
                };
                return Some(TaskState::Stopped { started: true, exit_code: None, reason: Some(reason) });
            }
            Some(at) if self.profile.can_stop && now - at >= STOP_WAIT / 3 => {
                // Ask again: the local runner escalates to SIGKILL.
                let _ = runner.stop(id, "did not stop after SIGTERM").await;
            }
            Some(_) => {}
        }
        None
    }
}

pub(super) struct LogStream<'a> {
    logs: &'a dyn LogSource,
    streams: Streams,
    /// What the lines read so far showed.
    pub(super) found: LogFindings,
    /// The last lines read, control characters escaped as printed (not yet redacted).
    tail: std::collections::VecDeque<String>,
}

/// What the migration's output says about how it failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LogFindings {
    /// A statement was cancelled by `lock_timeout` (SQLSTATE 55P03).
    pub lock_timeout: bool,
    /// Alembic ran the migration in a transaction ("Will assume transactional DDL.").
    pub transactional_ddl: bool,
}

impl LogFindings {
    pub(super) fn scan(&mut self, line: &str) {
        if line.contains("55P03") || line.contains("canceling statement due to lock timeout") {
            self.lock_timeout = true;
        }
        if line.contains("Will assume transactional DDL.") {
            self.transactional_ddl = true;
        }
    }
}

impl<'a> LogStream<'a> {
    pub(super) fn new(logs: &'a dyn LogSource, refs: &str) -> Self {
        LogStream { logs, streams: Streams::new(refs), found: LogFindings::default(), tail: Default::default() }
    }

    /// Print the new events of every stream; returns how many there were, and
    /// whether every stream said nothing follows yet.
    async fn read_page(&mut self, run: &Run) -> (usize, bool) {
        let page = self.streams.read_page(self.logs).await;
        for (name, e) in page.errors {
            run.out.warn(&format!("cannot read logs of {name}: {e}"));
        }
        for e in &page.events {
            self.found.scan(&e.message);
            run.out.log_line(e.timestamp, &e.message);
            let line = crate::output::escape_controls(e.message.trim_end_matches(['\n', '\r'])).into_owned();
            if self.tail.len() == super::record::LOG_TAIL_LINES {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        }
        (page.events.len(), page.at_end)
    }

    /// After the task stopped: its last lines may reach the log service seconds
    /// later (ingestion is asynchronous). Read for at least [`INGEST_GRACE`],
    /// and past it until a read finds nothing new and every stream says it is
    /// at its end (it answers with the cursor it was given); at most [`DRAIN_CAP`].
    pub(super) async fn drain(&mut self, run: &Run) {
        if run.cloud.runner.logs_complete_when_stopped() {
            while self.read_page(run).await.0 > 0 {}
            return;
        }
        let start = Instant::now();
        loop {
            let (events, at_end) = self.read_page(run).await;
            let waited = start.elapsed();
            if events == 0 && at_end && waited >= INGEST_GRACE {
                return;
            }
            if waited >= DRAIN_CAP {
                run.out.warn(&format!(
                    "the task's log stream had not ended {}s after the task stopped; later lines are not shown here",
                    DRAIN_CAP.as_secs()
                ));
                return;
            }
            if events == 0 {
                sleep(LOG_INTERVAL).await;
            }
        }
    }
}
