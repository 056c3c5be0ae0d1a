//! `ferry logs`: a run's (or a task's) migration output.

use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::LogsArgs;
use chrono::Utc;
use ferry_core::config::HumanDuration;
use ferry_core::output::Redactor;
use ferry_core::provider::{ProviderError, TaskState};
use ferry_core::runbook::journal::{read_run, readable_runs};
use ferry_core::runbook::logs::Streams;
use serde_json::json;
use std::time::Duration;

pub async fn logs(ctx: &Context, a: LogsArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    let since = match &a.since {
        Some(s) => Some(HumanDuration::parse(s).map_err(|e| CommandError::Usage(format!("--since: {e}")))?.0),
        None => None,
    };
    let cloud = ctx.cloud(env).await?;
    let usage = |e: ProviderError| match e {
        ProviderError::Rejected(m) => CommandError::Usage(m),
        other => other.into(),
    };
    let (task_id, stream) = match (&a.task, &a.run) {
        (Some(task), _) => (task.clone(), cloud.runner.log_stream_of(task).await.map_err(usage)?),
        (None, Some(run_id)) => {
            let r = read_run(&ctx.store(env)?, run_id).map_err(|e| CommandError::Usage(e.to_string()))?;
            // A rehearsal's migration (on its clone) when the run started no other.
            let t = r
                .task
                .or_else(|| r.rehearsal.and_then(|h| h.task))
                .ok_or_else(|| CommandError::Usage(format!("run {run_id} started no migration task")))?;
            (t.arn, t.log_stream)
        }
        (None, None) => {
            let t =
                readable_runs(&ctx.store(env)?, Some(&env.name)).into_iter().find_map(|r| r.task).ok_or_else(|| {
                    CommandError::Usage(format!("no run of {} has started a migration task yet", env.name))
                })?;
            (t.arn, t.log_stream)
        }
    };
    if cloud.runner.poll(&task_id).await.map_err(usage)? == TaskState::Missing {
        return Err(CommandError::Usage(format!("no migration task {task_id} in {}", env.name)));
    }
    let redactor = Redactor::new(env.secrets());
    let cutoff = since.and_then(|d| chrono::Duration::from_std(d).ok()).map(|d| Utc::now() - d);
    let mut collected = Vec::new();
    let mut streams = Streams::new(&stream);
    let mut empty_after_stop = 0;
    loop {
        let (events, errors) = streams.read(cloud.logs.as_ref()).await;
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e.into());
        }
        let got = events.len();
        for e in events.into_iter().filter(|e| cutoff.is_none_or(|c| e.timestamp >= c)) {
            if ctx.json() {
                collected.push(e);
            } else {
                let at = e.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                crate::outln!("{at} | {}", ferry_core::output::escape_controls(&redactor.clean(&e.message)))?;
            }
        }
        if !a.follow {
            if got == 0 {
                break;
            }
            continue;
        }
        if got == 0 {
            let stopped = matches!(
                cloud.runner.poll(&task_id).await?,
                TaskState::Stopped { .. } | TaskState::Missing | TaskState::Lost { .. }
            );
            if stopped {
                empty_after_stop += 1;
                if empty_after_stop >= 2 {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        } else {
            empty_after_stop = 0;
        }
    }
    if ctx.json() {
        print_json(&json!({ "events": collected }), &redactor)?;
    }
    Ok(0)
}
