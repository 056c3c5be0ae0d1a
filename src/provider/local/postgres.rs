//! PostgreSQL, on this machine or any server ferry can reach. A snapshot is a copy
//! of the environment's database made with `CREATE DATABASE … TEMPLATE` on the same
//! server, closed to connections so nothing writes to it or blocks copying it back;
//! when other sessions keep the template copy from starting, it is a
//! `pg_dump --format=custom` file in the snapshot store instead. A restore builds a
//! new database beside the environment's own, then `rename` swaps it in: the failed
//! database is renamed aside, never dropped. Administrative statements run over a
//! connection to the maintenance database `postgres`, identifiers are always quoted,
//! and the URL's password never appears in an error, an endpoint or a command line.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, SimpleQueryMessage};

use super::snapshots::{Entry, SnapshotStore, Stored, io_err};
use crate::provider::{ClusterInfo, Database, PResult, ProviderError, Snapshot, SnapshotQuota, SnapshotStatus, Tags};

/// PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1); longer names are
/// silently truncated by the server, so ferry never sends one.
const MAX_IDENT: usize = 63;

mod rehearsal;
/// How often `rename` disconnects the database's sessions and tries again when
/// they reconnect. Each failed try already waited 5 s inside the server.
const RENAME_ATTEMPTS: u32 = 3;
/// What a URL's password is shown as.
const MASK: &str = "***";
const URL_SHAPE: &str = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE";

pub struct PgDatabase {
    /// The environment's URL as configured. It holds the password: it is only
    /// ever shown through [`rewrite_url`].
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

/// `"name"`, embedded quotes doubled: safe for any identifier, hyphens included.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` cut to at most `max` bytes, on a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `<base>-<suffix>` within the identifier limit: `base` is shortened, the suffix
/// kept whole (unless the suffix alone is too long).
fn fit_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len() + 1);
    let name = format!("{}-{suffix}", truncate(base, room));
    truncate(&name, MAX_IDENT).to_string()
}

/// Names ferry creates or renames to must reach the server unchanged.
fn check_name(name: &str) -> PResult<()> {
    if name.is_empty() || name.len() > MAX_IDENT || name.contains('\0') {
        return Err(ProviderError::Rejected(format!(
            "invalid PostgreSQL database name {name:?}: it must be 1-{MAX_IDENT} bytes without NUL characters"
        )));
    }
    Ok(())
}

/// What [`rewrite_url`] does with the URL's password.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Password {
    /// Shown as `***` (endpoints, messages).
    Mask,
    /// Left out (handed to `pg_dump`, with the password in `PGPASSWORD`).
    Drop,
    /// Kept (the URL a rehearsal's migration connects to its clone with).
    Keep,
}

/// `url` with its password masked or dropped (in the user info and in a
/// `password=` parameter), naming database `dbname` when given (any `dbname=`
/// parameter removed).
fn rewrite_url(url: &str, dbname: Option<&str>, password: Password) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://");
    match authority.rfind('@') {
        Some(at) => {
            let (credentials, hosts) = authority.split_at(at);
            match credentials.split_once(':') {
                Some(_) if password == Password::Keep => out.push_str(authority),
                Some((user, _)) if password == Password::Mask => out.push_str(&format!("{user}:{MASK}{hosts}")),
                Some((user, _)) => out.push_str(&format!("{user}{hosts}")),
                None => out.push_str(authority),
            }
        }
        None => out.push_str(authority),
    }
    match dbname {
        Some(db) => {
            out.push('/');
            out.push_str(&percent_encode(db));
        }
        None => out.push_str(path),
    }
    let params: Vec<String> = query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| match p.split('=').next().unwrap_or("") {
            "dbname" if dbname.is_some() => None,
            "password" if password == Password::Mask => Some(format!("password={MASK}")),
            "password" if password == Password::Keep => Some(p.to_string()),
            "password" => None,
            _ => Some(p.to_string()),
        })
        .collect();
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The password as written in the URL (still percent-encoded), for scrubbing.
fn raw_passwords(url: &str) -> Vec<String> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let mut out = Vec::new();
    if let Some((credentials, _)) = authority.rsplit_once('@')
        && let Some((_, pw)) = credentials.split_once(':')
    {
        out.push(pw.to_string());
    }
    if let Some((_, query)) = rest.split_once('?') {
        out.extend(query.split('&').filter_map(|p| p.strip_prefix("password=")).map(str::to_string));
    }
    out
}

fn has_code(e: &tokio_postgres::Error, code: &SqlState) -> bool {
    e.code() == Some(code)
}

