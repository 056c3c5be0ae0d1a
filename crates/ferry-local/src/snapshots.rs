//! Where the local provider keeps its snapshots' metadata:
//! `<state_dir>/snapshots/<id>.json`, next to the data (a SQLite file, a dump) or
//! describing a PostgreSQL template database.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use chrono::Utc;

use ferry_core::provider::{PResult, ProviderError, Snapshot, SnapshotStatus, Tags};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Stored {
    /// A SQLite database file made with the online backup API.
    SqliteFile { file: PathBuf },
    /// A PostgreSQL database created with `CREATE DATABASE … TEMPLATE`.
    PgTemplate { database: String },
    /// A `pg_dump --format=custom` file, used when the template copy was blocked
    /// by other connections.
    PgDump { file: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub snapshot: Snapshot,
    pub stored: Stored,
}

#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

pub fn io_err(what: &str, e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Other(format!("{what}: {e}"))
}

/// File work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> PResult<T> + Send + 'static) -> PResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| io_err("background task", e))?
}

/// Remove a file; one already gone is fine.
pub fn remove_if_exists(path: &Path, what: &str) -> PResult<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(what, e)),
    }
}

/// A local snapshot is whole the moment it exists: available, 100%.
pub fn available(id: &str, cluster_id: &str, tags: &Tags) -> Snapshot {
    Snapshot {
        id: id.to_string(),
        cluster_id: cluster_id.to_string(),
        status: SnapshotStatus::Available,
        percent: 100,
        created_at: Some(Utc::now()),
        tags: tags.clone(),
        kind: Default::default(),
    }
}

impl SnapshotStore {
    pub fn new(state_dir: &Path) -> Self {
        SnapshotStore { dir: state_dir.join("snapshots") }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A path for snapshot data, inside the store.
    pub fn data_path(&self, id: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{id}.{ext}"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The entry of snapshot `id`, which must exist.
    pub fn entry(&self, id: &str) -> PResult<Entry> {
        self.get(id)?.ok_or_else(|| ProviderError::NotFound(format!("snapshot {id}")))
    }

    /// `Database::describe_snapshot` of a local provider.
    pub fn describe(&self, id: &str) -> PResult<Option<Snapshot>> {
        Ok(self.get(id)?.map(|e| e.snapshot))
    }

    /// `Database::list_snapshots` of a local provider: the snapshots of `cluster_id`.
    pub fn snapshots(&self, cluster_id: &str) -> PResult<Vec<Snapshot>> {
        Ok(self.list(cluster_id)?.into_iter().map(|e| e.snapshot).collect())
    }

    pub fn get(&self, id: &str) -> PResult<Option<Entry>> {
        match fs::read_to_string(self.meta_path(id)) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| io_err(&format!("snapshot metadata {} is unreadable", self.meta_path(id).display()), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("reading snapshot metadata", e)),
        }
    }

    /// Write atomically (0600): the entry is either absent or complete.
    pub fn put(&self, entry: &Entry) -> PResult<()> {
        ferry_core::state::private_dir(&self.dir).map_err(|e| io_err("creating the snapshot directory", e))?;
        let path = self.meta_path(&entry.snapshot.id);
        let text = serde_json::to_string_pretty(entry).map_err(|e| io_err("encoding snapshot metadata", e))?;
        ferry_core::state::write_private(&path, text.as_bytes()).map_err(|e| io_err("writing snapshot metadata", e))
    }

    /// Write a new entry; an entry already under that id is left as it is.
    pub fn create(&self, entry: &Entry) -> PResult<()> {
        ferry_core::state::private_dir(&self.dir).map_err(|e| io_err("creating the snapshot directory", e))?;
        let text = serde_json::to_string_pretty(entry).map_err(|e| io_err("encoding snapshot metadata", e))?;
        let store = ferry_core::state::Store::local(&self.dir);
        store
            .create(&format!("{}.json", entry.snapshot.id), text.as_bytes())
            .map_err(|e| io_err("writing snapshot metadata", e))?;
        Ok(())
    }

    pub fn remove(&self, id: &str) -> PResult<()> {
        remove_if_exists(&self.meta_path(id), "removing snapshot metadata")
    }

    /// Entries of one database.
    pub fn list(&self, cluster_id: &str) -> PResult<Vec<Entry>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing snapshots", e)),
        };
        let mut out = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if path.extension().is_some_and(|x| x == "json") {
                let Some(id) = path.file_stem().and_then(|s| s.to_str()) else { continue };
                // One unreadable metadata file must not hide every other
                // snapshot: it is reported and skipped.
                match self.get(id) {
                    Ok(Some(e)) if e.snapshot.cluster_id == cluster_id => out.push(e),
                    Ok(_) => {}
                    Err(e) => eprintln!("warning: {e}; that snapshot is not listed (fix or move the file)"),
                }
            }
        }
        Ok(out)
    }
}
