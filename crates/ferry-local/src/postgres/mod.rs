//! PostgreSQL, on this machine or any server ferry can reach. A snapshot is a copy
//! of the environment's database made with `CREATE DATABASE … TEMPLATE` on the same
//! server, closed to connections so nothing writes to it or blocks copying it back;
//! when other sessions keep the template copy from starting, it is a
//! `pg_dump --format=custom` file in the snapshot store instead. A restore builds a
//! new database beside the environment's own, then `rename` swaps it in: the failed
//! database is renamed aside, never dropped. Administrative statements run over a
//! connection to the maintenance database `postgres`, identifiers are always quoted,
//! and the URL's password never appears in an error, an endpoint or a command line.

use std::ffi::OsString;
use std::time::Duration;

use async_trait::async_trait;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::snapshots::{self, Entry, SnapshotStore, Stored, io_err, remove_if_exists};
use ferry_core::db_url::{self, Password};
use ferry_core::output::Redactor;
use ferry_core::provider::{ClusterInfo, Database, PResult, ProviderError, Snapshot, SnapshotQuota, Tags};

mod admin;
mod dump;
mod rehearsal;
#[cfg(test)]
mod tests;

use admin::{
    check_name, copy_database, drop_database, end_sessions, exists, fit_name, has_code, lookup, pg_err, pg_message,
    quote_ident, read_mark, run_in_comment, seal, settle, write_mark,
};

/// How often `rename` disconnects the database's sessions and tries again when
/// they reconnect. Each failed try already waited 5 s inside the server.
const RENAME_ATTEMPTS: u32 = 3;
const URL_SHAPE: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";

pub struct PgDatabase {
    /// The environment's URL as configured. It holds the password: it is only
    /// ever shown through [`db_url::rewrite`].
    url: String,
    /// TLS for its sessions, as the URL's sslmode asks.
    connector: tokio_postgres_rustls::MakeRustlsConnect,
    config: Config,
    /// The environment's database (`cluster_id`).
    db: String,
    /// Where administrative statements run: `postgres`, or `template1` when the
    /// environment's database is `postgres` itself (a session cannot rename the
    /// database it is connected to).
    maintenance_db: &'static str,
    /// Where `pg_dump` and `pg_restore` are looked for; `PATH` when `None`.
    tool_path: Option<OsString>,
    store: SnapshotStore,
}

