//! App Runner operations, for the restore and `ferry service`: start one (waiting
//! out an operation already in progress, which App Runner refuses to overlap),
//! then wait for it to end.

use std::time::Duration;

use tokio::time::Instant;

use super::wait::{Poll, PollPolicy, WaitError, call, wait_for};
use crate::config::values::format_duration;
use crate::output::Reporter;
use crate::provider::{AppService, ProviderError};

/// What to do to the service.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Pause,
    Resume,
    /// Point `var`'s URL at `host`.
    Repoint {
        var: &'a str,
        host: &'a str,
    },
}

impl Change<'_> {
    fn doing(&self) -> String {
        match self {
            Change::Pause => "pausing the service".into(),
            Change::Resume => "resuming the service".into(),
            Change::Repoint { var, .. } => format!("updating the service's {var}"),
        }
    }
}

/// Make the change and wait until it is done, all within `limit`. While another
/// operation is in progress, wait for it to end and try again: a restore that
/// starts during a deployment waits for the deployment.
pub async fn change(
    service: &dyn AppService,
    change: Change<'_>,
    limit: Duration,
    out: &Reporter,
) -> Result<(), String> {
    let doing = change.doing();
    let deadline = Instant::now() + limit;
    let op = loop {
        let started = call(&doing, || async {
            match change {
                Change::Pause => service.pause().await,
                Change::Resume => service.resume().await,
                Change::Repoint { var, host } => service.replace_env_host(var, host).await,
            }
        })
        .await;
        match started {
            Ok(op) => break op,
            Err(ProviderError::Busy(why)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(format!("{doing}: {why}; still busy after {}", format_duration(limit)));
                }
                out.info("    another App Runner operation is in progress; waiting for it to end");
                wait_idle(service, left, out).await?;
            }
            Err(e) => return Err(format!("{doing}: {e}")),
        }
    };
    match op {
        Some(op) => wait_operation(service, &op, &doing, deadline.saturating_duration_since(Instant::now()), out).await,
        None => Ok(()),
    }
}

/// Wait until the service has no operation in progress.
async fn wait_idle(service: &dyn AppService, limit: Duration, out: &Reporter) -> Result<(), String> {
    let what = "the service's current operation";
    wait_for(
        what,
        limit,
        PollPolicy::default(),
        || async {
            let s = service.status().await?;
            Ok(if s.status == "OPERATION_IN_PROGRESS" { Poll::Pending(s.status) } else { Poll::Ready(()) })
        },
        |state, waited| out.progress(what, state, waited),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Wait until the operation succeeded; a failed operation or the time limit is an error.
pub async fn wait_operation(
    service: &dyn AppService,
    op: &str,
    what: &str,
    limit: Duration,
    out: &Reporter,
) -> Result<(), String> {
    let result = wait_for(
        what,
        limit,
        PollPolicy::default(),
        || async {
            match service.operation_done(op).await? {
                Some(true) => Ok(Poll::Ready(())),
                Some(false) => Err(ProviderError::Other(format!("operation {op} failed"))),
                None => Ok(Poll::Pending("in progress".into())),
            }
        },
        |state, waited| out.progress(what, state, waited),
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(WaitError::TimedOut { waited, .. }) => Err(format!("{what} did not finish within {waited}")),
        Err(WaitError::Failed(e)) => Err(format!("{what}: {e}")),
    }
}
