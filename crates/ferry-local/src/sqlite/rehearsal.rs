//! A rehearsal's clone on SQLite: a consistent copy made with the online backup
//! API, beside the database, with a mark file naming the run that made it
//! (written before the copy, so a copy is never left without one).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{backup_file, companions};
use crate::snapshots::io_err;
use ferry_core::provider::{CloneInfo, PResult, ProviderError, TAG_RUN_ID, Tags};

/// Why a SQLite rehearsal reports no locks.
pub const NOT_OBSERVED: &str = "SQLite has no lock table to sample: a writer locks the whole database file, \
     so which tables a migration would block, and for how long, cannot be observed";

#[derive(Serialize, Deserialize)]
struct Mark {
    purpose: String,
    run_id: String,
}

fn mark_path(clone: &Path) -> PathBuf {
    let mut p = clone.as_os_str().to_owned();
    p.push(".ferry-rehearsal");
    PathBuf::from(p)
}

fn read_mark(clone: &Path) -> Option<Mark> {
    fs::read_to_string(mark_path(clone)).ok().and_then(|t| serde_json::from_str(&t).ok())
}

fn info(clone: &Path) -> CloneInfo {
    let shown = clone.display().to_string();
    CloneInfo {
        id: shown.clone(),
        endpoint: shown.clone(),
        port: None,
        url_for_migration: Some(format!("sqlite://{shown}")),
    }
}

pub fn make_clone(src: &Path, clone: &Path, tags: &Tags) -> PResult<CloneInfo> {
    let run_id = tags.get(TAG_RUN_ID).cloned().unwrap_or_default();
    if run_id.is_empty() || clone == src {
        return Err(ProviderError::Rejected(format!("{} cannot be a rehearsal clone", clone.display())));
    }
    if !src.is_file() {
        return Err(ProviderError::NotFound(format!("database file {}", src.display())));
    }
    let ours = read_mark(clone).is_some_and(|m| m.run_id == run_id);
    if clone.exists() {
        return if ours {
            Ok(info(clone))
        } else {
            Err(ProviderError::Rejected(format!(
                "{} exists and is not this run's rehearsal clone; ferry never overwrites a database file",
                clone.display()
            )))
        };
    }
    if !ours {
        let mark = Mark { purpose: ferry_core::provider::PURPOSE_REHEARSAL.into(), run_id };
        let text = serde_json::to_string(&mark).map_err(|e| io_err("encoding the clone's mark", e))?;
        write_new(&mark_path(clone), text.as_bytes()).map_err(|e| io_err("writing the clone's mark", e))?;
    }
    backup_file(src, clone, None)?;
    Ok(info(clone))
}

pub fn delete_clone(clone: &Path, run_id: &str) -> PResult<()> {
    let mark = read_mark(clone);
    if !clone.exists() {
        if mark.as_ref().is_some_and(|m| m.run_id == run_id) {
            let _ = fs::remove_file(mark_path(clone));
        }
        return Ok(());
    }
    if mark.is_none_or(|m| m.run_id != run_id) {
        return Err(ProviderError::Rejected(format!(
            "{} is not marked as run {run_id}'s rehearsal clone; ferry deletes nothing else",
            clone.display()
        )));
    }
    fs::remove_file(clone).map_err(|e| io_err(&format!("deleting rehearsal clone {}", clone.display()), e))?;
    for c in companions(clone) {
        let _ = fs::remove_file(c);
    }
    fs::remove_file(mark_path(clone)).map_err(|e| io_err("removing the clone's mark", e))
}

/// Write a new private file (0600), failing if one is there.
fn write_new(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(body)?;
    f.sync_all()
}
