//! The environment lock: one ferry changes a database at a time. The lock is
//! the object `locks/<database>.json`, created only if absent, naming its holder;
//! every changing command holds it for its whole life and removes it on the way
//! out, only if it is still the version it wrote. The holder refreshes
//! `heartbeat_at` every minute, so a lock whose heartbeat is old is shown as
//! probably dead; still, only `ferry unlock` (a person's decision, recorded under
//! `locks/history/`) removes a lock ferry did not release itself.
//!
//! Every write of the lock is idempotent. The lock names the run and a nonce
//! drawn once per ferry process: when a conditional write's answer is lost (a
//! 500 or a dropped connection after S3 applied it) and the SDK's retry meets
//! 412, ferry reads the lock back, and a lock with its own run and nonce is its
//! own: the earlier attempt landed, and ferry carries on from that version.
//!
//! The age of a heartbeat is measured by the backend, never by the holder's
//! clock: an S3 object's `Last-Modified` against the `Date` of the answer that
//! carried it (both S3's clock), a local file's mtime against this machine's
//! clock (one clock). `heartbeat_at` is shown, not trusted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{StateError, Store, fingerprint};

/// How often the holder refreshes `heartbeat_at`.
pub const HEARTBEAT: Duration = Duration::from_secs(60);
/// Test-only: the heartbeat interval in whole seconds (1..=60), so that tests
/// with real processes see several heartbeats in a few seconds. Not a setting.
pub const TEST_HEARTBEAT_VAR: &str = "FERRY_TEST_HEARTBEAT_SECONDS";

/// The heartbeat interval: [`HEARTBEAT`], or the test-only override.
fn heartbeat_interval() -> Duration {
    std::env::var(TEST_HEARTBEAT_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| (1..=60).contains(s))
        .map_or(HEARTBEAT, Duration::from_secs)
}

/// This process's nonce: drawn once, written in every lock it takes, so that a
/// lock read back after a lost answer is known to be this process's own.
pub fn process_nonce() -> &'static str {
    static NONCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NONCE.get_or_init(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        // Two independent 64-bit draws and the clock's nanoseconds: unique per
        // process in practice (not a secret; it only tells processes apart).
        format!(
            "{:016x}{:016x}{:08x}",
            fastrand::u64(..),
            fastrand::u64(..) ^ u64::from(std::process::id()),
            now.subsec_nanos()
        )
    })
}
/// A heartbeat older than this is shown as "probably dead".
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Who holds a lock, as written in the lock object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub format_version: u32,
    /// The database the lock protects, as ferry names it.
    pub database: String,
    pub env: String,
    pub run_id: Option<String>,
    pub command: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub ferry_version: String,
    pub ci_url: Option<String>,
    pub since: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// The taking process's nonce ([`process_nonce`]); absent in locks of older ferries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// How long ago the lock object was last written, measured by the backend
    /// (S3's clock, or this machine's for a local file); not part of the lock.
    #[serde(skip)]
    pub written_ago: Option<Duration>,
}

impl Holder {
    pub fn new(database: &str, env: &str, run_id: Option<&str>, command: &str) -> Self {
        let now = Utc::now();
        let actor = crate::provenance::Actor::current();
        Holder {
            format_version: 1,
            database: database.to_string(),
            env: env.to_string(),
            run_id: run_id.map(str::to_string),
            command: command.to_string(),
            user: actor.user,
            host: actor.host,
            pid: std::process::id(),
            ferry_version: crate::provenance::version().to_string(),
            ci_url: crate::provenance::ci_url(),
            since: now,
            heartbeat_at: now,
            nonce: Some(process_nonce().to_string()),
            written_ago: None,
        }
    }

    /// Whether this lock was written by this very process (its nonce), for
    /// `run_id` (or any of `run_ids`).
    fn is_this_process(&self, run_ids: &[Option<&str>]) -> bool {
        self.nonce.as_deref() == Some(process_nonce()) && run_ids.contains(&self.run_id.as_deref())
    }

