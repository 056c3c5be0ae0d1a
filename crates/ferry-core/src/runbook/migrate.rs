//! The migrate step: start the task (idempotently, keyed by the run id), stream
//! its logs while it runs, drain them after it stops, and let the watched
//! container's exit code decide.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::logs::Streams;
use super::record::{StartAttempt, TaskRecord};
use super::wait::{Backoff, PollPolicy, call};
use super::{Run, StepError};
use crate::config::values::format_duration;
use crate::provider::{LogSource, ProviderError, RunnerProfile, TaskHandle, TaskSpec, TaskState};

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
/// After StopTask, how long to wait for the task to stop.
const STOP_WAIT: Duration = Duration::from_secs(90);
/// A migration running on without its supervisor: SIGTERM, then SIGKILL after this.
const UNSUPERVISED_GRACE: Duration = Duration::from_secs(10);

pub async fn run_migration(run: &mut Run) -> Result<String, StepError> {
    let handle = start(run).await?;
    run.out.group_start(&format!("migration logs ({})", handle.id));
    let mut stream = LogStream::new(run.cloud.logs.as_ref(), &handle.log_stream);
    let (state, timed_out) = watch(run, &handle, &mut stream, run.env.timeouts.migration).await;
    stream.drain(run).await;
    // Redacted once here, not per line read; then each cut to what a summary shows.
    let tail: Vec<String> =
        stream.tail.iter().map(|l| shorten(&run.out.redactor().clean(l), TAIL_LINE_CHARS)).collect();
    run.out.group_end();
    if run.cloud.runner.profile().logs_known_at_end {
        bound_logs(run, &handle).await;
    }
    let logs = run.cloud.logs.clone();
    if let Some(t) = run.record.task.as_mut() {
        t.log_url = t.log_stream.split_whitespace().next().and_then(|s| logs.console_url(s));
    }
    let result = decide(run, &handle, state, timed_out).await;
    // A failed migration's last lines stay with the run (the step summary, `runs show`).
    run.record.log_tail = if result.is_err() { tail } else { Vec::new() };
    result
}

/// What the migration's end means: its exit code, or why there is none.
async fn decide(run: &mut Run, handle: &TaskHandle, state: TaskState, timed_out: bool) -> Result<String, StepError> {
    let profile = run.cloud.runner.profile();

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

/// Start the task once per run: reuse the journal's, then the provider's record
/// of one this run started, and only then start a new one.
async fn start(run: &mut Run) -> Result<TaskHandle, StepError> {
    if let Some(t) = &run.record.task {
        return Ok(TaskHandle { id: t.arn.clone(), container: t.container.clone(), log_stream: t.log_stream.clone() });
    }
    let runner = run.cloud.runner.clone();
    let spec = TaskSpec {
        run_id: run.record.run_id.clone(),
        env: run.env.name.clone(),
        command: run.env.migration.command.clone(),
        environment: run.env.migration.task_environment(),
        image: run.record.image.clone(),
        task_definition: run.record.task_definition.clone(),
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
            start_with_capacity_retries(run, &spec).await?
        }
    };
    run.out.info(&format!("    {}", runner.describe_task(&handle)));
    run.record.task = Some(task_record(&handle));
    run.save()?;
    Ok(handle)
}

/// Start the task; a start the platform refused for want of capacity (nothing
/// started) is asked again after 5 s, doubling to 60 s with jitter, while
/// `timeouts.migration` lasts; each refusal is journaled. Out of time: exit 3
/// with that evidence.
async fn start_with_capacity_retries(run: &mut Run, spec: &TaskSpec) -> Result<TaskHandle, StepError> {
    let runner = run.cloud.runner.clone();
    let deadline = Instant::now() + run.env.timeouts.migration;
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
    /// The last lines read, control characters escaped as printed (not yet redacted).
    tail: std::collections::VecDeque<String>,
}

impl<'a> LogStream<'a> {
    pub(super) fn new(logs: &'a dyn LogSource, refs: &str) -> Self {
        LogStream { logs, streams: Streams::new(refs), tail: Default::default() }
    }

    /// Print the new events of every stream; returns how many there were, and
    /// whether every stream said nothing follows yet.
    async fn read_page(&mut self, run: &Run) -> (usize, bool) {
        let page = self.streams.read_page(self.logs).await;
        for (name, e) in page.errors {
            run.out.warn(&format!("cannot read logs of {name}: {e}"));
        }
        for e in &page.events {
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
