//! ferry.toml: finding it, parsing it, and validating it into a typed [`Config`].
//! Pure: the only I/O is reading the file. Stack outputs are resolved later by
//! the provider (see [`Template`]).

mod budget;
mod image;
mod raw;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use budget::{ApiBudget, DEFAULT_API_BUDGET};
pub use image::{IMAGE_SOURCES, check_image};
use raw::{
    Inherit, OneOrMany, RawAlembic, RawDatabase, RawEnv, RawEnvValue, RawFile, RawHealth, RawMigration, RawRehearse,
    RawService, RawTimeouts,
};
pub use raw::{ProviderKind, RehearseWhen, RestoreOnFailure, RestoreStrategy, RunnerKind};
use serde::Serialize;
use toml::Spanned;
pub use values::{DbUrl, HumanDuration, Template, TemplateList, check_restore_snapshot, check_snapshot_id};

pub const FILE_NAME: &str = "ferry.toml";

/// Why an app that migrates on start-up cannot be repointed at a new cluster.
pub const APPRUNNER_NEW_CLUSTER: &str = "restore_strategy = \"new-cluster\" cannot be used with runner = \"apprunner\": \
     repointing the service is an UpdateService, which redeploys the image tag that still holds the release whose \
     start-up migration failed, so it would migrate the restored cluster again; use restore_strategy = \"rename\" \
     (the endpoint stays the same and the service is only paused and resumed)";
const DEFAULT_PREFIX: &str = "{project}-{env}-pre-deploy";

