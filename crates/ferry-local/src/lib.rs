//! The local provider, ferry's embedded default: SQLite or PostgreSQL on this
//! machine, the migration as a local process, so the runbook can be rehearsed
//! with no AWS account.

pub mod describe;
pub mod postgres;
pub mod process;
pub mod session;
pub mod snapshots;
pub mod sqlite;
pub mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_core::config::{DatabaseConfig, DbUrl, EnvConfig};
use ferry_core::provider::http::HttpHealth;
use ferry_core::provider::{Cloud, Database, PResult, ProviderError};
use postgres::PgDatabase;
use process::{FileLogs, ProcessRunner};
use snapshots::SnapshotStore;
use sqlite::SqliteDatabase;

/// A `db exec` failure, and whether statements before it may have been applied.
#[derive(Debug)]
pub struct ExecError {
    pub error: ProviderError,
    pub maybe_partial: bool,
}

/// The local database, with the operations only the local provider has.
pub enum LocalDatabase {
    Sqlite(Arc<SqliteDatabase>),
    Postgres(Arc<PgDatabase>),
}

impl LocalDatabase {
    pub fn open(env: &EnvConfig, base_dir: &Path, state_dir: &Path) -> PResult<Self> {
        let store = SnapshotStore::new(state_dir);
        match &env.database {
            DatabaseConfig::Url(DbUrl::Sqlite(path)) => {
                let path = absolute(base_dir, path);
                Ok(LocalDatabase::Sqlite(Arc::new(SqliteDatabase::new(path, store))))
            }
            DatabaseConfig::Url(DbUrl::Postgres(url)) => {
                Ok(LocalDatabase::Postgres(Arc::new(PgDatabase::new(url.clone(), store)?)))
            }
            DatabaseConfig::Cluster(_) => Err(ProviderError::Rejected(format!(
                "environment {} uses an Aurora cluster; the local provider needs database.url",
                env.name
            ))),
        }
    }

    pub fn as_database(&self) -> Arc<dyn Database> {
        match self {
            LocalDatabase::Sqlite(d) => d.clone(),
            LocalDatabase::Postgres(d) => d.clone(),
        }
    }

    /// `ferry db exec`: run SQL, returning rows as tab-separated lines. SQLite
    /// applies statement by statement, so a failure may follow applied ones;
    /// PostgreSQL runs the text as one implicit transaction, so nothing stays.
    pub async fn exec(&self, sql: &str, create: bool) -> Result<Vec<String>, ExecError> {
        match self {
            LocalDatabase::Sqlite(d) => {
                let (d, sql) = (d.clone(), sql.to_string());
                let result = tokio::task::spawn_blocking(move || d.exec(&sql, create))
                    .await
                    .map_err(|e| ExecError { error: ProviderError::Other(e.to_string()), maybe_partial: false })?;
                result.map_err(|e| {
                    let maybe_partial = matches!(e, ProviderError::Rejected(_));
                    ExecError { error: e, maybe_partial }
                })
            }
            LocalDatabase::Postgres(d) => d.exec(sql).await.map_err(|error| ExecError { error, maybe_partial: false }),
        }
    }
}

fn absolute(base: &Path, path: &str) -> PathBuf {
    let p = base.join(path);
    std::path::absolute(&p).unwrap_or(p)
}

/// Everything the runbook needs for one local environment.
pub fn cloud(env: &EnvConfig, config_path: &Path, state_dir: &Path, ferry_exe: PathBuf) -> PResult<Cloud> {
    let base_dir = config_path.parent().unwrap_or(Path::new("."));
    let db = LocalDatabase::open(env, base_dir, state_dir)?;
    let mut base_env = BTreeMap::new();
    // So `ferry` run by the migration (e.g. `ferry db exec`) reads the same config.
    base_env.insert("FERRY_CONFIG".to_string(), config_path.display().to_string());
    if let DatabaseConfig::Url(url) = &env.database {
        let value = match url {
            DbUrl::Sqlite(path) => format!("sqlite://{path}"),
            DbUrl::Postgres(u) => u.clone(),
        };
        base_env.insert("DATABASE_URL".to_string(), value);
    }
    let secret_vars = env.migration.env.iter().filter(|(_, v)| v.secret).map(|(k, _)| k.clone()).collect();
    let runner = ProcessRunner::new(state_dir, base_dir.to_path_buf(), &env.name, ferry_exe, base_env, secret_vars);
    Ok(Cloud {
        database: db.as_database(),
        runner: Arc::new(runner),
        logs: Arc::new(FileLogs::new(state_dir)),
        service: None,
        health: Arc::new(HttpHealth::new()),
        session: match &env.database {
            DatabaseConfig::Url(url) => {
                Ok(crate::session::open(url, base_dir, ferry_core::config::ProviderKind::Local)?)
            }
            DatabaseConfig::Cluster(_) => Err("the local provider needs database.url".into()),
        },
        describe: Arc::new(describe::LocalWords),
    })
}
