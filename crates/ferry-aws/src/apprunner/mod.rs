//! App Runner: pause around a restore, resume after it, point the service at a
//! new cluster endpoint, and follow operations with ListOperations. `runner`
//! drives deployments that migrate on start-up.
//!
//! While an operation runs App Runner refuses every mutating call with
//! InvalidStateException; that is reported as [`ProviderError::Busy`] so the
//! runbook waits for the operation and retries (see `runbook::service`).

mod runner;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_apprunner::Client;
use aws_sdk_apprunner::types::{
    ConfigurationSource, ImageConfiguration, OperationStatus, OperationSummary, OperationType, ServiceStatus,
    SourceConfiguration,
};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
pub use runner::Deployments;

use super::classify;
use ferry_core::db_url::replace_host;
use ferry_core::provider::{
    AppService, OperationInfo, OperationKind, PResult, ProviderError, ServiceInfo, ServiceState,
};

pub struct AppRunner {
    client: Client,
    arn: String,
}

/// Map an App Runner error: a missing service is NotFound, a call refused because
/// an operation is in progress is Busy, the rest as for every service.
fn app_error<E, R>(what: &str, arn: &str, e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error().and_then(|s| s.code()) {
        Some("ResourceNotFoundException") => ProviderError::NotFound(format!("App Runner service {arn}")),
        Some("InvalidStateException") => ProviderError::Busy(format!(
            "{what}: the App Runner service is busy: {}",
            e.as_service_error().and_then(|s| s.message()).unwrap_or("another operation is in progress")
        )),
        _ => classify(what, e),
    }
}

impl AppRunner {
    pub fn new(client: Client, arn: String) -> Self {
        AppRunner { client, arn }
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    async fn describe(&self) -> PResult<aws_sdk_apprunner::types::Service> {
        let out = self
            .client
            .describe_service()
            .service_arn(&self.arn)
            .send()
            .await
            .map_err(|e| app_error("DescribeService", &self.arn, e))?;
        out.service().cloned().ok_or_else(|| ProviderError::NotFound(format!("App Runner service {}", self.arn)))
    }

    /// The service's operations, newest first (as App Runner lists them).
    async fn operations(&self) -> PResult<Vec<OperationSummary>> {
        let mut pages = self.client.list_operations().service_arn(&self.arn).into_paginator().send();
        let mut all = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| app_error("ListOperations", &self.arn, e))?;
            all.extend(page.operation_summary_list().iter().cloned());
        }
        Ok(all)
    }

    async fn operation(&self, operation_id: &str) -> PResult<Option<OperationSummary>> {
        Ok(self.operations().await?.into_iter().find(|o| o.id() == Some(operation_id)))
    }
}

/// The runtime environment variables of the service's image or code
/// configuration, for changing in place; or why they cannot be changed through
/// the API. Secrets in the values are never part of the error.
fn runtime_variables<'a>(
    source: &'a mut SourceConfiguration,
    var: &str,
) -> Result<&'a mut HashMap<String, String>, ProviderError> {
    let secret_ref = |secrets: Option<&HashMap<String, String>>| {
        secrets.is_some_and(|s| s.contains_key(var)).then(|| {
            ProviderError::Rejected(format!(
                "{var} is a secret reference (Secrets Manager or Parameter Store) on the service; \
                 ferry cannot repoint it: update the secret to the new endpoint, or use restore_strategy = \"rename\""
            ))
        })
    };
    if let Some(image) = source.image_repository.as_mut() {
        let config = image.image_configuration.get_or_insert_with(|| ImageConfiguration::builder().build());
        if let Some(e) = secret_ref(config.runtime_environment_secrets.as_ref()) {
            return Err(e);
        }
        return Ok(config.runtime_environment_variables.get_or_insert_with(HashMap::new));
    }
    if let Some(code) = source.code_repository.as_mut() {
        let api_values = code
            .code_configuration
            .as_mut()
            .filter(|c| c.configuration_source == ConfigurationSource::Api)
            .and_then(|c| c.code_configuration_values.as_mut());
        let Some(values) = api_values else {
            return Err(ProviderError::Rejected(format!(
                "the service reads its settings from apprunner.yaml in its repository, so {var} cannot be changed \
                 through the API: change it there, or use restore_strategy = \"rename\" (the endpoint stays the same)"
            )));
        };
        if let Some(e) = secret_ref(values.runtime_environment_secrets.as_ref()) {
            return Err(e);
        }
        return Ok(values.runtime_environment_variables.get_or_insert_with(HashMap::new));
    }
    Err(ProviderError::Rejected("the App Runner service has neither an image nor a code repository".into()))
}