impl PgDatabase {
    /// `url` names the environment's database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    /// Nothing is connected yet.
    pub fn new(url: String, store: SnapshotStore) -> Result<Self, ProviderError> {
        let shown = db_url::rewrite(&url, None, Password::Mask);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ProviderError::Rejected(format!("invalid PostgreSQL URL {shown}: expected {URL_SHAPE}")));
        }
        // sslmode / sslrootcert as libpq reads them; TLS through rustls.
        let target = crate::tls::target(&url, ferry_core::config::ProviderKind::Local)
            .map_err(|e| ProviderError::Rejected(format!("{shown}: {e} (expected {URL_SHAPE})")))?;
        let connector = target.connector;
        let mut config = target.config;
        let db = match config.get_dbname() {
            Some(db) if !db.is_empty() => db.to_string(),
            _ => {
                return Err(ProviderError::Rejected(format!(
                    "PostgreSQL URL {shown} names no database: expected {URL_SHAPE}"
                )));
            }
        };
        check_name(&db)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("ferry");
        }
        let maintenance_db = if db == "postgres" { "template1" } else { "postgres" };
        Ok(PgDatabase { url, config, connector, db, maintenance_db, tool_path: None, store })
    }

    /// `db exec`: run SQL statements in order in the environment's database;
    /// rows of statements that return rows are given back as tab-separated lines
    /// with a header.
    pub async fn exec(&self, sql: &str) -> PResult<Vec<String>> {
        let client = self.connect(&self.db).await?;
        let messages = client.simple_query(sql).await.map_err(pg_err("SQL error"))?;
        let mut out = Vec::new();
        for message in messages {
            match message {
                SimpleQueryMessage::RowDescription(columns) => {
                    out.push(columns.iter().map(|c| c.name()).collect::<Vec<_>>().join("\t"));
                }
                SimpleQueryMessage::Row(row) => {
                    out.push((0..row.len()).map(|i| row.get(i).unwrap_or("NULL")).collect::<Vec<_>>().join("\t"));
                }
                _ => {}
            }
        }
        Ok(out)
    }

    /// The environment's URL naming `dbname`, password masked.
    fn endpoint(&self, dbname: &str) -> String {
        db_url::rewrite(&self.url, Some(dbname), Password::Mask)
    }

    /// `host:port/dbname`, for messages.
    fn location(&self, dbname: &str) -> String {
        let ports = self.config.get_ports();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                match host {
                    Host::Tcp(h) if h.contains(':') => format!("[{h}]:{port}"),
                    Host::Tcp(h) => format!("{h}:{port}"),
                    Host::Unix(dir) => format!("{}:{port}", dir.display()),
                }
            })
            .collect();
        let hosts = if hosts.is_empty() { "(no host)".to_string() } else { hosts.join(",") };
        format!("{hosts}/{dbname}")
    }

    /// Mask the URL's password, in every form, wherever it might appear in `text`.
    fn scrub(&self, text: &str) -> String {
        Redactor::new(db_url::passwords(&self.url)).clean(text)
    }

    /// A new session on database `dbname` with the environment's credentials.
    async fn connect(&self, dbname: &str) -> PResult<Client> {
        let mut config = self.config.clone();
        config.dbname(dbname);
        let (client, connection) = config.connect(self.connector.clone()).await.map_err(|e| {
            let msg =
                self.scrub(&format!("cannot connect to PostgreSQL at {}: {}", self.location(dbname), pg_message(&e)));
            match e.code() {
                Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW => {
                    ProviderError::Busy(msg)
                }
                Some(c) if *c == SqlState::INVALID_CATALOG_NAME && dbname != self.maintenance_db => {
                    ProviderError::NotFound(format!("database {}", self.location(dbname)))
                }
                Some(c)
                    if *c == SqlState::INSUFFICIENT_PRIVILEGE
                        || *c == SqlState::INVALID_PASSWORD
                        || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                {
                    ProviderError::AccessDenied(msg)
                }
                _ => ProviderError::Other(msg),
            }
        })?;
        tokio::spawn(async move {
            // A failure while the client is in use surfaces on its own calls;
            // nothing is logged (the task cannot know what may be shown).
            let _ = connection.await;
        });
        Ok(client)
    }

    /// A session on the maintenance database, for administrative statements.
    async fn admin(&self) -> PResult<Client> {
        self.connect(self.maintenance_db).await
    }
}

#[async_trait]
impl Database for PgDatabase {
    fn cluster_id(&self) -> &str {
        &self.db
    }

    fn sibling_id(&self, suffix: &str) -> String {
        fit_name(&self.db, suffix)
    }

    async fn describe(&self, id: &str) -> PResult<Option<ClusterInfo>> {
        let admin = self.admin().await?;
        Ok(lookup(&admin, id).await?.map(|row| ClusterInfo {
            id: id.to_string(),
            status: if row.conn_limit == -2 { "invalid" } else { "available" }.into(),
            endpoint: Some(self.endpoint(id)),
            engine: "postgresql".into(),
            pending_instances: Vec::new(),
        }))
    }

