//! Waiting for App Runner operations, for the restore and `ferry service`.

use std::time::Duration;

use super::wait::{Poll, PollPolicy, WaitError, wait_for};
use crate::output::Reporter;
use crate::provider::{AppService, ProviderError};

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