    /// One line naming the holder, e.g. for "locked by ...".
    pub fn describe(&self) -> String {
        let what = match &self.run_id {
            Some(r) => format!("`ferry {}` (run {r})", self.command),
            None => format!("`ferry {}`", self.command),
        };
        let mut s = format!(
            "{what} by {}@{} pid {}, ferry {}, since {}",
            self.user,
            self.host,
            self.pid,
            self.ferry_version,
            crate::output::timestamp(self.since)
        );
        if let Some(url) = &self.ci_url {
            s.push_str(&format!(", CI run {url}"));
        }
        // The age as the backend measured it; the holder's own `heartbeat_at`
        // is its clock, which may be minutes off (S3 accepts 15).
        let age = self.written_ago.map(|a| crate::config::values::format_duration(Duration::from_secs(a.as_secs())));
        match (self.written_ago, age) {
            (Some(a), Some(age)) if a > STALE_AFTER => {
                s.push_str(&format!("; its last heartbeat was {age} ago, so it is probably dead"));
                return s;
            }
            (_, Some(age)) => s.push_str(&format!("; its last heartbeat was {age} ago")),
            _ => {}
        }
        if self.host == crate::provenance::Actor::current().host && !pid_alive(self.pid) {
            s.push_str(&format!("; pid {} is not running on this host, so it is probably dead", self.pid));
        }
        s
    }
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else { return false };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(e) => e != nix::errno::Errno::ESRCH,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{database} is locked by {}", holder.describe())]
    Held { database: String, holder: Box<Holder> },
    #[error("{database} is locked (the lock {location} exists but cannot be read: {why})")]
    Unreadable { database: String, location: String, why: String },
    #[error("cannot take the lock on {database}: {source}")]
    Backend { database: String, source: StateError },
}

/// The key of a database's lock. Characters outside `[A-Za-z0-9._-]` (paths,
/// URLs) are replaced, and then a fingerprint of the original keeps two names
/// that sanitise alike apart.
pub fn lock_key(database: &str) -> String {
    let clean: String = database
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .collect();
    let clean = clean.trim_matches('_').to_string();
    if clean == database {
        format!("locks/{clean}.json")
    } else {
        let tail: String = clean.chars().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
        format!("locks/{tail}-{}.json", &fingerprint(database.as_bytes())[..8])
    }
}

/// What the lock object holds now, if anything; a lock that cannot be read is an error.
pub fn read(store: &Store, database: &str) -> Result<Option<(Holder, String)>, LockError> {
    let found = inspect(store, database).map_err(|source| LockError::Backend { database: database.into(), source })?;
    match found {
        None => Ok(None),
        Some((Found::Holder(h), etag)) => Ok(Some((h, etag))),
        Some((Found::Unreadable { why, .. }, _)) => Err(LockError::Unreadable {
            database: database.into(),
            location: store.location_of(&lock_key(database)),
            why,
        }),
    }
}

/// What a lock object holds, as `ferry unlock` shows it before removing it.
// One per command, read once: boxing the holder would only complicate the
// patterns that look inside it.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Found {
    Holder(Holder),
    /// Not a lock this ferry can read (damaged, or written by a newer ferry):
    /// its text (the first [`SHOWN_BYTES`]) and why it cannot be read.
    Unreadable {
        text: String,
        why: String,
    },
}

/// How much of an unreadable lock is shown and recorded.
pub const SHOWN_BYTES: usize = 2048;

/// The lock object as it is, readable or not, with its version.
pub fn inspect(store: &Store, database: &str) -> Result<Option<(Found, String)>, StateError> {
    let Some(v) = store.get(&lock_key(database))? else { return Ok(None) };
    let found = match serde_json::from_slice::<Holder>(&v.body) {
        Ok(h) => Found::Holder(Holder { written_ago: v.written_ago, ..h }),
        Err(e) => {
            let shown = &v.body[..v.body.len().min(SHOWN_BYTES)];
            Found::Unreadable { text: String::from_utf8_lossy(shown).into_owned(), why: e.to_string() }
        }
    };
    Ok(Some((found, v.etag)))
}

/// A held lock; released when dropped.
pub struct EnvLock {
    inner: Arc<Inner>,
    beat: Option<std::thread::JoinHandle<()>>,
    stop: Option<std::sync::mpsc::Sender<()>>,
}

struct Inner {
    store: Store,
    key: String,
    database: String,
    state: Mutex<(Holder, String)>,
}

