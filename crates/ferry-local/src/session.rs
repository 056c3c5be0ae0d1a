//! Inside the database, read-only: the migration version table, and (for
//! `ferry doctor`) the sessions, locks and replication that could block or slow
//! a migration. Used by the local provider for its own database and by the aws
//! provider through `database.url` (e.g. a bastion tunnel to the cluster).
//!
//! PostgreSQL sessions use TLS as `sslmode`/`sslrootcert` in the URL say, else
//! as the provider's default (tls.rs).
//!
//! Nothing here writes: PostgreSQL reads catalog views; SQLite opens its file
//! read-only for the version table and, for the write-lock probe, begins an
//! immediate transaction and rolls it back. Doctor's own session is always left
//! out of its findings.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, Row};
use tokio_postgres_rustls::MakeRustlsConnect;

use ferry_core::provider::{
    Diagnosis, Finding, LockBlocker, LockObserver, LockSample, PResult, ProviderError, SchemaFingerprint, SeenLock,
    Session, TableWrites,
};

use crate::tls;
use ferry_core::config::{DbUrl, ProviderKind};
use ferry_core::db_url;
use ferry_core::output::Redactor;

/// The session for a database URL; relative SQLite paths are relative to
/// `base_dir`; `provider` decides TLS when the URL has no `sslmode`.
pub fn open(url: &DbUrl, base_dir: &Path, provider: ProviderKind) -> PResult<Arc<dyn Session>> {
    match url {
        DbUrl::Sqlite(p) => {
            let path = base_dir.join(p);
            Ok(Arc::new(SqliteSession { path: std::path::absolute(&path).unwrap_or(path) }))
        }
        DbUrl::Postgres(u) => Ok(Arc::new(PgSession::new(u, provider)?)),
    }
}

/// `"a"."b"` for `a.b`: config/ has already checked each part is a plain name.
fn quoted_table(table: &str) -> String {
    table.split('.').map(|p| format!("\"{}\"", p.replace('"', "\"\""))).collect::<Vec<_>>().join(".")
}

pub struct PgSession {
    config: Config,
    tls: MakeRustlsConnect,
    settings: tls::Settings,
    /// The URL as shown (password masked), for messages.
    shown: String,
    /// Masks the URL's password, in every form, in messages.
    redactor: Redactor,
}

