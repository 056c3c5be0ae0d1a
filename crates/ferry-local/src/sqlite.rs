//! SQLite, bundled into the binary. Snapshots are made with SQLite's online
//! backup API (consistent while the app writes). A restore never loses the failed
//! database: it is hard-linked aside as `<stem>-failed-<ts>-<run hex>.<ext>` (same inode,
//! nothing copied), then the restored copy is renamed over the original path in
//! one atomic step, so the original path always names a whole database.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use fallible_iterator::FallibleIterator;
use rusqlite::{Connection, OpenFlags};

use super::snapshots::{self, Entry, SnapshotStore, Stored, blocking, io_err, remove_if_exists};
use ferry_core::provider::{ClusterInfo, Database, PResult, ProviderError, Snapshot, SnapshotQuota, TAG_RUN_ID, Tags};

mod rehearsal;

pub struct SqliteDatabase {
    /// Absolute path of the environment's database file.
    path: PathBuf,
    id: String,
    store: SnapshotStore,
}

/// The files that belong to one SQLite database.
fn companions(path: &Path) -> [PathBuf; 2] {
    let s = path.as_os_str().to_owned();
    let with = |suffix: &str| {
        let mut p = s.clone();
        p.push(suffix);
        PathBuf::from(p)
    };
    [with("-wal"), with("-shm")]
}

fn sql_err(what: &str) -> impl Fn(rusqlite::Error) -> ProviderError + '_ {
    move |e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            ProviderError::Busy(format!("{what}: database is busy"))
        }
        _ => ProviderError::Other(format!("{what}: {e}")),
    }
}

/// Copy a live database consistently into `dest`, which must not exist: the
/// copy is made under a temp name no other writer uses, given `like`'s mode and
/// owner (or 0600 when `like` is `None`), synced, then linked into place, which
/// fails rather than replace anything already at `dest`.
fn backup_file(src: &Path, dest: &Path, like: Option<&Path>) -> PResult<()> {
    let from = Connection::open_with_flags(src, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(sql_err("opening the database"))?;
    let tmp = ferry_core::state::unique_tmp(dest);
    let result = (|| {
        {
            let mut to = Connection::open(&tmp).map_err(sql_err("creating the copy"))?;
            let backup = rusqlite::backup::Backup::new(&from, &mut to).map_err(sql_err("starting the backup"))?;
            backup.run_to_completion(256, Duration::from_millis(5), None).map_err(sql_err("copying the database"))?;
        }
        take_mode_and_owner(&tmp, like)?;
        fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io_err("syncing the copy", e))?;
        match fs::hard_link(&tmp, dest) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(ProviderError::Rejected(format!(
                "{} already exists; ferry never overwrites a database file or snapshot",
                dest.display()
            ))),
            Err(e) => Err(io_err("moving the copy into place", e)),
        }
    })();
    let _ = fs::remove_file(&tmp);
    for c in companions(&tmp) {
        let _ = fs::remove_file(c);
    }
    result
}

/// Give `path` the permission bits and owner of `like` (a restored database
/// keeps the original's), or 0600 (ferry's own copies).
fn take_mode_and_owner(path: &Path, like: Option<&Path>) -> PResult<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = like.and_then(|l| fs::metadata(l).ok());
    let mode = meta.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_err("setting the copy's mode", e))?;
    if let Some(m) = meta {
        // Only root may give a file away; as the owner already, this is a no-op.
        let _ = std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()));
    }
    Ok(())
}

impl SqliteDatabase {
    /// `ferry:run-id` as the run mark records it, for a leftover.
    fn marked_tags(&self, id: &str) -> Tags {
        read_mark(Path::new(id)).map(|r| Tags::from([(TAG_RUN_ID.to_string(), r)])).unwrap_or_default()
    }

    pub fn new(path: PathBuf, store: SnapshotStore) -> Self {
        let id = path.display().to_string();
        SqliteDatabase { path, id, store }
    }