/// The server's message (with its detail and hint), or the client's error and
/// its causes.
fn pg_message(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = db.message().to_string();
        if let Some(detail) = db.detail() {
            s.push_str(&format!(". {detail}"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" Hint: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

/// Classify a statement's failure by its SQLSTATE.
fn pg_err(what: &str) -> impl Fn(tokio_postgres::Error) -> ProviderError + '_ {
    move |e| {
        let msg = format!("{what}: {}", pg_message(&e));
        match e.code() {
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => ProviderError::NotFound(format!("database ({msg})")),
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => ProviderError::AccessDenied(msg),
            Some(c) if *c == SqlState::TOO_MANY_CONNECTIONS || *c == SqlState::CANNOT_CONNECT_NOW => {
                ProviderError::Busy(msg)
            }
            Some(c) if *c == SqlState::OBJECT_IN_USE => ProviderError::Rejected(msg),
            _ => ProviderError::Other(msg),
        }
    }
}

/// What ferry needs to know of an existing database.
struct DbRow {
    /// -2 marks a database left invalid by an interrupted `DROP DATABASE`.
    conn_limit: i32,
    owner: String,
}

async fn lookup(admin: &Client, name: &str) -> PResult<Option<DbRow>> {
    if name.len() > MAX_IDENT {
        // The server would compare its truncation.
        return Ok(None);
    }
    let row = admin
        .query_opt("SELECT datconnlimit, pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(pg_err("looking up a database"))?;
    Ok(row.map(|r| DbRow { conn_limit: r.get(0), owner: r.get(1) }))
}

async fn exists(admin: &Client, name: &str) -> PResult<bool> {
    Ok(lookup(admin, name).await?.is_some())
}

/// Create database `target` as a copy of `source`, owned by `source`'s owner (a
/// file-level copy keeps the owners of everything inside; this keeps the
/// database's, which PostgreSQL 15 also makes the owner of schema `public`).
async fn copy_database(admin: &Client, source: &str, owner: &str, target: &str) -> Result<(), tokio_postgres::Error> {
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE {} OWNER {}",
            quote_ident(target),
            quote_ident(source),
            quote_ident(owner)
        ))
        .await
}

/// How long a statement of an earlier, killed ferry may still run on the
/// server (a `CREATE DATABASE … TEMPLATE` of a large database) before ferry
/// gives up waiting for it.
const SETTLE_LIMIT: Duration = Duration::from_secs(1800);

/// Wait until no statement of another ferry session (a killed run's
/// `CREATE DATABASE`, rename or drop, which the server finishes on its own)
/// still works on one of `names`: only then does what exists say what happened.
async fn settle(admin: &Client, names: &[&str]) -> PResult<()> {
    let quoted: Vec<String> = names.iter().map(|n| quote_ident(n)).collect();
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() \
                 AND application_name LIKE 'ferry%' AND state IS DISTINCT FROM 'idle' \
                 AND EXISTS (SELECT 1 FROM unnest($1::text[]) AS n WHERE position(n IN query) > 0)",
                &[&quoted],
            )
            .await
            .map_err(pg_err("looking for statements of an earlier ferry"))?;
        let busy: i64 = row.get(0);
        if busy == 0 {
            return Ok(());
        }
        if started.elapsed() > SETTLE_LIMIT {
            return Err(ProviderError::Other(format!(
                "a statement of an earlier ferry on {} has been running for {} min; wait for it (pg_stat_activity) and resume",
                names.join(", "),
                SETTLE_LIMIT.as_secs() / 60
            )));
        }
        if !said {
            eprintln!(
                "    waiting for a statement an earlier ferry started on {} to finish on the server",
                names.join(", ")
            );
            said = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Client sessions connected to database `name` (ferry's own are elsewhere).
async fn sessions(admin: &Client, name: &str) -> PResult<i64> {
    let row = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND backend_type = 'client backend' \
             AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .map_err(pg_err("counting sessions"))?;
    Ok(row.get(0))
}

async fn drop_database(admin: &Client, name: &str) -> PResult<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
        .await
        .map_err(pg_err(&format!("dropping database {name}")))
}

/// Close a snapshot database to connections: nothing can write to it, and no
/// session can block `CREATE DATABASE … TEMPLATE` from it.
async fn seal(admin: &Client, name: &str) -> PResult<()> {
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", quote_ident(name)))
        .await
        .map_err(pg_err(&format!("closing snapshot database {name} to connections")))
}

fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl PgDatabase {
    /// `url` names the environment's database: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`.
    /// Nothing is connected yet.
    pub fn new(url: String, store: SnapshotStore) -> Result<Self, ProviderError> {
        let shown = rewrite_url(&url, None, Password::Mask);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ProviderError::Rejected(format!("invalid PostgreSQL URL {shown}: expected {URL_SHAPE}")));
        }
        // sslmode / sslrootcert as libpq reads them; TLS through rustls.
        let target = crate::provider::tls::target(&url, crate::config::ProviderKind::Local)
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
        rewrite_url(&self.url, Some(dbname), Password::Mask)
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

    /// Mask the URL's password wherever it might appear in `text`.
    fn scrub(&self, text: &str) -> String {
        let mut secrets = raw_passwords(&self.url);
        if let Some(pw) = self.config.get_password() {
            secrets.push(String::from_utf8_lossy(pw).into_owned());
        }
        secrets.retain(|s| !s.is_empty());
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_string();
        for s in &secrets {
            out = out.replace(s.as_str(), MASK);
        }
        out
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

    fn find_tool(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.tool_path.clone().or_else(|| std::env::var_os("PATH"))?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    /// Run a PostgreSQL client tool: the connection is in a password-less URL
    /// among `args`, the password in its environment.
    async fn run_tool(&self, program: &Path, args: &[OsString], what: &str) -> PResult<()> {
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
        if let Some(pw) = self.config.get_password() {
            cmd.env("PGPASSWORD", OsStr::from_bytes(pw));
        }
        let out = cmd.output().await.map_err(|e| io_err(&format!("running {}", program.display()), e))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(ProviderError::Other(self.scrub(&format!("{what} failed ({}): {}", out.status, stderr.trim()))))
    }

    /// Dump the environment's database into `dest` (via a temp file renamed into
    /// place), when other sessions keep `CREATE DATABASE … TEMPLATE` from copying it.
    async fn dump(&self, admin: &Client, id: &str, dest: &Path) -> PResult<()> {
        let Some(pg_dump) = self.find_tool("pg_dump") else {
            let n = sessions(admin, &self.db).await?;
            return Err(ProviderError::Rejected(format!(
                "cannot snapshot database {}: {} connected to it, which blocks copying it with CREATE DATABASE … \
                 TEMPLATE; either disconnect {} (stop the application) or install pg_dump (the PostgreSQL client \
                 tools) so that ferry can dump the database instead",
                self.db,
                plural(n, "other session is", "other sessions are"),
                if n == 1 { "it" } else { "them" },
            )));
        };
        std::fs::create_dir_all(self.store.dir()).map_err(|e| io_err("creating the snapshot directory", e))?;
        let tmp = self.store.data_path(id, "pgdump.tmp");
        remove_if_exists(&tmp, "removing a partial dump")?;
        let mut file = OsString::from("--file=");
        file.push(&tmp);
        let args = [
            "--format=custom".into(),
            file,
            "--no-password".into(),
            format!("--dbname={}", rewrite_url(&self.url, Some(&self.db), Password::Drop)).into(),
        ];
        if let Err(e) = self.run_tool(&pg_dump, &args, &format!("pg_dump of database {}", self.db)).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        let dest = dest.to_path_buf();
        blocking(move || {
            std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io_err("syncing the dump", e))?;
            std::fs::rename(&tmp, &dest).map_err(|e| io_err("moving the dump into place", e))
        })
        .await
    }

    /// Restore a `pg_dump` file into `target`. The data goes into a staging name
    /// first and is renamed to `target` once whole, so `target` existing always
    /// means the restore finished.
    async fn restore_dump(&self, admin: &Client, snapshot_id: &str, file: &Path, target: &str) -> PResult<()> {
        if !file.is_file() {
            return Err(ProviderError::NotFound(format!("snapshot file {}", file.display())));
        }
        let Some(pg_restore) = self.find_tool("pg_restore") else {
            return Err(ProviderError::Rejected(format!(
                "snapshot {snapshot_id} is a pg_dump file; restoring it needs pg_restore (the PostgreSQL client \
                 tools) on PATH"
            )));
        };
        let partial = fit_name(target, "partial");
        drop_database(admin, &partial).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&partial)))
            .await
            .map_err(pg_err(&format!("creating database {partial}")))?;
        let args = [
            "--no-owner".into(),
            "--exit-on-error".into(),
            "--no-password".into(),
            format!("--dbname={}", rewrite_url(&self.url, Some(&partial), Password::Drop)).into(),
            file.as_os_str().to_owned(),
        ];
        if let Err(e) = self.run_tool(&pg_restore, &args, &format!("pg_restore of snapshot {snapshot_id}")).await {
            // ferry's own staging database, never the environment's.
            let _ = drop_database(admin, &partial).await;
            return Err(e);
        }
        admin
            .batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(&partial), quote_ident(target)))
            .await
            .map_err(pg_err(&format!("renaming database {partial} to {target}")))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> PResult<T> + Send + 'static) -> PResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| io_err("background task", e))?
}

