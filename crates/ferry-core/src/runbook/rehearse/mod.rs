//! The rehearsal: the migration, exactly as deploy runs it, on a clone of the
//! environment's database, with the clone's locks sampled while it runs; then
//! the clone is deleted. Nothing of the real environment changes.

pub mod observe;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::migrate::{LogStream, watch};
use super::record::{RehearsalRecord, Thresholds, run_suffix};
use super::wait::{Poll, PollPolicy, call, wait_for};
use super::{Run, StepError};
use crate::config::values::format_duration;
use crate::provider::{
    CloneInfo, CloneState, LockObserver, PURPOSE_REHEARSAL, TAG_ENV, TAG_PURPOSE, TAG_RUN_ID, Tags, TaskSpec, TaskState,
};
use observe::{Observed, SAMPLE_EVERY, consequence};

/// The clone's name: the database's, followed by `-rehearsal-<run hex>`.
pub fn clone_name(run: &Run) -> String {
    run.cloud.database.sibling_id(&format!("rehearsal-{}", run_suffix(&run.record.run_id)))
}

fn tags(run: &Run) -> Tags {
    Tags::from([
        (TAG_PURPOSE.to_string(), PURPOSE_REHEARSAL.to_string()),
        (TAG_RUN_ID.to_string(), run.record.run_id.to_string()),
        (TAG_ENV.to_string(), run.env.name.to_string()),
    ])
}

fn rehearsal(run: &mut Run) -> &mut RehearsalRecord {
    run.record.rehearsal.get_or_insert_with(RehearsalRecord::default)
}

/// The `clone` step: make the clone (or find the one an earlier attempt made).
pub async fn make_clone(run: &mut Run) -> Result<String, StepError> {
    let name = clone_name(run);
    // Named in the record before it exists, so a cleanup always knows what to look for.
    rehearsal(run).clone = Some(name.clone());
    run.save()?;
    let info = get_clone(run, &name).await?;
    rehearsal(run).clone_endpoint = Some(info.endpoint.clone());
    run.save()?;
    Ok(format!("clone {} of {} is ready", info.id, run.cloud.database.cluster_id()))
}

/// Make the clone, or find it made: each look takes the next step (a cloned
/// cluster, then its instance) until it can be used, within `timeouts.restore`.
async fn get_clone(run: &Run, name: &str) -> Result<CloneInfo, StepError> {
    let (db, tags) = (run.cloud.database.clone(), tags(run));
    let what = format!("rehearsal clone {name}");
    let said = std::sync::atomic::AtomicBool::new(false);
    wait_for(
        &what,
        run.env.timeouts.restore,
        PollPolicy::default(),
        || async {
            Ok(match db.clone_for_rehearsal(name, &tags).await? {
                CloneState::Ready(info) => Poll::Ready(info),
                CloneState::Making(state) => {
                    if !said.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        run.out.info(&format!(
                            "    making {what} of {}: this takes minutes on a cloud database (within {}, \
                             timeouts.restore); nothing of the environment changes",
                            db.cluster_id(),
                            format_duration(run.env.timeouts.restore)
                        ));
                    }
                    Poll::Pending(state)
                }
            })
        },
        |state, waited| run.out.progress(&what, state, waited),
    )
    .await
    .map_err(|e| StepError::Failed(format!("cannot make rehearsal clone {name}: {e}")))
}

/// The migration's environment on the clone: as deploy sets it, with the
/// database URL of the clone and `rehearse.database_env` substituted.
fn environment(run: &Run, clone: &CloneInfo) -> BTreeMap<String, String> {
    let mut env = run.env.migration.task_environment();
    if let Some(url) = &clone.url_for_migration {
        env.insert("DATABASE_URL".into(), url.clone());
    }
    env.insert(crate::provider::REHEARSAL_OF.into(), run.record.run_id.to_string());
    let port = clone.port.map(|p| p.to_string()).unwrap_or_default();
    for (k, v) in &run.env.rehearse.database_env {
        env.insert(k.clone(), v.replace("${clone.endpoint}", &clone.endpoint).replace("${clone.port}", &port));
    }
    env
}

