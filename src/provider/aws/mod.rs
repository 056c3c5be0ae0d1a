//! The AWS provider: Aurora (RDS), ECS Fargate, CloudWatch Logs, App Runner and
//! CloudFormation through the AWS SDK for Rust, one file per service. Credentials,
//! region and endpoints come from aws-config's standard chain (environment,
//! profiles, SSO, web identity for GitHub OIDC; `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` are honoured).

pub mod apprunner;
pub mod budget;
pub mod cloudformation;
pub mod ecs;
pub mod ecs_taskdef;
pub mod logs;
pub mod rds;

use std::fmt::Debug;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::http::HttpHealth;
use super::{Cloud, PResult, ProviderError, StackOutputs};
use crate::config::{DatabaseConfig, EnvConfig, RunnerKind};

/// Flags that choose credentials and region, shared by every command.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

/// Attempts per AWS request, the first included, in the SDK's standard retry
/// mode: throttling, 5xx answers, timeouts and connection failures are retried
/// by the SDK alone (ferry's own loop, `runbook::wait::call`, retries only a
/// busy resource). Five: a throttling burst from other callers of the account's
/// budget gets about 15 s to pass, while an unreachable endpoint (a wrong
/// `AWS_ENDPOINT_URL`, no network) is reported within seconds.
pub const RETRY_MAX_ATTEMPTS: u32 = 5;
/// The standard mode's exponential backoff: a random delay up to 1 s, then up
/// to 2, 4 and 8 s between attempts (full jitter, so N ferries throttled
/// together do not retry in step), never more than [`RETRY_MAX_BACKOFF`].
pub const RETRY_INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);
pub const RETRY_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(20);

/// ferry's one retry policy for AWS requests (see [`RETRY_MAX_ATTEMPTS`]).
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(RETRY_MAX_ATTEMPTS)
        .with_initial_backoff(RETRY_INITIAL_BACKOFF)
        .with_max_backoff(RETRY_MAX_BACKOFF)
}

/// `sdk` with ferry's [`retry_config`], unless the person chose a retry
/// policy the SDK's standard way: `AWS_MAX_ATTEMPTS` / `AWS_RETRY_MODE`, or
/// `max_attempts` / `retry_mode` in the profile (seen as a loaded policy other
/// than the SDK's default). Theirs wins: they know their account's limits.
pub fn with_retry_policy(sdk: SdkConfig) -> SdkConfig {
    let in_env = ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"].iter().any(|v| std::env::var_os(v).is_some());
    let default = RetryConfig::standard();
    let in_profile =
        sdk.retry_config().is_some_and(|r| r.max_attempts() != default.max_attempts() || r.mode() != default.mode());
    if in_env || in_profile { sdk } else { sdk.to_builder().retry_config(retry_config()).build() }
}

/// Load the SDK configuration: `--region`, then the environment's `region`, then
/// the standard chain; `--profile` picks a named profile. Retries: [`with_retry_policy`].
pub async fn sdk_config(env: &EnvConfig, opts: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = opts.region.clone().or_else(|| env.region.clone()) {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = &opts.profile {
        loader = loader.profile_name(profile);
    }
    with_retry_policy(loader.load().await)
}

/// Fail fast, before anything else, when there is no region or no usable credentials.
pub async fn check_credentials(sdk: &SdkConfig) -> Result<(), String> {
    if sdk.region().is_none() {
        return Err("no AWS region: set `region` in ferry.toml, pass --region, or set AWS_REGION".into());
    }
    let Some(provider) = sdk.credentials_provider() else {
        return Err("no AWS credentials provider is configured".into());
    };
    use aws_credential_types::provider::ProvideCredentials;
    match provider.provide_credentials().await {
        Ok(creds) => match creds.expiry() {
            Some(exp) if exp <= std::time::SystemTime::now() => Err(
                "the AWS credentials have expired: refresh them (e.g. `aws sso login`, or re-run the OIDC step) and retry"
                    .into(),
            ),
            _ => Ok(()),
        },
        Err(e) => Err(format!(
            "no usable AWS credentials ({}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile, run `aws sso login`, \
             or configure web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE)",
            short_reason(&DisplayErrorContext(&e).to_string())
        )),
    }
}

/// The credential chain explains every provider it tried, in about a kilobyte:
/// the first sentence says what matters; -v is not needed to act on it.
fn short_reason(full: &str) -> String {
    let first = full.split(": ").next().unwrap_or(full);
    let first = first.lines().next().unwrap_or(first).trim();
    if first.chars().count() > 160 {
        format!("{}...", first.chars().take(160).collect::<String>())
    } else {
        first.to_string()
    }
}

/// Error codes that mean "slow down".
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
];