fn remove_if_exists(path: &Path, what: &str) -> PResult<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(what, e)),
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

    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot> {
        if let Some(existing) = self.store.get(id)? {
            return Ok(existing.snapshot);
        }
        check_name(id)?;
        if id == self.db {
            return Err(ProviderError::Rejected(format!("snapshot id {id} is the environment's own database name")));
        }
        let snapshot = Snapshot {
            id: id.to_string(),
            cluster_id: self.db.clone(),
            status: SnapshotStatus::Available,
            percent: 100,
            created_at: Some(Utc::now()),
            tags: tags.clone(),
        };
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
        Ok(self.store.get(id)?.map(|e| e.snapshot))
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        Ok(self.store.list(&self.db)?.into_iter().map(|e| e.snapshot).collect())
    }

    async fn delete_snapshot(&self, id: &str) -> PResult<()> {
        let Some(entry) = self.store.get(id)? else {
            return Err(ProviderError::NotFound(format!("snapshot {id}")));
        };
        match &entry.stored {
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

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, _tags: &Tags) -> PResult<()> {
        check_name(target)?;
        let admin = self.admin().await?;
        settle(&admin, &[target]).await?;
        if exists(&admin, target).await? {
            return Ok(());
        }
        let entry =
            self.store.get(snapshot_id)?.ok_or_else(|| ProviderError::NotFound(format!("snapshot {snapshot_id}")))?;
        match entry.stored {
            Stored::PgTemplate { database } => {
                let Some(source) = lookup(&admin, &database).await? else {
                    return Err(ProviderError::NotFound(format!("snapshot database {}", self.location(&database))));
                };
                copy_database(&admin, &database, &source.owner, target)
                    .await
                    .map_err(pg_err(&format!("restoring snapshot {snapshot_id} into database {target}")))
            }
            Stored::PgDump { file } => self.restore_dump(&admin, snapshot_id, &file, target).await,
            Stored::SqliteFile { .. } => {
                Err(ProviderError::Rejected(format!("snapshot {snapshot_id} is not a PostgreSQL snapshot")))
            }
        }
    }

    async fn leftovers(&self) -> PResult<Vec<crate::provider::Leftover>> {
        let admin = self.admin().await?;
        let rows = admin
            .query("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", &[&self.db])
            .await
            .map_err(pg_err("listing databases"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let id: String = r.get(0);
                let kind = crate::provider::leftover_kind(&self.db, &id)?;
                Some(crate::provider::Leftover {
                    id,
                    kind: kind.to_string(),
                    status: "available".into(),
                    tags: Tags::new(),
                })
            })
            .collect())
    }

    async fn clone_for_rehearsal(&self, name: &str, tags: &Tags) -> PResult<crate::provider::CloneInfo> {
        self.rehearsal_clone(name, tags).await
    }

    async fn delete_rehearsal_clone(&self, id: &str, run_id: &str) -> PResult<()> {
        self.drop_rehearsal_clone(id, run_id).await
    }

    async fn lock_observer(&self, id: &str) -> PResult<Box<dyn crate::provider::LockObserver>> {
        Ok(Box::new(rehearsal::PgLockObserver { client: self.connect(id).await? }))
    }

    async fn rename(&self, from: &str, to: &str, _run_id: &str) -> PResult<()> {
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
        let what = format!("renaming database {from} to {to}");
        let rename = format!("ALTER DATABASE {} RENAME TO {}", quote_ident(from), quote_ident(to));
        let mut attempt = 0;
        loop {
            attempt += 1;
            // A database with sessions cannot be renamed: end them. Clients that
            // reconnect find whichever database has the name by then.
            admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
                     AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                    &[&from],
                )
                .await
                .map_err(pg_err(&format!("disconnecting the sessions of database {from}")))?;
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::str::FromStr;

    use std::hash::{BuildHasher, Hasher};
    use std::sync::Arc;
    use tokio_postgres::NoTls;

    use super::*;
    use crate::provider::{TAG_ENV, TAG_RUN_ID};

    const SECRET: &str = "s3cret-Pw-4711";

    /// `url` (a test server's) naming database `db`, everything else kept.
    fn with_db(url: &str, db: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (url, None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
        let mut out = format!("{}/{}", &base[..host_end], percent_encode(db));
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        out
    }

    /// `url`'s `host:port` part, without user info.
    fn hosts_of(url: &str) -> String {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
        authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string()
    }

    fn random_hex() -> String {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.write_u32(std::process::id());
        format!("{:016x}", h.finish())
    }

    fn tags() -> Tags {
        Tags::from([(TAG_RUN_ID.to_string(), "r1".to_string()), (TAG_ENV.to_string(), "local".to_string())])
    }

    /// A PostgreSQL server for one test: every database it makes is named
    /// `ferry_t_<hex>…` and dropped at the end.
    struct Server {
        /// Maintenance URL (`FERRY_TEST_PG_URL`).
        url: String,
        /// The environment's database name, and the prefix of every database made.
        name: String,
        dir: tempfile::TempDir,
    }

    impl Server {
        /// `None` (after saying so) when no server is configured.
        fn from_env() -> Option<Server> {
            let url = match std::env::var("FERRY_TEST_PG_URL") {
                Ok(url) if !url.is_empty() => url,
                _ if std::env::var("FERRY_TEST_REQUIRE_PG").as_deref() == Ok("1") => panic!(
                    "FERRY_TEST_REQUIRE_PG=1 but FERRY_TEST_PG_URL is not set: point it at a PostgreSQL server whose \
                     user may create databases, e.g. FERRY_TEST_PG_URL=postgres://postgres@127.0.0.1:5432/postgres \
                     (scripts/test finds or starts one)"
                ),
                _ => {
                    eprintln!(
                        "skipped: FERRY_TEST_PG_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres); \
                         set it to run the PostgreSQL tests"
                    );
                    return None;
                }
            };
            let dir = tempfile::tempdir().expect("temp dir");
            Some(Server { url, name: format!("ferry_t_{}", random_hex()), dir })
        }

        fn url(&self, db: &str) -> String {
            with_db(&self.url, db)
        }

        /// A provider for database `db` of this server.
        fn database(&self, db: &str) -> PgDatabase {
            PgDatabase::new(self.url(db), SnapshotStore::new(self.dir.path())).expect("valid test URL")
        }

        async fn client(&self, db: &str) -> Client {
            let (client, connection) = Config::from_str(&self.url(db))
                .expect("valid test URL")
                .connect(NoTls)
                .await
                .expect("connecting to the test server");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }

        async fn admin(&self, sql: &str) {
            self.client("postgres").await.batch_execute(sql).await.expect(sql);
        }

        async fn create(&self, db: &str) {
            self.admin(&format!("CREATE DATABASE {}", quote_ident(db))).await;
        }

        /// Drop every database this test made.
        async fn cleanup(&self) {
            let admin = self.client("postgres").await;
            let rows = admin
                .query("SELECT datname::text FROM pg_database WHERE left(datname, length($1)) = $1", &[&self.name])
                .await
                .expect("listing the test's databases");
            for row in rows {
                let name: String = row.get(0);
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name));
                if let Err(e) = admin.batch_execute(&drop).await {
                    eprintln!("could not drop test database {name}: {}", pg_message(&e));
                }
            }
            let rows = admin
                .query("SELECT rolname::text FROM pg_roles WHERE left(rolname, length($1)) = $1", &[&self.name])
                .await
                .expect("listing the test's roles");
            for row in rows {
                let name: String = row.get(0);
                if let Err(e) = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", quote_ident(&name))).await {
                    eprintln!("could not drop test role {name}: {}", pg_message(&e));
                }
            }
        }
    }

    /// Run `body` against the test server, then drop what it made, also when it
    /// panicked.
    async fn with_server<F, Fut>(body: F)
    where
        F: FnOnce(Arc<Server>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let Some(server) = Server::from_env() else { return };
        let server = Arc::new(server);
        let result = tokio::spawn(body(server.clone())).await;
        server.cleanup().await;
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    async fn rows(db: &PgDatabase, sql: &str) -> Vec<String> {
        db.exec(sql).await.expect(sql)
    }

    #[tokio::test]
    async fn snapshot_then_restore_keeps_the_failed_copy_and_brings_back_every_row() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            // The database belongs to the application's role, not to the one ferry connects as.
            let owner = format!("{}-owner", s.name);
            s.admin(&format!("CREATE ROLE {}", quote_ident(&owner))).await;
            s.admin(&format!("CREATE DATABASE {} OWNER {}", quote_ident(&s.name), quote_ident(&owner))).await;
            rows(&db, "CREATE TABLE t(id serial PRIMARY KEY, v text); INSERT INTO t(v) VALUES ('a'), ('b');").await;

            let snap_id = format!("{}-snap", s.name);
            let snap = db.create_snapshot(&snap_id, &tags()).await.expect("snapshot");
            assert_eq!(snap.status, SnapshotStatus::Available);
            assert_eq!(snap.cluster_id, s.name);
            assert_eq!(db.create_snapshot(&snap_id, &tags()).await.expect("again"), snap, "idempotent");
            let entry = db.store.get(&snap_id).expect("store").expect("metadata");
            assert_eq!(entry.stored, Stored::PgTemplate { database: snap_id.clone() });
            assert_eq!(db.list_snapshots().await.expect("list"), std::slice::from_ref(&snap));
            assert_eq!(db.describe_snapshot(&snap_id).await.expect("describe"), Some(snap.clone()));

            rows(&db, "ALTER TABLE t ADD COLUMN w text; DELETE FROM t WHERE v = 'a'; INSERT INTO t(v) VALUES ('c');")
                .await;

            let staging = db.sibling_id("restored-x");
            let failed = db.sibling_id("failed-x");
            assert_eq!(failed, format!("{}-failed-x", s.name));
            db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore");
            db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore again");
            let info = db.describe(&staging).await.expect("describe").expect("staging exists");
            assert!(info.is_available());
            assert_eq!(info.engine, "postgresql");
            assert_eq!(info.endpoint, Some(db.endpoint(&staging)));

            // The application still holds a session on the database being replaced.
            let app = s.client(&s.name).await;
            app.simple_query("SELECT 1").await.expect("app session");

            db.rename(db.cluster_id(), &failed, "run").await.expect("rename aside");
            db.rename(db.cluster_id(), &failed, "run").await.expect("rename aside again");
            db.rename(&staging, db.cluster_id(), "run").await.expect("rename into place");
            db.rename(&staging, db.cluster_id(), "run").await.expect("rename into place again");
            assert!(app.simple_query("SELECT 1").await.is_err(), "the app's old session was ended");

            assert_eq!(rows(&db, "SELECT v FROM t ORDER BY id").await, ["v", "a", "b"]);
            assert_eq!(
                rows(&db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 't'").await,
                ["count", "2"]
            );
            let owner_sql =
                "SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = current_database()";
            assert_eq!(rows(&db, owner_sql).await, ["owner".to_string(), owner.clone()], "the owner is kept");
            let failed_db = s.database(&failed);
            assert_eq!(rows(&failed_db, "SELECT v, w FROM t ORDER BY id").await, ["v\tw", "b\tNULL", "c\tNULL"]);
            assert_eq!(db.describe(&staging).await.expect("describe"), None);

            db.delete_snapshot(&snap_id).await.expect("delete");
            assert_eq!(db.describe(&snap_id).await.expect("describe"), None);
            assert_eq!(db.describe_snapshot(&snap_id).await.expect("describe"), None);
            let err = db.delete_snapshot(&snap_id).await.expect_err("gone");
            assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn a_statement_a_killed_ferry_left_running_is_waited_for_before_anything_is_decided() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            s.create(&s.name).await;
            let snap_id = format!("{}-snap", s.name);
            // What the server goes on with after ferry is killed: a statement of
            // a ferry session that names the snapshot, still running.
            let (other, connection) = Config::from_str(&s.url("postgres"))
                .expect("valid test URL")
                .application_name("ferry")
                .connect(NoTls)
                .await
                .expect("connect");
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let text = format!("SELECT pg_sleep(1.5), '{}'", quote_ident(&snap_id));
            let running = tokio::spawn(async move { other.batch_execute(&text).await });
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = std::time::Instant::now();
            db.create_snapshot(&snap_id, &tags()).await.expect("snapshot");
            assert!(started.elapsed() >= Duration::from_millis(1000), "waited for the earlier statement");
            running.await.expect("join").expect("the earlier statement ran to its end");
        })
        .await;
    }

    #[tokio::test]
    async fn a_database_left_by_a_crash_before_the_metadata_is_adopted() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            s.create(&s.name).await;
            rows(&db, "CREATE TABLE t(v text); INSERT INTO t VALUES ('a');").await;
            let snap_id = format!("{}-snap", s.name);
            s.admin(&format!("CREATE DATABASE {} TEMPLATE {}", quote_ident(&snap_id), quote_ident(&s.name))).await;

            let snap = db.create_snapshot(&snap_id, &tags()).await.expect("adopt");
            assert_eq!(snap.cluster_id, s.name);
            let entry = db.store.get(&snap_id).expect("store").expect("metadata");
            assert_eq!(entry.stored, Stored::PgTemplate { database: snap_id.clone() });
            let staging = db.sibling_id("restored-y");
            db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore");
            assert_eq!(rows(&s.database(&staging), "SELECT v FROM t").await, ["v", "a"]);
        })
        .await;
    }

    #[tokio::test]
    async fn rename_never_overwrites_an_existing_database() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            let (a, b) = (db.sibling_id("a"), db.sibling_id("b"));
            s.create(&a).await;
            s.create(&b).await;
            let err = db.rename(&a, &b, "run").await.expect_err("must refuse");
            assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
            assert!(db.describe(&a).await.expect("describe").is_some());
            assert!(db.describe(&b).await.expect("describe").is_some());

            let err =
                db.rename(&db.sibling_id("nope"), &db.sibling_id("nope2"), "run").await.expect_err("neither exists");
            assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn a_snapshot_while_sessions_are_connected_is_a_dump_and_restores() {
        with_server(|s| async move {
            let mut db = s.database(&s.name);
            s.create(&s.name).await;
            rows(&db, "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');").await;
            let app = s.client(&s.name).await;
            app.simple_query("SELECT 1").await.expect("app session");

            let snap_id = format!("{}-snap", s.name);
            if db.find_tool("pg_dump").is_none() {
                let err = db.create_snapshot(&snap_id, &tags()).await.expect_err("no pg_dump");
                assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
                let text = err.to_string();
                assert!(text.contains("1 other session is connected") && text.contains("pg_dump"), "{text}");
                return;
            }

            // Without pg_dump the caller is told why and what to do.
            let empty = tempfile::tempdir().expect("temp dir");
            db.tool_path = Some(empty.path().as_os_str().to_owned());
            let err = db.create_snapshot(&snap_id, &tags()).await.expect_err("no pg_dump on this PATH");
            assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
            let text = err.to_string();
            assert!(text.contains(&s.name) && text.contains("1 other session is connected"), "{text}");
            assert!(text.contains("install pg_dump"), "{text}");
            assert_eq!(db.store.get(&snap_id).expect("store"), None);
            db.tool_path = None;

            let snap = db.create_snapshot(&snap_id, &tags()).await.expect("snapshot by dump");
            assert_eq!(snap.status, SnapshotStatus::Available);
            let entry = db.store.get(&snap_id).expect("store").expect("metadata");
            let file = db.store.data_path(&snap_id, "pgdump");
            assert_eq!(entry.stored, Stored::PgDump { file: file.clone() });
            assert!(file.is_file());
            assert!(!db.store.data_path(&snap_id, "pgdump.tmp").exists());
            assert_eq!(db.describe(&snap_id).await.expect("describe"), None, "no template database");

            app.batch_execute("DELETE FROM t WHERE id = 1; ALTER TABLE t ADD COLUMN w int;").await.expect("change");
            let staging = db.sibling_id("restored-d");
            db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore from dump");
            db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect("restore again");
            assert_eq!(rows(&s.database(&staging), "SELECT * FROM t ORDER BY id").await, ["id\tv", "1\ta", "2\tb"]);
            assert_eq!(db.describe(&fit_name(&staging, "partial")).await.expect("describe"), None);

            db.delete_snapshot(&snap_id).await.expect("delete");
            assert!(!file.exists());
        })
        .await;
    }

    #[tokio::test]
    async fn a_failed_pg_restore_leaves_no_target() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            if db.find_tool("pg_restore").is_none() {
                eprintln!("skipped: pg_restore is not on PATH");
                return;
            }
            let snap_id = format!("{}-snap", s.name);
            let file = db.store.data_path(&snap_id, "pgdump");
            std::fs::create_dir_all(db.store.dir()).expect("store dir");
            std::fs::write(&file, b"not a dump").expect("write");
            let snapshot = Snapshot {
                id: snap_id.clone(),
                cluster_id: s.name.clone(),
                status: SnapshotStatus::Available,
                percent: 100,
                created_at: None,
                tags: Tags::new(),
            };
            db.store.put(&Entry { snapshot, stored: Stored::PgDump { file } }).expect("put");
            let staging = db.sibling_id("restored-z");
            let err = db.restore_snapshot(&snap_id, &staging, &Tags::new()).await.expect_err("garbage dump");
            assert!(matches!(err, ProviderError::Other(_)), "{err}");
            assert!(err.to_string().contains("pg_restore"), "{err}");
            assert_eq!(db.describe(&staging).await.expect("describe"), None);
            assert_eq!(db.describe(&fit_name(&staging, "partial")).await.expect("describe"), None);
        })
        .await;
    }

    #[tokio::test]
    async fn exec_returns_a_header_and_the_rows_of_each_query() {
        with_server(|s| async move {
            let db = s.database(&s.name);
            let err = db.exec("SELECT 1").await.expect_err("no database yet");
            assert!(matches!(err, ProviderError::NotFound(_)), "{err}");
            s.create(&s.name).await;
            let out = rows(
                &db,
                "CREATE TABLE t(a int, b text); INSERT INTO t VALUES (1, 'x'), (2, NULL); \
                 SELECT a, b FROM t ORDER BY a; SELECT 1 AS one WHERE false;",
            )
            .await;
            assert_eq!(out, ["a\tb", "1\tx", "2\tNULL", "one"]);
            let err = db.exec("SELECT * FROM missing").await.expect_err("no such table");
            assert!(matches!(err, ProviderError::Other(_)), "{err}");
            assert!(err.to_string().contains("missing"), "{err}");
        })
        .await;
    }

    #[tokio::test]
    async fn connection_errors_never_show_the_password() {
        with_server(|s| async move {
            let role = format!("ferry_no_role_{}", random_hex());
            let url = format!("postgres://{role}:{SECRET}@{}/{}", hosts_of(&s.url), s.name);
            let db = PgDatabase::new(url, SnapshotStore::new(s.dir.path())).expect("valid URL");
            let err = db.exec("SELECT 1").await.expect_err("no such role");
            for text in [err.to_string(), format!("{err:?}")] {
                assert!(!text.contains(SECRET), "{text}");
                assert!(text.contains("cannot connect to PostgreSQL at") && text.contains(&s.name), "{text}");
            }
            assert!(matches!(err, ProviderError::AccessDenied(_)), "{err}");
            let err = db.describe(&s.name).await.expect_err("no such role");
            assert!(!format!("{err:?}").contains(SECRET), "{err:?}");
        })
        .await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_without_the_password() {
        let url = format!("postgres://app:{SECRET}@127.0.0.1:1/app");
        let dir = tempfile::tempdir().expect("temp dir");
        let db = PgDatabase::new(url, SnapshotStore::new(dir.path())).expect("valid URL");
        let err = db.describe("app").await.expect_err("nothing listens on port 1");
        assert!(matches!(err, ProviderError::Other(_)), "{err}");
        let text = format!("{err} {err:?}");
        assert!(text.contains("cannot connect to PostgreSQL at 127.0.0.1:1/postgres"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
    }

    #[test]
    fn urls_are_checked_and_never_echo_the_password() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = || SnapshotStore::new(dir.path());
        for url in [format!("postgres://app:{SECRET}@db:5432"), format!("postgres://app:{SECRET}@db:5432/")] {
            let err = PgDatabase::new(url, store()).err().expect("no database");
            assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
            assert!(err.to_string().contains("names no database") && !err.to_string().contains(SECRET), "{err}");
        }
        let err = PgDatabase::new(format!("mysql://app:{SECRET}@db/app"), store()).err().expect("not postgres");
        assert!(matches!(err, ProviderError::Rejected(_)) && !err.to_string().contains(SECRET), "{err}");
        let err = PgDatabase::new(format!("postgres://app:{SECRET}@db:notaport/app"), store()).err().expect("port");
        assert!(matches!(err, ProviderError::Rejected(_)) && !err.to_string().contains(SECRET), "{err}");

        let db =
            PgDatabase::new(format!("postgresql://app:{SECRET}@db:6543/app?sslmode=disable"), store()).expect("ok");
        assert_eq!(db.cluster_id(), "app");
        assert_eq!(db.endpoint("app-restored-1"), "postgresql://app:***@db:6543/app-restored-1?sslmode=disable");
        assert_eq!(db.location("x"), "db:6543/x");
        assert_eq!(db.scrub(&format!("a {SECRET} b")), "a *** b");
        assert_eq!(
            rewrite_url(
                "postgres://u:p%40ss@h/db?dbname=x&password=q&application_name=a",
                Some("n\"ew"),
                Password::Drop
            ),
            "postgres://u@h/n%22ew?application_name=a"
        );
        assert_eq!(
            rewrite_url("postgres://u@h?password=q", Some("d b"), Password::Mask),
            "postgres://u@h/d%20b?password=***"
        );
        assert_eq!(raw_passwords("postgres://u:p%40ss@h/db?password=q"), ["p%40ss", "q"]);
        let db = PgDatabase::new("postgres://postgres@127.0.0.1/postgres".into(), store()).expect("ok");
        assert_eq!(db.maintenance_db, "template1");
    }

    #[test]
    fn sibling_ids_fit_postgresql_identifiers() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = |name: &str| {
            PgDatabase::new(format!("postgres://u@h/{}", percent_encode(name)), SnapshotStore::new(dir.path()))
                .expect("valid URL")
        };
        assert_eq!(db("app").sibling_id("failed-20240101t000000z"), "app-failed-20240101t000000z");
        let long = "x".repeat(63);
        let id = db(&long).sibling_id("restored-20240101t000000z");
        assert_eq!(id.len(), 63);
        assert!(id.ends_with("x-restored-20240101t000000z"), "{id}");
        // Multi-byte characters are never cut in half.
        let wide = "é".repeat(31);
        let id = db(&wide).sibling_id("failed-1");
        assert!(id.len() <= 63 && id.ends_with("é-failed-1"), "{id}");
        assert_eq!(quote_ident("a-b\"c"), "\"a-b\"\"c\"");
        assert!(check_name(&"y".repeat(64)).is_err());
        assert!(check_name("").is_err());
        assert!(check_name("ok-name").is_ok());
    }
}