impl EnvLock {
    /// Take the lock, or say who has it.
    pub fn acquire(store: &Store, holder: Holder) -> Result<EnvLock, LockError> {
        let database = holder.database.clone();
        let key = lock_key(&database);
        let body = serde_json::to_vec_pretty(&holder).unwrap_or_default();
        let backend = |source| LockError::Backend { database: database.clone(), source };
        let created = match store.create(&key, &body) {
            Ok(Some(etag)) => Some(etag),
            Ok(None) => None,
            // No clear answer (the connection dropped, a 500 after the SDK's
            // retries): the create may have landed. A lock of this process's
            // is ours; anything else is the error.
            Err(e) => match own_version(store, &key, &holder, &[holder.run_id.as_deref()]) {
                Some(etag) if !held_here().contains(&store.location_of(&key)) => Some(etag),
                _ => return Err(backend(e)),
            },
        };
        let etag = match created {
            Some(etag) => etag,
            None => match read(store, &database)? {
                // The create's first attempt landed and its answer was lost; the
                // SDK's retry met our own lock (412). Unless a live guard of this
                // very process holds it already: that is a second taking, refused.
                Some((found, etag))
                    if found.is_this_process(&[holder.run_id.as_deref()])
                        && !held_here().contains(&store.location_of(&key)) =>
                {
                    etag
                }
                Some((holder, _)) => return Err(LockError::Held { database, holder: Box::new(holder) }),
                // Released between our create and our read: say so rather than retry
                // forever; the caller's next attempt will most likely win.
                None => {
                    return Err(LockError::Backend {
                        database,
                        source: StateError("the lock was released while ferry was taking it; try again".into()),
                    });
                }
            },
        };
        held_here().insert(store.location_of(&key));
        let inner = Arc::new(Inner { store: store.clone(), key, database, state: Mutex::new((holder, etag)) });
        let (stop, beat) = heartbeat(inner.clone());
        Ok(EnvLock { inner, beat: Some(beat), stop: Some(stop) })
    }

    pub fn holder(&self) -> Holder {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    pub fn location(&self) -> String {
        self.inner.store.location_of(&self.inner.key)
    }

    /// Name the run that holds the lock (a lock taken before the run id existed).
    pub fn set_run(&self, run_id: &str) -> Result<(), StateError> {
        self.inner.rewrite(|h| h.run_id = Some(run_id.to_string()))
    }
}

/// The locks (by location) live guards of this process hold: a lock read back
/// as this process's own is adopted only when no guard here holds it.
fn held_here() -> std::sync::MutexGuard<'static, std::collections::HashSet<String>> {
    static HELD: std::sync::OnceLock<Mutex<std::collections::HashSet<String>>> = std::sync::OnceLock::new();
    HELD.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// The version of the lock at `key` when it is `holder`'s own, written by this
/// process for one of `run_ids`: what a write whose answer was lost left.
fn own_version(store: &Store, key: &str, holder: &Holder, run_ids: &[Option<&str>]) -> Option<String> {
    let v = store.get(key).ok()??;
    let found: Holder = serde_json::from_slice(&v.body).ok()?;
    (found.database == holder.database && found.is_this_process(run_ids)).then_some(v.etag)
}

impl Inner {
    fn rewrite(&self, change: impl FnOnce(&mut Holder)) -> Result<(), StateError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut holder = state.0.clone();
        change(&mut holder);
        let body = serde_json::to_vec_pretty(&holder).unwrap_or_default();
        let old_run = state.0.run_id.clone();
        let runs = [old_run.as_deref(), holder.run_id.as_deref()];
        // At most a few rounds: a write of ours whose answer was lost moves the
        // version on; the next round writes on top of it.
        let mut etag = state.1.clone();
        for _ in 0..3 {
            let written = self.store.replace(&self.key, &body, &etag);
            match written {
                Ok(Some(new)) => {
                    *state = (holder, new);
                    return Ok(());
                }
                Ok(None) | Err(_) => match self.store.get(&self.key) {
                    // Exactly what we meant to write: the attempt landed.
                    Ok(Some(v)) if v.body == body => {
                        *state = (holder, v.etag);
                        return Ok(());
                    }
                    Ok(Some(v)) => {
                        let ours = serde_json::from_slice::<Holder>(&v.body)
                            .is_ok_and(|f| f.database == holder.database && f.is_this_process(&runs));
                        if !ours {
                            return Err(StateError(format!(
                                "the lock {} was removed or replaced by someone else (ferry unlock?)",
                                self.store.location_of(&self.key)
                            )));
                        }
                        // An earlier write of ours landed unseen: write over that
                        // version (remembered even if this call ends in an error).
                        etag = v.etag;
                        state.1 = etag.clone();
                        written?;
                    }
                    Ok(None) => {
                        return Err(StateError(format!(
                            "the lock {} was removed or replaced by someone else (ferry unlock?)",
                            self.store.location_of(&self.key)
                        )));
                    }
                    Err(e) => return Err(written.err().unwrap_or(e)),
                },
            }
        }
        Err(StateError(format!("the lock {} keeps changing under ferry", self.store.location_of(&self.key))))
    }
}