    async fn run_of(&self, id: &str) -> PResult<Option<String>> {
        let admin = self.admin().await?;
        read_mark(&admin, id).await
    }

    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot> {
        if let Some(existing) = self.store.get(id)? {
            return Ok(existing.snapshot);
        }
        check_name(id)?;
        if id == self.db {
            return Err(ProviderError::Rejected(format!("snapshot id {id} is the environment's own database name")));
        }
        let snapshot = snapshots::available(id, &self.db, tags);
        let admin = self.admin().await?;
        settle(&admin, &[id]).await?;
        let dump = self.store.data_path(id, "pgdump");
        // A crash between making the copy and writing its metadata left the copy
        // behind, whole (CREATE DATABASE commits at once; a dump is renamed into
        // place only when complete): adopt it.
        let stored = if exists(&admin, id).await? {
            seal(&admin, id).await?;
            Stored::PgTemplate { database: id.to_string() }
        } else if dump.is_file() {
            Stored::PgDump { file: dump }
        } else {
            let Some(source) = lookup(&admin, &self.db).await? else {
                return Err(ProviderError::NotFound(format!("database {}", self.location(&self.db))));
            };
            match copy_database(&admin, &self.db, &source.owner, id).await {
                Ok(()) => {
                    seal(&admin, id).await?;
                    Stored::PgTemplate { database: id.to_string() }
                }
                Err(e) if has_code(&e, &SqlState::OBJECT_IN_USE) => {
                    self.dump(&admin, id, &dump).await?;
                    Stored::PgDump { file: dump }
                }
                Err(e) => return Err(pg_err(&format!("copying database {} to {id}", self.db))(e)),
            }
        };
        self.store.put(&Entry { snapshot: snapshot.clone(), stored })?;
        Ok(snapshot)
    }

    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>> {
        self.store.describe(id)
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.store.snapshots(&self.db)
    }

    async fn delete_snapshot(&self, id: &str) -> PResult<()> {
        match &self.store.entry(id)?.stored {
            Stored::PgTemplate { database } => {
                if *database == self.db {
                    return Err(ProviderError::Rejected(format!(
                        "snapshot {id} names the environment's own database {database}; refusing to drop it"
                    )));
                }
                let admin = self.admin().await?;
                settle(&admin, &[database]).await?;
                drop_database(&admin, database).await?;
            }
            Stored::PgDump { file } => remove_if_exists(file, "removing the snapshot file")?,
            Stored::SqliteFile { .. } => {}
        }
        self.store.remove(id)
    }

    async fn snapshot_quota(&self) -> PResult<Option<SnapshotQuota>> {
        Ok(None)
    }

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()> {
        check_name(target)?;
        let admin = self.admin().await?;
        settle(&admin, &[target]).await?;
        if exists(&admin, target).await? {
            return Ok(());
        }

        match self.store.entry(snapshot_id)?.stored {
            Stored::PgTemplate { database } => {
                let Some(source) = lookup(&admin, &database).await? else {
                    return Err(ProviderError::NotFound(format!("snapshot database {}", self.location(&database))));
                };
                copy_database(&admin, &database, &source.owner, target)
                    .await
                    .map_err(pg_err(&format!("restoring snapshot {snapshot_id} into database {target}")))?;
                // A comment is not copied with the template: the run is
                // recorded on the new database at once (killed in between, it
                // carries no run, and a resume refuses to take it for its own).
                match tags.get(ferry_core::provider::TAG_RUN_ID) {
                    Some(run_id) => write_mark(&admin, target, run_id).await,
                    None => Ok(()),
                }
            }
            Stored::PgDump { file } => {
                self.restore_dump(&admin, snapshot_id, &file, target, tags.get(ferry_core::provider::TAG_RUN_ID)).await
            }
            Stored::SqliteFile { .. } => {
                Err(ProviderError::Rejected(format!("snapshot {snapshot_id} is not a PostgreSQL snapshot")))
            }
        }
    }

