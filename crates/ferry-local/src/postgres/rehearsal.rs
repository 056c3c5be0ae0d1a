//! A rehearsal's clone on PostgreSQL: `CREATE DATABASE … TEMPLATE` of the
//! environment's database (a `pg_dump` copy when other sessions keep the
//! template copy from working), marked with a comment naming the run. Its
//! locks are sampled by `session::PgLockObserver`.

use tokio_postgres::Client;
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use super::{PgDatabase, copy_database, exists, has_code, lookup, pg_err, quote_ident, settle};
use ferry_core::db_url::{self, Password};
use ferry_core::provider::{CloneInfo, PResult, ProviderError, TAG_PURPOSE, TAG_RUN_ID, Tags};

/// The mark a clone carries: its database comment.
fn mark(run_id: &str) -> String {
    format!("{TAG_PURPOSE}={} {TAG_RUN_ID}={run_id}", ferry_core::provider::PURPOSE_REHEARSAL)
}

async fn comment_of(admin: &Client, name: &str) -> PResult<Option<String>> {
    let row = admin
        .query_opt("SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", &[&name])
        .await
        .map_err(pg_err("reading the clone's mark"))?;
    Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
}

impl PgDatabase {
    fn clone_info(&self, name: &str) -> CloneInfo {
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(dir)) => dir.display().to_string(),
            None => "localhost".into(),
        };
        CloneInfo {
            id: name.to_string(),
            endpoint: host,
            port: Some(self.config.get_ports().first().copied().unwrap_or(5432)),
            url_for_migration: Some(db_url::rewrite(&self.url, Some(name), Password::Keep)),
        }
    }

    pub(super) async fn rehearsal_clone(&self, name: &str, tags: &Tags) -> PResult<CloneInfo> {
        super::check_name(name)?;
        let run_id = tags.get(TAG_RUN_ID).cloned().unwrap_or_default();
        if name == self.db || run_id.is_empty() {
            return Err(ProviderError::Rejected(format!("{name} cannot be a rehearsal clone of {}", self.db)));
        }
        let admin = self.admin().await?;
        settle(&admin, &[name]).await?;
        if exists(&admin, name).await? {
            if comment_of(&admin, name).await?.as_deref() == Some(mark(&run_id).as_str()) {
                return Ok(self.clone_info(name));
            }
            return Err(ProviderError::Rejected(format!(
                "database {name} exists and is not marked as this run's rehearsal clone; ferry never overwrites a database"
            )));
        }
        let Some(source) = lookup(&admin, &self.db).await? else {
            return Err(ProviderError::NotFound(format!("database {}", self.location(&self.db))));
        };
        match copy_database(&admin, &self.db, &source.owner, name).await {
            Ok(()) => {}
            Err(e) if has_code(&e, &SqlState::OBJECT_IN_USE) => {
                // Sessions on the source keep the template copy from working: a dump instead.
                let file = self.store.data_path(name, "pgdump");
                ferry_core::state::private_dir(self.store.dir())
                    .map_err(|e| super::io_err("creating the state directory", e))?;
                self.dump(&admin, name, &file).await?;
                let restored = self.restore_dump(&admin, name, &file, name, None).await;
                let _ = std::fs::remove_file(&file);
                restored?;
            }
            Err(e) => return Err(pg_err(&format!("copying database {} to {name}", self.db))(e)),
        }
        admin
            .batch_execute(&format!("COMMENT ON DATABASE {} IS '{}'", quote_ident(name), mark(&run_id)))
            .await
            .map_err(pg_err(&format!("marking clone {name} as this run's")))?;
        Ok(self.clone_info(name))
    }

    pub(super) async fn drop_rehearsal_clone(&self, name: &str, run_id: &str) -> PResult<()> {
        let admin = self.admin().await?;
        settle(&admin, &[name]).await?;
        if !exists(&admin, name).await? {
            return Ok(());
        }
        if name == self.db || comment_of(&admin, name).await?.as_deref() != Some(mark(run_id).as_str()) {
            return Err(ProviderError::Rejected(format!(
                "database {name} is not marked as run {run_id}'s rehearsal clone; ferry deletes nothing else"
            )));
        }
        // The rehearsal's migration may still be connected (an interrupted run): FORCE ends its sessions.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)))
            .await
            .map_err(pg_err(&format!("dropping rehearsal clone {name}")))
    }
}
