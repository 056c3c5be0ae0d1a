//! The journal: the run record at `runs/<run-id>.json` in the environment's
//! state backend (a local directory or an S3 prefix), rewritten whole before and
//! after every step, so a run killed at any point can be read back, from any
//! machine that reaches the backend, and resumed.
//!
//! A write that the backend refuses mid-run goes to a local fallback file named
//! on stderr, and the next write tries the backend again; only when both fail is
//! the step refused (the runbook then ends the run with the record on stderr).
//! The first write of a run must reach the backend itself: a run nobody else
//! could see never starts.
//!
//! A run whose last records reached only the fallback file is settled by them:
//! every read of a run here ([`read_run`], [`list_runs`]) looks for the
//! fallback copy too, takes whichever copy got further (the newest step
//! timestamp; a final outcome over an unfinished one at the same instant), and
//! writes the fallback's back to the backend when it is the newer (only if the
//! backend's copy is unchanged since it was read), then removes the file.

use std::path::PathBuf;
use std::sync::Mutex;

use super::record::{RunRecord, is_run_of};
use crate::output::Redactor;
use crate::state::Store;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {location}: {message}")]
    Write { location: String, message: String },
    #[error("cannot read the journal {location}: {message}")]
    Read { location: String, message: String },
    #[error("no run {0} in {1}; `ferry runs list` shows the runs there")]
    NoSuchRun(String, String),
}

pub fn run_key(run_id: &str) -> String {
    format!("runs/{run_id}.json")
}

pub struct Journal {
    store: Store,
    run_id: String,
    redactor: Redactor,
    /// Where the record went when the backend refused it, if it did.
    fallback: Mutex<Option<PathBuf>>,
}

impl Journal {
    /// Write the first version of the record; it must reach the backend.
    pub fn create(store: &Store, record: &RunRecord, redactor: Redactor) -> Result<Self, JournalError> {
        let journal = Self::attach(store, &record.run_id, redactor);
        let text = journal.text(record)?;
        store
            .put(&run_key(&record.run_id), text.as_bytes())
            .map_err(|e| JournalError::Write { location: journal.location(), message: e.0 })?;
        Ok(journal)
    }

    /// The journal of an existing run (read it with [`read_run`]).
    pub fn attach(store: &Store, run_id: &str, redactor: Redactor) -> Self {
        Journal { store: store.clone(), run_id: run_id.to_string(), redactor, fallback: Mutex::new(None) }
    }

    /// Where the record is, for messages.
    /// Another run's record from the same backend (the run that took the
    /// snapshot a restore brings back).
    pub fn read_other(&self, run_id: &str) -> Result<RunRecord, JournalError> {
        read_run(&self.store, run_id)
    }

    pub fn location(&self) -> String {
        self.store.location_of(&run_key(&self.run_id))
    }

    fn text(&self, record: &RunRecord) -> Result<String, JournalError> {
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| JournalError::Write { location: self.location(), message: e.to_string() })?;
        Ok(self.redactor.clean_json(&text) + "\n")
    }

    pub fn save(&self, record: &RunRecord) -> Result<(), JournalError> {
        let text = self.text(record)?;
        let mut fallback = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        let primary = match self.store.put(&run_key(&self.run_id), text.as_bytes()) {
            Ok(_) => {
                if let Some(path) = fallback.take() {
                    // The backend holds the newer record now: the fallback copy
                    // would only mislead a later reader.
                    let _ = std::fs::remove_file(&path);
                    eprintln!(
                        "note: the journal is written to {} again; the fallback copy {} was removed",
                        self.location(),
                        path.display()
                    );
                }
                return Ok(());
            }
            Err(e) => e,
        };
        let path = fallback_path(&self.run_id);
        match write_fallback(&path, text.as_bytes()) {
            Ok(()) => {
                if fallback.is_none() {
                    eprintln!(
                        "warning: cannot write the journal to {} ({primary}); writing it to {} until it can",
                        self.location(),
                        path.display()
                    );
                }
                *fallback = Some(path);
                Ok(())
            }
            Err(e) => Err(JournalError::Write {
                location: self.location(),
                message: format!("{primary}; and the fallback {} failed too: {e}", path.display()),
            }),
        }
    }
}

/// `$TMPDIR/ferry-journals/<run-id>.json`: another file system than the state
/// directory, in most set-ups.
pub fn fallback_path(run_id: &str) -> PathBuf {
    std::env::temp_dir().join("ferry-journals").join(format!("{run_id}.json"))
}

fn write_fallback(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        // `$TMPDIR` is shared: the directory must be this user's own, 0700.
        crate::state::owned_private_dir(dir)?;
    }
    crate::state::write_private(path, body)
}

fn parse(location: String, body: &[u8]) -> Result<RunRecord, JournalError> {
    serde_json::from_slice(body).map_err(|e| JournalError::Read { location, message: e.to_string() })
}

/// How far a record got: its newest timestamp, then whether it is final.
fn reached(r: &RunRecord) -> (Option<chrono::DateTime<chrono::Utc>>, bool) {
    let newest = r.steps.iter().flat_map(|s| [s.started_at, s.ended_at]).chain([r.ended_at]).flatten().max();
    (newest, r.outcome.is_final())
}

