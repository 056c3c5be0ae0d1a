//! What the lock samples of a rehearsal add up to: per relation the strongest
//! lock mode the migration held and the longest stretch of consecutive samples
//! it was held in, the locks it waited for, and the longest statement.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::provider::LockSample;
use crate::runbook::record::{LockHeld, StatementRecord};

/// How often the clone's locks are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// The table lock modes, weakest first, as the server's lock table names them
/// (the modes of the SQL standard's LOCK TABLE as PostgreSQL implements them).
const MODES: [&str; 8] = [
    "AccessShareLock",
    "RowShareLock",
    "RowExclusiveLock",
    "ShareUpdateExclusiveLock",
    "ShareLock",
    "ShareRowExclusiveLock",
    "ExclusiveLock",
    "AccessExclusiveLock",
];

fn strength(mode: &str) -> usize {
    MODES.iter().position(|m| *m == mode).unwrap_or(0)
}

/// `AccessExclusiveLock` → `ACCESS EXCLUSIVE`.
pub fn plain_mode(mode: &str) -> String {
    let core = mode.strip_suffix("Lock").unwrap_or(mode);
    let mut out = String::new();
    for (i, c) in core.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// What a lock of `mode` held on `table` means for the application.
pub fn consequence(mode: &str, table: &str) -> String {
    match plain_mode(mode).as_str() {
        "ACCESS EXCLUSIVE" => format!("in production every read and write of {table} would wait that long"),
        "EXCLUSIVE" | "SHARE ROW EXCLUSIVE" | "SHARE" => {
            format!("in production every write of {table} would wait that long (reads go on)")
        }
        "SHARE UPDATE EXCLUSIVE" => {
            format!("reads and writes of {table} go on; VACUUM and other schema changes of it would wait")
        }
        _ => format!("reads and writes of {table} go on; only schema changes of it would wait"),
    }
}

#[derive(Debug, Clone, Copy)]
struct Track {
    since: Instant,
    last: Instant,
    best: Duration,
}

/// The samples so far.
#[derive(Debug, Default)]
pub struct Observed {
    held: BTreeMap<(String, String), Track>,
    waited: BTreeMap<(String, String), Track>,
    longest: Option<(String, f64)>,
    previous: Option<Instant>,
    pub samples: u32,
    pub errors: u32,
}

fn note(map: &mut BTreeMap<(String, String), Track>, key: (String, String), at: Instant, previous: Option<Instant>) {
    let track = map.entry(key).or_insert(Track { since: at, last: at, best: Duration::ZERO });
    if track.last != at && Some(track.last) != previous {
        // Not seen in the sample before: a new stretch.
        track.since = at;
    }
    track.last = at;
    // Seen in the samples from `since` to `at`: held about one interval more
    // than they span (half an interval before the first, half after the last).
    track.best = track.best.max(at - track.since + SAMPLE_EVERY);
}

impl Observed {
    pub fn add(&mut self, at: Instant, sample: &LockSample) {
        self.samples += 1;
        for l in &sample.locks {
            let key = (l.relation.clone(), l.mode.clone());
            let map = if l.granted { &mut self.held } else { &mut self.waited };
            note(map, key, at, self.previous);
        }
        if let Some((query, secs)) = &sample.longest
            && self.longest.as_ref().is_none_or(|(_, s)| secs > s)
        {
            self.longest = Some((query.clone(), *secs));
        }
        self.previous = Some(at);
    }

    /// Per relation, the strongest mode held and how long; strongest first.
    pub fn locks(&self) -> Vec<LockHeld> {
        strongest(&self.held)
    }

    pub fn waits(&self) -> Vec<LockHeld> {
        strongest(&self.waited)
    }

    pub fn longest_statement(&self) -> Option<StatementRecord> {
        self.longest.as_ref().map(|(q, s)| StatementRecord {
            query: q.chars().take(500).collect(),
            ran_for_ms: (s * 1000.0).max(0.0) as u64,
        })
    }
}

fn strongest(map: &BTreeMap<(String, String), Track>) -> Vec<LockHeld> {
    let mut best: BTreeMap<&str, (&str, Duration)> = BTreeMap::new();
    for ((relation, mode), t) in map {
        let e = best.entry(relation.as_str()).or_insert((mode.as_str(), t.best));
        if strength(mode) > strength(e.0) {
            *e = (mode.as_str(), t.best);
        }
    }
    let mut out: Vec<LockHeld> = best
        .into_iter()
        .map(|(relation, (mode, d))| LockHeld {
            relation: relation.to_string(),
            mode: plain_mode(mode),
            held_for_ms: d.as_millis() as u64,
        })
        .collect();
    out.sort_by_key(|l| (std::cmp::Reverse(strength(&mode_name(&l.mode))), std::cmp::Reverse(l.held_for_ms)));
    out
}

/// `ACCESS EXCLUSIVE` → `AccessExclusiveLock`.
pub fn mode_name(plain: &str) -> String {
    let mut out: String = plain
        .split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next().map_or(String::new(), |f| f.to_string() + &c.as_str().to_ascii_lowercase())
        })
        .collect();
    out.push_str("Lock");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::SeenLock;

    fn sample(locks: &[(&str, &str, bool)]) -> LockSample {
        LockSample {
            locks: locks
                .iter()
                .map(|(r, m, g)| SeenLock { relation: r.to_string(), mode: m.to_string(), granted: *g })
                .collect(),
            longest: None,
        }
    }

    #[test]
    fn consecutive_samples_add_up_and_a_gap_starts_a_new_stretch() {
        let t0 = Instant::now();
        let mut o = Observed::default();
        let ae = ("public.orders", "AccessExclusiveLock", true);
        let rs = ("public.orders", "AccessShareLock", true);
        for i in 0..8 {
            o.add(t0 + SAMPLE_EVERY * i, &sample(&[ae, rs]));
        }
        o.add(t0 + SAMPLE_EVERY * 8, &sample(&[]));
        for i in 9..11 {
            o.add(t0 + SAMPLE_EVERY * i, &sample(&[ae, ("public.items", "RowExclusiveLock", false)]));
        }
        let locks = o.locks();
        assert_eq!(locks[0].relation, "public.orders");
        assert_eq!(locks[0].mode, "ACCESS EXCLUSIVE");
        // Eight samples in a row: 7 intervals spanned, plus one.
        assert_eq!(locks[0].held_for_ms, 2000);
        assert_eq!(locks.len(), 1);
        let waits = o.waits();
        assert_eq!((waits[0].relation.as_str(), waits[0].mode.as_str()), ("public.items", "ROW EXCLUSIVE"));
        assert_eq!(waits[0].held_for_ms, 500);
        assert_eq!(mode_name("SHARE ROW EXCLUSIVE"), "ShareRowExclusiveLock");
        assert!(consequence("AccessExclusiveLock", "public.orders").contains("every read and write"));
    }
}
