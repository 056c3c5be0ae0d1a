//! `runner = "apprunner"`: the migration is a deployment of the App Runner
//! service, whose app migrates on start-up (under its own advisory lock). The
//! "task" is the StartDeployment operation; its logs are the service's two log
//! groups, read across all their streams.
//!
//! With an image (`--image`), the deployment is an UpdateService that sets the
//! service's `ImageIdentifier` (App Runner starts the deployment itself); its
//! operation is followed the same way.
//!
//! App Runner has no way to cancel a deployment and no idempotency token:
//! `stop` says so (the runbook then waits for the operation to end), and a run
//! finds its own deployment again by time (the first START_DEPLOYMENT started
//! at or after the run began).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_apprunner::types::{OperationStatus, OperationSummary, OperationType, SourceConfiguration};
use chrono::{DateTime, NaiveDateTime, Utc};

use super::{AppRunner, app_error, ended, in_progress};
use crate::logs::{all_streams, all_streams_between};
use ferry_core::provider::{
    MigrationRunner, PResult, ProviderError, RunnerProfile, TaskHandle, TaskSpec, TaskState, TaskSummary,
};

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
        // The service's own events are stamped by App Runner's logging, the
        // operation's start by its API, each rounded its own way: a second of
        // margin keeps the operation's first event ("... started") without
        // reaching back to an earlier operation's.
        let refs =
            format!("{} {}", group("service", since - SERVICE_EVENT_MARGIN), group("application", since - CLOCK_SKEW));
        Ok((s.service_name().to_string(), refs))
    }

    async fn handle(&self, operation_id: &str, since: DateTime<Utc>) -> PResult<TaskHandle> {
        let (name, log_stream) = self.log_refs(since, None).await?;
        Ok(TaskHandle { id: operation_id.to_string(), container: name, log_stream })
    }
}

impl Deployments {
    /// The service's source configuration, which must deploy an image.
    async fn image_source(&self, image: &str) -> PResult<SourceConfiguration> {
        let s = self.service.describe().await?;
        match s.source_configuration() {
            Some(source) if source.image_repository().is_some() => Ok(source.clone()),
            _ => Err(ProviderError::Rejected(format!(
                "App Runner service {} deploys from a code repository, not an image: it cannot run {image} (--image, \
                 FERRY_IMAGE or migration.image); deploy the code instead, or drop the image",
                s.service_name()
            ))),
        }
    }

