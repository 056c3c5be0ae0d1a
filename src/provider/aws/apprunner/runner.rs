//! `runner = "apprunner"`: the migration is a deployment of the App Runner
//! service, whose app migrates on start-up (under its own advisory lock). The
//! "task" is the StartDeployment operation; its logs are the service's two log
//! groups, read across all their streams.
//!
//! App Runner has no way to cancel a deployment and no idempotency token:
//! `stop` says so (the runbook then waits for the operation to end), and a run
//! finds its own deployment again by time (the first START_DEPLOYMENT started
//! at or after the run began).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_apprunner::types::{OperationStatus, OperationSummary, OperationType};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{AppRunner, app_error, ended, in_progress};
use crate::provider::aws::logs::{all_streams, all_streams_between};
use crate::provider::{MigrationRunner, PResult, ProviderError, TaskHandle, TaskSpec, TaskState, TaskSummary};

pub struct Deployments {
    service: Arc<AppRunner>,
}

impl Deployments {
    pub fn new(service: Arc<AppRunner>) -> Self {
        Deployments { service }
    }

    /// The service's log groups (service events and application output) as
    /// log references for `LogSource::read`, separated by a space: service
    /// events from `since` exactly (none of the previous operation's),
    /// application output from a little earlier so its first lines are not
    /// lost; both up to `until` when the operation has ended.
    async fn log_refs(&self, since: DateTime<Utc>, until: Option<DateTime<Utc>>) -> PResult<(String, String)> {
        let s = self.service.describe().await?;
        let base = format!("/aws/apprunner/{}/{}", s.service_name(), s.service_id());
        let group = |name: &str, from: DateTime<Utc>| match until {
            Some(end) => all_streams_between(&format!("{base}/{name}"), from, end),
            None => all_streams(&format!("{base}/{name}"), from),
        };
        let refs = format!("{} {}", group("service", since), group("application", since - CLOCK_SKEW));
        Ok((s.service_name().to_string(), refs))
    }

    async fn handle(&self, operation_id: &str, since: DateTime<Utc>) -> PResult<TaskHandle> {
        let (name, log_stream) = self.log_refs(since, None).await?;
        Ok(TaskHandle { id: operation_id.to_string(), container: name, log_stream })
    }
}

fn when(t: Option<&aws_smithy_types::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| t.to_millis().ok()).and_then(DateTime::from_timestamp_millis)
}

/// When an operation started, as App Runner says (now, when it does not).
fn started_at(op: &OperationSummary) -> DateTime<Utc> {
    when(op.started_at()).unwrap_or_else(Utc::now)
}

/// Application output is read from this long before the deployment, so its
/// first lines are not lost to clock skew.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// A deployment's last service event may be logged a moment after it ended.
const END_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);

/// When a run began, from its id (`<env>-<yyyymmddThhmmssZ>-<hex>`).
fn run_started(run_id: &str) -> Option<DateTime<Utc>> {
    let mut parts = run_id.rsplitn(3, '-');
    let (_hex, stamp) = (parts.next()?, parts.next()?);
    NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
}

#[async_trait]
impl MigrationRunner for Deployments {
    async fn check(&self) -> PResult<Option<String>> {
        let s = self.service.describe().await?;
        Ok(Some(format!("deployments of App Runner service {} migrate on start-up", s.service_name())))
    }

    async fn start(&self, _spec: &TaskSpec) -> PResult<TaskHandle> {
        let before = Utc::now();
        let out = self
            .service
            .client
            .start_deployment()
            .service_arn(self.service.arn())
            .send()
            .await
            .map_err(|e| app_error("StartDeployment", self.service.arn(), e))?;
        self.handle(out.operation_id(), before).await
    }

    async fn poll(&self, operation_id: &str) -> PResult<TaskState> {
        let Some(op) = self.service.operation(operation_id).await? else { return Ok(TaskState::Missing) };
        let status = op.status().map_or("UNKNOWN", |s| s.as_str());
        Ok(match ended(op.status()) {
            None if op.status() == Some(&OperationStatus::Pending) => TaskState::Pending,
            None => TaskState::Running,
            Some(true) => {
                TaskState::Stopped { started: true, exit_code: Some(0), reason: Some("ended SUCCEEDED".into()) }
            }
            // The reason does not name the deployment: the runbook's line does.
            Some(false) => TaskState::Stopped {
                started: true,
                exit_code: None,
                reason: Some(format!(
                    "ended {status}{}",
                    if status == "ROLLBACK_SUCCEEDED" {
                        " (the service rolled back to its previous version)"
                    } else {
                        ""
                    }
                )),
            },
        })
    }

    async fn stop(&self, operation_id: &str, _reason: &str) -> PResult<()> {
        Err(ProviderError::Rejected(format!(
            "App Runner cannot cancel deployment {operation_id}; ferry waits for it to end"
        )))
    }

    /// Any operation in progress blocks a deployment (App Runner would refuse it).
    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>> {
        Ok(self
            .service
            .operations()
            .await?
            .iter()
            .filter(|op| in_progress(op))
            .map(|op| TaskSummary {
                id: format!(
                    "{} operation {}",
                    op.r#type().map_or("App Runner", |t| t.as_str()),
                    op.id().unwrap_or("?")
                ),
                status: op.status().map_or("UNKNOWN", |s| s.as_str()).to_string(),
                started_by: None,
            })
            .collect())
    }

    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        let Some(since) = run_started(run_id) else { return Ok(None) };
        let ops = self.service.operations().await?;
        // Newest first: the oldest deployment started since the run began is this run's.
        let found = ops.iter().rev().find(|op| {
            op.r#type() == Some(&OperationType::StartDeployment)
                && op.started_at().is_some_and(|t| t.secs() >= since.timestamp())
        });
        match found {
            Some(op) => Ok(Some(self.handle(op.id().unwrap_or_default(), started_at(op)).await?)),
            None => Ok(None),
        }
    }

    async fn log_stream_of(&self, operation_id: &str) -> PResult<String> {
        let op = self
            .service
            .operation(operation_id)
            .await?
            .ok_or_else(|| ProviderError::NotFound(format!("App Runner operation {operation_id}")))?;
        let until = ended(op.status()).and(when(op.ended_at())).map(|t| t + END_MARGIN);
        Ok(self.log_refs(started_at(&op), until).await?.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_gives_its_start_time() {
        let t = run_started("prod-20261121T201602Z-9a3f").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T20:16:02+00:00");
        assert_eq!(run_started("my-env-name-20261121T201602Z-0001").unwrap().timestamp(), t.timestamp());
        assert_eq!(run_started("nonsense"), None);
    }
}
