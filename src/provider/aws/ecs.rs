//! The migration as a one-off ECS Fargate task: RunTask with awsvpc networking,
//! command and environment overrides, `startedBy = ferry`, tags and the run id as
//! `clientToken`; DescribeTasks for its state; the configured container's exit
//! code decides.

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, DesiredStatus, KeyValuePair, LaunchType,
    NetworkConfiguration, Tag, Task, TaskField, TaskOverride,
};

use super::classify;
use crate::provider::{
    MigrationRunner, PResult, ProviderError, TAG_ENV, TAG_RUN_ID, TaskHandle, TaskSpec, TaskState, TaskSummary,
};

pub const STARTED_BY: &str = "ferry";

/// Where and how the task runs, with stack outputs resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsTarget {
    pub cluster: String,
    pub task_definition: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub container: String,
}

pub struct EcsRunner {
    client: Client,
    target: EcsTarget,
}

/// The awslogs destination of a container: `(group, stream prefix)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsLogs {
    pub group: String,
    pub prefix: String,
}

/// The log stream name awslogs gives a task's container, as LogSource reads it:
/// `<group>:<prefix>/<container>/<task-id>` (log group names cannot contain ':').
pub fn log_stream(logs: &AwsLogs, container: &str, task_arn: &str) -> String {
    let task_id = task_arn.rsplit('/').next().unwrap_or(task_arn);
    format!("{}:{}/{container}/{task_id}", logs.group, logs.prefix)
}

impl EcsRunner {
    pub fn new(client: Client, target: EcsTarget) -> Self {
        EcsRunner { client, target }
    }

    /// Read the container's awslogs settings from the task definition; preflight
    /// fails when the container is missing or does not log with a stream prefix.
    pub async fn awslogs(&self) -> PResult<AwsLogs> {
        let out = self
            .client
            .describe_task_definition()
            .task_definition(&self.target.task_definition)
            .send()
            .await
            .map_err(|e| classify("DescribeTaskDefinition", e))?;
        let td = out
            .task_definition()
            .ok_or_else(|| ProviderError::NotFound(format!("task definition {}", self.target.task_definition)))?;
        let container =
            td.container_definitions().iter().find(|c| c.name() == Some(self.target.container.as_str())).ok_or_else(
                || {
                    let names: Vec<&str> = td.container_definitions().iter().filter_map(|c| c.name()).collect();
                    ProviderError::Rejected(format!(
                        "task definition {} has no container {:?} (it has: {})",
                        self.target.task_definition,
                        self.target.container,
                        names.join(", ")
                    ))
                },
            )?;
        let log = container.log_configuration().filter(|l| l.log_driver().as_str() == "awslogs").ok_or_else(|| {
            ProviderError::Rejected(format!(
                "container {:?} does not use the awslogs log driver",
                self.target.container
            ))
        })?;
        let options = log.options();
        let get = |k: &str| options.and_then(|o| o.get(k)).cloned();
        match (get("awslogs-group"), get("awslogs-stream-prefix")) {
            (Some(group), Some(prefix)) => Ok(AwsLogs { group, prefix }),
            _ => Err(ProviderError::Rejected(format!(
                "container {:?} must set awslogs-group and awslogs-stream-prefix so ferry can find its log stream",
                self.target.container
            ))),
        }
    }

    fn handle(&self, arn: &str, logs: &AwsLogs) -> TaskHandle {
        TaskHandle {
            id: arn.to_string(),
            container: self.target.container.clone(),
            log_stream: log_stream(logs, &self.target.container, arn),
        }
    }

    fn state_of(&self, task: &Task) -> TaskState {
        match task.last_status().unwrap_or("PENDING") {
            "STOPPED" | "DELETED" => {
                let container = task.containers().iter().find(|c| c.name() == Some(self.target.container.as_str()));
                let failed_to_start =
                    task.stop_code().is_some_and(|c| c.as_str() == "TaskFailedToStart") || task.started_at().is_none();
                let mut reason: Vec<String> = task.stopped_reason().map(String::from).into_iter().collect();
                if let Some(r) = container.and_then(|c| c.reason())
                    && !reason.iter().any(|x| x == r)
                {
                    reason.push(r.to_string());
                }
                TaskState::Stopped {
                    started: !failed_to_start,
                    exit_code: container.and_then(|c| c.exit_code()),
                    reason: (!reason.is_empty()).then(|| reason.join("; ")),
                }
            }
            "RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING" => TaskState::Running,
            _ => TaskState::Pending,
        }
    }
}