/// The `rehearse` step: run the migration on the clone and judge it.
pub async fn rehearse(run: &mut Run, was_in_flight: bool) -> Result<String, StepError> {
    if was_in_flight {
        return Err(StepError::Failed(
            "the rehearsal was interrupted; it is not repeated on a clone the interrupted migration may have changed \
             (start a new one)"
                .into(),
        ));
    }
    let name = rehearsal(run).clone.clone().unwrap_or_else(|| clone_name(run));
    let clone = get_clone(run, &name).await?;
    let cfg = run.env.rehearse.clone();
    *rehearsal(run) = RehearsalRecord {
        clone: Some(clone.id.clone()),
        clone_endpoint: Some(clone.endpoint.clone()),
        thresholds: Thresholds {
            max_duration_ms: cfg.max_duration.as_millis() as u64,
            max_exclusive_lock_ms: cfg.max_exclusive_lock.as_millis() as u64,
            max_exclusive_lock_set: cfg.max_exclusive_lock_set,
        },
        ..RehearsalRecord::default()
    };
    let observer = run.cloud.database.lock_observer(&clone).await;
    let spec = TaskSpec {
        run_id: format!("{}-rehearsal", run.record.run_id),
        env: run.env.name.to_string(),
        command: run.env.migration.command.clone(),
        environment: environment(run, &clone),
        image: run.record.image.clone(),
        task_definition: run.record.task_definition.clone(),
        attempt: 1,
    };
    let runner = run.cloud.runner.clone();
    let started = Instant::now();
    let handle = call("start the rehearsal's migration", || runner.start(&spec))
        .await
        .map_err(|e| StepError::Failed(format!("the migration could not be started on the clone: {e}")))?;
    rehearsal(run).task = Some(super::migrate::task_record(&handle));
    run.save()?;
    run.out.info(&format!("    migration {} on clone {}", handle.id, clone.id));
    let observed = Arc::new(Mutex::new(Observed::default()));
    run.out.group_start(&format!("rehearsal logs ({})", handle.id));
    let mut stream = LogStream::new(run.cloud.logs.as_ref(), &handle.log_stream);
    let (state, timed_out) = {
        let watching = watch(run, &handle, &mut stream, cfg.max_duration);
        tokio::pin!(watching);
        match &observer {
            Ok(o) => tokio::select! {
                biased;
                r = &mut watching => r,
                () = sample_forever(o.as_ref(), observed.clone()) => unreachable!("sampling never ends"),
            },
            Err(_) => watching.await,
        }
    };
    let duration = started.elapsed();
    stream.drain(run).await;
    run.out.group_end();
    let observed = std::mem::take(&mut *observed.lock().unwrap_or_else(|e| e.into_inner()));
    judge(run, &state, timed_out, duration, observer.err().map(|e| e.to_string()), &observed)
}

