//! `ferry unlock`: remove a lock a killed ferry left, recorded with who and why.

use super::{CmdResult, CommandError, Context};
use ferry_core::state::lock;

/// `ferry unlock ENV`: show the holder, ask, then remove the lock and record it.
pub async fn unlock(ctx: &Context, env_name: &str, reason: Option<&str>) -> CmdResult {
    let env = ctx.env(env_name)?;
    let store = ctx.store(env)?;
    let db = match ctx.database_key(env) {
        Some(db) => db,
        None => ctx.cloud(env).await?.database.cluster_id().to_string(),
    };
    let out = ctx.reporter(Some(env));
    let (found, etag) = match lock::inspect(&store, &db) {
        Ok(Some(found)) => found,
        Ok(None) => {
            out.info(&format!("{db} is not locked; nothing to do"));
            return Ok(0);
        }
        Err(e) => return Err(CommandError::Failed(format!("cannot read the lock on {db}: {e}"))),
    };
    match &found {
        lock::Found::Holder(holder) => out.info(&format!("{db} is locked by {}", holder.describe())),
        lock::Found::Unreadable { text, why } => {
            out.info(&format!(
                "{db} is locked, but its lock {} cannot be read ({why}): it is damaged, or a newer ferry wrote it. It holds:",
                store.location_of(&lock::lock_key(&db))
            ));
            out.info(&format!("  {}", text.trim()));
        }
    }
    out.info("Remove the lock only if that ferry is gone: two ferries changing one database can lose data.");
    let question = format!("Remove the lock on {db}?");
    match ctx.confirmer().ask(&question) {
        Some(true) => {}
        Some(false) => return Err(CommandError::Usage("declined; the lock is kept".into())),
        None => {
            return Err(CommandError::Usage(format!(
                "removing a lock needs a person's yes: pass --yes (or run at a terminal); the lock on {db} is kept"
            )));
        }
    }
    match lock::force_unlock(&store, &db, &found, &etag, reason).map_err(|e| CommandError::Failed(e.to_string()))? {
        Some(at) => {
            out.info(&format!("removed the lock on {db}; recorded at {at}"));
            if let lock::Found::Holder(lock::Holder { run_id: Some(run), .. }) = &found {
                out.info(&format!(
                    "next: `ferry resume {run}` continues that run (or `{}`)",
                    super::abandon_command(run)
                ));
            }
            Ok(0)
        }
        None => Err(CommandError::Failed(format!(
            "the lock on {db} changed while you were deciding (another ferry took or refreshed it); nothing was removed"
        ))),
    }
}