#[async_trait]
impl MigrationRunner for EcsRunner {
    async fn check(&self) -> PResult<Option<String>> {
        let logs = self.awslogs().await?;
        Ok(Some(format!(
            "task definition {} runs container {} logging to {} ({}/…)",
            self.target.task_definition, self.target.container, logs.group, logs.prefix
        )))
    }

    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        let logs = self.awslogs().await?;
        let env: Vec<KeyValuePair> =
            spec.environment.iter().map(|(k, v)| KeyValuePair::builder().name(k).value(v).build()).collect();
        let overrides = TaskOverride::builder()
            .container_overrides(
                ContainerOverride::builder()
                    .name(&self.target.container)
                    .set_command(Some(spec.command.clone()))
                    .set_environment((!env.is_empty()).then_some(env))
                    .build(),
            )
            .build();
        let network = NetworkConfiguration::builder()
            .awsvpc_configuration(
                AwsVpcConfiguration::builder()
                    .set_subnets(Some(self.target.subnets.clone()))
                    .set_security_groups(Some(self.target.security_groups.clone()))
                    .assign_public_ip(if self.target.assign_public_ip {
                        AssignPublicIp::Enabled
                    } else {
                        AssignPublicIp::Disabled
                    })
                    .build()
                    .map_err(|e| ProviderError::Rejected(e.to_string()))?,
            )
            .build();
        let out = self
            .client
            .run_task()
            .cluster(&self.target.cluster)
            .task_definition(spec.task_definition.as_deref().unwrap_or(&self.target.task_definition))
            .launch_type(LaunchType::Fargate)
            .count(1)
            .network_configuration(network)
            .overrides(overrides)
            .started_by(STARTED_BY)
            .client_token(&spec.run_id)
            .tags(Tag::builder().key(TAG_RUN_ID).value(&spec.run_id).build())
            .tags(Tag::builder().key(TAG_ENV).value(&spec.env).build())
            .send()
            .await
            .map_err(|e| classify("RunTask", e))?;
        match out.tasks().first().and_then(|t| t.task_arn()) {
            Some(arn) => Ok(self.handle(arn, &logs)),
            None => {
                let reasons: Vec<String> = out
                    .failures()
                    .iter()
                    .map(|f| format!("{} ({})", f.reason().unwrap_or("unknown"), f.detail().or(f.arn()).unwrap_or("-")))
                    .collect();
                Err(ProviderError::Rejected(format!("RunTask started no task: {}", reasons.join("; "))))
            }
        }
    }

    async fn poll(&self, task_id: &str) -> PResult<TaskState> {
        let out = self
            .client
            .describe_tasks()
            .cluster(&self.target.cluster)
            .tasks(task_id)
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", e))?;
        Ok(match out.tasks().first() {
            Some(t) => self.state_of(t),
            None => TaskState::Missing,
        })
    }

    async fn stop(&self, task_id: &str, reason: &str) -> PResult<()> {
        let reason: String = reason.chars().take(255).collect();
        self.client
            .stop_task()
            .cluster(&self.target.cluster)
            .task(task_id)
            .reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("StopTask", e))
    }

    async fn active_tasks(&self) -> PResult<Vec<TaskSummary>> {
        let family = family_of(&self.target.task_definition);
        // PENDING tasks have desiredStatus RUNNING too, so one listing covers both.
        let mut pages = self
            .client
            .list_tasks()
            .cluster(&self.target.cluster)
            .family(family)
            .desired_status(DesiredStatus::Running)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            arns.extend(page.map_err(|e| classify("ListTasks", e))?.task_arns().iter().cloned());
        }
        let mut out = Vec::new();
        for chunk in arns.chunks(100) {
            let described = self
                .client
                .describe_tasks()
                .cluster(&self.target.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", e))?;
            for t in described.tasks() {
                out.push(TaskSummary {
                    id: t.task_arn().unwrap_or_default().to_string(),
                    status: t.last_status().unwrap_or("PENDING").to_string(),
                    started_by: t.started_by().map(String::from),
                });
            }
        }
        Ok(out)
    }

    async fn prepare_image(&self, run_id: &str, image: &str) -> PResult<Option<String>> {
        super::ecs_taskdef::revision_with_image(&self.client, &self.target, run_id, image).await.map(Some)
    }

    async fn log_stream_of(&self, task_id: &str) -> PResult<String> {
        Ok(log_stream(&self.awslogs().await?, &self.target.container, task_id))
    }

    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        let family = family_of(&self.target.task_definition);
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let out = self
                .client
                .list_tasks()
                .cluster(&self.target.cluster)
                .family(&family)
                .started_by(STARTED_BY)
                .desired_status(status)
                .send()
                .await
                .map_err(|e| classify("ListTasks", e))?;
            if out.task_arns().is_empty() {
                continue;
            }
            let described = self
                .client
                .describe_tasks()
                .cluster(&self.target.cluster)
                .set_tasks(Some(out.task_arns().to_vec()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", e))?;
            let ours = described
                .tasks()
                .iter()
                .find(|t| t.tags().iter().any(|tag| tag.key() == Some(TAG_RUN_ID) && tag.value() == Some(run_id)));
            if let Some(arn) = ours.and_then(|t| t.task_arn()) {
                let logs = self.awslogs().await?;
                return Ok(Some(self.handle(arn, &logs)));
            }
        }
        Ok(None)
    }
}