impl PgSession {
    pub fn new(url: &str, provider: ProviderKind) -> PResult<Self> {
        let shown = ferry_core::db_url::redact(url);
        // tls::target's errors never repeat the URL, so they cannot hold its password.
        let tls::Target { mut config, settings, connector } =
            tls::target(url, provider).map_err(|e| ProviderError::Rejected(format!("database.url {shown}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        config.application_name("ferry (read-only check)");
        let redactor = Redactor::new(ferry_core::db_url::passwords(url));
        Ok(PgSession { config, tls: connector, settings, shown, redactor })
    }

    fn err(&self, what: &str, e: &tokio_postgres::Error) -> ProviderError {
        if let Some(msg) = tls::explain(&self.settings, e) {
            return ProviderError::Other(self.redactor.clean(&format!("{what} ({}): {msg}", self.shown)));
        }
        let mut msg = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        let mut source = std::error::Error::source(e);
        while let Some(cause) = source {
            msg.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        let msg = self.redactor.clean(&format!("{what} ({}): {msg}", self.shown));
        match e.code() {
            Some(c) if *c == tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE => {
                ProviderError::AccessDenied(msg)
            }
            _ => ProviderError::Other(msg),
        }
    }

    async fn connect(&self) -> PResult<Client> {
        let (client, connection) =
            self.config.connect(self.tls.clone()).await.map_err(|e| self.err("cannot connect to PostgreSQL", &e))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

/// A session's row: the columns every finding query selects first.
struct Who {
    pid: i32,
    user: Option<String>,
    application_name: Option<String>,
    client_addr: Option<String>,
    state: Option<String>,
    query: Option<String>,
}

const WHO: &str = "a.pid, a.usename::text AS usename, a.application_name, host(a.client_addr) AS client_addr, \
                   a.state, a.query";

fn who(row: &Row) -> Who {
    Who {
        pid: row.get("pid"),
        user: row.get("usename"),
        application_name: row.get::<_, Option<String>>("application_name").filter(|s| !s.is_empty()),
        client_addr: row.get("client_addr"),
        state: row.get("state"),
        query: row.get::<_, Option<String>>("query").map(|q| q.trim().to_string()),
    }
}

impl Who {
    /// `pid 123 (app@10.0.0.5, "worker")`
    fn label(&self) -> String {
        let user = self.user.as_deref().unwrap_or("?");
        let from = self.client_addr.as_deref().unwrap_or("local socket");
        match &self.application_name {
            Some(a) => format!("pid {} ({user}@{from}, {a:?})", self.pid),
            None => format!("pid {} ({user}@{from})", self.pid),
        }
    }

    fn finding(self, kind: &str, blocks: bool, since: Option<f64>, seconds: Option<f64>) -> Finding {
        Finding {
            kind: kind.into(),
            blocks_migration: blocks,
            pid: Some(self.pid),
            user: self.user,
            application_name: self.application_name,
            client_addr: self.client_addr,
            state: self.state,
            since: since.and_then(epoch),
            seconds: seconds.map(|s| (s * 10.0).round() / 10.0),
            query: self.query,
            ..Finding::default()
        }
    }
}

fn epoch(secs: f64) -> Option<DateTime<Utc>> {
    let whole = secs.floor();
    DateTime::from_timestamp(whole as i64, ((secs - whole) * 1e9) as u32)
}

fn secs(s: f64) -> String {
    ferry_core::config::values::format_duration(Duration::from_secs(s.max(0.0) as u64))
}

#[async_trait]
impl Session for PgSession {
    async fn write_counts(&self) -> PResult<Option<Vec<TableWrites>>> {
        let client = self.connect().await?;
        let rows = client
            .query(
                "SELECT schemaname || '.' || relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables \
                 ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| self.err("cannot read the per-table write counts (pg_stat_user_tables)", &e))?;
        Ok(Some(
            rows.iter()
                .map(|r| TableWrites { table: r.get(0), inserted: r.get(1), updated: r.get(2), deleted: r.get(3) })
                .collect(),
        ))
    }

    async fn version_rows(&self, table: &str) -> PResult<Vec<String>> {
        let client = self.connect().await?;
        let quoted = quoted_table(table);
        let exists = client
            .query_one("SELECT to_regclass($1)::text", &[&quoted])
            .await
            .map_err(|e| self.err("cannot look for the version table", &e))?;
        if exists.get::<_, Option<String>>(0).is_none() {
            return Ok(Vec::new());
        }
        let rows = client
            .query(&format!("SELECT version_num::text FROM {quoted}"), &[])
            .await
            .map_err(|e| self.err(&format!("cannot read {table}"), &e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn diagnose(&self, threshold: Duration, lag_threshold: Duration) -> PResult<Diagnosis> {
        let client = self.connect().await?;
        let server = client
            .query_one(
                "SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS standby, \
                 current_database() AS database",
                &[],
            )
            .await
            .map_err(|e| self.err("cannot read the server version", &e))?;
        let version: String = server.get("version");
        let database: String = server.get("database");
        let mut d = Diagnosis { server: format!("postgresql {version}"), ..Diagnosis::default() };
        d.checked.push(format!("advisory locks held in database {database}"));
        d.findings.extend(self.advisory_locks(&client).await?);
        d.checked.push("queries waiting for a lock (pg_blocking_pids)".into());
        let blocked = self.blocked_queries(&client).await?;
        let reported: Vec<i32> = blocked.iter().filter_map(|f| f.pid).collect();
        d.findings.extend(blocked);
        d.checked.push(format!("queries running and transactions open longer than {}", secs(threshold.as_secs_f64())));
        let long = self.long_sessions(&client, threshold.as_secs_f64()).await?;
        d.findings.extend(long.into_iter().filter(|f| f.pid.is_none_or(|p| !reported.contains(&p))));
        let lag_limit = lag_threshold.as_secs_f64();
        let (checked, findings) = if server.get("standby") {
            self.standby(&client, lag_limit).await?
        } else {
            self.standbys_attached(&client, lag_limit).await?
        };
        d.checked.push(checked);
        d.findings.extend(findings);
        Ok(d)
    }

    async fn schema_fingerprint(&self) -> PResult<SchemaFingerprint> {
        let client = self.connect().await?;
        let rows = self.rows(&client, SCHEMA, &[], "cannot read the schema from pg_catalog").await?;
        Ok(fingerprint(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))))
    }

    async fn lock_blockers(&self) -> PResult<Vec<LockBlocker>> {
        let client = self.connect().await?;
        let rows = self.rows(&client, BLOCKERS, &[], "cannot read pg_stat_activity").await?;
        Ok(rows
            .iter()
            .map(|r| LockBlocker {
                pid: r.get("pid"),
                age_secs: r.get::<_, Option<f64>>("age").unwrap_or(0.0),
                query: r.get::<_, Option<String>>("query").unwrap_or_default().trim().to_string(),
                waiting_pid: r.get("waiting"),
            })
            .collect())
    }
}

/// The schema as rows of (kind, text), every user schema (not `pg_*`, not
/// information_schema): tables (and views) with their kind, columns with
/// their types and nullability, indexes with their definitions, constraints
/// with theirs. Sorted, so equal schemas give equal rows.
const SCHEMA: &str = "SELECT kind, line FROM ( \
     SELECT 'table' AS kind, n.nspname || '.' || c.relname || ' ' || c.relkind::text AS line \
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
     UNION ALL \
     SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) \
         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END \
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
       WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
         AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
     UNION ALL \
     SELECT 'index', schemaname || '.' || indexname || ' ' || indexdef FROM pg_indexes \
       WHERE schemaname NOT LIKE 'pg\\_%' AND schemaname <> 'information_schema' \
     UNION ALL \
     SELECT 'constraint', n.nspname || '.' || co.conrelid::regclass::text || '.' || co.conname || ' ' \
         || pg_get_constraintdef(co.oid) \
       FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace \
       WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema' \
   ) s ORDER BY kind, line";

/// Who holds a lock another session of this database waits for: its pid,
/// how long its transaction (else its query) has been open, the first 80
/// characters of its query, and the session that waits.
const BLOCKERS: &str = "SELECT b.pid, \
     extract(epoch from now() - coalesce(b.xact_start, b.query_start, b.backend_start))::float8 AS age, \
     left(b.query, 80) AS query, w.pid AS waiting \
     FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS bp(pid) \
     JOIN pg_stat_activity b ON b.pid = bp.pid \
     WHERE w.datname = current_database() AND w.pid <> pg_backend_pid() ORDER BY age DESC";

/// A stable digest of (kind, text) rows, and how many rows of each kind.
fn fingerprint(rows: impl Iterator<Item = (String, String)>) -> SchemaFingerprint {
    use sha2::{Digest, Sha256};
    let mut rows: Vec<(String, String)> = rows.collect();
    rows.sort();
    let mut h = Sha256::new();
    let mut f = SchemaFingerprint::default();
    for (kind, line) in &rows {
        h.update(kind.as_bytes());
        h.update([0]);
        h.update(line.as_bytes());
        h.update([b'\n']);
        match kind.as_str() {
            "table" => f.tables += 1,
            "column" => f.columns += 1,
            "index" => f.indexes += 1,
            "constraint" => f.constraints += 1,
            _ => {}
        }
    }
    f.digest = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    f
}

/// What `ferry doctor` looks for, one query each.
impl PgSession {
    async fn rows(&self, client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)], what: &str) -> PResult<Vec<Row>> {
        client.query(sql, params).await.map_err(|e| self.err(what, &e))
    }

    /// Advisory locks held in this database (Alembic env.py and App Runner
    /// start-ups serialise migrations with one).
    async fn advisory_locks(&self, client: &Client) -> PResult<Vec<Finding>> {
        let sql = format!(
            "SELECT {WHO}, extract(epoch from a.backend_start)::float8 AS since, \
             extract(epoch from now() - a.backend_start)::float8 AS seconds, \
             l.classid::int8 AS classid, l.objid::int8 AS objid, l.objsubid::int4 AS objsubid, l.mode \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid() \
             AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             ORDER BY l.pid, l.classid, l.objid"
        );
        let rows = self.rows(client, &sql, &[], "cannot read pg_locks").await?;
        Ok(rows.iter().map(advisory_lock).collect())
    }

    /// Queries waiting for a lock, and who holds it.
    async fn blocked_queries(&self, client: &Client) -> PResult<Vec<Finding>> {
        let sql = format!(
            "SELECT {WHO}, extract(epoch from a.query_start)::float8 AS since, \
             extract(epoch from now() - a.query_start)::float8 AS seconds, \
             pg_blocking_pids(a.pid) AS blockers \
             FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() \
             AND cardinality(pg_blocking_pids(a.pid)) > 0 ORDER BY a.query_start"
        );
        let rows = self.rows(client, &sql, &[], "cannot read pg_stat_activity").await?;
        Ok(rows.iter().map(blocked_query).collect())
    }

    /// Long queries (a warning: they end on their own) and long-open
    /// transactions (they block: their locks stay until they end).
    async fn long_sessions(&self, client: &Client, limit: f64) -> PResult<Vec<Finding>> {
        let sql = format!(
            "SELECT {WHO}, extract(epoch from a.xact_start)::float8 AS since, \
             extract(epoch from now() - a.xact_start)::float8 AS seconds, \
             extract(epoch from a.query_start)::float8 AS query_since, \
             extract(epoch from now() - a.query_start)::float8 AS query_seconds \
             FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.datname = current_database() \
             AND a.backend_type = 'client backend' \
             AND ((a.xact_start IS NOT NULL AND now() - a.xact_start > make_interval(secs => $1)) \
               OR (a.state = 'active' AND now() - a.query_start > make_interval(secs => $1))) \
             ORDER BY a.xact_start"
        );
        let rows = self.rows(client, &sql, &[&limit], "cannot read pg_stat_activity").await?;
        Ok(rows.iter().map(|row| long_session(row, limit)).collect())
    }

    /// This server is a standby: it cannot be migrated, and its replay lag is worth knowing.
    async fn standby(&self, client: &Client, lag_limit: f64) -> PResult<(String, Vec<Finding>)> {
        let lag: Option<f64> = client
            .query_one("SELECT extract(epoch from now() - pg_last_xact_replay_timestamp())::float8 AS lag", &[])
            .await
            .map_err(|e| self.err("cannot read the replay position", &e))?
            .get("lag");
        let mut findings = vec![Finding {
            kind: "standby".into(),
            blocks_migration: true,
            summary: "this server is a standby (read-only, in recovery)".into(),
            advice: "a migration must run against the primary: point the URL at the writer endpoint".into(),
            seconds: lag,
            ..Finding::default()
        }];
        if let Some(lag) = lag.filter(|l| *l > lag_limit) {
            findings.push(Finding {
                kind: "replica_lag".into(),
                summary: format!("the last replayed transaction is {} old", secs(lag)),
                advice: "readers of this standby see data that old; on an idle primary this only means \
                         nothing was written since"
                    .into(),
                seconds: Some(lag),
                ..Finding::default()
            });
        }
        Ok(("replication: this server is a standby".into(), findings))
    }

    /// A primary: the standbys attached to it that lag.
    async fn standbys_attached(&self, client: &Client, lag_limit: f64) -> PResult<(String, Vec<Finding>)> {
        let sql = "SELECT application_name, host(client_addr) AS client_addr, state, \
                 extract(epoch from replay_lag)::float8 AS lag FROM pg_stat_replication ORDER BY application_name";
        let rows = self.rows(client, sql, &[], "cannot read pg_stat_replication").await?;
        let checked = format!("replication: primary, {} standby(s) attached", rows.len());
        let findings = rows
            .iter()
            .filter_map(|row| {
                let lag = row.get::<_, Option<f64>>("lag").filter(|l| *l > lag_limit)?;
                let name: Option<String> = row.get("application_name");
                let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| "(unnamed)".into());
                Some(Finding {
                    kind: "replica_lag".into(),
                    summary: format!("standby {name:?} replays {} behind", secs(lag)),
                    advice: "readers of that standby see old data; a large migration adds to the lag, so \
                             consider waiting until it catches up"
                        .into(),
                    application_name: Some(name),
                    client_addr: row.get("client_addr"),
                    state: row.get("state"),
                    seconds: Some(lag),
                    ..Finding::default()
                })
            })
            .collect();
        Ok((checked, findings))
    }
}

fn advisory_lock(row: &Row) -> Finding {
    let (class, obj, sub): (i64, i64, i32) = (row.get("classid"), row.get("objid"), row.get("objsubid"));
    // pg_advisory_lock(bigint) is stored as (high, low, 1); the
    // two-int4 form as (key1, key2, 2).
    let key = if sub == 1 {
        ((((class as u64) << 32) | (obj as u64 & 0xffff_ffff)) as i64).to_string()
    } else {
        format!("({}, {})", class as i32, obj as i32)
    };
    let mode: String = row.get("mode");
    let w = who(row);
    let label = w.label();
    let pid = w.pid;
    let mut f = w.finding("advisory_lock", true, row.get("since"), row.get("seconds"));
    f.summary = format!("{label} holds advisory lock {key} ({mode}), connected {} ago", secs(row.get("seconds")));
    f.advice = format!(
        "a migration that takes this lock waits until it is released. If {label} is a stuck migration or a \
         dead deploy, end it with `SELECT pg_terminate_backend({pid});` after checking who it is"
    );
    f.lock_key = Some(key);
    f
}

fn blocked_query(row: &Row) -> Finding {
    let blockers: Vec<i32> = row.get("blockers");
    let w = who(row);
    let label = w.label();
    let mut f = w.finding("blocked_query", true, row.get("since"), row.get("seconds"));
    let list: Vec<String> = blockers.iter().map(i32::to_string).collect();
    f.summary = format!("{label} has waited {} for a lock held by pid {}", secs(row.get("seconds")), list.join(", "));
    f.advice = format!(
        "a migration would queue behind the same locks. Find out what pid {} is doing (its row in \
         pg_stat_activity); `SELECT pg_terminate_backend(<pid>);` ends it after checking who it is",
        list.join(", ")
    );
    f.blocked_by = blockers;
    f
}

/// One query running past `limit` (a warning), else a transaction open past it (it blocks).
fn long_session(row: &Row, limit: f64) -> Finding {
    let w = who(row);
    let label = w.label();
    let pid = w.pid;
    let query_secs: Option<f64> = row.get("query_seconds");
    if w.state.as_deref() == Some("active") && query_secs.is_some_and(|s| s > limit) {
        let mut f = w.finding("long_query", false, row.get("query_since"), query_secs);
        f.summary = format!("{label} has run one query for {}", secs(query_secs.unwrap_or(0.0)));
        f.advice = format!(
            "DDL on the tables it reads waits for it. Wait for it, or `SELECT pg_cancel_backend({pid});` \
             cancels just the query"
        );
        return f;
    }
    let state = w.state.clone().unwrap_or_default();
    let xact: Option<f64> = row.get("seconds");
    let mut f = w.finding("long_transaction", true, row.get("since"), xact);
    f.summary = format!("{label} has had a transaction open for {} ({state})", secs(xact.unwrap_or(0.0)));
    f.advice = format!(
        "its locks stay until it commits or rolls back, and a migration's DDL would wait behind them. \
         Ask its owner to finish it, or end it with `SELECT pg_terminate_backend({pid});` after \
         checking who it is"
    );
    f
}

/// What a PostgreSQL URL says in its query that would send a session elsewhere
/// than its host and port.
const ELSEWHERE: [&str; 2] = ["host", "hostaddr"];

impl PgSession {
    /// A session on a clone of the database `url` reaches: the same user,
    /// password, database name and TLS settings, with the host and port
    /// replaced by the clone's. A URL whose query names `host` or `hostaddr`
    /// (a tunnel, say) would still lead to the original: refused.
    pub fn on_clone(url: &str, host: &str, port: u16, provider: ProviderKind) -> PResult<Self> {
        let mut session = PgSession::at(url, host, port, provider)?;
        session.config.application_name("ferry (rehearsal lock sampling)");
        Ok(session)
    }

    /// A read-only session through `url` with `host` and `port` in place of
    /// its own: another cluster reached the way `url` reaches the original
    /// (a clone, the cluster a restore set aside).
    pub fn at(url: &str, host: &str, port: u16, provider: ProviderKind) -> PResult<Self> {
        let shown = db_url::redact(url);
        let refuse = |why: String| ProviderError::Rejected(format!("database.url {shown}: {why}"));
        if let Some((key, _)) = db_url::query(url).into_iter().find(|(k, _)| ELSEWHERE.contains(&k.as_str())) {
            return Err(refuse(format!(
                "its {key} parameter would lead to the original database rather than the clone; \
                 give a URL that reaches the cluster by its endpoint (the clone is reached by its own)"
            )));
        }
        let elsewhere = db_url::with_host(url, host, port).map_err(refuse)?;
        PgSession::new(&elsewhere, provider)
    }

    /// A session that samples the locks of the database it reaches.
    pub async fn lock_observer(&self) -> PResult<PgLockObserver> {
        Ok(PgLockObserver { client: self.connect().await? })
    }
}

/// A session on a rehearsal's clone that samples its relation locks and statements.
pub struct PgLockObserver {
    pub client: Client,
}

const LOCKS: &str = "SELECT n.nspname || '.' || c.relname, l.mode, l.granted \
     FROM pg_locks l JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE l.locktype = 'relation' AND l.pid IS DISTINCT FROM pg_backend_pid() \
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%'";

const LONGEST: &str = "SELECT query, EXTRACT(EPOCH FROM clock_timestamp() - query_start)::float8 \
     FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
     AND state <> 'idle' AND query_start IS NOT NULL ORDER BY query_start LIMIT 1";

fn sample_err(what: &str) -> impl Fn(tokio_postgres::Error) -> ProviderError + '_ {
    move |e| {
        ProviderError::Other(format!(
            "{what}: {}",
            e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
        ))
    }
}

#[async_trait]
impl LockObserver for PgLockObserver {
    async fn sample(&self) -> PResult<LockSample> {
        let rows = self.client.query(LOCKS, &[]).await.map_err(sample_err("sampling the clone's locks"))?;
        let locks = rows.iter().map(|r| SeenLock { relation: r.get(0), mode: r.get(1), granted: r.get(2) }).collect();
        let longest =
            self.client.query_opt(LONGEST, &[]).await.map_err(sample_err("sampling the clone's statements"))?.map(
                |r| (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get::<_, Option<f64>>(1).unwrap_or(0.0)),
            );
        Ok(LockSample { locks, longest })
    }
}

pub struct SqliteSession {
    path: PathBuf,
}

impl SqliteSession {
    fn open(&self, flags: rusqlite::OpenFlags) -> PResult<rusqlite::Connection> {
        if !self.path.is_file() {
            return Err(ProviderError::NotFound(format!("SQLite database {}", self.path.display())));
        }
        rusqlite::Connection::open_with_flags(&self.path, flags)
            .map_err(|e| ProviderError::Other(format!("cannot open {}: {e}", self.path.display())))
    }
}

const WRITE_PROBE: Duration = Duration::from_millis(200);

/// SQLite's schema as (kind, text) rows from sqlite_master: tables and views
/// with their SQL, their columns with types, indexes with their SQL, and
/// foreign keys (the rest of a table's constraints are in its SQL).
const SQLITE_SCHEMA: &str = "SELECT 'table', type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_master \
     WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
     UNION ALL SELECT 'column', m.name || '.' || p.name || ' ' || p.type || CASE WHEN p.\"notnull\" THEN ' not null' ELSE '' END \
     FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' \
     UNION ALL SELECT 'index', name || ' ' || coalesce(sql, '') FROM sqlite_master WHERE type = 'index' \
     UNION ALL SELECT 'constraint', m.name || ' references ' || f.\"table\" || '(' || coalesce(f.\"to\", '') || ') from ' || f.\"from\" \
     FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'";

#[async_trait]
impl Session for SqliteSession {
    async fn version_rows(&self, table: &str) -> PResult<Vec<String>> {
        let conn = self.open(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let table = table.to_string();
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let fail = |e: rusqlite::Error| ProviderError::Other(format!("cannot read {table} in {path}: {e}"));
            let (schema, name) = table.split_once('.').unwrap_or(("main", &table));
            let exists: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM \"{schema}\".sqlite_master WHERE type = 'table' AND name = ?1"),
                    [name],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            if exists == 0 {
                return Ok(Vec::new());
            }
            let mut stmt = conn.prepare(&format!("SELECT version_num FROM {}", quoted_table(&table))).map_err(fail)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(fail)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(fail)
        })
        .await
        .map_err(|e| ProviderError::Other(e.to_string()))?
    }

    async fn schema_fingerprint(&self) -> PResult<SchemaFingerprint> {
        let conn = self.open(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            let fail = |e: rusqlite::Error| ProviderError::Other(format!("cannot read the schema of {path}: {e}"));
            let mut stmt = conn.prepare(SQLITE_SCHEMA).map_err(fail)?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(fail)?;
            let rows = rows.collect::<Result<Vec<_>, _>>().map_err(fail)?;
            Ok(fingerprint(rows.into_iter()))
        })
        .await
        .map_err(|e| ProviderError::Other(e.to_string()))?
    }