async fn sample_forever(observer: &dyn LockObserver, into: Arc<Mutex<Observed>>) {
    loop {
        let at = Instant::now();
        let sample = observer.sample().await;
        {
            let mut o = into.lock().unwrap_or_else(|e| e.into_inner());
            match &sample {
                Ok(s) => o.add(at, s),
                Err(_) => o.errors += 1,
            }
        }
        sleep(SAMPLE_EVERY.saturating_sub(at.elapsed())).await;
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// Record what was seen and decide: the migration passed on the clone within
/// the thresholds, or it did not (and why, in plain words).
fn judge(
    run: &mut Run,
    state: &TaskState,
    timed_out: bool,
    duration: Duration,
    not_observed: Option<String>,
    observed: &Observed,
) -> Result<String, StepError> {
    let cfg = run.env.rehearse.clone();
    let mut failures = Vec::new();
    let mut findings = vec![format!("the migration ran {} on the clone", secs(duration))];
    let exit = match state {
        TaskState::Stopped { exit_code, .. } => *exit_code,
        _ => None,
    };
    if timed_out {
        failures.push(format!(
            "it did not finish within rehearse.max_duration = {} (ferry stopped it on the clone)",
            format_duration(cfg.max_duration)
        ));
    } else if exit != Some(0) {
        failures.push(match exit {
            Some(code) => format!("the migration failed on the clone (exit code {code})"),
            None => format!("the migration did not finish on the clone ({state:?})"),
        });
    }
    let locks = observed.locks();
    lock_findings(&cfg, &locks, observed, not_observed.as_deref(), &mut findings, &mut failures);
    if let Some(s) = observed.longest_statement() {
        findings.push(format!(
            "longest statement: {} ({})",
            s.query.split_whitespace().collect::<Vec<_>>().join(" "),
            secs(Duration::from_millis(s.ran_for_ms))
        ));
    }
    if duration > cfg.max_duration && !timed_out {
        failures.push(format!(
            "it took {}, more than rehearse.max_duration = {}",
            secs(duration),
            format_duration(cfg.max_duration)
        ));
    }
    for f in &findings {
        run.out.info(&format!("    {f}"));
    }
    let r = rehearsal(run);
    if let Some(t) = r.task.as_mut() {
        t.exit_code = exit;
    }
    r.duration_ms = Some(duration.as_millis() as u64);
    r.locks_observed = not_observed.is_none();
    r.not_observed = not_observed;
    r.locks = locks;
    r.waits = observed.waits();
    r.longest_statement = observed.longest_statement();
    r.findings = findings;
    r.verdict = Some(if failures.is_empty() { "passed" } else { "failed" }.into());
    run.save()?;
    if failures.is_empty() {
        Ok(format!("the migration passed on the clone in {}, within the thresholds", secs(duration)))
    } else {
        Err(StepError::Failed(format!("the rehearsal failed: {}", failures.join("; "))))
    }
}

/// What the lock samples say, and which thresholds they break.
fn lock_findings(
    cfg: &crate::config::RehearseConfig,
    locks: &[super::record::LockHeld],
    observed: &Observed,
    not_observed: Option<&str>,
    findings: &mut Vec<String>,
    failures: &mut Vec<String>,
) {
    if let Some(why) = not_observed {
        findings.push(format!("locks were not observed: {why}"));
        if cfg.max_exclusive_lock_set {
            failures.push(format!(
                "rehearse.max_exclusive_lock = {} is set, but locks could not be observed: {why}",
                format_duration(cfg.max_exclusive_lock)
            ));
        }
        return;
    }
    for l in locks {
        let held = Duration::from_millis(l.held_for_ms);
        findings.push(format!(
            "held {} on {} for {}: {}",
            l.mode,
            l.relation,
            secs(held),
            consequence(&observe::mode_name(&l.mode), &l.relation)
        ));
        if l.mode == "ACCESS EXCLUSIVE" && held > cfg.max_exclusive_lock {
            failures.push(format!(
                "it held ACCESS EXCLUSIVE on {} for {}, more than rehearse.max_exclusive_lock = {}",
                l.relation,
                secs(held),
                format_duration(cfg.max_exclusive_lock)
            ));
        }
    }
    for w in observed.waits() {
        findings.push(format!(
            "waited {} for {} on {}",
            secs(Duration::from_millis(w.held_for_ms)),
            w.mode,
            w.relation
        ));
    }
    if observed.errors > 0 {
        findings.push(format!("{} of the lock samples could not be read", observed.errors));
    }
}

/// How to remove a kept clone by hand.
fn removal(run: &Run, id: &str) -> String {
    run.cloud.database.clone_removal(id)
}

/// Stop the rehearsal's migration if it still runs (an interrupted run): it
/// works only on the clone, and the clone is about to go.
async fn stop_task(run: &Run) {
    let Some(task) = run.record.rehearsal.as_ref().and_then(|r| r.task.clone()) else { return };
    let runner = run.cloud.runner.clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut asked = false;
    while Instant::now() < deadline {
        match runner.poll(&task.arn).await {
            Ok(TaskState::Stopped { .. } | TaskState::Missing | TaskState::Lost { .. }) => return,
            Ok(_) if !asked => {
                run.out.info(&format!("    stopping the rehearsal's migration {}", task.arn));
                let _ = runner.stop(&task.arn, "the rehearsal ended; its clone is deleted").await;
                asked = true;
            }
            _ => {}
        }
        sleep(Duration::from_millis(250)).await;
    }
}

/// The `cleanup` step: delete the clone (only one marked as this run's), or
/// keep it when asked. `Err` names a clone that is left.
pub async fn cleanup(run: &mut Run) -> Result<String, StepError> {
    let Some(id) = run.record.rehearsal.as_ref().and_then(|r| r.clone.clone()) else {
        return Ok("no clone was made".into());
    };
    if run.env.rehearse.keep_clone || run.record.options.keep_clone {
        rehearsal(run).clone_fate = Some("kept".into());
        run.save()?;
        return Ok(format!("clone {id} is kept for inspection; remove it with: {}", removal(run, &id)));
    }
    stop_task(run).await;
    match delete_clone(run, &id).await {
        Ok(()) => {
            rehearsal(run).clone_fate = Some("deleted".into());
            run.save()?;
            Ok(format!("clone {id} deleted"))
        }
        Err(e) => Err(StepError::Unknown(format!(
            "rehearsal clone {id} could not be deleted ({e}); it is left and must be removed: {}",
            removal(run, &id)
        ))),
    }
}

/// Delete clone `id` step by step (a cloned cluster's instance, then the
/// cluster) until it is gone or going, within `timeouts.restore`.
async fn delete_clone(run: &Run, id: &str) -> Result<(), String> {
    let (db, run_id) = (run.cloud.database.clone(), run.record.run_id.clone());
    let what = format!("deleting rehearsal clone {id}");
    wait_for(
        &what,
        run.env.timeouts.restore,
        PollPolicy::default(),
        || async {
            Ok(match db.delete_rehearsal_clone(id, &run_id).await? {
                None => Poll::Ready(()),
                Some(state) => Poll::Pending(state),
            })
        },
        |state, waited| run.out.progress(&what, state, waited),
    )
    .await
    .map_err(|e| e.to_string())
}

/// After a signal: delete the clone at once (it only costs), and say so.
pub async fn cleanup_after_signal(run: &mut Run) {
    let Some(r) = run.record.rehearsal.clone() else { return };
    if r.clone.is_none()
        || r.clone_fate.is_some()
        || run.record.step_status(super::record::StepName::Cleanup).is_settled()
    {
        return;
    }
    let _ = run.begin(super::record::StepName::Cleanup, "delete the rehearsal clone");
    let (status, detail) = match cleanup(run).await {
        Ok(done) => (super::record::StepStatus::Succeeded, done),
        Err(e) => (super::record::StepStatus::Failed, e.to_string()),
    };
    let _ = run.end(super::record::StepName::Cleanup, status, &detail);
    if let Some(state) = run.record.state.as_mut() {
        state.push_str(&format!("; {detail}"));
    }
    let _ = run.save();
}