/// Refresh the heartbeat every [`HEARTBEAT`]. A failed refresh is retried with
/// backoff (5 s doubling, never longer than the interval) and warned about each
/// time; only a lock that is no longer ferry's own (someone ran `ferry unlock`)
/// ends the heartbeat, and that is said too.
fn heartbeat(inner: Arc<Inner>) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let interval = heartbeat_interval();
    let handle = std::thread::spawn(move || {
        let mut wait = interval;
        let mut failing_since: Option<std::time::Instant> = None;
        let mut retry = Duration::from_secs(5).min(interval);
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(wait) {
            match inner.rewrite(|h| h.heartbeat_at = Utc::now()) {
                Ok(()) => {
                    if let Some(since) = failing_since.take() {
                        eprintln!(
                            "ferry: the lock on {} is refreshed again (its heartbeat could not be written for {}s)",
                            inner.database,
                            since.elapsed().as_secs()
                        );
                    }
                    wait = interval;
                    retry = Duration::from_secs(5).min(interval);
                }
                Err(e) if e.0.contains("removed or replaced") => {
                    eprintln!(
                        "warning: the lock on {} is no longer ferry's own: {e}; ferry stops refreshing it, and another ferry may now change the database",
                        inner.database
                    );
                    return;
                }
                Err(e) => {
                    let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                    eprintln!(
                        "warning: cannot refresh the lock on {} (failing for {}s): {e}; retrying in {}s — other machines will call this run probably dead after {} without a heartbeat",
                        inner.database,
                        since.elapsed().as_secs(),
                        retry.as_secs(),
                        crate::config::values::format_duration(STALE_AFTER)
                    );
                    wait = retry;
                    retry = (retry * 2).min(interval);
                }
            }
        }
    });
    (tx, handle)
}

impl Drop for EnvLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(b) = self.beat.take() {
            let _ = b.join();
        }
        held_here().remove(&self.location());
        let (holder, etag) = self.inner.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut released = self.inner.store.delete_if(&self.inner.key, &etag);
        // A write of ours whose answer was lost left a version we never saw:
        // when the lock is still this process's, remove that version.
        if !matches!(released, Ok(true))
            && let Some(current) = own_version(&self.inner.store, &self.inner.key, &holder, &[holder.run_id.as_deref()])
            && current != etag
        {
            released = self.inner.store.delete_if(&self.inner.key, &current);
        }
        match released {
            Ok(true) => {}
            Ok(false) => eprintln!(
                "warning: the lock {} was no longer ferry's own (removed or replaced); left as it is",
                self.location()
            ),
            Err(e) => eprintln!(
                "warning: cannot release the lock on {}: {e}; `ferry unlock {}` removes it",
                self.inner.database,
                self.holder().env
            ),
        }
    }
}

/// A lock removed by `ferry unlock`, as recorded under `locks/history/`.
#[derive(Debug, Serialize)]
pub struct Unlocked<'a> {
    pub format_version: u32,
    /// The database whose lock it was.
    pub database: &'a str,
    /// Who held it, when the lock could be read...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<&'a Holder>,
    /// ...or what it held when it could not (its first bytes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<&'a str>,
    pub removed_by: crate::provenance::Actor,
    pub removed_at: DateTime<Utc>,
    pub reason: Option<&'a str>,
}

