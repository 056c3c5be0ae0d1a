//! The local state backend: a directory (0700) of JSON files (0600). Writes go
//! through a temp file unique to the writer, fsync and rename, so a reader sees
//! a whole file or none; creation is exclusive (`O_EXCL`).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{Listed, StateError, Versioned, fingerprint};

static ORIGINAL_UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();

/// Make every file and directory ferry creates private to its user (umask
/// 077): journals, locks, snapshot copies and dumps, task logs. Called once at
/// start-up; the umask the user had is kept for the processes ferry runs for
/// them (see [`user_umask`]).
pub fn private_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o077));
    let _ = ORIGINAL_UMASK.set(old.bits() as u32);
}

/// The umask the user had before [`private_umask`] (022 when it was not called).
pub fn user_umask() -> u32 {
    ORIGINAL_UMASK.get().copied().unwrap_or(0o022)
}

/// Run `f` (a spawn) with `mask` as the umask, then go back to 077.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    use nix::sys::stat::{Mode, umask};
    umask(Mode::from_bits_truncate(mask as nix::libc::mode_t));
    let out = f();
    umask(Mode::from_bits_truncate(0o077));
    out
}

#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

/// Create `dir` and its missing parents 0700 (existing ones are left as they are).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A directory in a place other users can write to (`$TMPDIR`), made or
/// accepted only when it is ferry's user's own: created 0700 when absent;
/// refused when it is a symbolic link, not a directory, owned by another user,
/// or writable by group or others (any of them could swap or read what ferry
/// writes there). One of ours that is readable by others is made 0700.
pub fn owned_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |why: String| std::io::Error::new(ErrorKind::PermissionDenied, format!("{}: {why}", dir.display()));
    let meta = match fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                private_dir(parent)?;
            }
            // Not recursive: exclusive, so a directory someone made in between
            // is not taken for ours; it is checked below like any other.
            match DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            fs::symlink_metadata(dir)?
        }
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Err(refuse("is a symbolic link; ferry writes only into a directory of its own".into()));
    }
    if !meta.is_dir() {
        return Err(refuse("is not a directory".into()));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(refuse(format!("is owned by uid {}, not by ferry's user (uid {me})", meta.uid())));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(format!("is writable by group or others (mode {mode:04o}); remove it or make it 0700")));
    }
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Write `body` to `path` atomically, 0600, via a temp file no other writer uses.
pub fn write_private(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = unique_tmp(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(parent) = path.parent() {
            // The rename itself must survive a power loss.
            File::open(parent).and_then(|d| d.sync_all()).ok();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `<path>.<pid>.<random>.tmp`: never shared by two writers.
pub fn unique_tmp(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    path.with_file_name(name)
}

impl LocalStore {
    pub fn new(dir: &Path) -> Self {
        LocalStore { dir: dir.to_path_buf() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    fn err(&self, what: &str, key: &str, e: std::io::Error) -> StateError {
        StateError(format!("cannot {what} {}: {e}", self.path(key).display()))
    }

    fn ensure_parent(&self, key: &str) -> Result<PathBuf, StateError> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            private_dir(&self.dir).map_err(|e| self.err("create the state directory for", key, e))?;
            // A state directory made by an older ferry (0755) becomes private.
            if let Ok(meta) = fs::metadata(&self.dir)
                && meta.permissions().mode() & 0o077 != 0
            {
                let _ = fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700));
            }
            private_dir(parent).map_err(|e| self.err("create the directory of", key, e))?;
        }
        Ok(path)
    }

    pub fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        let read = File::open(self.path(key)).and_then(|mut f| {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut body)?;
            Ok((body, f.metadata()?.modified().ok()))
        });
        match read {
            Ok((body, modified)) => {
                let etag = fingerprint(&body);
                // One clock: the file's mtime and now are both this machine's.
                let written_ago = modified.map(|m| std::time::SystemTime::now().duration_since(m).unwrap_or_default());
                Ok(Some(Versioned { body, etag, written_ago }))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("read", key, e)),
        }
    }

    pub fn put(&self, key: &str, body: &[u8]) -> Result<String, StateError> {
        let path = self.ensure_parent(key)?;
        write_private(&path, body).map_err(|e| self.err("write", key, e))?;
        Ok(fingerprint(body))
    }

    pub fn create(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError> {
        let path = self.ensure_parent(key)?;
        // Written in full under a temp name, then linked into place: the link
        // fails if the name exists, so the key is never seen half-written and
        // two creators cannot both win.
        let tmp = unique_tmp(&path);
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(body)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.err("write", key, e));
        }
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(Some(fingerprint(body))),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
            Err(e) => Err(self.err("create", key, e)),
        }
    }

    pub fn replace(&self, key: &str, body: &[u8], etag: &str) -> Result<Option<String>, StateError> {
        match self.get(key)? {
            Some(v) if v.etag == etag => self.put(key, body).map(Some),
            _ => Ok(None),
        }
    }

    pub fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StateError> {
        match self.get(key)? {
            Some(v) if v.etag == etag => match fs::remove_file(self.path(key)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
                Err(e) => Err(self.err("remove", key, e)),
            },
            _ => Ok(false),
        }
    }

    pub fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<Listed>, StateError> {
        let entries = match fs::read_dir(self.path(dir)) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", dir, e)),
        };
        let mut keys = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.err("list", dir, e))?;
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else { continue };
            if !name.starts_with(name_prefix) || name.ends_with(".tmp") {
                continue;
            }
            let modified =
                entry.metadata().ok().and_then(|m| m.modified().ok()).map(chrono::DateTime::<chrono::Utc>::from);
            keys.push(Listed { key: format!("{dir}/{name}"), modified });
        }
        keys.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn create_is_exclusive_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(&dir.path().join("state"));
        let etag = store.create("locks/db.json", b"one").unwrap().unwrap();
        assert_eq!(store.create("locks/db.json", b"two").unwrap(), None, "a second create must not win");
        assert_eq!(store.get("locks/db.json").unwrap().unwrap().body, b"one");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("state")), 0o700);
        assert_eq!(mode(&dir.path().join("state/locks")), 0o700);
        assert_eq!(mode(&dir.path().join("state/locks/db.json")), 0o600);
        assert_eq!(store.replace("locks/db.json", b"x", "wrong").unwrap(), None);
        assert!(!store.delete_if("locks/db.json", "wrong").unwrap());
        let etag2 = store.replace("locks/db.json", b"three", &etag).unwrap().unwrap();
        assert!(store.delete_if("locks/db.json", &etag2).unwrap());
        assert!(store.get("locks/db.json").unwrap().is_none());
    }

    #[test]
    fn a_shared_directory_is_used_only_when_it_is_ferrys_own() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let made = dir.path().join("made");
        owned_private_dir(&made).unwrap();
        assert_eq!(mode(&made), 0o700);
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(owned_private_dir(&open).unwrap_err().to_string().contains("writable by group or others"));
        let sticky = dir.path().join("sticky");
        fs::create_dir(&sticky).unwrap();
        fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(owned_private_dir(&sticky).is_err());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&made, &link).unwrap();
        assert!(owned_private_dir(&link).unwrap_err().to_string().contains("symbolic link"));
        let readable = dir.path().join("readable");
        fs::create_dir(&readable).unwrap();
        fs::set_permissions(&readable, fs::Permissions::from_mode(0o755)).unwrap();
        owned_private_dir(&readable).unwrap();
        assert_eq!(mode(&readable), 0o700, "ours, tightened");
    }

    #[test]
    fn concurrent_creates_have_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let store = store.clone();
                    s.spawn(move || store.create("locks/x.json", format!("{i}").as_bytes()).unwrap().is_some())
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
    }
}