/// The fallback copy of run `backend`'s record, when this machine has one of
/// the same run (same id, same start) that got further than `backend`.
fn newer_fallback(backend: &RunRecord) -> Option<(RunRecord, PathBuf)> {
    let path = fallback_path(&backend.run_id);
    let body = std::fs::read(&path).ok()?;
    let copy: RunRecord = serde_json::from_slice(&body).ok()?;
    let same_run = copy.run_id == backend.run_id && copy.env == backend.env && copy.started_at == backend.started_at;
    (same_run && reached(&copy) > reached(backend)).then_some((copy, path))
}

/// Reconcile the backend's copy of a record (read with `etag`) with a newer
/// fallback copy on this machine: the newer wins and is written back.
fn reconcile(store: &Store, backend: RunRecord, etag: &str) -> RunRecord {
    let Some((newer, path)) = newer_fallback(&backend) else { return backend };
    let key = run_key(&backend.run_id);
    let written = std::fs::read(&path).ok().and_then(|body| store.replace(&key, &body, etag).ok().flatten());
    if written.is_some() {
        let _ = std::fs::remove_file(&path);
        eprintln!(
            "note: run {} ended with its record only in {}; that record ({}) is written back to {}",
            newer.run_id,
            path.display(),
            newer.outcome.as_str(),
            store.location_of(&key)
        );
    } else {
        eprintln!(
            "warning: run {} has a newer record in {} ({}) than in {}, which cannot be updated now; the newer one is \
             used",
            newer.run_id,
            path.display(),
            newer.outcome.as_str(),
            store.location_of(&key)
        );
    }
    newer
}

/// Read a run's record (reconciled with a newer fallback copy on this machine).
pub fn read_run(store: &Store, run_id: &str) -> Result<RunRecord, JournalError> {
    let key = run_key(run_id);
    match store.get(&key) {
        Ok(Some(v)) => Ok(reconcile(store, parse(store.location_of(&key), &v.body)?, &v.etag)),
        Ok(None) => Err(JournalError::NoSuchRun(run_id.to_string(), store.location_of("runs"))),
        Err(e) => Err(JournalError::Read { location: store.location_of(&key), message: e.0 }),
    }
}

/// One entry of the runs in a backend: a record, or a journal that cannot be
/// read (never hidden: it blocks its environment like an unfinished run).
#[derive(Debug, Clone)]
pub enum Listed {
    Run(Box<RunRecord>),
    Unreadable { run_id: String, location: String, error: String },
}

impl Listed {
    pub fn run_id(&self) -> &str {
        match self {
            Listed::Run(r) => &r.run_id,
            Listed::Unreadable { run_id, .. } => run_id,
        }
    }

    /// Whether it keeps its environment from other changing commands.
    pub fn blocks(&self) -> bool {
        match self {
            Listed::Run(r) => r.blocks_env(),
            Listed::Unreadable { .. } => true,
        }
    }
}

/// Every run in the backend (of one environment when `env` is given), newest first.
pub fn list_runs(store: &Store, env: Option<&str>) -> Result<Vec<Listed>, JournalError> {
    let name_prefix = env.map(|e| format!("{e}-")).unwrap_or_default();
    let keys = store
        .list_dated("runs", &name_prefix)
        .map_err(|e| JournalError::Read { location: store.location_of("runs"), message: e.0 })?;
    let mut out = Vec::new();
    for crate::state::Listed { key, modified } in keys {
        let Some(run_id) = key.strip_prefix("runs/").and_then(|k| k.strip_suffix(".json")) else { continue };
        if env.is_some_and(|e| !is_run_of(run_id, e)) {
            continue;
        }
        let location = store.location_of(&key);
        let entry = match store.get(&key) {
            Ok(Some(v)) => match parse(location.clone(), &v.body) {
                Ok(r) => Listed::Run(Box::new(reconcile(store, r, &v.etag))),
                Err(e) => Listed::Unreadable { run_id: run_id.to_string(), location, error: e.to_string() },
            },
            Ok(None) => continue,
            Err(e) => Listed::Unreadable { run_id: run_id.to_string(), location, error: e.0 },
        };
        out.push((modified, entry));
    }
    // Newest first by the backend's clock: when the backend last wrote the
    // record (S3's LastModified, the file's mtime). Neither the run id's stamp
    // nor `started_at` is used: both are the writer's clock, which may be
    // minutes off. Ties (and a backend that gives no time) by run id.
    out.sort_by(|(ma, a), (mb, b)| mb.cmp(ma).then_with(|| b.run_id().cmp(a.run_id())));
    Ok(out.into_iter().map(|(_, entry)| entry).collect())
}

/// The runs of `env` that keep it from other changing commands, other than `except`.
pub fn blocking_runs(store: &Store, env: &str, except: Option<&str>) -> Result<Vec<Listed>, JournalError> {
    Ok(list_runs(store, Some(env))?.into_iter().filter(|l| l.blocks() && Some(l.run_id()) != except).collect())
}

/// Readable runs only, newest first (history for estimates and `status`).
pub fn readable_runs(store: &Store, env: Option<&str>) -> Vec<RunRecord> {
    list_runs(store, env)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| match l {
            Listed::Run(r) => Some(*r),
            Listed::Unreadable { .. } => None,
        })
        .collect()
}
