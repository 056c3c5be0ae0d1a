//! ferry.toml as written: every key optional, unknown keys rejected. `[defaults]`
//! and `[env.NAME]` share one shape and are merged key by key (nested tables too).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::values::{DbUrl, HumanDuration, Template, TemplateList};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub project: Spanned<String>,
    pub state_dir: Option<Spanned<String>>,
    #[serde(default)]
    pub defaults: RawEnv,
    #[serde(default)]
    pub env: BTreeMap<Spanned<String>, Spanned<RawEnv>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Aws,
    Local,
}

impl ProviderKind {
    /// As ferry.toml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aws => "aws",
            ProviderKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreOnFailure {
    Auto,
    Prompt,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoreStrategy {
    Rename,
    NewCluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunnerKind {
    Ecs,
    Apprunner,
    Command,
}

impl RunnerKind {
    /// As ferry.toml spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerKind::Ecs => "ecs",
            RunnerKind::Apprunner => "apprunner",
            RunnerKind::Command => "command",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnv {
    pub provider: Option<ProviderKind>,
    pub region: Option<String>,
    pub snapshot_prefix: Option<Spanned<String>>,
    pub confirm: Option<bool>,
    pub restore_on_failure: Option<RestoreOnFailure>,
    pub restore_strategy: Option<RestoreStrategy>,
    pub timeouts: Option<RawTimeouts>,
    pub stack: Option<String>,
    pub database: Option<RawDatabase>,
    pub migration: Option<RawMigration>,
    pub service: Option<RawService>,
    pub health: Option<RawHealth>,
    /// `s3://BUCKET/PREFIX`: run records and locks in S3 instead of `state_dir`.
    pub state: Option<Spanned<String>>,
    /// `rehearse = { ... }`: the migration on a clone first (`ferry rehearse`).
    pub rehearse: Option<RawRehearse>,
    /// `api_budget = { rds = 12, ... }`: AWS requests a second per process.
    pub api_budget: Option<RawApiBudget>,
    /// `restore = { stop_set_aside = false }`: what a restore does after its swap.
    pub restore: Option<RawRestore>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRestore {
    pub stop_set_aside: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiBudget {
    pub rds: Option<f64>,
    pub ecs: Option<f64>,
    pub logs: Option<f64>,
    pub apprunner: Option<f64>,
    pub cloudformation: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RehearseWhen {
    Never,
    Always,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRehearse {
    pub when: Option<RehearseWhen>,
    pub database_env: Option<BTreeMap<String, String>>,
    pub instance_class: Option<String>,
    pub max_duration: Option<HumanDuration>,
    pub max_exclusive_lock: Option<HumanDuration>,
    pub keep_clone: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub snapshot: Option<HumanDuration>,
    pub migration: Option<HumanDuration>,
    pub restore: Option<HumanDuration>,
    pub service: Option<HumanDuration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub cluster: Option<Template>,
    pub url: Option<DbUrl>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMigration {
    pub runner: Option<RunnerKind>,
    pub cluster: Option<Template>,
    pub task_definition: Option<Template>,
    pub subnets: Option<TemplateList>,
    pub security_groups: Option<TemplateList>,
    pub assign_public_ip: Option<bool>,
    pub container: Option<String>,
    pub command: Option<Vec<String>>,
    pub env: Option<BTreeMap<String, RawEnvValue>>,
    pub alembic: Option<RawAlembic>,
    pub image: Option<Spanned<String>>,
    pub lock_timeout: Option<Spanned<HumanDuration>>,
    pub lock_retries: Option<Spanned<i64>>,
}

/// `migration.alembic = { versions = "alembic/versions", version_table = "alembic_version" }`;
/// `versions` may also be a list (Alembic's `version_locations`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlembic {
    pub versions: Spanned<OneOrMany>,
    pub version_table: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "a path or an array of paths")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// `KEY = "value"` or `KEY = { value = "...", secret = true }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a migration.env value: a string, KEY = \"value\", or a table, KEY = { value = \"...\", secret = true } (quote numbers and booleans: KEY = \"1\")"
)]
pub enum RawEnvValue {
    Plain(String),
    Detailed(RawSecretValue),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretValue {
    pub value: String,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub apprunner_arn: Option<Template>,
    pub database_url_var: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub url: Option<String>,
    pub expect_status: Option<u16>,
    pub timeout: Option<HumanDuration>,
}

/// Fill what `self` leaves unset from `base`.
pub trait Inherit {
    fn inherit(self, base: &Self) -> Self;
}

impl<T: Inherit + Clone> Inherit for Option<T> {
    fn inherit(self, base: &Self) -> Self {
        match (self, base) {
            (Some(a), Some(b)) => Some(a.inherit(b)),
            (Some(a), None) => Some(a),
            (None, b) => b.clone(),
        }
    }
}

macro_rules! inherit_fields {
    ($ty:ty { $($scalar:ident),* } { $($nested:ident),* }) => {
        impl Inherit for $ty {
            fn inherit(self, base: &Self) -> Self {
                Self {
                    $($scalar: self.$scalar.or_else(|| base.$scalar.clone()),)*
                    $($nested: self.$nested.inherit(&base.$nested),)*
                }
            }
        }
    };
}

inherit_fields!(RawEnv {
    provider, region, snapshot_prefix, confirm, restore_on_failure, restore_strategy, stack, state
} { timeouts, database, migration, service, health, rehearse, api_budget, restore });
inherit_fields!(RawRestore { stop_set_aside } {});
inherit_fields!(RawApiBudget { rds, ecs, logs, apprunner, cloudformation } {});
inherit_fields!(RawRehearse { when, database_env, instance_class, max_duration, max_exclusive_lock, keep_clone } {});
inherit_fields!(RawTimeouts { snapshot, migration, restore, service } {});
inherit_fields!(RawDatabase { cluster, url } {});
inherit_fields!(RawMigration {
    runner, cluster, task_definition, subnets, security_groups, assign_public_ip, container,
    command, alembic, image, lock_timeout, lock_retries
} { env });

/// `migration.env` tables merge key by key, like every other table.
impl Inherit for BTreeMap<String, RawEnvValue> {
    fn inherit(mut self, base: &Self) -> Self {
        for (k, v) in base {
            self.entry(k.clone()).or_insert_with(|| v.clone());
        }
        self
    }
}
inherit_fields!(RawService { apprunner_arn, database_url_var } {});
inherit_fields!(RawHealth { url, expect_status, timeout } {});
