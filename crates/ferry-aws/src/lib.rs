//! The AWS provider: Aurora (RDS), ECS Fargate, CloudWatch Logs, App Runner and
//! CloudFormation through the AWS SDK for Rust, one file per service. Credentials,
//! region and endpoints come from aws-config's standard chain (environment,
//! profiles, SSO, web identity for GitHub OIDC; `AWS_ENDPOINT_URL` and
//! `AWS_ENDPOINT_URL_<SERVICE>` are honoured).

pub mod access;
pub mod apprunner;
pub mod budget;
pub mod cloudformation;
pub mod describe;
pub mod ecs;
pub mod ecs_taskdef;
pub mod logs;
pub mod rds;
pub mod s3_state;

use std::fmt::Debug;
use std::sync::Arc;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use ferry_core::config::{DatabaseConfig, EnvConfig, RunnerKind};
use ferry_core::provider::http::HttpHealth;
use ferry_core::provider::{Cloud, PResult, ProviderError, StackOutputs};

/// Flags that choose credentials and region, shared by every command.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
}

pub use ferry_core::provider::{RETRY_INITIAL_BACKOFF, RETRY_MAX_ATTEMPTS, RETRY_MAX_BACKOFF};

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

/// The most attempts ferry accepts in `AWS_MAX_ATTEMPTS` / `max_attempts`:
/// more is a typo (each attempt waits up to [`RETRY_MAX_BACKOFF`]).
pub const MAX_ATTEMPTS_ACCEPTED: u32 = 100;

/// Check the settings the AWS SDK reads by itself and would panic on, before
/// it is loaded: aws-config's retry settings (`AWS_MAX_ATTEMPTS`,
/// `AWS_RETRY_MODE`, and the profile's `max_attempts` / `retry_mode`) make its
/// loader panic when they do not parse, when max attempts is 0, or when a
/// value is not UTF-8. Its other settings (`AWS_USE_FIPS_ENDPOINT`,
/// `AWS_ENDPOINT_URL`, ...) are logged and ignored when malformed, which is
/// no panic; `AWS_REGION` is checked here too, since an empty or malformed one
/// would only surface as an unreachable endpoint. The error names the variable
/// (or the profile and key) for exit 2.
pub async fn check_sdk_settings(profile: Option<&str>) -> Result<(), String> {
    for var in ["AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"] {
        if let Some(v) = std::env::var_os(var)
            && v.to_str().is_none()
        {
            return Err(format!("{var} is not valid UTF-8 text; set it to a plain value or unset it"));
        }
    }
    let var = |k: &str| std::env::var(k).ok();
    if let Some(v) = var("AWS_MAX_ATTEMPTS") {
        max_attempts(&v).map_err(|e| format!("AWS_MAX_ATTEMPTS={v:?}: {e}"))?;
    }
    if let Some(v) = var("AWS_RETRY_MODE") {
        retry_mode(&v).map_err(|e| format!("AWS_RETRY_MODE={v:?}: {e}"))?;
    }
    for k in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(v) = var(k)
            && !v.is_empty()
            && !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(format!("{k}={v:?} is not an AWS region code (e.g. us-east-1)"));
        }
    }
    // The profile the SDK will read (its own loader, so the same files, the
    // same `AWS_CONFIG_FILE`, the same selection). A file that does not parse
    // is left to the SDK, which reports it without panicking.
    // The alias aws_config::profile::load takes (its new name lives in aws-runtime).
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    let chosen = profile.map(|p| std::borrow::Cow::Owned(p.to_string()));
    let fs = aws_types::os_shim_internal::Fs::real();
    let env = aws_types::os_shim_internal::Env::real();
    if let Ok(set) = aws_config::profile::load(&fs, &env, &files, chosen).await {
        let name = set.selected_profile().to_string();
        if let Some(v) = set.get("max_attempts") {
            max_attempts(v).map_err(|e| format!("max_attempts = {v:?} in AWS profile {name:?}: {e}"))?;
        }
        if let Some(v) = set.get("retry_mode") {
            retry_mode(v).map_err(|e| format!("retry_mode = {v:?} in AWS profile {name:?}: {e}"))?;
        }
    }
    Ok(())
}