    async fn diagnose(&self, _threshold: Duration, _lag: Duration) -> PResult<Diagnosis> {
        let conn = self.open(rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let path = self.path.display().to_string();
        tokio::task::spawn_blocking(move || {
            conn.busy_timeout(WRITE_PROBE).map_err(|e| ProviderError::Other(e.to_string()))?;
            let mut d = Diagnosis {
                server: format!("sqlite {}", rusqlite::version()),
                checked: vec![
                    format!(
                        "write lock on {path} (BEGIN IMMEDIATE with a {}ms busy timeout, rolled back)",
                        WRITE_PROBE.as_millis()
                    ),
                    "SQLite has no sessions, advisory locks or replicas to inspect".into(),
                ],
                findings: Vec::new(),
            };
            match conn.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => {
                    conn.execute_batch("ROLLBACK").map_err(|e| ProviderError::Other(e.to_string()))?;
                }
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) =>
                {
                    d.findings.push(Finding {
                        kind: "write_lock".into(),
                        blocks_migration: true,
                        summary: format!("another process holds a write lock on {path}"),
                        advice: format!(
                            "a migration would fail with \"database is locked\". Find the process with `fuser {path}` \
                             (or lsof) and let it finish or stop it"
                        ),
                        ..Finding::default()
                    });
                }
                Err(e) => return Err(ProviderError::Other(format!("cannot probe {path}: {e}"))),
            }
            Ok(d)
        })
        .await
        .map_err(|e| ProviderError::Other(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_versions_and_a_held_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let conn = rusqlite::Connection::open(&path).unwrap();
        let s = open(&DbUrl::Sqlite("app.db".into()), dir.path(), ProviderKind::Local).unwrap();
        assert!(s.version_rows("alembic_version").await.unwrap().is_empty(), "no table: nothing applied");
        conn.execute_batch(
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL); INSERT INTO alembic_version VALUES ('a1'), ('b2');",
        )
        .unwrap();
        assert_eq!(s.version_rows("alembic_version").await.unwrap(), ["a1", "b2"]);
        assert_eq!(s.version_rows("main.alembic_version").await.unwrap(), ["a1", "b2"]);

        let clean = s.diagnose(Duration::from_secs(60), Duration::from_secs(30)).await.unwrap();
        assert!(clean.findings.is_empty(), "{clean:?}");
        conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO alembic_version VALUES ('c3');").unwrap();
        let locked = s.diagnose(Duration::from_secs(60), Duration::from_secs(30)).await.unwrap();
        assert_eq!(locked.findings.len(), 1, "{locked:?}");
        assert!(locked.findings[0].blocks_migration);
        assert_eq!(locked.findings[0].kind, "write_lock");
        conn.execute_batch("ROLLBACK").unwrap();
        assert_eq!(s.version_rows("alembic_version").await.unwrap(), ["a1", "b2"], "the probe wrote nothing");
    }

    #[tokio::test]
    async fn the_sqlite_schema_fingerprint_follows_ddl_and_ignores_data() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("app.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
             CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id)); \
             CREATE INDEX orders_customer ON orders (customer_id);",
        )
        .unwrap();
        let s = open(&DbUrl::Sqlite("app.db".into()), dir.path(), ProviderKind::Local).unwrap();
        let before = s.schema_fingerprint().await.unwrap();
        assert_eq!((before.tables, before.columns, before.indexes, before.constraints), (2, 4, 1, 1), "{before:?}");
        conn.execute_batch("INSERT INTO customers (name) VALUES ('ada')").unwrap();
        assert_eq!(s.schema_fingerprint().await.unwrap(), before, "rows are not schema");
        conn.execute_batch("ALTER TABLE customers ADD COLUMN email TEXT").unwrap();
        let after = s.schema_fingerprint().await.unwrap();
        assert_ne!(after.digest, before.digest);
        assert_eq!(after.columns, 5);
    }

    #[test]
    fn a_missing_sqlite_file_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteSession { path: dir.path().join("nope.db") };
        assert!(matches!(s.open(rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY), Err(ProviderError::NotFound(_))));
    }
}