/// A configuration problem, located in the file when it comes from one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: Option<PathBuf>,
    /// 1-based line and column.
    pub position: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    fn plain(message: impl Into<String>) -> Self {
        ConfigError { path: None, position: None, message: message.into() }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.path, self.position) {
            (Some(p), Some((l, c))) => write!(f, "{}:{l}:{c}: {}", p.display(), self.message),
            (Some(p), None) => write!(f, "{}: {}", p.display(), self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The whole file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub project: String,
    /// Absolute: where run journals, local snapshots and task logs live.
    pub state_dir: PathBuf,
    pub envs: BTreeMap<String, EnvConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timeouts {
    #[serde(serialize_with = "ser_duration")]
    pub snapshot: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub migration: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub restore: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub service: Duration,
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&values::format_duration(*d))
}

fn ser_display<T: fmt::Display, S: serde::Serializer>(t: &T, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

/// One environment, with `[defaults]` applied.
#[derive(Debug, Clone, Serialize)]
pub struct EnvConfig {
    pub name: EnvName,
    pub project: String,
    pub provider: ProviderKind,
    pub region: Option<String>,
    /// Rendered (`{project}` and `{env}` substituted).
    pub snapshot_prefix: String,
    pub confirm: bool,
    pub restore_on_failure: RestoreOnFailure,
    pub restore_strategy: RestoreStrategy,
    pub timeouts: Timeouts,
    pub stack: Option<String>,
    pub database: DatabaseConfig,
    /// provider = "aws": a PostgreSQL URL that reaches the cluster's database
    /// from here (e.g. through a bastion tunnel), set next to `database.cluster`.
    /// ferry reads the migration version table and the server's sessions
    /// through it (`check`, `doctor`, the preflight); it never writes.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_db_url")]
    pub database_url: Option<DbUrl>,
    pub migration: MigrationConfig,
    pub service: Option<ServiceConfig>,
    pub health: Option<HealthConfig>,
    /// Where run records and locks live (`state`, default `state_dir`).
    #[serde(serialize_with = "ser_location")]
    pub state: crate::state::Location,
    /// `rehearse`: the migration on a clone of the database first.
    pub rehearse: RehearseConfig,
    /// `api_budget`: AWS requests a second per process, per service.
    #[serde(skip_serializing_if = "ApiBudget::is_default")]
    pub api_budget: ApiBudget,
    /// `restore = { ... }`: what a restore does after its swap.
    pub restore: RestoreConfig,
}

/// `restore = { ... }`, resolved.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreConfig {
    /// Stop the database a rename swap set aside, once clients reach the
    /// restored one (default true): a client holding the old address can no
    /// longer write into it, and its instances stop billing. Storage is kept.
    pub stop_set_aside: bool,
}

/// An environment's name (`[env.NAME]`): letters, digits and hyphens, since
/// it names snapshots and runs. Checked once, when ferry.toml is read
/// ([`EnvName::parse`]); it reads as the string it is (`Deref<str>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EnvName(String);

impl EnvName {
    pub fn parse(name: &str) -> Result<EnvName, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!(
                "environment name {name:?} must be letters, digits and hyphens (it names snapshots and runs)"
            ));
        }
        Ok(EnvName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for EnvName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for EnvName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for EnvName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for EnvName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for EnvName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for EnvName {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<EnvName> for String {
    fn eq(&self, other: &EnvName) -> bool {
        *self == other.0
    }
}

/// `rehearse = { ... }`, resolved (defaults where the table is absent).
#[derive(Debug, Clone, Serialize)]
pub struct RehearseConfig {
    /// Whether the table was written at all (for the environment or in `[defaults]`).
    #[serde(skip)]
    pub configured: bool,
    pub when: RehearseWhen,
    /// Variables set on the rehearsal's migration, `${clone.endpoint}` and
    /// `${clone.port}` substituted.
    pub database_env: BTreeMap<String, String>,
    pub instance_class: Option<String>,
    #[serde(serialize_with = "ser_duration")]
    pub max_duration: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_exclusive_lock: Duration,
    /// `max_exclusive_lock` was written (not the default): locks that cannot be
    /// observed fail the rehearsal instead of being reported as not observed.
    #[serde(skip)]
    pub max_exclusive_lock_set: bool,
    pub keep_clone: bool,
}

/// The default `rehearse.max_duration`.
pub const REHEARSE_MAX_DURATION: Duration = Duration::from_secs(600);
/// The default `rehearse.max_exclusive_lock`.
pub const REHEARSE_MAX_EXCLUSIVE_LOCK: Duration = Duration::from_secs(30);
/// Why a rehearsal on provider = "aws" needs `rehearse.database_env`.
pub const REHEARSE_AWS_DATABASE_ENV: &str = "on provider = \"aws\" the migration finds its database through its own \
     variables, so rehearse.database_env must point it at the clone: at least one value must contain \
     ${clone.endpoint}, e.g. rehearse = { database_env = { DB_HOST = \"${clone.endpoint}\", DB_PORT = \"${clone.port}\" } } \
     or { DATABASE_URL = \"postgresql://app@${clone.endpoint}:${clone.port}/app\" }; otherwise the rehearsal's \
     migration would run against the real database";

/// Why this environment cannot be rehearsed as configured, if it cannot:
/// on aws, a `rehearse.database_env` with no `${clone.endpoint}`.
pub fn rehearsal_refusal(env: &EnvConfig) -> Option<String> {
    if env.migration.runner == RunnerKind::Apprunner {
        return Some(REHEARSE_APPRUNNER.into());
    }
    (env.provider == ProviderKind::Aws && !points_at_clone(&env.rehearse.database_env))
        .then(|| REHEARSE_AWS_DATABASE_ENV.into())
}

fn points_at_clone(database_env: &BTreeMap<String, String>) -> bool {
    database_env.values().any(|v| v.contains("${clone.endpoint}"))
}
/// Why runner = "apprunner" cannot be rehearsed.
pub const REHEARSE_APPRUNNER: &str = "runner = \"apprunner\" migrates inside the App Runner service's start-up, \
     which cannot be pointed at a clone; a rehearsal needs runner = \"ecs\" (or \"command\" locally)";

/// The `${clone.NAME}` placeholders `rehearse.database_env` may use.
pub const CLONE_PLACEHOLDERS: [&str; 2] = ["endpoint", "port"];

fn rehearse_config(
    raw: Option<RawRehearse>,
    provider: ProviderKind,
    runner: RunnerKind,
) -> Result<RehearseConfig, EnvError> {
    let err = |msg: String| (None, msg);
    let configured = raw.is_some();
    let r = raw.unwrap_or_default();
    if configured && runner == RunnerKind::Apprunner {
        return Err(err(format!("rehearse: {REHEARSE_APPRUNNER}; remove the rehearse table")));
    }
    let database_env = r.database_env.unwrap_or_default();
    for (k, v) in &database_env {
        if !is_env_name(k) {
            return Err(err(format!("rehearse.database_env key {k:?} is not an environment variable name")));
        }
        if k == "DATABASE_URL" && provider == ProviderKind::Local {
            return Err(err("rehearse.database_env.DATABASE_URL is set by ferry to the clone; remove it".into()));
        }
        let mut rest = v.as_str();
        while let Some(at) = rest.find("${") {
            let inner = &rest[at + 2..];
            let end = inner.find('}').unwrap_or(inner.len());
            let name = &inner[..end];
            match name.strip_prefix("clone.") {
                Some(p) if CLONE_PLACEHOLDERS.contains(&p) && end < inner.len() => {}
                _ => {
                    return Err(err(format!(
                        "rehearse.database_env.{k}: ${{{name}}} is not known; use ${{clone.endpoint}} or ${{clone.port}}"
                    )));
                }
            }
            rest = &inner[end.min(inner.len())..];
        }
    }
    if configured && provider == ProviderKind::Aws && !points_at_clone(&database_env) {
        return Err(err(format!("rehearse.database_env: {REHEARSE_AWS_DATABASE_ENV}")));
    }
    let max_duration = r.max_duration.map_or(REHEARSE_MAX_DURATION, |d| d.0);
    Ok(RehearseConfig {
        configured,
        when: r.when.unwrap_or(RehearseWhen::Never),
        database_env,
        instance_class: r.instance_class,
        max_duration,
        max_exclusive_lock: r.max_exclusive_lock.map_or(REHEARSE_MAX_EXCLUSIVE_LOCK, |d| d.0),
        max_exclusive_lock_set: r.max_exclusive_lock.is_some(),
        keep_clone: r.keep_clone.unwrap_or(false),
    })
}

fn ser_location<S: serde::Serializer>(l: &crate::state::Location, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&l.describe())
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseConfig {
    /// An Aurora cluster identifier (aws).
    Cluster(#[serde(serialize_with = "ser_display")] Template),
    /// A local database (local provider).
    Url(#[serde(serialize_with = "ser_db_url")] DbUrl),
}

fn ser_opt_db_url<S: serde::Serializer>(u: &Option<DbUrl>, s: S) -> Result<S::Ok, S::Error> {
    match u {
        Some(u) => ser_db_url(u, s),
        None => s.serialize_none(),
    }
}

fn ser_db_url<S: serde::Serializer>(u: &DbUrl, s: S) -> Result<S::Ok, S::Error> {
    match u {
        DbUrl::Sqlite(p) => s.serialize_str(&format!("sqlite://{p}")),
        DbUrl::Postgres(url) => s.serialize_str(&crate::db_url::redact(url)),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationConfig {
    pub runner: RunnerKind,
    pub command: Vec<String>,
    pub env: BTreeMap<String, EnvValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ecs: Option<EcsConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alembic: Option<AlembicConfig>,
    /// `migration.image`: run this image instead of the one the task definition
    /// (ecs) or the service (apprunner) pins. `--image` and `FERRY_IMAGE` win over it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `migration.lock_timeout`: PostgreSQL's `lock_timeout` for the
    /// migration's sessions, passed as `PGOPTIONS` (libpq reads it at connect),
    /// so a migration waiting for a lock fails fast instead of queueing every
    /// query of the application behind it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_opt_duration")]
    pub lock_timeout: Option<Duration>,
    /// `migration.lock_retries` (0..=10, needs `lock_timeout`): how many times
    /// a migration that failed on a lock timeout, with proof that it changed
    /// nothing, is run again (after a backoff, within `timeouts.migration`).
    #[serde(skip_serializing_if = "is_zero")]
    pub lock_retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl MigrationConfig {
    /// The environment the migration runs with: `migration.env`, and with
    /// `lock_timeout` set, `PGOPTIONS` carrying `-c lock_timeout=<ms>` after
    /// whatever `migration.env.PGOPTIONS` already holds.
    pub fn task_environment(&self) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.env.iter().map(|(k, v)| (k.clone(), v.value.clone())).collect();
        if let Some(options) = self.pgoptions() {
            env.insert("PGOPTIONS".into(), options);
        }
        env
    }

    /// `PGOPTIONS` as the migration gets it, when ferry sets it.
    pub fn pgoptions(&self) -> Option<String> {
        let t = self.lock_timeout?;
        let own = format!("-c lock_timeout={}", t.as_millis());
        Some(match self.env.get("PGOPTIONS").map(|v| v.value.trim()).filter(|v| !v.is_empty()) {
            Some(theirs) => format!("{theirs} {own}"),
            None => own,
        })
    }
}

/// Where the Alembic revision files are, so ferry can know the heads.
#[derive(Debug, Clone, Serialize)]
pub struct AlembicConfig {
    /// The versions directories (`version_locations`), absolute: relative
    /// paths in ferry.toml are relative to its directory.
    pub versions: Vec<PathBuf>,
    /// The table Alembic records applied revisions in (`alembic_version`).
    pub version_table: String,
}

#[derive(Debug, Clone)]
pub struct EnvValue {
    pub value: String,
    pub secret: bool,
}

/// Shown values only: a secret never leaves as itself.
impl Serialize for EnvValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.shown())
    }
}

impl EnvValue {
    /// What may be shown: secrets are masked.
    pub fn shown(&self) -> &str {
        if self.secret { "***" } else { &self.value }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EcsConfig {
    #[serde(serialize_with = "ser_display")]
    pub cluster: Template,
    #[serde(serialize_with = "ser_display")]
    pub task_definition: Template,
    #[serde(serialize_with = "ser_list")]
    pub subnets: TemplateList,
    #[serde(serialize_with = "ser_list")]
    pub security_groups: TemplateList,
    pub assign_public_ip: bool,
    pub container: String,
}

fn ser_list<S: serde::Serializer>(l: &TemplateList, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(l.0.iter().map(|t| t.raw.as_str()))
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceConfig {
    #[serde(serialize_with = "ser_display")]
    pub apprunner_arn: Template,
    pub database_url_var: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthConfig {
    pub url: String,
    pub expect_status: u16,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

impl EnvConfig {
    /// Every `${output:Name}` the environment refers to.
    pub fn output_refs(&self) -> Vec<String> {
        let mut templates: Vec<&Template> = Vec::new();
        if let DatabaseConfig::Cluster(t) = &self.database {
            templates.push(t);
        }
        if let Some(e) = &self.migration.ecs {
            templates.extend([&e.cluster, &e.task_definition]);
            templates.extend(e.subnets.0.iter().chain(e.security_groups.0.iter()));
        }
        if let Some(s) = &self.service {
            templates.push(&s.apprunner_arn);
        }
        let mut names: Vec<String> = templates.iter().flat_map(|t| t.outputs()).map(String::from).collect();
        names.sort();
        names.dedup();
        names
    }

    /// The database as a person would name it (no password).
    pub fn database_label(&self) -> String {
        match &self.database {
            DatabaseConfig::Cluster(t) => t.raw.clone(),
            DatabaseConfig::Url(DbUrl::Sqlite(p)) => p.clone(),
            DatabaseConfig::Url(DbUrl::Postgres(u)) => crate::db_url::redact(u),
        }
    }

    /// The URL ferry reads the database's contents through, when it has one:
    /// the local provider's own URL, or an aws environment's `database.url`.
    pub fn session_url(&self) -> Option<&DbUrl> {
        match &self.database {
            DatabaseConfig::Url(u) => Some(u),
            DatabaseConfig::Cluster(_) => self.database_url.as_ref(),
        }
    }

    /// Values that must never be printed.
    /// Every secret of the environment as written: env values marked secret and
    /// the passwords of its database URLs. The redactor adds their other forms.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self.migration.env.values().filter(|v| v.secret).map(|v| v.value.clone()).collect();
        let urls = [
            match &self.database {
                DatabaseConfig::Url(DbUrl::Postgres(u)) => Some(u.as_str()),
                _ => None,
            },
            match &self.database_url {
                Some(DbUrl::Postgres(u)) => Some(u.as_str()),
                _ => None,
            },
        ];
        out.extend(urls.into_iter().flatten().flat_map(crate::db_url::passwords));
        out
    }
}

impl Config {
    pub fn env(&self, name: &str) -> Result<&EnvConfig, ConfigError> {
        self.envs.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.envs.keys().map(String::as_str).collect();
            ConfigError {
                path: Some(self.path.clone()),
                position: None,
                message: format!(
                    "unknown environment {name:?}; {} defines: {}",
                    FILE_NAME,
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            }
        })
    }

    /// Directory holding ferry.toml; relative paths in it are relative to this.
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }
}

/// Find the config: `--config`, then `FERRY_CONFIG`, then ferry.toml in `cwd` or a parent.
pub fn locate(flag: Option<&Path>, env_var: Option<&str>, cwd: &Path) -> Result<PathBuf, ConfigError> {
    if let Some(p) = flag {
        return exists(cwd.join(p), "--config");
    }
    if let Some(p) = env_var.filter(|s| !s.is_empty()) {
        return exists(cwd.join(p), "FERRY_CONFIG");
    }
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(ConfigError::plain(format!(
        "no {FILE_NAME} found in {} or any parent directory; pass --config PATH or set FERRY_CONFIG",
        cwd.display()
    )))
}

/// A config file must be a regular file (a symbolic link to one is fine).
/// Anything else is refused by name rather than read: `/dev/null` would read
/// as an empty file and be reported as a config missing `project` (true, but
/// not the mistake), a FIFO or a terminal would block on the read, and a
/// device reads whatever it holds.
fn exists(p: PathBuf, source: &str) -> Result<PathBuf, ConfigError> {
    let meta = std::fs::metadata(&p);
    if meta.as_ref().is_ok_and(std::fs::Metadata::is_file) {
        Ok(p)
    } else if let Ok(m) = &meta
        && !m.is_dir()
    {
        Err(ConfigError::plain(format!(
            "config file {} (from {source}) is not a regular file (a device, FIFO or socket); name a ferry.toml",
            p.display()
        )))
    } else if p.is_dir() {
        Err(ConfigError::plain(format!(
            "config file {} (from {source}) is a directory; name the file, e.g. {}",
            p.display(),
            p.join(FILE_NAME).display()
        )))
    } else {
        Err(ConfigError::plain(format!("config file {} (from {source}) does not exist", p.display())))
    }
}

pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: Some(path.to_path_buf()),
        position: None,
        message: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parse and validate the text of a ferry.toml found at `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| ConfigError {
        path: Some(path.to_path_buf()),
        position: span.map(|s| line_col(text, s.start)),
        message,
    };
    let raw: RawFile = toml::from_str(text).map_err(|e| at(e.span(), e.message().trim().to_string()))?;
    if let Some((key, offset)) = nul_string(text) {
        return Err(at(
            offset.map(|o| o..o),
            format!(
                "{key} contains a NUL character (\\u0000): no program argument, environment variable or AWS \
                 parameter can hold one; remove it"
            ),
        ));
    }

    let project = raw.project.get_ref().clone();
    if project.is_empty() || !project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(at(
            Some(raw.project.span()),
            format!("project {project:?} must be letters, digits and hyphens (it names snapshots)"),
        ));
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let state_dir = match &raw.state_dir {
        Some(s) if s.get_ref().trim().is_empty() => {
            return Err(at(
                Some(s.span()),
                "state_dir is empty: name a directory (default \".ferry\" beside ferry.toml), or remove the key".into(),
            ));
        }
        Some(s) => base.join(s.get_ref()),
        None => base.join(".ferry"),
    };
    let state_dir = std::path::absolute(&state_dir).unwrap_or(state_dir);

    let mut envs = BTreeMap::new();
    let mut lowercase: BTreeMap<String, &str> = BTreeMap::new();
    for (name, env) in &raw.env {
        // Snapshot ids and RDS identifiers ignore case: dev and DEV would collide.
        if let Some(other) = lowercase.insert(name.get_ref().to_ascii_lowercase(), name.get_ref()) {
            return Err(at(
                Some(name.span()),
                format!(
                    "[env.{}] and [env.{other}] differ only in case; the names of snapshots and AWS resources ignore case, so rename one",
                    name.get_ref()
                ),
            ));
        }
        let merged = env.get_ref().clone().inherit(&raw.defaults);
        let state = match &merged.state {
            Some(s) => crate::state::Location::parse_s3(s.get_ref()).map_err(|e| at(Some(s.span()), e))?,
            None => crate::state::Location::Local(state_dir.clone()),
        };
        let mut resolved = resolve_env(&project, name.get_ref(), merged)
            .map_err(|(span, msg)| at(span.or(Some(env.span())), format!("[env.{}]: {msg}", name.get_ref())))?;
        resolved.state = state;
        if let Some(a) = resolved.migration.alembic.as_mut() {
            a.versions = a.versions.iter().map(|p| std::path::absolute(base.join(p)).unwrap_or(base.join(p))).collect();
        }
        envs.insert(name.get_ref().clone(), resolved);
    }
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(Config { path, project, state_dir, envs })
}

type EnvError = (Option<std::ops::Range<usize>>, String);

/// The first string (value or key) of the document holding a NUL, as its
/// dotted key path, with where the first NUL escape is written. TOML writes one
/// only as an escape (`\u0000`, `\U00000000`): a raw NUL is a parse error.
/// Checked for the whole file, so that no key (a command argument, a value of
/// `migration.env`, a URL) carries one to a launch that fails half-way.
fn nul_string(text: &str) -> Option<(String, Option<usize>)> {
    fn walk(v: &toml::Value, path: &str) -> Option<String> {
        match v {
            toml::Value::String(s) if s.contains('\0') => Some(path.to_string()),
            toml::Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| walk(x, &format!("{path}[{i}]"))),
            toml::Value::Table(t) => t.iter().find_map(|(k, x)| {
                let here = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                if k.contains('\0') { Some(format!("{here:?}")) } else { walk(x, &here) }
            }),
            _ => None,
        }
    }
    let doc: toml::Table = toml::from_str(text).ok()?;
    let key = walk(&toml::Value::Table(doc), "")?;
    let offset = ["\\u0000", "\\U00000000"].iter().filter_map(|e| text.find(e)).min();
    Some((key, offset))
}

fn resolve_env(project: &str, name: &str, raw: RawEnv) -> Result<EnvConfig, EnvError> {
    let err = |msg: String| (None, msg);
    let env_name = EnvName::parse(name).map_err(err)?;
    let provider = raw.provider.unwrap_or(ProviderKind::Aws);
    let snapshot_prefix = snapshot_prefix(project, name, raw.snapshot_prefix)?;
    let (database, database_url) = database(provider, raw.database.unwrap_or_default())?;
    let mut m = raw.migration.unwrap_or_default();
    let runner = runner(provider, m.runner)?;
    let command = command(runner, &mut m)?;
    let ecs = ecs(runner, &mut m)?;
    let env = migration_env(provider, m.env.take())?;
    let service = service(provider, runner, raw.service, raw.restore_strategy)?;
    let health = health(raw.health)?;
    if provider == ProviderKind::Local && raw.stack.is_some() {
        return Err(err("stack (CloudFormation) needs provider = \"aws\"".into()));
    }
    let alembic = m.alembic.map(alembic_config).transpose()?;
    let image = image(runner, m.image)?;
    let lock_retries = lock_retries(runner, &database, m.lock_retries, m.lock_timeout.is_some())?;
    let lock_timeout = lock_timeout(runner, &database, m.lock_timeout)?;
    let rehearse = rehearse_config(raw.rehearse, provider, runner)?;
    let api_budget = budget::api_budget(raw.api_budget)?;
    let cfg = EnvConfig {
        name: env_name,
        project: project.to_string(),
        provider,
        region: raw.region,
        snapshot_prefix,
        confirm: raw.confirm.unwrap_or(false),
        restore_on_failure: raw.restore_on_failure.unwrap_or(RestoreOnFailure::Auto),
        restore_strategy: raw.restore_strategy.unwrap_or(RestoreStrategy::Rename),
        timeouts: timeouts(raw.timeouts.unwrap_or_default()),
        stack: raw.stack,
        database,
        database_url,
        migration: MigrationConfig { runner, command, env, ecs, alembic, image, lock_timeout, lock_retries },
        service,
        health,
        state: crate::state::Location::Local(PathBuf::new()),
        rehearse,
        api_budget,
        restore: RestoreConfig { stop_set_aside: raw.restore.and_then(|r| r.stop_set_aside).unwrap_or(true) },
    };
    if cfg.stack.is_none()
        && let Some(first) = cfg.output_refs().first()
    {
        return Err(err(format!("${{output:{first}}} is used but no `stack` is set to read outputs from")));
    }
    Ok(cfg)
}

/// `snapshot_prefix` with `{project}` and `{env}` filled in, checked as the start of a snapshot id.
fn snapshot_prefix(project: &str, name: &str, raw: Option<Spanned<String>>) -> Result<String, EnvError> {
    let prefix_span = raw.as_ref().map(|s| s.span());
    let prefix_raw = raw.map(|s| s.into_inner()).unwrap_or_else(|| DEFAULT_PREFIX.into());
    let snapshot_prefix = prefix_raw.replace("{project}", project).replace("{env}", name);
    // The prefix is followed by -yyyymmdd-hhmmss-<run hex>: check a full id now.
    check_snapshot_id(&format!("{snapshot_prefix}-20260101-000000-abcd")).map_err(|e| {
        (
            prefix_span,
            format!("snapshot_prefix {prefix_raw:?} renders to {snapshot_prefix:?}, which is not usable: {e}"),
        )
    })?;
    Ok(snapshot_prefix)
}

fn timeouts(t: RawTimeouts) -> Timeouts {
    Timeouts {
        snapshot: t.snapshot.map_or(Duration::from_secs(3600), |d| d.0),
        migration: t.migration.map_or(Duration::from_secs(1800), |d| d.0),
        restore: t.restore.map_or(Duration::from_secs(5400), |d| d.0),
        service: t.service.map_or(Duration::from_secs(1200), |d| d.0),
    }
}

/// `database`: a cluster (aws, optionally with a session URL) or a URL (local).
fn database(provider: ProviderKind, db: RawDatabase) -> Result<(DatabaseConfig, Option<DbUrl>), EnvError> {
    let err = |msg: &str| Err((None, msg.to_string()));
    match (provider, db.cluster, db.url) {
        (ProviderKind::Local, Some(_), Some(_)) => {
            err("database has both `cluster` and `url`; provider \"local\" takes only `url`")
        }
        (ProviderKind::Aws, Some(_), Some(DbUrl::Sqlite(_))) => err(
            "database.url next to database.cluster must be a postgres:// URL reaching the cluster (e.g. through a bastion tunnel)",
        ),
        (ProviderKind::Aws, Some(c), url) => Ok((DatabaseConfig::Cluster(c), url)),
        (ProviderKind::Local, None, Some(u)) => Ok((DatabaseConfig::Url(u), None)),
        (ProviderKind::Aws, _, _) => err(
            "missing database.cluster (the Aurora DB cluster identifier), e.g. database = { cluster = \"app-prod\" } (database.url alone is for provider = \"local\"; on aws it goes next to cluster)",
        ),
        (ProviderKind::Local, _, _) => err(
            "missing database.url, e.g. database = { url = \"sqlite://./app.db\" } or \"postgres://user@127.0.0.1/app\"",
        ),
    }
}

/// `migration.runner`, defaulted by provider, and checked against it.
fn runner(provider: ProviderKind, runner: Option<RunnerKind>) -> Result<RunnerKind, EnvError> {
    let runner = runner.unwrap_or(match provider {
        ProviderKind::Aws => RunnerKind::Ecs,
        ProviderKind::Local => RunnerKind::Command,
    });
    match (provider, runner) {
        (ProviderKind::Local, RunnerKind::Command) | (ProviderKind::Aws, RunnerKind::Ecs | RunnerKind::Apprunner) => {
            Ok(runner)
        }
        (ProviderKind::Local, _) => Err((
            None,
            format!(
                "migration.runner = {:?} needs provider = \"aws\"; the local provider runs runner = \"command\"",
                runner.as_str()
            ),
        )),
        (ProviderKind::Aws, _) => Err((
            None,
            "migration.runner = \"command\" is for provider = \"local\"; on aws use \"ecs\" or \"apprunner\"".into(),
        )),
    }
}

/// `migration.command`: required, except for App Runner, which takes neither it nor `migration.env`.
fn command(runner: RunnerKind, m: &mut RawMigration) -> Result<Vec<String>, EnvError> {
    let err = |msg: &str| Err((None, msg.to_string()));
    let command = m.command.take().unwrap_or_default();
    if runner == RunnerKind::Apprunner && (!command.is_empty() || m.env.as_ref().is_some_and(|e| !e.is_empty())) {
        return err("runner \"apprunner\" migrates in the app's own start-up (a deployment of the service): \
             migration.command and migration.env are not used; remove them");
    }
    if runner != RunnerKind::Apprunner && command.is_empty() {
        return err("missing migration.command, e.g. command = [\"alembic\", \"upgrade\", \"head\"]");
    }
    if command.first().is_some_and(|c| c.trim().is_empty()) {
        return err(
            "migration.command starts with an empty program name; name the program first, e.g. [\"alembic\", \"upgrade\", \"head\"]",
        );
    }
    Ok(command)
}

/// The `ecs` keys of `migration`: all set for runner = "ecs", none otherwise.
fn ecs(runner: RunnerKind, m: &mut RawMigration) -> Result<Option<EcsConfig>, EnvError> {
    fn need<T>(v: Option<T>, key: &str) -> Result<T, EnvError> {
        v.ok_or_else(|| (None, format!("runner \"ecs\" needs migration.{key}")))
    }
    if runner == RunnerKind::Ecs {
        return Ok(Some(EcsConfig {
            cluster: need(m.cluster.take(), "cluster")?,
            task_definition: need(m.task_definition.take(), "task_definition")?,
            subnets: need(m.subnets.take(), "subnets")?,
            security_groups: need(m.security_groups.take(), "security_groups")?,
            assign_public_ip: m.assign_public_ip.unwrap_or(false),
            container: need(m.container.take(), "container")?,
        }));
    }
    for (key, set) in [
        ("cluster", m.cluster.is_some()),
        ("task_definition", m.task_definition.is_some()),
        ("subnets", m.subnets.is_some()),
        ("security_groups", m.security_groups.is_some()),
        ("container", m.container.is_some()),
    ] {
        if set {
            return Err((None, format!("migration.{key} only applies to runner = \"ecs\"")));
        }
    }
    Ok(None)
}

/// `migration.env`: variable names only, and never DATABASE_URL locally (ferry sets it).
fn migration_env(
    provider: ProviderKind,
    raw: Option<BTreeMap<String, RawEnvValue>>,
) -> Result<BTreeMap<String, EnvValue>, EnvError> {
    let env = raw
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                RawEnvValue::Plain(value) => EnvValue { value, secret: false },
                RawEnvValue::Detailed(d) => EnvValue { value: d.value, secret: d.secret },
            };
            (k, v)
        })
        .collect::<BTreeMap<_, _>>();
    if let Some(k) = env.keys().find(|k| !is_env_name(k)) {
        return Err((
            None,
            format!(
                "migration.env key {k:?} is not an environment variable name: use letters, digits and underscores, not starting with a digit (the value goes on the right of =)"
            ),
        ));
    }
    if let Some(k) = env.keys().find(|k| k.as_str() == "DATABASE_URL" && provider == ProviderKind::Local) {
        return Err((None, format!("migration.env.{k} is set by ferry from database.url; remove it")));
    }
    Ok(env)
}

/// `service` (App Runner): aws only, and required by runner = "apprunner".
fn service(
    provider: ProviderKind,
    runner: RunnerKind,
    raw: Option<RawService>,
    strategy: Option<RestoreStrategy>,
) -> Result<Option<ServiceConfig>, EnvError> {
    let err = |msg: String| (None, msg);
    let service = match raw {
        None => None,
        Some(_) if provider == ProviderKind::Local => {
            return Err(err(
                "[service] (App Runner) needs provider = \"aws\"; the local provider has no app service".into()
            ));
        }
        Some(s) => Some(ServiceConfig {
            apprunner_arn: s.apprunner_arn.ok_or_else(|| err("service needs apprunner_arn".into()))?,
            database_url_var: s.database_url_var.unwrap_or_else(|| "DATABASE_URL".into()),
        }),
    };
    if runner == RunnerKind::Apprunner && service.is_none() {
        return Err(err("runner \"apprunner\" needs service = { apprunner_arn = \"...\" }".into()));
    }
    if runner == RunnerKind::Apprunner && strategy == Some(RestoreStrategy::NewCluster) {
        return Err(err(APPRUNNER_NEW_CLUSTER.into()));
    }
    Ok(service)
}

fn health(raw: Option<RawHealth>) -> Result<Option<HealthConfig>, EnvError> {
    let Some(h) = raw else { return Ok(None) };
    let url = h.url.ok_or_else(|| (None, "health needs url".to_string()))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err((None, format!("health.url {url:?} must start with http:// or https://")));
    }
    Ok(Some(HealthConfig {
        url,
        expect_status: h.expect_status.unwrap_or(200),
        timeout: h.timeout.map_or(Duration::from_secs(300), |d| d.0),
    }))
}

/// `migration.image`: a well-formed reference, for the runners that run an image.
fn image(runner: RunnerKind, raw: Option<Spanned<String>>) -> Result<Option<String>, EnvError> {
    match raw {
        None => Ok(None),
        Some(_) if runner == RunnerKind::Command => Err((None, "migration.image needs runner = \"ecs\" or \"apprunner\"; runner = \"command\" runs a local command, not an image".into())),
        Some(i) => {
            check_image(i.get_ref()).map_err(|e| (Some(i.span()), format!("migration.image: {e}")))?;
            Ok(Some(i.into_inner()))
        }
    }
}

/// `migration.lock_timeout`: PostgreSQL's setting, so not for a SQLite
/// database; and not for App Runner, whose migration runs on start-up with the
/// service's own environment, which ferry does not change behind the
/// operator's back (set `PGOPTIONS` there).
fn lock_timeout(
    runner: RunnerKind,
    database: &DatabaseConfig,
    raw: Option<Spanned<HumanDuration>>,
) -> Result<Option<Duration>, EnvError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = Some(raw.span());
    if runner == RunnerKind::Apprunner {
        return Err((
            span,
            "migration.lock_timeout is not applied by runner = \"apprunner\": the app migrates on start-up with the \
             service's own environment; set PGOPTIONS=\"-c lock_timeout=...\" in the service's configuration instead"
                .into(),
        ));
    }
    if matches!(database, DatabaseConfig::Url(DbUrl::Sqlite(_))) {
        return Err((span, "migration.lock_timeout is PostgreSQL's lock_timeout; this database is SQLite".into()));
    }
    let d = raw.into_inner().0;
    if d < Duration::from_millis(1) || d > Duration::from_secs(24 * 3600) {
        return Err((span, "migration.lock_timeout must be between 1ms and 24h".into()));
    }
    Ok(Some(d))
}

/// Most runs of a migration after the first that `migration.lock_retries` may ask for.
pub const MAX_LOCK_RETRIES: i64 = 10;

/// `migration.lock_retries`: 0..=10, and only beside `lock_timeout` (without
/// it a migration never fails on a lock timeout, so it would never retry).
/// Where `lock_timeout` is refused, so is this, by the same check.
fn lock_retries(
    runner: RunnerKind,
    database: &DatabaseConfig,
    raw: Option<Spanned<i64>>,
    with_timeout: bool,
) -> Result<u32, EnvError> {
    let Some(raw) = raw else { return Ok(0) };
    let span = Some(raw.span());
    let n = *raw.get_ref();
    if runner == RunnerKind::Apprunner {
        return Err((
            span,
            "migration.lock_retries is not applied by runner = \"apprunner\": the app migrates on start-up, \
             once per deployment, and ferry cannot run it again on its own"
                .into(),
        ));
    }
    if matches!(database, DatabaseConfig::Url(DbUrl::Sqlite(_))) {
        return Err((span, "migration.lock_retries retries a PostgreSQL lock timeout; this database is SQLite".into()));
    }
    if !(0..=MAX_LOCK_RETRIES).contains(&n) {
        return Err((span, format!("migration.lock_retries must be between 0 and {MAX_LOCK_RETRIES} (it is {n})")));
    }
    if n > 0 && !with_timeout {
        return Err((
            span,
            "migration.lock_retries needs migration.lock_timeout: without it a migration waits for its lock \
             instead of failing on a lock timeout, so there is nothing to retry"
                .into(),
        ));
    }
    Ok(n as u32)
}

/// `migration.alembic`: at least one versions directory, and a version table
/// name PostgreSQL and SQLite take unquoted (optionally `schema.table`).
fn alembic_config(a: RawAlembic) -> Result<AlembicConfig, EnvError> {
    let versions_span = a.versions.span();
    let versions = match a.versions.into_inner() {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    if versions.is_empty() || versions.iter().any(|v| v.trim().is_empty()) {
        return Err((
            Some(versions_span),
            "migration.alembic.versions needs a directory of revision files, e.g. \"alembic/versions\"".into(),
        ));
    }
    let version_table = match a.version_table {
        None => "alembic_version".to_string(),
        Some(t) => {
            let ok = |part: &str| {
                part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && part.len() <= 63
            };
            let name = t.get_ref();
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() > 2 || !parts.iter().all(|p| ok(p)) {
                return Err((
                    Some(t.span()),
                    format!(
                        "migration.alembic.version_table {name:?} must be a table name (letters, digits, underscores), optionally schema.table"
                    ),
                ));
            }
            t.into_inner()
        }
    };
    Ok(AlembicConfig { versions: versions.into_iter().map(PathBuf::from).collect(), version_table })
}

/// A name a process environment can carry and a shell can set: `[A-Za-z_][A-Za-z0-9_]*`.
fn is_env_name(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
