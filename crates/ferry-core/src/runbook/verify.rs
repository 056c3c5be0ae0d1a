//! The verify step: the app's health URL answers the expected status in time.

use super::wait::{Poll, PollPolicy, WaitError, wait_for};
use super::{Run, StepError};
use crate::config::HealthConfig;

/// `Ok(None)` when no health check is configured.
pub async fn verify(run: &Run) -> Result<Option<String>, StepError> {
    let Some(health) = run.env.health.clone() else { return Ok(None) };
    check(run, &health).await.map(Some).map_err(StepError::Failed)
}

async fn check(run: &Run, h: &HealthConfig) -> Result<String, String> {
    let probe = run.cloud.health.clone();
    let what = format!("GET {}", h.url);
    let result = wait_for(
        &what,
        h.timeout,
        PollPolicy::default(),
        || async {
            Ok(match probe.probe(&h.url).await {
                Ok(code) if code == h.expect_status => Poll::Ready(code),
                Ok(code) => Poll::Pending(format!("answered {code}")),
                Err(e) => Poll::Pending(e),
            })
        },
        |state, waited| run.progress(&what, state, waited),
    )
    .await;
    match result {
        Ok(code) => Ok(format!("{} answered {code}", h.url)),
        Err(WaitError::TimedOut { waited, last, .. }) => {
            Err(format!("{} did not answer {} within {waited} (last: {last})", h.url, h.expect_status))
        }
        Err(WaitError::Failed(e)) => Err(format!("health check of {} failed: {e}", h.url)),
    }
}
