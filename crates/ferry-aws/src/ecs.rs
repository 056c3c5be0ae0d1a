//! The migration as a one-off ECS Fargate task: RunTask with awsvpc networking,
//! command and environment overrides, `startedBy = ferry`, tags and the run id as
//! `clientToken`; DescribeTasks for its state; the configured container's exit
//! code decides.

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerDefinition, ContainerOverride, DesiredStatus, KeyValuePair,
    LaunchType, NetworkConfiguration, Tag, Task, TaskField, TaskOverride,
};

use super::classify;
use aws_sdk_ecs::operation::run_task::RunTaskError;
use ferry_core::provider::{
    MigrationRunner, PResult, ProviderError, RunnerProfile, TAG_ENV, TAG_RUN_ID, TaskHandle, TaskSpec, TaskState,
    TaskSummary,
};

pub const STARTED_BY: &str = "ferry";
/// On a later attempt of a run's migration (`migration.lock_retries`): its
/// number. The first attempt carries none, as before attempts existed.
pub const TAG_ATTEMPT: &str = "ferry:attempt";

/// For a later attempt, `ferry:attempt`.
fn attempt_tag(spec: &TaskSpec) -> Option<Tag> {
    (spec.attempt > 1).then(|| Tag::builder().key(TAG_ATTEMPT).value(spec.attempt.to_string()).build())
}

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
        let container = self.container_definition().await?;
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

    /// The migration container's definition in the configured task definition.
    async fn container_definition(&self) -> PResult<ContainerDefinition> {
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
        Ok(container.clone())
    }

    /// RunTask for `spec`: Fargate, awsvpc, the container's overrides, tags,
    /// and the run id as `clientToken` (a repeated call returns the same task).
    fn run_task_request(
        &self,
        spec: &TaskSpec,
    ) -> PResult<aws_sdk_ecs::operation::run_task::builders::RunTaskFluentBuilder> {
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
        let request = self
            .client
            .run_task()
            .cluster(&self.target.cluster)
            .task_definition(spec.task_definition.as_deref().unwrap_or(&self.target.task_definition))
            .launch_type(LaunchType::Fargate)
            .count(1)
            .network_configuration(network)
            .overrides(overrides)
            .started_by(STARTED_BY)
            .client_token(client_token(&spec.start_key()))
            .tags(Tag::builder().key(TAG_RUN_ID).value(&spec.run_id).build())
            .tags(Tag::builder().key(TAG_ENV).value(&spec.env).build());
        Ok(match attempt_tag(spec) {
            Some(tag) => request.tags(tag),
            None => request,
        })
    }

    /// The ARNs of the task definition family's tasks with this desired
    /// status, every page (never with `startedBy`, which ListTasks takes only
    /// as its one filter).
    async fn family_tasks(&self, status: DesiredStatus) -> PResult<Vec<String>> {
        let mut pages = self
            .client
            .list_tasks()
            .cluster(&self.target.cluster)
            .family(family_of(&self.target.task_definition))
            .desired_status(status)
            .into_paginator()
            .send();
        let mut arns = Vec::new();
        while let Some(page) = pages.next().await {
            arns.extend(page.map_err(|e| classify("ListTasks", e))?.task_arns().iter().cloned());
        }
        Ok(arns)
    }

    /// DescribeTasks of `arns`, 100 at a time (the API's limit), with their
    /// tags when `tags`.
    async fn describe_all(
        &self,
        arns: &[String],
        tags: bool,
    ) -> PResult<Vec<aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput>> {
        let mut pages = Vec::new();
        for chunk in arns.chunks(100) {
            let described = self
                .client
                .describe_tasks()
                .cluster(&self.target.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .set_include(tags.then(|| vec![TaskField::Tags]))
                .send()
                .await
                .map_err(|e| classify("DescribeTasks", e))?;
            pages.push(described);
        }
        Ok(pages)
    }

    fn handle(&self, arn: &str, logs: &AwsLogs) -> TaskHandle {
        TaskHandle {
            id: arn.to_string(),
            container: self.target.container.clone(),
            log_stream: log_stream(logs, &self.target.container, arn),
        }
    }

    fn state_of(&self, task: &Task) -> TaskState {
        match task.last_status() {
            Some("STOPPED" | "DELETED") => self.stopped(task),
            Some("RUNNING" | "DEACTIVATING" | "STOPPING" | "DEPROVISIONING") => TaskState::Running,
            // PROVISIONING, PENDING, ACTIVATING, a status ferry does not know, or
            // none at all: not done yet (the migration timeout bounds the wait).
            _ => TaskState::Pending,
        }
    }

    /// A stopped task, judged on positive evidence only: the watched
    /// container's exit code means the command ran; "never started" needs
    /// `stopCode = TaskFailedToStart` or a start-failure reason. Anything else
    /// (no exit code, no such proof) counts as started, so a failure takes the
    /// restore path.
    fn stopped(&self, task: &Task) -> TaskState {
        let container = task.containers().iter().find(|c| c.name() == Some(self.target.container.as_str()));
        let exit_code = container.and_then(|c| c.exit_code());
        let mut reasons: Vec<&str> = Vec::new();
        for r in [task.stopped_reason(), container.and_then(|c| c.reason())].into_iter().flatten() {
            let r = r.trim();
            if !r.is_empty() && !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        let stop_code = task.stop_code().map(|c| c.as_str().to_string());
        let code_line = stop_code.as_ref().map(|c| format!("stop code {c}"));
        if reasons.is_empty()
            && let Some(line) = &code_line
        {
            reasons.push(line);
        }
        let never_started = exit_code.is_none()
            && (stop_code.as_deref() == Some("TaskFailedToStart")
                || reasons.iter().any(|r| START_FAILURES.iter().any(|f| r.contains(f))));
        TaskState::Stopped {
            started: !never_started,
            exit_code,
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }
}

/// A RunTask failure as `reason (detail)`, leaving out what ECS did not give.
fn failure_text(f: &aws_sdk_ecs::types::Failure) -> String {
    let reason = f.reason().filter(|r| !r.trim().is_empty()).unwrap_or("no reason given");
    match f.detail().or(f.arn()).filter(|d| !d.trim().is_empty()) {
        Some(detail) => format!("{reason} ({detail})"),
        None => reason.to_string(),
    }
}

/// RunTask `failures[]` reasons that mean "no room right now", which AWS says
/// to retry later: Fargate's "Capacity is unavailable at this time. Please try
/// again later or in a different availability zone", and the EC2 resource
/// reasons `RESOURCE:CPU`, `RESOURCE:MEMORY`, `RESOURCE:ENI` (ECS developer
/// guide, "API failure reasons").
fn is_capacity(reason: Option<&str>) -> bool {
    let Some(reason) = reason.map(str::trim) else { return false };
    reason.to_ascii_lowercase().contains("capacity is unavailable")
        || ["RESOURCE:CPU", "RESOURCE:MEMORY", "RESOURCE:ENI"].iter().any(|r| reason.starts_with(r))
}

/// A RunTask error. ECS's client errors say the request was refused and
/// nothing started (the API reference's "Errors": ClientException,
/// InvalidParameterException, ClusterNotFoundException,
/// PlatformUnknownException, PlatformTaskDefinitionIncompatibilityException,
/// UnsupportedFeatureException, BlockedException); anything else may have
/// started a task.
fn run_task_error(
    e: aws_smithy_runtime_api::client::result::SdkError<
        RunTaskError,
        aws_smithy_runtime_api::client::orchestrator::HttpResponse,
    >,
) -> ProviderError {
    let refused = matches!(
        e.as_service_error(),
        Some(
            RunTaskError::ClientException(_)
                | RunTaskError::InvalidParameterException(_)
                | RunTaskError::ClusterNotFoundException(_)
                | RunTaskError::PlatformUnknownException(_)
                | RunTaskError::PlatformTaskDefinitionIncompatibilityException(_)
                | RunTaskError::UnsupportedFeatureException(_)
                | RunTaskError::BlockedException(_)
        )
    );
    match classify("RunTask", e) {
        ProviderError::Other(text) if refused => ProviderError::Rejected(text),
        other => other,
    }
}

/// The error names ECS puts in `stoppedReason` (or a container's `reason`)
/// when a container never started.
pub const START_FAILURES: &[&str] = &[
    "CannotPullContainerError",
    "CannotCreateContainerError",
    "CannotStartContainerError",
    "CannotInspectContainerError",
    "ResourceInitializationError",
];

/// Whether a task listed as wanted-running can still be writing: its own
/// `lastStatus` wins over the listing's `desiredStatus` filter. STOPPED and
/// DELETED never block, nor DEPROVISIONING once its stop is recorded; any
/// other status, known or not, does.
pub fn still_active(task: &Task) -> bool {
    match task.last_status() {
        Some("STOPPED" | "DELETED") => false,
        Some("DEPROVISIONING") => {
            let stop_recorded = task.desired_status() == Some("STOPPED")
                || task.stop_code().is_some()
                || task.stopping_at().is_some()
                || task.execution_stopped_at().is_some()
                || task.stopped_at().is_some();
            !stop_recorded
        }
        _ => true,
    }
}

#[async_trait]
impl MigrationRunner for EcsRunner {
    /// A one-off task with an exit code; DescribeTasks is cheap (ECS's read
    /// bucket is large, and the process's token bucket bounds it).
    fn profile(&self) -> RunnerProfile {
        RunnerProfile { platform: "ECS", ..RunnerProfile::default() }
    }

    async fn secret_variables(&self) -> PResult<Vec<String>> {
        let container = self.container_definition().await?;
        Ok(container.secrets().iter().map(|s| s.name().to_string()).collect())
    }

    async fn check(&self) -> PResult<Option<String>> {
        let logs = self.awslogs().await?;
        Ok(Some(format!(
            "task definition {} runs container {} logging to {} ({}/…)",
            self.target.task_definition, self.target.container, logs.group, logs.prefix
        )))
    }

    async fn start(&self, spec: &TaskSpec) -> PResult<TaskHandle> {
        let logs = self.awslogs().await?;
        let request = self.run_task_request(spec)?;
        for _ in 0..2 {
            let out = match request.clone().send().await {
                Ok(out) => out,
                Err(e) => {
                    // The clientToken already started a task (an earlier attempt
                    // of this run, whose parameters differed): that task is this
                    // run's, and ferry follows it rather than calling it a failure.
                    if let Some(RunTaskError::ConflictException(c)) = e.as_service_error()
                        && let Some(arn) = c.resource_ids().iter().find(|a| !a.trim().is_empty())
                    {
                        return Ok(self.handle(arn, &logs));
                    }
                    return Err(run_task_error(e));
                }
            };
            if let Some(arn) = out.tasks().first().and_then(|t| t.task_arn()) {
                return Ok(self.handle(arn, &logs));
            }
            if !out.failures().is_empty() {
                let reasons: Vec<String> = out.failures().iter().map(failure_text).collect();
                let text = format!("RunTask started no task: {}", reasons.join("; "));
                return Err(if out.failures().iter().all(|f| is_capacity(f.reason())) {
                    ProviderError::NoCapacity(text)
                } else {
                    ProviderError::Rejected(text)
                });
            }
            // Neither a task nor a failure: asked again with the same
            // clientToken, RunTask returns the task if one started.
        }
        if let Some(found) = self.find_attempt(&spec.run_id, spec.attempt).await? {
            return Ok(found);
        }
        Err(ProviderError::Rejected(
            "RunTask answered twice with neither a task nor a failure, and no task of this run is listed".into(),
        ))
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
        // PENDING tasks have desiredStatus RUNNING too, so one listing covers both.
        let arns = self.family_tasks(DesiredStatus::Running).await?;
        let mut out = Vec::new();
        for described in self.describe_all(&arns, false).await? {
            for t in described.tasks().iter().filter(|t| still_active(t)) {
                out.push(TaskSummary {
                    id: t.task_arn().unwrap_or_default().to_string(),
                    status: t.last_status().unwrap_or("UNKNOWN").to_string(),
                    started_by: t.started_by().map(String::from),
                });
            }
            // Listed as running but not described: nothing proves it stopped.
            for f in described.failures() {
                out.push(TaskSummary {
                    id: f.arn().unwrap_or("?").to_string(),
                    status: format!("listed as running; DescribeTasks: {}", f.reason().unwrap_or("no answer")),
                    started_by: None,
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

    /// The task this run started, if ECS still lists it. ListTasks takes
    /// `startedBy` only as its one filter (ECS answers `InvalidParameterException:
    /// cannot specify startedBy with other arguments` otherwise), and alone it
    /// lists only tasks whose desired status is RUNNING; so ferry lists the
    /// family's tasks by desired status (RUNNING, then STOPPED, which ECS keeps
    /// listing for at least an hour) and picks its own by the `ferry:run-id`
    /// tag and `startedBy` on its side.
    async fn find_by_run(&self, run_id: &str) -> PResult<Option<TaskHandle>> {
        self.find_attempt(run_id, 1).await
    }

    /// As [`MigrationRunner::find_by_run`], for one attempt of the run's
    /// migration: a later attempt carries `ferry:attempt` = its number, the
    /// first none (as before attempts existed).
    async fn find_attempt(&self, run_id: &str, attempt: u32) -> PResult<Option<TaskHandle>> {
        let wanted = (attempt > 1).then(|| attempt.to_string());
        for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let arns = self.family_tasks(status).await?;
            for described in self.describe_all(&arns, true).await? {
                let ours = described.tasks().iter().find(|t| {
                    let tag =
                        |key: &str| t.tags().iter().find(|tag| tag.key() == Some(key)).and_then(|tag| tag.value());
                    t.started_by() == Some(STARTED_BY)
                        && tag(TAG_RUN_ID) == Some(run_id)
                        && tag(TAG_ATTEMPT).map(String::from) == wanted
                });
                if let Some(arn) = ours.and_then(|t| t.task_arn()) {
                    let logs = self.awslogs().await?;
                    return Ok(Some(self.handle(arn, &logs)));
                }
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

/// RunTask's clientToken (at most 64 characters, the API says): the run id,
/// or for a long one (a long environment name, a rehearsal's `-rehearsal`)
/// its head and a fingerprint of the whole, the same on every attempt so a
/// retried or resumed RunTask stays idempotent.
fn client_token(run_id: &str) -> String {
    const MAX: usize = 64;
    if run_id.len() <= MAX {
        return run_id.to_string();
    }
    let print = ferry_core::state::fingerprint(run_id.as_bytes());
    let head: String = run_id.chars().take(MAX - print.len() - 1).collect();
    format!("{head}-{print}")
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
            attempt: 1,
        }
    }

    #[test]
    fn a_long_run_id_gets_a_client_token_ecs_takes_the_same_every_time() {
        let short = "prod-20261121T120000Z-abcd";
        assert_eq!(client_token(short), short);
        let long = format!("{}-20261121T120000Z-abcd-rehearsal", "customer-facing-payments-eu-west-staging");
        let (a, b) = (client_token(&long), client_token(&long));
        assert_eq!(a, b, "idempotent across attempts");
        assert!(a.len() <= 64 && a.starts_with("customer-facing-payments"), "{a}");
        assert_ne!(client_token(&long.replace("abcd", "abce")), a, "another run, another token");
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

    async fn start_with_failure(reason: &'static str) -> ProviderError {
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let run = mock!(Client::run_task).then_output(move || {
            RunTaskOutput::builder().failures(Failure::builder().reason(reason).detail("no room").build()).build()
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
        let err = EcsRunner::new(client, target()).start(&spec()).await.unwrap_err();
        assert_eq!(run.num_calls(), 1, "a failure is an answer: asked once");
        err
    }

    #[tokio::test]
    async fn run_task_capacity_failures_are_no_capacity_and_others_rejected() {
        for reason in [
            "Capacity is unavailable at this time. Please try again later or in a different availability zone",
            "RESOURCE:ENI",
            "RESOURCE:MEMORY",
            "RESOURCE:CPU",
        ] {
            let err = start_with_failure(reason).await;
            assert!(matches!(err, ProviderError::NoCapacity(_)), "{reason}: {err:?}");
            assert!(err.to_string().contains(&format!("{reason} (no room)")), "{err}");
        }
        for reason in ["ATTRIBUTE", "MISSING", "AGENT", "RESOURCE:GPU", ""] {
            let err = start_with_failure(reason).await;
            assert!(matches!(err, ProviderError::Rejected(_)), "{reason}: {err:?}");
        }
    }

    fn json_error(status: u16, body: serde_json::Value) -> aws_smithy_runtime_api::http::Response {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).unwrap(),
            aws_smithy_types::body::SdkBody::from(body.to_string()),
        )
    }

    #[tokio::test]
    async fn a_conflict_on_the_client_token_is_followed_to_the_task_it_names() {
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let run = mock!(Client::run_task).then_http_response(|| {
            json_error(
                400,
                serde_json::json!({
                    "__type": "ConflictException",
                    "message": "The specified client token has already been used in another request.",
                    "resourceIds": ["arn:aws:ecs:us-east-1:1:task/app-ecs/feedbeef"]
                }),
            )
        });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
        let h = EcsRunner::new(client, target()).start(&spec()).await.unwrap();
        assert_eq!(h.id, "arn:aws:ecs:us-east-1:1:task/app-ecs/feedbeef");
        assert_eq!(h.log_stream, "/ferry/app/migrations:ferry/migrate/feedbeef");
        assert_eq!(run.num_calls(), 1);
    }

    #[tokio::test]
    async fn client_errors_of_run_task_mean_nothing_started_and_server_errors_may_have() {
        for (status, kind, refused) in [
            (400, "InvalidParameterException", true),
            (400, "ClientException", true),
            (400, "ClusterNotFoundException", true),
            (500, "ServerException", false),
        ] {
            let td = mock!(Client::describe_task_definition).then_output(task_def);
            let run = mock!(Client::run_task)
                .then_http_response(move || json_error(status, serde_json::json!({"__type": kind, "message": "no"})));
            let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
            let err = EcsRunner::new(client, target()).start(&spec()).await.unwrap_err();
            assert_eq!(matches!(err, ProviderError::Rejected(_)), refused, "{kind}: {err:?}");
        }
    }

    #[tokio::test]
    async fn the_earlier_task_of_a_run_is_looked_for_without_combining_started_by_with_other_filters() {
        use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
        let list = mock!(Client::list_tasks)
            .match_requests(|r| {
                // ECS: "When you specify startedBy as the filter, it must be the only filter that you use."
                r.started_by().is_none() && r.family() == Some("app-migrate") && r.desired_status().is_some()
            })
            .then_output(|| {
                ListTasksOutput::builder().task_arns("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd").build()
            });
        let describe = mock!(Client::describe_tasks)
            .match_requests(|r| r.include().contains(&TaskField::Tags))
            .then_output(|| {
                describe(
                    Task::builder()
                        .task_arn("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd")
                        .started_by("ferry")
                        .last_status("STOPPED")
                        .tags(Tag::builder().key(TAG_RUN_ID).value("another-run").build())
                        .build(),
                )
            });
        let other = mock!(Client::list_tasks).then_output(|| ListTasksOutput::builder().build());
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe, &other, &td]);
        let found = EcsRunner::new(client, target()).find_by_run("prod-20261121T120000Z-abcd").await.unwrap();
        assert_eq!(found, None, "another run's task is not this run's");
        assert_eq!(list.num_calls(), 2, "RUNNING and STOPPED, each by family alone");
        assert_eq!(other.num_calls(), 0, "no ListTasks with startedBy and another filter");
    }

    #[tokio::test]
    async fn a_stopped_task_of_this_run_is_found_by_its_tag() {
        use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
        let running = mock!(Client::list_tasks)
            .match_requests(|r| r.desired_status() == Some(&DesiredStatus::Running))
            .then_output(|| ListTasksOutput::builder().build());
        let stopped = mock!(Client::list_tasks)
            .match_requests(|r| r.desired_status() == Some(&DesiredStatus::Stopped))
            .then_output(|| {
                ListTasksOutput::builder().task_arns("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd").build()
            });
        let describe = mock!(Client::describe_tasks).then_output(|| {
            describe(
                Task::builder()
                    .task_arn("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd")
                    .started_by("ferry")
                    .tags(Tag::builder().key(TAG_RUN_ID).value("prod-20261121T120000Z-abcd").build())
                    .build(),
            )
        });
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&running, &stopped, &describe, &td]);
        let found = EcsRunner::new(client, target()).find_by_run("prod-20261121T120000Z-abcd").await.unwrap();
        assert_eq!(found.map(|h| h.id).as_deref(), Some("arn:aws:ecs:us-east-1:1:task/app-ecs/0123abcd"));
    }

    #[tokio::test]
    async fn a_later_attempt_has_its_own_client_token_and_attempt_tag_and_the_run_tag_stays() {
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let run = mock!(Client::run_task)
            .match_requests(|r| {
                let tag = |k: &str| r.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value());
                r.client_token() == Some("prod-20261121T120000Z-abcd-attempt-2")
                    && tag(TAG_RUN_ID) == Some("prod-20261121T120000Z-abcd")
                    && tag(TAG_ATTEMPT) == Some("2")
            })
            .then_output(|| {
                RunTaskOutput::builder()
                    .tasks(Task::builder().task_arn("arn:aws:ecs:us-east-1:1:task/app-ecs/0002beef").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&td, &run]);
        let spec = TaskSpec { attempt: 2, ..spec() };
        let h = EcsRunner::new(client, target()).start(&spec).await.unwrap();
        assert_eq!(h.id, "arn:aws:ecs:us-east-1:1:task/app-ecs/0002beef");
        assert_eq!(run.num_calls(), 1);
    }

    #[tokio::test]
    async fn each_attempt_of_a_run_finds_its_own_task_by_the_attempt_tag() {
        use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
        let list = mock!(Client::list_tasks).then_output(|| {
            ListTasksOutput::builder()
                .task_arns("arn:aws:ecs:us-east-1:1:task/app-ecs/0001beef")
                .task_arns("arn:aws:ecs:us-east-1:1:task/app-ecs/0002beef")
                .build()
        });
        let task = |arn: &str, attempt: Option<&str>| {
            let mut t = Task::builder()
                .task_arn(arn)
                .started_by("ferry")
                .tags(Tag::builder().key(TAG_RUN_ID).value("prod-20261121T120000Z-abcd").build());
            if let Some(n) = attempt {
                t = t.tags(Tag::builder().key(TAG_ATTEMPT).value(n).build());
            }
            t.build()
        };
        let both = DescribeTasksOutput::builder()
            .tasks(task("arn:aws:ecs:us-east-1:1:task/app-ecs/0001beef", None))
            .tasks(task("arn:aws:ecs:us-east-1:1:task/app-ecs/0002beef", Some("2")))
            .build();
        let describe = mock!(Client::describe_tasks).then_output(move || both.clone());
        let td = mock!(Client::describe_task_definition).then_output(task_def);
        let client = mock_client!(aws_sdk_ecs, RuleMode::MatchAny, [&list, &describe, &td]);
        let runner = EcsRunner::new(client, target());
        let run = "prod-20261121T120000Z-abcd";
        let id = |h: Option<TaskHandle>| h.map(|h| h.id);
        assert_eq!(
            id(runner.find_attempt(run, 1).await.unwrap()).as_deref(),
            Some("arn:aws:ecs:us-east-1:1:task/app-ecs/0001beef")
        );
        assert_eq!(
            id(runner.find_attempt(run, 2).await.unwrap()).as_deref(),
            Some("arn:aws:ecs:us-east-1:1:task/app-ecs/0002beef")
        );
        assert_eq!(runner.find_attempt(run, 3).await.unwrap(), None, "attempt 3 has not started");
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