/// Error codes that mean missing, wrong or expired credentials or permissions.
const ACCESS: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "AuthFailure",
    "NotAuthorized",
];

/// Map an SDK error to a ferry error from its parsed error code (never its text).
pub fn classify<E, R>(what: &str, err: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug,
{
    use aws_smithy_runtime_api::client::result::SdkError;
    match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("Unknown");
            let text = format!("{what}: {code}: {}", e.message().unwrap_or("no message"));
            if THROTTLING.contains(&code) {
                ProviderError::Throttled(text)
            } else if ACCESS.contains(&code) {
                ProviderError::AccessDenied(text)
            } else {
                ProviderError::Other(text)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ProviderError::Other(format!("{what}: cannot reach AWS: {}", DisplayErrorContext(&err)))
        }
        _ => ProviderError::Other(format!("{what}: {}", DisplayErrorContext(&err))),
    }
}

/// The environment with `${output:Name}` resolved from its stack.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub cluster_id: String,
    pub ecs: Option<ecs::EcsTarget>,
    pub service_arn: Option<String>,
}

/// Resolve `${output:Name}` references; missing outputs are named together with
/// the outputs that do exist.
pub async fn resolve(env: &EnvConfig, stacks: &dyn StackOutputs) -> PResult<Resolved> {
    let outputs = match &env.stack {
        Some(stack) if !env.output_refs().is_empty() => stacks.outputs(stack).await?,
        _ => Default::default(),
    };
    let missing = |name: String| {
        let have: Vec<&str> = outputs.keys().map(String::as_str).collect();
        ProviderError::Rejected(format!(
            "stack {} has no output {name:?}; its outputs are: {}",
            env.stack.as_deref().unwrap_or("?"),
            if have.is_empty() { "none".to_string() } else { have.join(", ") }
        ))
    };
    let cluster_id = match &env.database {
        DatabaseConfig::Cluster(t) => t.resolve(&outputs).map_err(missing)?,
        DatabaseConfig::Url(_) => {
            return Err(ProviderError::Rejected(format!("environment {} has no database.cluster", env.name)));
        }
    };
    let ecs = match &env.migration.ecs {
        Some(e) => Some(ecs::EcsTarget {
            cluster: e.cluster.resolve(&outputs).map_err(missing)?,
            task_definition: e.task_definition.resolve(&outputs).map_err(missing)?,
            subnets: e.subnets.resolve(&outputs).map_err(missing)?,
            security_groups: e.security_groups.resolve(&outputs).map_err(missing)?,
            assign_public_ip: e.assign_public_ip,
            container: e.container.clone(),
        }),
        None => None,
    };
    let service_arn = match &env.service {
        Some(s) => Some(s.apprunner_arn.resolve(&outputs).map_err(missing)?),
        None => None,
    };
    Ok(Resolved { cluster_id, ecs, service_arn })
}

/// The stack outputs reader, behind CloudFormation's token bucket like every
/// other AWS client ferry makes (`plan`'s read of the outputs included).
pub fn stacks(env: &EnvConfig, sdk: &SdkConfig) -> cloudformation::Stacks {
    use budget::{Service, limited};
    budget::configure(&env.api_budget);
    cloudformation::Stacks::new(aws_sdk_cloudformation::Client::new(&limited(sdk, Service::CloudFormation)))
}

/// Everything the runbook needs for one AWS environment.
pub async fn cloud(env: &EnvConfig, sdk: &SdkConfig) -> PResult<(Cloud, Resolved)> {
    use budget::{Service, limited};
    let stacks = stacks(env, sdk);
    let resolved = resolve(env, &stacks).await?;
    let rds_client = aws_sdk_rds::Client::new(&limited(sdk, Service::Rds));
    let rehearsal = rds::Rehearsal {
        instance_class: env.rehearse.instance_class.clone(),
        url: match &env.database_url {
            Some(crate::config::DbUrl::Postgres(url)) => Some(url.clone()),
            _ => None,
        },
    };
    let database = Arc::new(rds::RdsDatabase::new(rds_client, resolved.cluster_id.clone()).with_rehearsal(rehearsal));
    let logs = Arc::new(logs::CloudWatchLogs::new(aws_sdk_cloudwatchlogs::Client::new(&limited(sdk, Service::Logs))));
    let apprunner_client = aws_sdk_apprunner::Client::new(&limited(sdk, Service::AppRunner));
    let service = resolved.service_arn.clone().map(|arn| Arc::new(apprunner::AppRunner::new(apprunner_client, arn)));
    let runner: Arc<dyn super::MigrationRunner> = match (env.migration.runner, &resolved.ecs, &service) {
        (RunnerKind::Ecs, Some(target), _) => {
            Arc::new(ecs::EcsRunner::new(aws_sdk_ecs::Client::new(&limited(sdk, Service::Ecs)), target.clone()))
        }
        (RunnerKind::Apprunner, _, Some(service)) => Arc::new(apprunner::Deployments::new(service.clone())),
        // config::parse guarantees each runner its settings.
        (runner, _, _) => {
            return Err(ProviderError::Rejected(format!(
                "environment {}: migration.runner = {runner:?} is missing its settings",
                env.name
            )));
        }
    };
    let cloud = Cloud {
        database,
        runner,
        logs,
        service: service.map(|s| s as Arc<dyn super::AppService>),
        health: Arc::new(HttpHealth::new()),
        session: session(env, &resolved.cluster_id)?,
    };
    Ok((cloud, resolved))
}

