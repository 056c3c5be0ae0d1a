//! App Runner: pause around a restore, resume after it, point the service at a
//! new cluster endpoint, and follow operations with ListOperations.

use async_trait::async_trait;
use aws_sdk_apprunner::Client;
use aws_sdk_apprunner::types::{ImageConfiguration, ImageRepository, OperationStatus, SourceConfiguration};

use super::classify;
use crate::provider::{AppService, PResult, ProviderError, ServiceInfo};

pub struct AppRunner {
    client: Client,
    arn: String,
}

impl AppRunner {
    pub fn new(client: Client, arn: String) -> Self {
        AppRunner { client, arn }
    }

    async fn describe(&self) -> PResult<aws_sdk_apprunner::types::Service> {
        let out = self.client.describe_service().service_arn(&self.arn).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
                ProviderError::NotFound(format!("App Runner service {}", self.arn))
            } else {
                classify("DescribeService", e)
            }
        })?;
        out.service().cloned().ok_or_else(|| ProviderError::NotFound(format!("App Runner service {}", self.arn)))
    }
}

/// `scheme://user:pass@HOST:port/db?x` with HOST replaced; `None` if `url` has no host.
pub fn replace_host(url: &str, host: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port = host_port.rfind(':').map_or("", |i| &host_port[i..]);
    Some(format!("{}{}{host}{port}{}", &url[..scheme_end], &authority[..host_start], &rest[authority_end..]))
}

#[async_trait]
impl AppService for AppRunner {
    async fn status(&self) -> PResult<ServiceInfo> {
        let s = self.describe().await?;
        Ok(ServiceInfo { id: s.service_arn().to_string(), status: s.status().as_str().to_string() })
    }

    async fn pause(&self) -> PResult<Option<String>> {
        if self.status().await?.status == "PAUSED" {
            return Ok(None);
        }
        let out =
            self.client.pause_service().service_arn(&self.arn).send().await.map_err(|e| classify("PauseService", e))?;
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
            .map_err(|e| classify("ResumeService", e))?;
        Ok(out.operation_id().map(String::from))
    }

    async fn replace_env_host(&self, var: &str, host: &str) -> PResult<Option<String>> {
        let service = self.describe().await?;
        let source = service
            .source_configuration()
            .ok_or_else(|| ProviderError::Rejected("service has no source configuration".into()))?;
        let repo = source.image_repository().ok_or_else(|| {
            ProviderError::Rejected(
                "only image-based App Runner services can be pointed at a new endpoint by ferry".into(),
            )
        })?;
        let image = repo.image_configuration();
        let mut vars = image.and_then(|c| c.runtime_environment_variables()).cloned().unwrap_or_default();
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
        let config = ImageConfiguration::builder()
            .set_runtime_environment_variables(Some(vars))
            .set_runtime_environment_secrets(image.and_then(|c| c.runtime_environment_secrets()).cloned())
            .set_start_command(image.and_then(|c| c.start_command()).map(String::from))
            .set_port(image.and_then(|c| c.port()).map(String::from))
            .build();
        let repo = ImageRepository::builder()
            .image_identifier(repo.image_identifier())
            .image_repository_type(repo.image_repository_type().clone())
            .image_configuration(config)
            .build()
            .map_err(|e| ProviderError::Rejected(e.to_string()))?;
        let source = SourceConfiguration::builder()
            .image_repository(repo)
            .set_auto_deployments_enabled(source.auto_deployments_enabled())
            .set_authentication_configuration(source.authentication_configuration().cloned())
            .build();
        let out = self
            .client
            .update_service()
            .service_arn(&self.arn)
            .source_configuration(source)
            .send()
            .await
            .map_err(|e| classify("UpdateService", e))?;
        Ok(Some(out.operation_id().to_string()))
    }

    async fn operation_done(&self, operation_id: &str) -> PResult<Option<bool>> {
        let mut pages = self.client.list_operations().service_arn(&self.arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListOperations", e))?;
            if let Some(op) = page.operation_summary_list().iter().find(|o| o.id() == Some(operation_id)) {
                return Ok(match op.status() {
                    Some(OperationStatus::Succeeded) => Some(true),
                    Some(
                        OperationStatus::Failed | OperationStatus::RollbackFailed | OperationStatus::RollbackSucceeded,
                    ) => Some(false),
                    _ => None,
                });
            }
        }
        Err(ProviderError::NotFound(format!("App Runner operation {operation_id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_apprunner::operation::describe_service::DescribeServiceOutput;
    use aws_sdk_apprunner::operation::list_operations::ListOperationsOutput;
    use aws_sdk_apprunner::operation::pause_service::PauseServiceOutput;
    use aws_sdk_apprunner::operation::update_service::UpdateServiceOutput;
    use aws_sdk_apprunner::types::{ImageRepositoryType, OperationSummary, Service, ServiceStatus};
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