    /// `db exec`: run SQL statements in order; rows of statements that return
    /// rows are given back as tab-separated lines with a header.
    pub fn exec(&self, sql: &str, create: bool) -> PResult<Vec<String>> {
        if !create && !self.path.is_file() {
            return Err(ProviderError::NotFound(format!("database file {}", self.path.display())));
        }
        let conn = Connection::open(&self.path).map_err(sql_err("opening the database"))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql_err("configuring the connection"))?;
        let mut out = Vec::new();
        let mut batch = rusqlite::Batch::new(&conn, sql);
        let mut done = 0;
        // SQL errors after applied statements are `Rejected`: those stay applied.
        let failed = |done: usize| {
            move |e: rusqlite::Error| match done {
                0 => ProviderError::Other(format!("SQL error in statement 1: {e}")),
                1 => ProviderError::Rejected(format!(
                    "SQL error in statement 2: {e} (the statement before it was applied)"
                )),
                n => ProviderError::Rejected(format!(
                    "SQL error in statement {}: {e} (the {n} statements before it were applied)",
                    n + 1
                )),
            }
        };
        while let Some(mut stmt) = batch.next().map_err(failed(done))? {
            done += 1;
            let columns = stmt.column_count();
            if columns == 0 {
                stmt.raw_execute().map_err(failed(done - 1))?;
                continue;
            }
            out.push(stmt.column_names().join("\t"));
            let mut rows = stmt.raw_query();
            while let Some(row) = rows.next().map_err(failed(done - 1))? {
                let cells: Vec<String> = (0..columns)
                    .map(|i| match row.get_ref(i) {
                        Ok(rusqlite::types::ValueRef::Null) => "NULL".into(),
                        Ok(rusqlite::types::ValueRef::Integer(v)) => v.to_string(),
                        Ok(rusqlite::types::ValueRef::Real(v)) => v.to_string(),
                        Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
                        Ok(rusqlite::types::ValueRef::Blob(b)) => format!("<{} bytes>", b.len()),
                        Err(e) => format!("<{e}>"),
                    })
                    .collect();
                out.push(cells.join("\t"));
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Database for SqliteDatabase {
    fn cluster_id(&self) -> &str {
        &self.id
    }

    fn sibling_id(&self, suffix: &str) -> String {
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = match self.path.extension() {
            Some(ext) => format!("{stem}-{suffix}.{}", ext.to_string_lossy()),
            None => format!("{stem}-{suffix}"),
        };
        self.path.with_file_name(name).display().to_string()
    }

    async fn describe(&self, id: &str) -> PResult<Option<ClusterInfo>> {
        let path = Path::new(id);
        Ok(path.is_file().then(|| ClusterInfo {
            id: id.to_string(),
            status: "available".into(),
            endpoint: Some(path.display().to_string()),
            engine: "sqlite".into(),
            pending_instances: Vec::new(),
        }))
    }

    async fn run_of(&self, id: &str) -> PResult<Option<String>> {
        if !Path::new(id).is_file() {
            return Ok(None);
        }
        Ok(read_mark(Path::new(id)))
    }

    async fn create_snapshot(&self, id: &str, tags: &Tags) -> PResult<Snapshot> {
        if let Some(existing) = self.store.get(id)? {
            return Ok(existing.snapshot);
        }
        if !self.path.is_file() {
            return Err(ProviderError::NotFound(format!("database file {}", self.path.display())));
        }
        let file = self.store.data_path(id, "sqlite3");
        let snapshot = snapshots::available(id, &self.id, tags);
        let entry = Entry { snapshot: snapshot.clone(), stored: Stored::SqliteFile { file: file.clone() } };
        let (src, store) = (self.path.clone(), self.store.clone());
        blocking(move || {
            ferry_core::state::private_dir(store.dir()).map_err(|e| io_err("creating the snapshot directory", e))?;
            // A copy under this id without metadata is what a killed attempt of
            // this same snapshot left, whole (copies are linked into place only
            // when complete): the id carries the run, so it is adopted.
            if !file.is_file() {
                backup_file(&src, &file, None)?;
            }
            store.create(&entry)
        })
        .await?;
        // Created by someone else in between: report theirs, never ours over it.
        match self.store.get(id)? {
            Some(e) => Ok(e.snapshot),
            None => Ok(snapshot),
        }
    }

    async fn describe_snapshot(&self, id: &str) -> PResult<Option<Snapshot>> {
        self.store.describe(id)
    }

    async fn list_snapshots(&self) -> PResult<Vec<Snapshot>> {
        self.store.snapshots(&self.id)
    }

    async fn delete_snapshot(&self, id: &str) -> PResult<()> {
        if let Stored::SqliteFile { file } = &self.store.entry(id)?.stored {
            remove_if_exists(file, "removing the snapshot file")?;
        }
        self.store.remove(id)
    }

    async fn snapshot_quota(&self) -> PResult<Option<SnapshotQuota>> {
        Ok(None)
    }

    async fn restore_snapshot(&self, snapshot_id: &str, target: &str, tags: &Tags) -> PResult<()> {
        let target_id = target.to_string();
        let target = PathBuf::from(target);
        if target.exists() {
            return Ok(());
        }
        let Stored::SqliteFile { file } = self.store.entry(snapshot_id)?.stored else {
            return Err(ProviderError::Rejected(format!("snapshot {snapshot_id} is not a SQLite snapshot")));
        };
        if !file.is_file() {
            return Err(ProviderError::NotFound(format!("snapshot file {}", file.display())));
        }
        // The run is recorded before the copy takes the name.
        if let Some(run_id) = tags.get(ferry_core::provider::TAG_RUN_ID) {
            write_mark(Path::new(&target_id), run_id)?;
        }
        let like = self.path.clone();
        blocking(move || backup_file(&file, &target, Some(&like))).await
    }

    async fn leftovers(&self) -> PResult<Vec<ferry_core::provider::Leftover>> {
        let Some(dir) = self.path.parent() else { return Ok(Vec::new()) };
        let stem = self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = self.path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        let entries = fs::read_dir(dir).map_err(|e| io_err("listing the database's directory", e))?;
        let mut out = Vec::new();
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(base) =
                name.strip_suffix(ext.as_str()).filter(|_| !ext.is_empty()).or(ext.is_empty().then_some(name.as_str()))
            else {
                continue;
            };
            if let Some(kind) = ferry_core::provider::leftover_kind(&stem, base) {
                let id = e.path().display().to_string();
                out.push(ferry_core::provider::Leftover {
                    tags: self.marked_tags(&id),
                    id,
                    kind,
                    status: "available".into(),
                    note: None,
                });
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn clone_for_rehearsal(&self, name: &str, tags: &Tags) -> PResult<ferry_core::provider::CloneState> {
        let (src, name, tags) = (self.path.clone(), name.to_string(), tags.clone());
        let made = blocking(move || rehearsal::make_clone(&src, Path::new(&name), &tags)).await?;
        Ok(ferry_core::provider::CloneState::Ready(made))
    }

    async fn delete_rehearsal_clone(&self, id: &str, run_id: &str) -> PResult<Option<String>> {
        if Path::new(id) == self.path {
            return Err(ProviderError::Rejected(format!(
                "{id} is the environment's own database; refusing to delete it"
            )));
        }
        let (id, run_id) = (id.to_string(), run_id.to_string());
        blocking(move || rehearsal::delete_clone(Path::new(&id), &run_id)).await.map(|()| None)
    }

    fn clone_removal(&self, id: &str) -> String {
        format!("rm '{id}' '{id}.ferry-rehearsal'")
    }

    async fn lock_observer(
        &self,
        _clone: &ferry_core::provider::CloneInfo,
    ) -> PResult<Box<dyn ferry_core::provider::LockObserver>> {
        Err(ProviderError::Rejected(rehearsal::NOT_OBSERVED.into()))
    }

    async fn rename(&self, from: &str, to: &str, run_id: &str) -> PResult<()> {
        let (from, to) = (PathBuf::from(from), PathBuf::from(to));
        let live = from == self.path;
        let (to_path, run_id) = (to.clone(), run_id.to_string());
        // The run is recorded with the new name just before the file takes it
        // (never for a name that exists already: that is someone's database).
        let mark = move || write_mark(&to_path, &run_id);
        blocking(move || {
            if live {
                // The live database is kept aside by a hard link: its data stays
                // under `to` while the original path keeps working until the
                // restored copy replaces it.
                if to.exists() {
                    return Ok(());
                }
                if !from.is_file() {
                    return Err(ProviderError::NotFound(format!("database file {}", from.display())));
                }
                mark()?;
                for (a, b) in companions(&from).iter().zip(companions(&to).iter()) {
                    if a.exists() {
                        let _ = fs::remove_file(b);
                        fs::hard_link(a, b).map_err(|e| io_err("keeping the database's WAL aside", e))?;
                    }
                }
                return fs::hard_link(&from, &to).map_err(|e| io_err("keeping the failed database aside", e));
            }
            if !from.exists() {
                return if to.exists() {
                    Ok(())
                } else {
                    Err(ProviderError::NotFound(format!("database file {}", from.display())))
                };
            }
            if to.exists() && !kept_elsewhere(&to) {
                return Err(ProviderError::Rejected(format!(
                    "{} already exists and is not kept anywhere else; refusing to overwrite it",
                    to.display()
                )));
            }
            mark()?;
            // The old WAL belongs to the database being replaced (it is linked
            // into the failed copy); left in place SQLite would replay it into
            // the restored file.
            for c in companions(&to) {
                match fs::remove_file(&c) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("removing the replaced database's WAL", e)),
                }
            }
            fs::rename(&from, &to).map_err(|e| io_err("moving the restored database into place", e))
        })
        .await
    }
}

/// The run mark of a database file (the local stand-in for AWS's
/// `ferry:run-id` tag): `.<file name>.ferry-run-id` beside it, holding the id
/// of the run that made the file or gave it its name. Beside the database,
/// not in `state_dir`: a full state directory does not stop a restore.
fn mark_path(db: &Path) -> PathBuf {
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    db.with_file_name(format!(".{name}.ferry-run-id"))
}

fn write_mark(db: &Path, run_id: &str) -> PResult<()> {
    ferry_core::state::write_private(&mark_path(db), format!("{run_id}\n").as_bytes())
        .map_err(|e| io_err("recording the run beside the database", e))
}

fn read_mark(db: &Path) -> Option<String> {
    let text = fs::read_to_string(mark_path(db)).ok()?;
    let id = text.trim();
    (!id.is_empty()).then(|| id.to_string())
}

/// True when the file has another name (the kept failed copy), so replacing this
/// name loses nothing.
fn kept_elsewhere(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).is_ok_and(|m| m.nlink() >= 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::provider::{SnapshotStatus, TAG_ENV};

    fn rows(db: &SqliteDatabase, sql: &str) -> Vec<String> {
        db.exec(sql, false).unwrap()
    }

    #[tokio::test]
    async fn snapshot_then_restore_keeps_the_failed_copy_and_brings_back_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        let db = SqliteDatabase::new(path.clone(), SnapshotStore::new(&dir.path().join(".ferry")));
        fs::File::create(&path).unwrap();
        rows(
            &db,
            "PRAGMA journal_mode=WAL; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'),('b');",
        );

        let tags = Tags::from([(TAG_RUN_ID.to_string(), "r1".to_string()), (TAG_ENV.to_string(), "local".to_string())]);
        let snap = db.create_snapshot("s1", &tags).await.unwrap();
        assert_eq!(snap.status, SnapshotStatus::Available);
        assert_eq!(db.create_snapshot("s1", &tags).await.unwrap(), snap, "idempotent");

        rows(&db, "ALTER TABLE t ADD COLUMN w TEXT; DELETE FROM t WHERE v = 'a';");

        let staging = db.sibling_id("restored-x");
        let failed = db.sibling_id("failed-x");
        assert!(failed.ends_with("/app-failed-x.db"), "{failed}");
        db.restore_snapshot("s1", &staging, &Tags::new()).await.unwrap();
        db.rename(db.cluster_id(), &failed, "run").await.unwrap();
        db.rename(db.cluster_id(), &failed, "run").await.unwrap();
        db.rename(&staging, db.cluster_id(), "run").await.unwrap();
        db.rename(&staging, db.cluster_id(), "run").await.unwrap();

        assert_eq!(rows(&db, "SELECT v FROM t ORDER BY id"), ["v", "a", "b"]);
        assert_eq!(rows(&db, "SELECT count(*) FROM pragma_table_info('t')"), ["count(*)", "2"]);
        let failed_db = SqliteDatabase::new(PathBuf::from(&failed), SnapshotStore::new(dir.path()));
        assert_eq!(rows(&failed_db, "SELECT v FROM t ORDER BY id"), ["v", "b"], "the failed copy is kept as it was");
        assert!(!Path::new(&staging).exists());
    }

    #[tokio::test]
    async fn rename_never_overwrites_a_database_kept_nowhere_else() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.db");
        let b = dir.path().join("b.db");
        fs::write(&a, b"").unwrap();
        fs::write(&b, b"").unwrap();
        let db = SqliteDatabase::new(dir.path().join("live.db"), SnapshotStore::new(dir.path()));
        let err = db.rename(&a.display().to_string(), &b.display().to_string(), "run").await.unwrap_err();
        assert!(matches!(err, ProviderError::Rejected(_)), "{err}");
        assert!(a.exists() && b.exists());
    }
}