    async fn leftovers(&self) -> PResult<Vec<ferry_core::provider::Leftover>> {
        let admin = self.admin().await?;
        let rows = admin
            .query(
                "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database \
                 WHERE starts_with(datname, $1) ORDER BY 1",
                &[&self.db],
            )
            .await
            .map_err(pg_err("listing databases"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id: String = r.get(0);
                let kind = ferry_core::provider::leftover_kind(&self.db, &id)?;
                let comment: Option<String> = r.get(1);
                let tags = comment
                    .as_deref()
                    .and_then(run_in_comment)
                    .map(|r| Tags::from([(ferry_core::provider::TAG_RUN_ID.to_string(), r)]))
                    .unwrap_or_default();
                Some(ferry_core::provider::Leftover { id, kind, status: "available".into(), tags, note: None })
            })
            .collect())
    }

    async fn clone_for_rehearsal(&self, name: &str, tags: &Tags) -> PResult<ferry_core::provider::CloneState> {
        Ok(ferry_core::provider::CloneState::Ready(self.rehearsal_clone(name, tags).await?))
    }

    async fn delete_rehearsal_clone(&self, id: &str, run_id: &str) -> PResult<Option<String>> {
        self.drop_rehearsal_clone(id, run_id).await.map(|()| None)
    }

    async fn session_of(&self, id: &str) -> PResult<Option<std::sync::Arc<dyn ferry_core::provider::Session>>> {
        let url = db_url::rewrite(&self.url, Some(id), Password::Keep);
        let session = crate::session::PgSession::new(&url, ferry_core::config::ProviderKind::Local)?;
        Ok(Some(std::sync::Arc::new(session)))
    }

    /// The local stand-in for stopping a cluster: the set-aside database is
    /// closed to connections and its sessions ended, so a client still
    /// holding its name cannot write into it; its data stays as it is.
    async fn stop_set_aside(&self, id: &str, run_id: &str) -> PResult<ferry_core::provider::Stopped> {
        use ferry_core::provider::Stopped;
        let admin = self.admin().await?;
        if read_mark(&admin, id).await?.as_deref() != Some(run_id) {
            return Ok(Stopped::NotPossible(format!("database {id} does not record run {run_id}")));
        }
        let open: Option<bool> = admin
            .query_opt("SELECT datallowconn FROM pg_database WHERE datname = $1", &[&id])
            .await
            .map_err(|e| ProviderError::Other(format!("reading whether {id} takes connections: {e}")))?
            .map(|r| r.get(0));
        match open {
            None => return Ok(Stopped::NotPossible(format!("database {id} does not exist"))),
            Some(false) => return Ok(Stopped::Already),
            Some(true) => {}
        }
        seal(&admin, id).await?;
        end_sessions(&admin, id).await?;
        Ok(Stopped::Stopped(
            "; closed to connections (ALTER DATABASE ... ALLOW_CONNECTIONS true opens it again)".into(),
        ))
    }

    fn clone_removal(&self, id: &str) -> String {
        format!("psql (as the database's owner) -c 'DROP DATABASE \"{id}\" WITH (FORCE)'")
    }

    async fn lock_observer(
        &self,
        clone: &ferry_core::provider::CloneInfo,
    ) -> PResult<Box<dyn ferry_core::provider::LockObserver>> {
        Ok(Box::new(crate::session::PgLockObserver { client: self.connect(&clone.id).await? }))
    }

    async fn rename(&self, from: &str, to: &str, run_id: &str) -> PResult<()> {
        check_name(to)?;
        let admin = self.admin().await?;
        settle(&admin, &[from, to]).await?;
        match (exists(&admin, from).await?, exists(&admin, to).await?) {
            (_, true) if from == to => return Ok(()),
            (false, true) => return Ok(()),
            (true, true) => {
                return Err(ProviderError::Rejected(format!(
                    "database {to} already exists; refusing to overwrite it with {from}"
                )));
            }
            (false, false) => return Err(ProviderError::NotFound(format!("database {}", self.location(from)))),
            (true, false) => {}
        }
        // The run is recorded on the database just before it takes the new
        // name (a comment goes with the database through the rename).
        write_mark(&admin, from, run_id).await?;
        let what = format!("renaming database {from} to {to}");
        let rename = format!("ALTER DATABASE {} RENAME TO {}", quote_ident(from), quote_ident(to));
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A database with sessions cannot be renamed: end them. Clients that
            // reconnect find whichever database has the name by then.
            end_sessions(&admin, from).await?;
            match admin.batch_execute(&rename).await {
                Ok(()) => return Ok(()),
                Err(e) if has_code(&e, &SqlState::OBJECT_IN_USE) && attempt < RENAME_ATTEMPTS => {
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                }
                Err(e) if has_code(&e, &SqlState::OBJECT_IN_USE) => {
                    return Err(ProviderError::Rejected(format!(
                        "{what}: sessions kept reconnecting to it ({RENAME_ATTEMPTS} attempts): {}; stop what \
                         connects to it and resume",
                        pg_message(&e)
                    )));
                }
                Err(e) => return Err(pg_err(&what)(e)),
            }
        }
    }
}