/// `family` of a task definition given as a name, `family:revision` or an ARN.
fn family_of(task_definition: &str) -> String {
    let name = task_definition.rsplit('/').next().unwrap_or(task_definition);
    name.split(':').next().unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::operation::describe_task_definition::DescribeTaskDefinitionOutput;
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::run_task::RunTaskOutput;
    use aws_sdk_ecs::types::{Container, ContainerDefinition, Failure, LogConfiguration, LogDriver, TaskDefinition};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn target() -> EcsTarget {
        EcsTarget {
            cluster: "app-ecs".into(),
            task_definition: "arn:aws:ecs:us-east-1:1:task-definition/app-migrate:7".into(),
            subnets: vec!["subnet-a".into(), "subnet-b".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: false,
            container: "migrate".into(),
        }
    }

    fn task_def() -> DescribeTaskDefinitionOutput {
        DescribeTaskDefinitionOutput::builder()
            .task_definition(
                TaskDefinition::builder()
                    .container_definitions(
                        ContainerDefinition::builder()
                            .name("migrate")
                            .log_configuration(
                                LogConfiguration::builder()
                                    .log_driver(LogDriver::Awslogs)
                                    .options("awslogs-group", "/ferry/app/migrations")
                                    .options("awslogs-stream-prefix", "ferry")
                                    .build()
                                    .unwrap(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    }

    fn spec() -> TaskSpec {
        TaskSpec {
            run_id: "prod-20261121T120000Z-abcd".into(),
            env: "prod".into(),
            command: vec!["alembic".into(), "upgrade".into(), "head".into()],
            environment: [("MODE".to_string(), "migrate".to_string())].into(),
            image: None,
            task_definition: None,
        }
    }

    #[tokio::test]
    async fn run_task_request_has_the_fargate_network_overrides_tags_and_client_token() {
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let run = mock!(Client::run_task)
            .match_requests(|r| {
                let net = r.network_configuration().and_then(|n| n.awsvpc_configuration());
                let over = r.overrides().map(|o| o.container_overrides()).unwrap_or_default();
                r.cluster() == Some("app-ecs")
                    && r.launch_type() == Some(&LaunchType::Fargate)
                    && r.started_by() == Some("ferry")
                    && r.client_token() == Some("prod-20261121T120000Z-abcd")
                    && net.is_some_and(|n| n.subnets() == ["subnet-a", "subnet-b"] && n.security_groups() == ["sg-1"])
                    && net.is_some_and(|n| n.assign_public_ip() == Some(&AssignPublicIp::Disabled))
                    && over.len() == 1
                    && over[0].name() == Some("migrate")
                    && over[0].command() == ["alembic", "upgrade", "head"]
                    && over[0].environment().iter().any(|e| e.name() == Some("MODE") && e.value() == Some("migrate"))
                    && r.tags()
                        .iter()
                        .any(|t| t.key() == Some("ferry:run-id") && t.value() == Some("prod-20261121T120000Z-abcd"))
            })
            .then_output(|| {
                RunTaskOutput::builder()
                    .tasks(Task::builder().task_arn("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
        let h = EcsRunner::new(client, target()).start(&spec()).await.unwrap();
        assert_eq!(run.num_calls(), 1);
        assert_eq!(h.log_stream, "/ferry/app/migrations:ferry/migrate/0123abcd");
    }

    #[tokio::test]
    async fn run_task_failures_are_reported() {
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let run = mock!(Client::run_task).then_output(|| {
            RunTaskOutput::builder()
                .failures(Failure::builder().reason("RESOURCE:ENI").detail("no ENIs left").build())
                .build()
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
        let err = EcsRunner::new(client, target()).start(&spec()).await.unwrap_err();
        assert!(err.to_string().contains("RESOURCE:ENI (no ENIs left)"), "{err}");
    }

    fn describe(task: Task) -> DescribeTasksOutput {
        DescribeTasksOutput::builder().tasks(task).build()
    }

    #[tokio::test]
    async fn task_states_follow_the_watched_container() {
        let client_for = |task: Task| {
            let rule = mock!(Client::describe_tasks).then_output(move || describe(task.clone()));
            (mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&rule]), rule)
        };
        let stopped = Task::builder()
            .last_status("STOPPED")
            .started_at(aws_smithy_types::DateTime::from_secs(1))
            .stopped_reason("Essential container in task exited")
            .containers(Container::builder().name("sidecar").exit_code(0).build())
            .containers(Container::builder().name("migrate").exit_code(3).build())
            .build();
        let (c, _r) = client_for(stopped);
        assert_eq!(
            EcsRunner::new(c, target()).poll("t").await.unwrap(),
            TaskState::Stopped {
                started: true,
                exit_code: Some(3),
                reason: Some("Essential container in task exited".into())
            }
        );
        let never = Task::builder()
            .last_status("STOPPED")
            .stop_code(aws_sdk_ecs::types::TaskStopCode::TaskFailedToStart)
            .stopped_reason("CannotPullContainerError: image not found")
            .containers(Container::builder().name("migrate").reason("CannotPullContainerError").build())
            .build();
        let (c, _r) = client_for(never);
        let state = EcsRunner::new(c, target()).poll("t").await.unwrap();
        assert!(matches!(state, TaskState::Stopped { started: false, exit_code: None, .. }), "{state:?}");
        let (c, _r) = client_for(Task::builder().last_status("PROVISIONING").build());
        assert_eq!(EcsRunner::new(c, target()).poll("t").await.unwrap(), TaskState::Pending);

        let missing = mock!(Client::describe_tasks).then_output(|| {
            DescribeTasksOutput::builder().failures(Failure::builder().arn("t").reason("MISSING").build()).build()
        });
        let c = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&missing]);
        assert_eq!(EcsRunner::new(c, target()).poll("t").await.unwrap(), TaskState::Missing);
    }

    #[tokio::test]
    async fn a_container_without_awslogs_is_refused() {
        let td = mock!(Client::describe_task_definition).then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(
                    TaskDefinition::builder()
                        .container_definitions(ContainerDefinition::builder().name("migrate").build())
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td]);
        let err = EcsRunner::new(client, target()).awslogs().await.unwrap_err();
        assert!(err.to_string().contains("awslogs"), "{err}");
    }

    #[test]
    fn families_come_from_names_and_arns() {
        assert_eq!(family_of("arn:aws:ecs:us-east-1:1:task-definition/app-migrate:7"), "app-migrate");
        assert_eq!(family_of("app-migrate:3"), "app-migrate");
        assert_eq!(family_of("app-migrate"), "app-migrate");
    }
}