    /// Deploy `image`: UpdateService with the service's own source
    /// configuration, only `ImageIdentifier` changed, which starts the deployment
    /// itself; returns its operation. `None` when the service already runs that
    /// image (a StartDeployment then deploys it again).
    async fn deploy_image(&self, image: &str) -> PResult<Option<String>> {
        let mut source = self.image_source(image).await?;
        let Some(repository) = source.image_repository.as_mut() else { return Ok(None) };
        if repository.image_identifier == image {
            return Ok(None);
        }
        repository.image_identifier = image.to_string();
        let out = self
            .service
            .client
            .update_service()
            .service_arn(self.service.arn())
            .source_configuration(source)
            .send()
            .await
            .map_err(|e| app_error("UpdateService", self.service.arn(), e))?;
        Ok(Some(out.operation_id().to_string()))
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
/// How far before an operation's StartedAt its service events are read.
const SERVICE_EVENT_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(1);
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
    /// A deployment: App Runner cannot cancel it (past the timeout ferry
    /// follows it), it only succeeds or fails, its log references are known
    /// once it ended, and it is the service's own operation, which a restore
    /// waits for. ListOperations keeps the default polling growth.
    fn profile(&self) -> RunnerProfile {
        RunnerProfile {
            unit: "deployment",
            platform: "App Runner",
            can_stop: false,
            pass_fail_only: true,
            poll_cap: None,
            logs_known_at_end: true,
            is_service_deployment: true,
        }
    }

    fn describe_task(&self, handle: &TaskHandle) -> String {
        format!("deployment {} of App Runner service {}", handle.id, handle.container)
    }

    async fn check(&self) -> PResult<Option<String>> {
        let s = self.service.describe().await?;
        Ok(Some(format!("deployments of App Runner service {} migrate on start-up", s.service_name())))
    }

    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        let before = Utc::now();
        if let Some(image) = &spec.image
            && let Some(operation) = self.deploy_image(image).await?
        {
            return self.handle(&operation, before).await;
        }
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

    /// An image-based service can deploy any image: UpdateService does it.
    async fn prepare_image(&self, _run_id: &str, image: &str) -> PResult<Option<String>> {
        self.image_source(image).await.map(|_| None)
    }

    async fn find_started(&self, spec: &TaskSpec) -> PResult<Option<TaskHandle>> {
        let Some(image) = &spec.image else { return self.find_by_run(&spec.run_id).await };
        let Some(since) = run_started(&spec.run_id) else { return Ok(None) };
        // Only the service running the image is evidence the update was made
        // (a service built from code has none: `prepare_image` says why).
        let service = self.service.describe().await?;
        let current = service.source_configuration().and_then(|s| s.image_repository());
        if current.map(|r| r.image_identifier()) != Some(image.as_str()) {
            return Ok(None);
        }
        let ops = self.service.operations().await?;
        let found = ops.iter().rev().find(|op| {
            matches!(op.r#type(), Some(OperationType::StartDeployment | OperationType::UpdateService))
                && op.started_at().is_some_and(|t| t.secs() >= since.timestamp())
        });
        match found {
            Some(op) => Ok(Some(self.handle(op.id().unwrap_or_default(), started_at(op)).await?)),
            None => Ok(None),
        }
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
    use aws_sdk_apprunner::Client;
    use aws_sdk_apprunner::operation::describe_service::DescribeServiceOutput;
    use aws_sdk_apprunner::operation::list_operations::ListOperationsOutput;
    use aws_sdk_apprunner::operation::start_deployment::StartDeploymentOutput;
    use aws_sdk_apprunner::operation::update_service::UpdateServiceOutput;
    use aws_sdk_apprunner::types::{
        AuthenticationConfiguration, CodeRepository, ImageConfiguration, ImageRepository, ImageRepositoryType, Service,
        ServiceStatus, SourceCodeVersion, SourceCodeVersionType,
    };
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    const RUN: &str = "prod-20261121T201602Z-9a3f";
    const RELEASE: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/web:2.0.0";

    fn source(image: Option<&str>) -> SourceConfiguration {
        let b = SourceConfiguration::builder().auto_deployments_enabled(false).authentication_configuration(
            AuthenticationConfiguration::builder().access_role_arn("arn:role/ecr").build(),
        );
        match image {
            Some(i) => b.image_repository(
                ImageRepository::builder()
                    .image_identifier(i)
                    .image_repository_type(ImageRepositoryType::Ecr)
                    .image_configuration(
                        ImageConfiguration::builder()
                            .port("8080")
                            .runtime_environment_variables("DATABASE_URL", "postgresql://app:pw@db:5432/app")
                            .start_command("serve")
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ),
            None => b.code_repository(
                CodeRepository::builder()
                    .repository_url("https://example.invalid/web")
                    .source_code_version(
                        SourceCodeVersion::builder()
                            .r#type(SourceCodeVersionType::Branch)
                            .value("main")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            ),
        }
        .build()
    }

    fn described(image: Option<&'static str>) -> Rule {
        mock!(Client::describe_service).then_output(move || {
            let t = aws_smithy_types::DateTime::from_secs(0);
            let service = Service::builder()
                .service_name("web")
                .service_id("id")
                .service_arn("arn:svc")
                .created_at(t)
                .updated_at(t)
                .status(ServiceStatus::Running)
                .source_configuration(source(image))
                .instance_configuration(aws_sdk_apprunner::types::InstanceConfiguration::builder().build())
                .auto_scaling_configuration_summary(
                    aws_sdk_apprunner::types::AutoScalingConfigurationSummary::builder().build(),
                )
                .network_configuration(aws_sdk_apprunner::types::NetworkConfiguration::builder().build())
                .build()
                .unwrap();
            DescribeServiceOutput::builder().service(service).build()
        })
    }

    fn spec(image: Option<&str>) -> TaskSpec {
        TaskSpec {
            run_id: RUN.into(),
            env: "prod".into(),
            command: Vec::new(),
            environment: Default::default(),
            image: image.map(String::from),
            task_definition: None,
            attempt: 1,
        }
    }

    fn deployments(rules: &[Rule]) -> Deployments {
        let client = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, rules);
        Deployments::new(Arc::new(AppRunner::new(client, "arn:svc".into())))
    }

    #[tokio::test]
    async fn an_image_is_deployed_by_update_service_changing_only_the_image() {
        let update = mock!(Client::update_service)
            // The described configuration with only the image changed.
            .match_requests(|r| {
                r.source_configuration() == Some(&source(Some(RELEASE))) && r.service_arn() == Some("arn:svc")
            })
            .then_output(|| {
                let t = aws_smithy_types::DateTime::from_secs(0);
                let svc = Service::builder()
                    .service_name("web")
                    .service_id("id")
                    .service_arn("arn:svc")
                    .created_at(t)
                    .updated_at(t)
                    .status(ServiceStatus::OperationInProgress)
                    .instance_configuration(aws_sdk_apprunner::types::InstanceConfiguration::builder().build())
                    .auto_scaling_configuration_summary(
                        aws_sdk_apprunner::types::AutoScalingConfigurationSummary::builder().build(),
                    )
                    .network_configuration(aws_sdk_apprunner::types::NetworkConfiguration::builder().build())
                    .build()
                    .unwrap();
                UpdateServiceOutput::builder().operation_id("op-update").service(svc).build().unwrap()
            });
        let deploy = mock!(Client::start_deployment)
            .then_output(|| StartDeploymentOutput::builder().operation_id("op-d").build().unwrap());
        let rules = [described(Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.0.0")), update, deploy];
        let d = deployments(&rules);
        assert_eq!(d.prepare_image(RUN, RELEASE).await.unwrap(), None, "nothing to prepare");
        let h = d.start(&spec(Some(RELEASE))).await.unwrap();
        assert_eq!(h.id, "op-update", "the UpdateService operation is the deployment");
        assert_eq!((rules[1].num_calls(), rules[2].num_calls()), (1, 0));

        // Already running that image: a plain deployment.
        let rules = [described(Some(RELEASE)), rules[2].clone()];
        let h = deployments(&rules).start(&spec(Some(RELEASE))).await.unwrap();
        assert_eq!(h.id, "op-d");
    }

    #[tokio::test]
    async fn a_service_built_from_code_cannot_take_an_image() {
        let rules = [described(None)];
        let err = deployments(&rules).prepare_image(RUN, RELEASE).await.unwrap_err().to_string();
        assert!(err.contains("deploys from a code repository") && err.contains(RELEASE), "{err}");
    }

    #[tokio::test]
    async fn a_resumed_image_run_finds_its_update_only_when_the_service_runs_the_image() {
        let ops = mock!(Client::list_operations).then_output(|| {
            let at = |s| aws_smithy_types::DateTime::from_secs(s);
            ListOperationsOutput::builder()
                .operation_summary_list(
                    OperationSummary::builder()
                        .id("op-update")
                        .r#type(OperationType::UpdateService)
                        .status(OperationStatus::InProgress)
                        .started_at(at(run_started(RUN).unwrap().timestamp() + 30))
                        .build(),
                )
                .operation_summary_list(
                    OperationSummary::builder()
                        .id("op-old")
                        .r#type(OperationType::UpdateService)
                        .status(OperationStatus::Succeeded)
                        .started_at(at(run_started(RUN).unwrap().timestamp() - 600))
                        .build(),
                )
                .build()
        });
        let rules = [described(Some(RELEASE)), ops.clone()];
        let found = deployments(&rules).find_started(&spec(Some(RELEASE))).await.unwrap();
        assert_eq!(found.map(|h| h.id).as_deref(), Some("op-update"));

        let rules = [described(Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/web:1.0.0")), ops];
        assert_eq!(deployments(&rules).find_started(&spec(Some(RELEASE))).await.unwrap(), None, "not ours");
    }

    #[test]
    fn a_run_id_gives_its_start_time() {
        let t = run_started("prod-20261121T201602Z-9a3f").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T20:16:02+00:00");
        assert_eq!(run_started("my-env-name-20261121T201602Z-0001").unwrap().timestamp(), t.timestamp());
        assert_eq!(run_started("nonsense"), None);
    }
}