/// Remove the lock whose content is still `etag` (what the person was shown),
/// after recording the removal. Returns where the record is.
pub fn force_unlock(
    store: &Store,
    database: &str,
    shown: &Found,
    etag: &str,
    reason: Option<&str>,
) -> Result<Option<String>, StateError> {
    let now = Utc::now();
    let (holder, unreadable) = match shown {
        Found::Holder(h) => (Some(h), None),
        Found::Unreadable { text, .. } => (None, Some(text.as_str())),
    };
    let record = Unlocked {
        format_version: 1,
        database,
        holder,
        unreadable,
        removed_by: crate::provenance::Actor::current(),
        removed_at: now,
        reason,
    };
    let key = lock_key(database);
    let stem = key.trim_start_matches("locks/").trim_end_matches(".json");
    let history = format!("locks/history/{stem}-{}.json", now.format("%Y%m%dT%H%M%SZ"));
    store.put(&history, &serde_json::to_vec_pretty(&record).unwrap_or_default())?;
    if store.delete_if(&key, etag)? { Ok(Some(store.location_of(&history))) } else { Ok(None) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_keep_cluster_ids_and_sanitise_paths() {
        assert_eq!(lock_key("acme-prod-aurora"), "locks/acme-prod-aurora.json");
        let a = lock_key("/srv/app/app.db");
        let b = lock_key("/srv/app_app.db");
        assert!(a.starts_with("locks/srv_app_app.db-"), "{a}");
        assert_ne!(a, b, "two paths that sanitise alike keep two locks");
    }

    #[test]
    fn a_second_holder_is_refused_and_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path());
        let first = EnvLock::acquire(&store, Holder::new("db1", "prod", Some("prod-1"), "deploy")).unwrap();
        let err = match EnvLock::acquire(&store, Holder::new("db1", "prod", Some("prod-2"), "deploy")) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("two holders"),
        };
        assert!(err.contains("run prod-1") && err.contains("`ferry deploy`"), "{err}");
        // Another database is another lock.
        let other = EnvLock::acquire(&store, Holder::new("db2", "prod", None, "snapshot delete")).unwrap();
        drop(first);
        drop(other);
        EnvLock::acquire(&store, Holder::new("db1", "prod", Some("prod-3"), "deploy")).unwrap();
    }

    #[test]
    fn a_lock_read_back_as_this_processs_own_is_adopted_unless_a_guard_here_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path());
        // What a create whose answer was lost leaves: our lock, no guard.
        let holder = Holder::new("db1", "prod", Some("prod-1"), "deploy");
        store.create(&lock_key("db1"), &serde_json::to_vec_pretty(&holder).unwrap()).unwrap().unwrap();
        let lock = EnvLock::acquire(&store, holder.clone()).expect("adopted: the earlier attempt landed");
        // A second taking in the same process, same run, is refused.
        assert!(matches!(EnvLock::acquire(&store, holder.clone()), Err(LockError::Held { .. })));
        // Another process's lock (another nonce) is never adopted.
        drop(lock);
        let other = Holder { nonce: Some("another-process".into()), ..holder.clone() };
        store.create(&lock_key("db1"), &serde_json::to_vec_pretty(&other).unwrap()).unwrap().unwrap();
        assert!(matches!(EnvLock::acquire(&store, holder), Err(LockError::Held { .. })));
    }

    #[test]
    fn unlock_removes_only_what_was_shown_and_records_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path());
        let lock = EnvLock::acquire(&store, Holder::new("db1", "prod", Some("prod-1"), "deploy")).unwrap();
        std::mem::forget(lock); // what a SIGKILL leaves behind
        let (holder, etag) = read(&store, "db1").unwrap().unwrap();
        let shown = Found::Holder(holder);
        assert_eq!(force_unlock(&store, "db1", &shown, "stale-etag", None).unwrap(), None);
        let at = force_unlock(&store, "db1", &shown, &etag, Some("runner died")).unwrap().unwrap();
        assert!(std::fs::read_to_string(at).unwrap().contains("runner died"));
        assert!(read(&store, "db1").unwrap().is_none());
    }

    #[test]
    fn an_unreadable_lock_still_locks_and_unlock_removes_it_recording_its_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::local(dir.path());
        store.put(&lock_key("db1"), b"{\"format_version\": 9, \"from\": \"a newer ferry\"").unwrap();
        let refused = EnvLock::acquire(&store, Holder::new("db1", "prod", None, "deploy")).err().unwrap();
        assert!(matches!(refused, LockError::Unreadable { .. } | LockError::Held { .. }), "{refused}");
        let (found, etag) = inspect(&store, "db1").unwrap().unwrap();
        let Found::Unreadable { text, .. } = &found else { panic!("{found:?}") };
        assert!(text.contains("a newer ferry"));
        let at = force_unlock(&store, "db1", &found, &etag, None).unwrap().unwrap();
        assert!(std::fs::read_to_string(at).unwrap().contains("a newer ferry"), "the record keeps what was removed");
        assert!(inspect(&store, "db1").unwrap().is_none());
        EnvLock::acquire(&store, Holder::new("db1", "prod", None, "deploy")).unwrap();
    }
}
