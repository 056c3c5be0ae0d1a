//! The administrative SQL of the PostgreSQL provider: names that reach the
//! server unchanged, looking databases up, copying, sealing and dropping them,
//! and waiting out the statements of an earlier ferry. Every identifier is quoted.

use std::time::Duration;

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use ferry_core::provider::{PResult, ProviderError};

/// PostgreSQL's identifier limit in bytes (NAMEDATALEN - 1); longer names are
/// silently truncated by the server, so ferry never sends one.
pub(super) const MAX_IDENT: usize = 63;

/// `"name"`, embedded quotes doubled: safe for any identifier, hyphens included.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `s` cut to at most `max` bytes, on a char boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
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
pub(super) fn fit_name(base: &str, suffix: &str) -> String {
    let room = MAX_IDENT.saturating_sub(suffix.len() + 1);
    let name = format!("{}-{suffix}", truncate(base, room));
    truncate(&name, MAX_IDENT).to_string()
}

/// Names ferry creates or renames to must reach the server unchanged.
pub(super) fn check_name(name: &str) -> PResult<()> {
    if name.is_empty() || name.len() > MAX_IDENT || name.contains('\0') {
        return Err(ProviderError::Rejected(format!(
            "invalid PostgreSQL database name {name:?}: it must be 1-{MAX_IDENT} bytes without NUL characters"
        )));
    }
    Ok(())
}

pub(super) fn has_code(e: &tokio_postgres::Error, code: &SqlState) -> bool {
    e.code() == Some(code)
}

/// The server's message (with its detail and hint), or the client's error and
/// its causes.
pub(super) fn pg_message(e: &tokio_postgres::Error) -> String {
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
pub(super) fn pg_err(what: &str) -> impl Fn(tokio_postgres::Error) -> ProviderError + '_ {
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
pub(super) struct DbRow {
    /// -2 marks a database left invalid by an interrupted `DROP DATABASE`.
    pub(super) conn_limit: i32,
    pub(super) owner: String,
}

pub(super) async fn lookup(admin: &Client, name: &str) -> PResult<Option<DbRow>> {
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

pub(super) async fn exists(admin: &Client, name: &str) -> PResult<bool> {
    Ok(lookup(admin, name).await?.is_some())
}

/// Create database `target` as a copy of `source`, owned by `source`'s owner (a
/// file-level copy keeps the owners of everything inside; this keeps the
/// database's, which PostgreSQL 15 also makes the owner of schema `public`).
pub(super) async fn copy_database(
    admin: &Client,
    source: &str,
    owner: &str,
    target: &str,
) -> Result<(), tokio_postgres::Error> {
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
pub(super) const SETTLE_LIMIT: Duration = Duration::from_secs(1800);

/// Wait until no statement of another ferry session (a killed run's
/// `CREATE DATABASE`, rename or drop, which the server finishes on its own)
/// still works on one of `names`: only then does what exists say what happened.
pub(super) async fn settle(admin: &Client, names: &[&str]) -> PResult<()> {
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
pub(super) async fn sessions(admin: &Client, name: &str) -> PResult<i64> {
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

pub(super) async fn drop_database(admin: &Client, name: &str) -> PResult<()> {
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {}", quote_ident(name)))
        .await
        .map_err(pg_err(&format!("dropping database {name}")))
}

/// Close a snapshot database to connections: nothing can write to it, and no
/// session can block `CREATE DATABASE … TEMPLATE` from it.
pub(super) async fn seal(admin: &Client, name: &str) -> PResult<()> {
    admin
        .batch_execute(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", quote_ident(name)))
        .await
        .map_err(pg_err(&format!("closing snapshot database {name} to connections")))
}

/// End every client session on database `name` but this one.
pub(super) async fn end_sessions(admin: &Client, name: &str) -> PResult<()> {
    admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 \
             AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .map_err(pg_err(&format!("disconnecting the sessions of database {name}")))?;
    Ok(())
}

pub(super) fn plural(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The line of a database's comment that records a ferry run (the local
/// stand-in for AWS's `ferry:run-id` tag).
const RUN_MARK: &str = "ferry:run-id=";

/// The run a database comment records, if any.
pub(crate) fn run_in_comment(comment: &str) -> Option<String> {
    comment.lines().find_map(|l| l.strip_prefix(RUN_MARK)).map(str::trim).filter(|r| !r.is_empty()).map(String::from)
}

/// The run recorded on database `name`; `None` when it does not exist or records none.
pub(super) async fn read_mark(admin: &Client, name: &str) -> PResult<Option<String>> {
    let row = admin
        .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(pg_err("reading a database's comment"))?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)).as_deref().and_then(run_in_comment))
}

/// Record run `run_id` on database `name`: a `ferry:run-id=<run>` line in its
/// comment, replacing an earlier one; every other line of the comment is kept.
pub(super) async fn write_mark(admin: &Client, name: &str, run_id: &str) -> PResult<()> {
    let row = admin
        .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(pg_err("reading a database's comment"))?;
    let current: Option<String> = row.and_then(|r| r.get(0));
    let mut lines: Vec<String> =
        current.unwrap_or_default().lines().filter(|l| !l.starts_with(RUN_MARK)).map(String::from).collect();
    lines.push(format!("{RUN_MARK}{run_id}"));
    let text = lines.join("\n");
    admin
        .batch_execute(&format!("COMMENT ON DATABASE {} IS '{}'", quote_ident(name), text.replace('\'', "''")))
        .await
        .map_err(pg_err(&format!("recording the run on database {name}")))
}
