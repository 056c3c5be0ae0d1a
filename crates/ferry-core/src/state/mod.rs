//! Where ferry keeps what must outlive one process and be seen from any machine:
//! run records (`runs/<run-id>.json`) and environment locks
//! (`locks/<database>.json`). Two backends behind one interface:
//!
//! - a local directory, `.ferry/` beside ferry.toml by default (`state_dir`),
//!   created 0700 with files 0600;
//! - an S3 prefix, `state = "s3://BUCKET/PREFIX"` (or `FERRY_STATE`), so a CI
//!   runner that is thrown away, a release engineer's laptop and a responder's
//!   laptop see the same runs and the same locks. Locks are created with a
//!   conditional write (`If-None-Match: *`) and removed or refreshed only with
//!   `If-Match` on the holder's ETag.
//!
//! Every call is synchronous on purpose: a journal write is a barrier that a run
//! does not pass until the record is durable, and the runbook's many step
//! boundaries call it from plain (non-async) code.

mod local;
pub mod lock;
pub use local::{owned_private_dir, private_dir, private_umask, unique_tmp, user_umask, with_umask, write_private};

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use lock::{EnvLock, Holder, LockError};

/// Where state lives, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Location {
    /// `s3://BUCKET[/PREFIX]`; anything else is not an S3 location.
    pub fn parse_s3(text: &str) -> Result<Location, String> {
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(format!("state {text:?} must be an S3 URL, s3://BUCKET/PREFIX"));
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "state {text:?}: {bucket:?} is not an S3 bucket name (3-63 lowercase letters, digits, hyphens, dots)"
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..") || prefix.contains("//") {
            return Err(format!("state {text:?}: the prefix {prefix:?} has an empty, `.` or `..` part"));
        }
        Ok(Location::S3 { bucket: bucket.to_string(), prefix: prefix.to_string() })
    }

    pub fn describe(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            Location::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// A state backend that cannot be read or written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// An object and the tag that changes whenever it is rewritten.
pub struct Versioned {
    pub body: Vec<u8>,
    pub etag: String,
    /// How long ago it was last written, by the backend's own clock: S3's
    /// `Last-Modified` against the answer's `Date` (both S3's clock), a local
    /// file's mtime against now (this machine's). `None` when the backend did
    /// not say. Never the writer's clock.
    pub written_ago: Option<std::time::Duration>,
}

/// A key of a listing and when the backend last wrote it (S3's `LastModified`,
/// a local file's mtime), `None` when the backend did not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A state backend on another machine (the S3 store in `ferry-aws`): the
/// operations [`Store`] needs, each with the same contract as there. The calls
/// block; a backend with an async client runs them on its own runtime.
pub trait RemoteStore: Send + Sync {
    /// Where it is, for messages (`s3://bucket/prefix`).
    fn describe(&self) -> String;
    /// Where one key is, for messages.
    fn url(&self, key: &str) -> String;
    fn get(&self, key: &str) -> Result<Option<Versioned>, StateError>;
    /// Write; with `if_match`, only over that version (`Ok(None)` when it changed or is gone).
    fn put(&self, key: &str, body: &[u8], if_match: Option<&str>) -> Result<Option<String>, StateError>;
    /// Create only if absent: `Ok(None)` when the key already exists.
    fn create(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError>;
    /// Remove only if unchanged since `etag`: `Ok(false)` when it changed or is gone.
    fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StateError>;
    /// The keys directly under `dir/` starting with `name_prefix`, complete or an error.
    fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<Listed>, StateError>;
}

/// One state backend. Cheap to clone.
#[derive(Clone)]
pub enum Store {
    Local(local::LocalStore),
    Remote(Arc<dyn RemoteStore>),
}

impl Store {
    pub fn local(dir: &Path) -> Store {
        Store::Local(local::LocalStore::new(dir))
    }

    /// Where this backend is, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(l) => l.dir().display().to_string(),
            Store::Remote(s) => s.describe(),
        }
    }

    /// Where one key is, for messages.
    pub fn location_of(&self, key: &str) -> String {
        match self {
            Store::Local(l) => l.path(key).display().to_string(),
            Store::Remote(s) => s.url(key),
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Store::Local(_))
    }

    pub fn get(&self, key: &str) -> Result<Option<Versioned>, StateError> {
        match self {
            Store::Local(l) => l.get(key),
            Store::Remote(s) => s.get(key),
        }
    }

    /// Write, replacing what is there.
    pub fn put(&self, key: &str, body: &[u8]) -> Result<String, StateError> {
        match self {
            Store::Local(l) => l.put(key, body),
            Store::Remote(s) => s.put(key, body, None).map(Option::unwrap_or_default),
        }
    }

    /// Create only if absent: `Ok(None)` when the key already exists.
    pub fn create(&self, key: &str, body: &[u8]) -> Result<Option<String>, StateError> {
        match self {
            Store::Local(l) => l.create(key, body),
            Store::Remote(s) => s.create(key, body),
        }
    }

    /// Rewrite only if unchanged since `etag`: `Ok(None)` when it changed or is gone.
    pub fn replace(&self, key: &str, body: &[u8], etag: &str) -> Result<Option<String>, StateError> {
        match self {
            Store::Local(l) => l.replace(key, body, etag),
            Store::Remote(s) => s.put(key, body, Some(etag)),
        }
    }

    /// Remove only if unchanged since `etag`: `Ok(false)` when it changed or is gone.
    pub fn delete_if(&self, key: &str, etag: &str) -> Result<bool, StateError> {
        match self {
            Store::Local(l) => l.delete_if(key, etag),
            Store::Remote(s) => s.delete_if(key, etag),
        }
    }

    /// The keys directly under `dir/` whose name starts with `name_prefix`,
    /// sorted. A listing is complete or an error, never shorter than the truth.
    pub fn list(&self, dir: &str, name_prefix: &str) -> Result<Vec<String>, StateError> {
        Ok(self.list_dated(dir, name_prefix)?.into_iter().map(|l| l.key).collect())
    }

    /// As [`Store::list`], with when the backend last wrote each key.
    pub fn list_dated(&self, dir: &str, name_prefix: &str) -> Result<Vec<Listed>, StateError> {
        match self {
            Store::Local(l) => l.list(dir, name_prefix),
            Store::Remote(s) => s.list(dir, name_prefix),
        }
    }
}

/// A short, stable, non-cryptographic fingerprint (FNV-1a, 64 bit) used as the
/// local backend's ETag and to keep sanitised lock names apart.
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_locations_parse_and_bad_ones_say_why() {
        assert_eq!(
            Location::parse_s3("s3://acme-ferry-state/prod/ferry/").unwrap(),
            Location::S3 { bucket: "acme-ferry-state".into(), prefix: "prod/ferry".into() }
        );
        assert_eq!(
            Location::parse_s3("s3://acme-state").unwrap(),
            Location::S3 { bucket: "acme-state".into(), prefix: String::new() }
        );
        assert!(Location::parse_s3("s3://Upper/x").unwrap_err().contains("not an S3 bucket name"));
        assert!(Location::parse_s3("s3://ok-bucket/a/../b").unwrap_err().contains("`..`"));
        assert!(Location::parse_s3("/tmp/x").unwrap_err().contains("s3://BUCKET/PREFIX"));
    }
}