/// As aws-config parses max attempts (a `u32`, untrimmed), and not 0.
fn max_attempts(v: &str) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(0) => Err("must be at least 1 (the first attempt counts)".into()),
        Ok(n) if n > MAX_ATTEMPTS_ACCEPTED => Err(format!("must be at most {MAX_ATTEMPTS_ACCEPTED}")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("must be a whole number of attempts from 1 to {MAX_ATTEMPTS_ACCEPTED}")),
    }
}

/// As aws-config parses a retry mode: `standard` or `adaptive` (any case, trimmed).
fn retry_mode(v: &str) -> Result<(), String> {
    v.parse::<aws_config::retry::RetryMode>().map(|_| ()).map_err(|_| "must be standard or adaptive".to_string())
}

/// Load the SDK configuration: `--region`, then the environment's `region`, then
/// the standard chain; `--profile` picks a named profile. Retries: [`with_retry_policy`].
pub async fn sdk_config(env: &EnvConfig, opts: &AwsOptions) -> SdkConfig {
    load_sdk(opts.region.clone().or_else(|| env.region.clone()), opts.profile.clone()).await
}

/// The one way ferry loads an SDK configuration (the provider's and the
/// state store's): `region` and `profile` when given, else the standard
/// chain; ferry's retry policy unless the person chose one the SDK's way.
pub async fn load_sdk(region: Option<String>, profile: Option<String>) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(Region::new(region));
    }
    if let Some(profile) = profile {
        loader = loader.profile_name(profile);
    }
    with_retry_policy(loader.load().await)
}

/// Fail fast, before anything else, when the profile is missing, there is
/// no region, no usable credentials or no reachable endpoint: one line
/// ([`access::check`]), the SDK's words in [`access::Problem::detail`].
pub async fn check_credentials(sdk: &SdkConfig, profile: Option<&str>, doing: &str) -> Result<(), access::Problem> {
    access::check(sdk, profile, "rds", doing).await
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
            Some(ferry_core::config::DbUrl::Postgres(url)) => Some(url.clone()),
            _ => None,
        },
    };
    let database = Arc::new(rds::RdsDatabase::new(rds_client, resolved.cluster_id.clone()).with_rehearsal(rehearsal));
    let logs = Arc::new(logs::CloudWatchLogs::new(aws_sdk_cloudwatchlogs::Client::new(&limited(sdk, Service::Logs))));
    let apprunner_client = aws_sdk_apprunner::Client::new(&limited(sdk, Service::AppRunner));
    let service = resolved.service_arn.clone().map(|arn| Arc::new(apprunner::AppRunner::new(apprunner_client, arn)));
    let runner: Arc<dyn ferry_core::provider::MigrationRunner> = match (env.migration.runner, &resolved.ecs, &service) {
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
        service: service.map(|s| s as Arc<dyn ferry_core::provider::AppService>),
        health: Arc::new(HttpHealth::new()),
        session: session(env, &resolved.cluster_id)?,
        describe: Arc::new(describe::AwsWords),
    };
    Ok((cloud, resolved))
}

/// Inside the cluster's database: only through `database.url` (e.g. a bastion
/// tunnel), since the RDS API does not reach into it.
fn session(env: &EnvConfig, cluster: &str) -> PResult<Result<Arc<dyn ferry_core::provider::Session>, String>> {
    match &env.database_url {
        Some(ferry_core::config::DbUrl::Postgres(url)) => {
            Ok(Ok(Arc::new(ferry_local::session::PgSession::new(url, ferry_core::config::ProviderKind::Aws)?)
                as Arc<dyn ferry_core::provider::Session>))
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
    use ferry_core::provider::fake::FakeCloud;

    #[test]
    fn retry_settings_the_sdk_panics_on_are_refused() {
        for bad in ["lots", "0", "", " 3", "-1", "4294967296", "101"] {
            assert!(max_attempts(bad).is_err(), "{bad:?}");
        }
        assert_eq!(max_attempts("7"), Ok(7));
        for bad in ["bogus", "", "legacy"] {
            assert!(retry_mode(bad).is_err(), "{bad:?}");
        }
        assert!(retry_mode(" Adaptive ").is_ok() && retry_mode("standard").is_ok());
    }

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
        ferry_core::config::parse(std::path::Path::new("/x/ferry.toml"), &text).unwrap().env("prod").unwrap().clone()
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