/// Inside the cluster's database: only through `database.url` (e.g. a bastion
/// tunnel), since the RDS API does not reach into it.
fn session(env: &EnvConfig, cluster: &str) -> PResult<Result<Arc<dyn super::Session>, String>> {
    match &env.database_url {
        Some(crate::config::DbUrl::Postgres(url)) => {
            Ok(Ok(Arc::new(super::session::PgSession::new(url, crate::config::ProviderKind::Aws)?)
                as Arc<dyn super::Session>))
        }
        _ => Ok(Err(cannot_see_inside(env, cluster))),
    }
}

/// Why ferry cannot read the cluster's tables, and how to let it.
pub fn cannot_see_inside(env: &EnvConfig, cluster: &str) -> String {
    format!(
        "ferry cannot see inside cluster {cluster} from here (the RDS API does not read tables); set \
         database.url next to database.cluster in [env.{}] to a postgres:// URL that reaches it, e.g. \
         through a bastion tunnel on local port 5433: database = {{ cluster = \"{cluster}\", url = \
         \"postgres://USER@ENDPOINT:5433/DB?hostaddr=127.0.0.1\" }} (ENDPOINT: the cluster's endpoint name, which \
         its TLS certificate holds)",
        env.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::fake::FakeCloud;

    #[test]
    fn ferrys_retry_policy_applies_unless_the_profile_chose_one() {
        // (AWS_MAX_ATTEMPTS / AWS_RETRY_MODE are read from the process environment;
        // none is set under the test runner.)
        let loaded = |r: RetryConfig| SdkConfig::builder().retry_config(r).build();
        let sdk_default = with_retry_policy(loaded(RetryConfig::standard()));
        assert_eq!(sdk_default.retry_config().map(RetryConfig::max_attempts), Some(RETRY_MAX_ATTEMPTS));
        let chosen = with_retry_policy(loaded(RetryConfig::standard().with_max_attempts(9)));
        assert_eq!(chosen.retry_config().map(RetryConfig::max_attempts), Some(9), "the person's choice wins");
        let adaptive = with_retry_policy(loaded(RetryConfig::adaptive()));
        assert_eq!(adaptive.retry_config().map(RetryConfig::mode), Some(aws_config::retry::RetryMode::Adaptive));
    }

    fn env(migration_cluster: &str) -> EnvConfig {
        let text = format!(
            "project = \"p\"\n[env.prod]\nstack = \"s\"\ndatabase = {{ cluster = \"db-1\" }}\nmigration = {{ cluster = \"{migration_cluster}\", task_definition = \"td:3\", subnets = \"${{output:PrivateSubnetIds}}\", security_groups = [\"sg-1\"], container = \"migrate\", command = [\"m\"] }}\n"
        );
        crate::config::parse(std::path::Path::new("/x/ferry.toml"), &text).unwrap().env("prod").unwrap().clone()
    }

    #[tokio::test]
    async fn outputs_fill_templates_and_comma_separated_lists() {
        let stacks = FakeCloud::new("db-1", "v1", false);
        let r = resolve(&env("${output:ClusterName}"), &stacks).await.unwrap();
        assert_eq!(r.cluster_id, "db-1");
        let ecs = r.ecs.unwrap();
        assert_eq!(ecs.cluster, "fake-ecs");
        assert_eq!(ecs.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(ecs.security_groups, ["sg-1"]);
    }

    #[tokio::test]
    async fn a_missing_output_is_named_with_the_ones_that_exist() {
        let stacks = FakeCloud::new("db-1", "v1", false);
        let err = resolve(&env("${output:EcsCluster}"), &stacks).await.unwrap_err();
        assert_eq!(
            err,
            ProviderError::Rejected(
                "stack s has no output \"EcsCluster\"; its outputs are: ClusterName, PrivateSubnetIds".into()
            )
        );
    }
}