/// Whether an operation ended, and how: `None` while it runs.
fn ended(status: Option<&OperationStatus>) -> Option<bool> {
    match status {
        Some(OperationStatus::Succeeded) => Some(true),
        Some(OperationStatus::Failed | OperationStatus::RollbackFailed | OperationStatus::RollbackSucceeded) => {
            Some(false)
        }
        _ => None,
    }
}

/// Whether an operation is still going on. An operation without a status, or
/// with one ferry does not know, is not counted: [`ended`] says it has not
/// ended either, so nothing is decided on it.
fn in_progress(op: &OperationSummary) -> bool {
    matches!(
        op.status(),
        Some(OperationStatus::Pending | OperationStatus::InProgress | OperationStatus::RollbackInProgress)
    )
}

/// What the service starts: its image, or its repository and version.
fn source_label(source: &SourceConfiguration) -> Option<String> {
    if let Some(image) = source.image_repository() {
        return Some(format!("image {}", image.image_identifier()));
    }
    source.code_repository().map(|code| match code.source_code_version() {
        Some(v) => format!("{} {} of {}", v.r#type().as_str().to_ascii_lowercase(), v.value(), code.repository_url()),
        None => format!("source {}", code.repository_url()),
    })
}

/// A ListOperations entry's type in ferry's terms: StartDeployment and
/// UpdateService start a new version of the app (whose start-up may migrate).
fn operation_kind(kind: Option<&OperationType>) -> OperationKind {
    match kind {
        None => OperationKind::Unidentified,
        Some(k @ (OperationType::StartDeployment | OperationType::UpdateService)) => {
            OperationKind::Deployment(k.as_str().to_string())
        }
        Some(k) => OperationKind::Other(k.as_str().to_string()),
    }
}

#[async_trait]
impl AppService for AppRunner {
    fn platform(&self) -> &'static str {
        "App Runner"
    }

    async fn status(&self) -> PResult<ServiceInfo> {
        let s = self.describe().await?;
        let state = match s.status() {
            ServiceStatus::Running => ServiceState::Running,
            ServiceStatus::Paused => ServiceState::Paused,
            ServiceStatus::OperationInProgress => ServiceState::Busy,
            _ => ServiceState::Other,
        };
        Ok(ServiceInfo { id: s.service_arn().to_string(), status: s.status().as_str().to_string(), state })
    }

    async fn operation_in_progress(&self) -> PResult<Option<OperationInfo>> {
        Ok(self
            .operations()
            .await?
            .iter()
            .find(|op| in_progress(op))
            .map(|op| OperationInfo { id: op.id().unwrap_or_default().to_string(), kind: operation_kind(op.r#type()) }))
    }

    async fn image(&self) -> PResult<Option<String>> {
        Ok(self.describe().await?.source_configuration().and_then(source_label))
    }

    async fn pause(&self) -> PResult<Option<String>> {
        if self.status().await?.status == "PAUSED" {
            return Ok(None);
        }
        let out = self
            .client
            .pause_service()
            .service_arn(&self.arn)
            .send()
            .await
            .map_err(|e| app_error("PauseService", &self.arn, e))?;
        Ok(out.operation_id().map(String::from))
    }

    async fn resume(&self) -> PResult<Option<String>> {
        if self.status().await?.status == "RUNNING" {
            return Ok(None);
        }
        let out = self
            .client
            .resume_service()
            .service_arn(&self.arn)
            .send()
            .await
            .map_err(|e| app_error("ResumeService", &self.arn, e))?;
        Ok(out.operation_id().map(String::from))
    }

    /// UpdateService with the service's own source configuration, in which only
    /// `var` changes: every other setting is sent back exactly as described.
    async fn replace_env_host(&self, var: &str, host: &str) -> PResult<Option<String>> {
        let service = self.describe().await?;
        let mut source = service
            .source_configuration()
            .cloned()
            .ok_or_else(|| ProviderError::Rejected("the App Runner service has no source configuration".into()))?;
        let vars = runtime_variables(&mut source, var)?;
        let current = vars
            .get(var)
            .ok_or_else(|| ProviderError::Rejected(format!("the service has no environment variable {var}")))?;
        let updated = replace_host(current, host).ok_or_else(|| {
            ProviderError::Rejected(format!("{var} is not a URL with a host; cannot point it at {host}"))
        })?;
        if &updated == current {
            return Ok(None);
        }
        vars.insert(var.to_string(), updated);
        let out = self
            .client
            .update_service()
            .service_arn(&self.arn)
            .source_configuration(source)
            .send()
            .await
            .map_err(|e| app_error("UpdateService", &self.arn, e))?;
        Ok(Some(out.operation_id().to_string()))
    }

    async fn operation_done(&self, operation_id: &str) -> PResult<Option<bool>> {
        match self.operation(operation_id).await? {
            Some(op) => Ok(ended(op.status())),
            None => Err(ProviderError::NotFound(format!("App Runner operation {operation_id}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_apprunner::operation::describe_service::DescribeServiceOutput;
    use aws_sdk_apprunner::operation::list_operations::ListOperationsOutput;
    use aws_sdk_apprunner::operation::pause_service::PauseServiceOutput;
    use aws_sdk_apprunner::operation::update_service::UpdateServiceOutput;
    use aws_sdk_apprunner::types::{
        CodeConfiguration, CodeRepository, ImageRepository, ImageRepositoryType, Runtime, Service, ServiceStatus,
        SourceCodeVersion, SourceCodeVersionType,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn service(status: ServiceStatus) -> Service {
        let t = aws_smithy_types::DateTime::from_secs(0);
        Service::builder()
            .service_name("app")
            .service_id("id")
            .service_arn("arn:svc")
            .created_at(t)
            .updated_at(t)
            .status(status)
            .source_configuration(
                SourceConfiguration::builder()
                    .image_repository(
                        ImageRepository::builder()
                            .image_identifier("public.ecr.aws/app:1")
                            .image_repository_type(ImageRepositoryType::EcrPublic)
                            .image_configuration(
                                ImageConfiguration::builder()
                                    .runtime_environment_variables(
                                        "DATABASE_URL",
                                        "postgresql://app:pw@old.cluster:5432/app",
                                    )
                                    .runtime_environment_variables("MODE", "web")
                                    .port("8080")
                                    .build(),
                            )
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .instance_configuration(aws_sdk_apprunner::types::InstanceConfiguration::builder().build())
            .auto_scaling_configuration_summary(
                aws_sdk_apprunner::types::AutoScalingConfigurationSummary::builder().build(),
            )
            .network_configuration(aws_sdk_apprunner::types::NetworkConfiguration::builder().build())
            .build()
            .unwrap()
    }

    #[test]
    fn hosts_are_replaced_keeping_credentials_port_and_path() {
        assert_eq!(
            replace_host("postgresql://app:pw@old.cluster:5432/app?sslmode=require", "new.cluster").as_deref(),
            Some("postgresql://app:pw@new.cluster:5432/app?sslmode=require")
        );
        assert_eq!(replace_host("postgres://db/app", "n").as_deref(), Some("postgres://n/app"));
        assert_eq!(replace_host("not a url", "n"), None);
    }

    #[tokio::test]
    async fn pause_returns_its_operation_and_skips_when_paused() {
        let running = mock!(Client::describe_service)
            .then_output(|| DescribeServiceOutput::builder().service(service(ServiceStatus::Running)).build());
        let pause = mock!(Client::pause_service)
            .match_requests(|r| r.service_arn() == Some("arn:svc"))
            .then_output(|| PauseServiceOutput::builder().operation_id("op-1").build());
        let c = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, [&running, &pause]);
        assert_eq!(AppRunner::new(c, "arn:svc".into()).pause().await.unwrap().as_deref(), Some("op-1"));

        let paused = mock!(Client::describe_service)
            .then_output(|| DescribeServiceOutput::builder().service(service(ServiceStatus::Paused)).build());
        let pause =
            mock!(Client::pause_service).then_output(|| PauseServiceOutput::builder().operation_id("op-2").build());
        let c = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, [&paused, &pause]);
        assert_eq!(AppRunner::new(c, "arn:svc".into()).pause().await.unwrap(), None);
        assert_eq!(pause.num_calls(), 0);
    }

    #[tokio::test]
    async fn the_database_url_is_pointed_at_the_new_endpoint_and_nothing_else_changes() {
        let describe = mock!(Client::describe_service)
            .then_output(|| DescribeServiceOutput::builder().service(service(ServiceStatus::Running)).build());
        let update = mock!(Client::update_service)
            .match_requests(|r| {
                let vars = r
                    .source_configuration()
                    .and_then(|s| s.image_repository())
                    .and_then(|i| i.image_configuration())
                    .and_then(|c| c.runtime_environment_variables());
                vars.is_some_and(|v| {
                    v.get("DATABASE_URL").map(String::as_str) == Some("postgresql://app:pw@new.cluster:5432/app")
                        && v.get("MODE").map(String::as_str) == Some("web")
                })
            })
            .then_output(|| {
                UpdateServiceOutput::builder()
                    .operation_id("op-9")
                    .service(service(ServiceStatus::OperationInProgress))
                    .build()
                    .unwrap()
            });
        let c = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, [&describe, &update]);
        let op = AppRunner::new(c, "arn:svc".into()).replace_env_host("DATABASE_URL", "new.cluster").await.unwrap();
        assert_eq!(op.as_deref(), Some("op-9"));
        assert_eq!(update.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_call_refused_during_an_operation_is_busy_not_a_failure() {
        let paused = mock!(Client::describe_service).then_output(|| {
            DescribeServiceOutput::builder().service(service(ServiceStatus::OperationInProgress)).build()
        });
        // As App Runner answers on the wire (the error code is what ferry maps).
        let refused = mock!(Client::resume_service).then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    r#"{"__type":"InvalidStateException","Message":"an operation is in progress"}"#,
                ),
            )
        });
        let c = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, [&paused, &refused]);
        let err = AppRunner::new(c, "arn:svc".into()).resume().await.unwrap_err();
        assert!(matches!(err, ProviderError::Busy(ref m) if m.contains("an operation is in progress")), "{err:?}");
    }

    #[test]
    fn only_variables_the_api_owns_can_be_repointed() {
        let code = |source: ConfigurationSource| {
            let values = aws_sdk_apprunner::types::CodeConfigurationValues::builder()
                .runtime(Runtime::Python311)
                .runtime_environment_variables("DATABASE_URL", "postgresql://a:pw@old:5432/app")
                .build()
                .unwrap();
            SourceConfiguration::builder()
                .code_repository(
                    CodeRepository::builder()
                        .repository_url("https://example.invalid/app")
                        .source_code_version(
                            SourceCodeVersion::builder()
                                .r#type(SourceCodeVersionType::Branch)
                                .value("main")
                                .build()
                                .unwrap(),
                        )
                        .code_configuration(
                            CodeConfiguration::builder()
                                .configuration_source(source)
                                .code_configuration_values(values)
                                .build()
                                .unwrap(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
        };
        let mut api = code(ConfigurationSource::Api);
        assert_eq!(
            runtime_variables(&mut api, "DATABASE_URL").unwrap()["DATABASE_URL"],
            "postgresql://a:pw@old:5432/app"
        );
        let mut repo = code(ConfigurationSource::Repository);
        let err = runtime_variables(&mut repo, "DATABASE_URL").unwrap_err().to_string();
        assert!(err.contains("apprunner.yaml") && !err.contains("pw"), "{err}");

        let mut secret = service(ServiceStatus::Running).source_configuration().cloned().unwrap();
        let image = secret.image_repository.as_mut().unwrap().image_configuration.as_mut().unwrap();
        image.runtime_environment_secrets = Some([("DATABASE_URL".to_string(), "arn:secret".to_string())].into());
        let err = runtime_variables(&mut secret, "DATABASE_URL").unwrap_err().to_string();
        assert!(err.contains("secret reference"), "{err}");
    }

    #[tokio::test]
    async fn operations_are_found_and_their_status_mapped() {
        let list = mock!(Client::list_operations).then_output(|| {
            ListOperationsOutput::builder()
                .operation_summary_list(
                    OperationSummary::builder().id("op-1").status(OperationStatus::InProgress).build(),
                )
                .operation_summary_list(
                    OperationSummary::builder().id("op-0").status(OperationStatus::Succeeded).build(),
                )
                .operation_summary_list(OperationSummary::builder().id("op-x").status(OperationStatus::Failed).build())
                .build()
        });
        let c = mock_client!(aws_sdk_apprunner, RuleMode::MatchAny, [&list]);
        let svc = AppRunner::new(c, "arn:svc".into());
        assert_eq!(svc.operation_done("op-1").await.unwrap(), None);
        assert_eq!(svc.operation_done("op-0").await.unwrap(), Some(true));
        assert_eq!(svc.operation_done("op-x").await.unwrap(), Some(false));
        assert!(matches!(svc.operation_done("op-?").await, Err(ProviderError::NotFound(_))));
    }
}
