//! Operations on the app service, for the restore and `ferry service`: start
//! one (waiting out an operation already in progress, which the platform
//! refuses to overlap), then wait for it to end.

use std::time::Duration;

use tokio::time::Instant;

use super::wait::{Poll, PollPolicy, WaitError, call_once, wait_for};
use crate::config::values::format_duration;
use crate::output::Reporter;
use crate::provider::{AppService, OperationInfo, OperationKind, ProviderError, ServiceState};

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
    /// The service state that proves the change is done, when there is one.
    fn settles_at(&self) -> Option<ServiceState> {
        match self {
            Change::Pause => Some(ServiceState::Paused),
            Change::Resume => Some(ServiceState::Running),
            Change::Repoint { .. } => None,
        }
    }

    fn doing(&self) -> String {
        match self {
            Change::Pause => "pausing the service".into(),
            Change::Resume => "resuming the service".into(),
            Change::Repoint { var, .. } => format!("updating the service's {var}"),
        }
    }
}

/// An operation that was in progress when ferry wanted to make its change,
/// and that ferry waited out; `succeeded` is how it ended (`None`: unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitedOut {
    pub op: OperationInfo,
    pub succeeded: Option<bool>,
}

/// How long an operation ferry just started may be missing from the
/// provider's listing (a listing may be eventually consistent)
/// before that is an error.
pub const VISIBILITY_GRACE: Duration = Duration::from_secs(60);

/// Make the change and wait until it is done, all within `limit`. While another
/// operation is in progress, wait for it to end and try again: a restore that
/// starts during a deployment waits for the deployment.
pub async fn change(
    service: &dyn AppService,
    change: Change<'_>,
    limit: Duration,
    out: &Reporter,
) -> Result<(), String> {
    change_waiting(service, change, limit, out).await.map(|_| ())
}

/// [`change`], returning the operations it waited out (a deployment that
/// landed meanwhile changes what a resume starts).
pub async fn change_waiting(
    service: &dyn AppService,
    change: Change<'_>,
    limit: Duration,
    out: &Reporter,
) -> Result<Vec<WaitedOut>, String> {
    let doing = change.doing();
    let deadline = Instant::now() + limit;
    let mut waited = Vec::new();
    let op = loop {
        // Busy is answered below by waiting for the operation in progress to
        // end, not by blind retries.
        let started = call_once(&doing, || async {
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
                out.info(&format!(
                    "    another {} operation is in progress; waiting for it to end",
                    service.platform()
                ));
                let op = wait_idle(service, left, out).await?;
                let succeeded = match &op {
                    Some(op) => service.operation_done(&op.id).await.ok().flatten(),
                    None => None,
                };
                // Not identified (not listed yet): it may have been a deployment.
                let op = op
                    .unwrap_or_else(|| OperationInfo { id: "(not listed)".into(), kind: OperationKind::Unidentified });
                waited.push(WaitedOut { op, succeeded });
            }
            Err(e) => return Err(format!("{doing}: {e}")),
        }
    };
    if let Some(op) = op {
        let left = deadline.saturating_duration_since(Instant::now());
        wait_operation_until(service, &op, &doing, left, change.settles_at(), out).await?;
    }
    Ok(waited)
}

/// Wait until the service has no operation in progress. Returns that
/// operation, when it could be identified while it ran (a listing may show a
/// new operation only after a while).
async fn wait_idle(service: &dyn AppService, limit: Duration, out: &Reporter) -> Result<Option<OperationInfo>, String> {
    let what = "the service's current operation";
    let current: std::sync::Mutex<Option<OperationInfo>> = std::sync::Mutex::new(None);
    wait_for(
        what,
        limit,
        PollPolicy::default(),
        || async {
            let s = service.status().await?;
            if s.state != ServiceState::Busy {
                return Ok(Poll::Ready(()));
            }
            let known = current.lock().unwrap_or_else(|e| e.into_inner()).is_some();
            // Advisory: which operation it is decides only what the resume asks.
            if !known && let Ok(Some(op)) = service.operation_in_progress().await {
                out.info(&format!("    it is {} operation {}", op.kind, op.id));
                *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(op);
            }
            Ok(Poll::Pending(s.status))
        },
        |state, waited| out.progress(what, state, waited),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(current.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// Wait until the operation succeeded; a failed operation or the time limit is an error.
pub async fn wait_operation(
    service: &dyn AppService,
    op: &str,
    what: &str,
    limit: Duration,
    out: &Reporter,
) -> Result<(), String> {
    wait_operation_until(service, op, what, limit, None, out).await
}

/// [`wait_operation`]. An operation not listed yet is waited for up to
/// [`VISIBILITY_GRACE`]; meanwhile the service reaching `settles_at` (paused
/// after a pause) with no operation in progress is proof enough that it is done.
async fn wait_operation_until(
    service: &dyn AppService,
    op: &str,
    what: &str,
    limit: Duration,
    settles_at: Option<ServiceState>,
    out: &Reporter,
) -> Result<(), String> {
    let first_missing: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let result = wait_for(
        what,
        limit,
        PollPolicy::default(),
        || async {
            match service.operation_done(op).await {
                Ok(Some(true)) => Ok(Poll::Ready(())),
                Ok(Some(false)) => Err(ProviderError::Other(format!("operation {op} failed"))),
                Ok(None) => Ok(Poll::Pending("in progress".into())),
                Err(ProviderError::NotFound(why)) => {
                    let since =
                        *first_missing.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
                    if let Some(target) = settles_at
                        && service.status().await?.state == target
                    {
                        return Ok(Poll::Ready(()));
                    }
                    if since.elapsed() >= VISIBILITY_GRACE {
                        return Err(ProviderError::Other(format!(
                            "{why} is still not listed {}s after it started",
                            VISIBILITY_GRACE.as_secs()
                        )));
                    }
                    Ok(Poll::Pending("not listed yet".into()))
                }
                Err(e) => Err(e),
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
