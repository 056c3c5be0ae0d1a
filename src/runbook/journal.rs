//! The journal: `<state_dir>/runs/<run-id>.json`, rewritten atomically (temp file,
//! fsync, rename) before and after every step, so a run killed at any point can be
//! read back and resumed. A lock file held for the life of the process keeps two
//! ferry processes from driving one run.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::RunRecord;
use crate::output::Redactor;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the journal {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the journal {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("no run {0} in {1}; `ferry runs list` shows the runs there")]
    NoSuchRun(String, PathBuf),
    #[error("run {0} is being driven by another ferry process right now")]
    Locked(String),
}

pub struct Journal {
    path: PathBuf,
    redactor: Redactor,
    _lock: File,
}

impl Journal {
    pub fn runs_dir(state_dir: &Path) -> PathBuf {
        state_dir.join("runs")
    }

    /// Take the lock for `run_id` and write the first version of the record.
    pub fn create(state_dir: &Path, record: &RunRecord, redactor: Redactor) -> Result<Self, JournalError> {
        let journal = Self::lock(state_dir, &record.run_id, redactor)?;
        journal.save(record)?;
        Ok(journal)
    }

    /// Take the lock of an existing run and read its record.
    pub fn open(state_dir: &Path, run_id: &str, redactor: Redactor) -> Result<(Self, RunRecord), JournalError> {
        let path = Self::runs_dir(state_dir).join(format!("{run_id}.json"));
        if !path.is_file() {
            return Err(JournalError::NoSuchRun(run_id.to_string(), Self::runs_dir(state_dir)));
        }
        let journal = Self::lock(state_dir, run_id, redactor)?;
        let record = read(&path)?;
        Ok((journal, record))
    }

    fn lock(state_dir: &Path, run_id: &str, redactor: Redactor) -> Result<Self, JournalError> {
        let dir = Self::runs_dir(state_dir);
        let werr = |source| JournalError::Write { path: dir.clone(), source };
        fs::create_dir_all(&dir).map_err(werr)?;
        let lock_path = dir.join(format!("{run_id}.lock"));
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(werr)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(JournalError::Locked(run_id.to_string())),
            Err(fs::TryLockError::Error(e)) => return Err(werr(e)),
        }
        Ok(Journal { path: dir.join(format!("{run_id}.json")), redactor, _lock: lock })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn save(&self, record: &RunRecord) -> Result<(), JournalError> {
        let werr = |source| JournalError::Write { path: self.path.clone(), source };
        let text = serde_json::to_string_pretty(record).map_err(|e| werr(std::io::Error::other(e)))?;
        let text = self.redactor.clean_json(&text);
        let tmp = self.path.with_extension("json.tmp");
        let mut f = File::create(&tmp).map_err(werr)?;
        f.write_all(text.as_bytes()).map_err(werr)?;
        f.write_all(b"\n").map_err(werr)?;
        f.sync_all().map_err(werr)?;
        fs::rename(&tmp, &self.path).map_err(werr)?;
        Ok(())
    }
}

pub fn read(path: &Path) -> Result<RunRecord, JournalError> {
    let text = fs::read_to_string(path)
        .map_err(|e| JournalError::Read { path: path.to_path_buf(), message: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| JournalError::Read { path: path.to_path_buf(), message: e.to_string() })
}

/// Read a run without taking its lock (for `runs show`).
pub fn read_run(state_dir: &Path, run_id: &str) -> Result<RunRecord, JournalError> {
    let path = Journal::runs_dir(state_dir).join(format!("{run_id}.json"));
    if !path.is_file() {
        return Err(JournalError::NoSuchRun(run_id.to_string(), Journal::runs_dir(state_dir)));
    }
    read(&path)
}

/// Every readable run, newest first.
pub fn list_runs(state_dir: &Path) -> Vec<RunRecord> {
    let Ok(entries) = fs::read_dir(Journal::runs_dir(state_dir)) else { return Vec::new() };
    let mut runs: Vec<RunRecord> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read(&p).ok())
        .collect();
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.run_id.cmp(&a.run_id)));
    runs
}
