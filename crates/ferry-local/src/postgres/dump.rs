//! The PostgreSQL client tools: a snapshot as a `pg_dump --format=custom` file
//! when other sessions keep `CREATE DATABASE … TEMPLATE` from copying the
//! database, and its restore with `pg_restore`. The connection goes in a
//! password-less URL on the command line, the password in `PGPASSWORD`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio_postgres::Client;

use super::PgDatabase;
use super::admin::{drop_database, fit_name, pg_err, plural, quote_ident, sessions};
use crate::snapshots::{blocking, io_err, remove_if_exists};
use ferry_core::db_url::{self, Password};
use ferry_core::provider::{PResult, ProviderError};

impl PgDatabase {
    pub(super) fn find_tool(&self, name: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let path = self.tool_path.clone().or_else(|| std::env::var_os("PATH"))?;
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
    }

    /// Run a PostgreSQL client tool: the connection is in a password-less URL
    /// among `args`, the password in its environment.
    pub(super) async fn run_tool(&self, program: &Path, args: &[OsString], what: &str) -> PResult<()> {
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
    pub(super) async fn dump(&self, admin: &Client, id: &str, dest: &Path) -> PResult<()> {
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
            format!("--dbname={}", db_url::rewrite(&self.url, Some(&self.db), Password::Drop)).into(),
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
    pub(super) async fn restore_dump(
        &self,
        admin: &Client,
        snapshot_id: &str,
        file: &Path,
        target: &str,
        run_id: Option<&String>,
    ) -> PResult<()> {
        if !file.is_file() {
            return Err(ProviderError::NotFound(format!("snapshot file {}", file.display())));
        }
        let Some(pg_restore) = self.find_tool("pg_restore") else {
            return Err(ProviderError::Rejected(format!(
                "snapshot {snapshot_id} is a pg_dump file; restoring it needs pg_restore (the PostgreSQL client \
                 tools) on PATH"
            )));
        };
        // `<db>-partial-restored-<stamp>-<run hex>`: the staging name carries the run
        // like the target's (shortening the database part, never the suffix),
        // so dropping a leftover partial copy never touches another run's.
        let tail = target.strip_prefix(self.db.as_str()).map_or(target, |t| t.trim_start_matches('-'));
        let partial = fit_name(&self.db, &format!("partial-{tail}"));
        drop_database(admin, &partial).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&partial)))
            .await
            .map_err(pg_err(&format!("creating database {partial}")))?;
        let args = [
            "--no-owner".into(),
            "--exit-on-error".into(),
            "--no-password".into(),
            format!("--dbname={}", db_url::rewrite(&self.url, Some(&partial), Password::Drop)).into(),
            file.as_os_str().to_owned(),
        ];
        if let Err(e) = self.run_tool(&pg_restore, &args, &format!("pg_restore of snapshot {snapshot_id}")).await {
            // ferry's own staging database, never the environment's.
            let _ = drop_database(admin, &partial).await;
            return Err(e);
        }
        // The run is recorded before the copy takes its name (a comment goes
        // with the database through the rename).
        if let Some(run_id) = run_id {
            super::admin::write_mark(admin, &partial, run_id).await?;
        }
        admin
            .batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", quote_ident(&partial), quote_ident(target)))
            .await
            .map_err(pg_err(&format!("renaming database {partial} to {target}")))
    }
}
