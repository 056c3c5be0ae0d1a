//! After a restore's swap and before the service resumes: the writes the
//! restore left out of the restored database accounted for (from when to when,
//! and where they are kept), and the database the swap set aside fenced off.
//!
//! The order protects data: first wait until the environment's name resolves
//! to the restored writer (where it resolves from here at all), so a client
//! that cached the old address has had the time to let go of it; then stop the
//! set-aside database (`restore.stop_set_aside`, default on), so a client that
//! still holds the old address fails instead of writing into a database nobody
//! reads. Stopping keeps its storage and deletes nothing; a platform that will
//! not stop it (or an error) is a warning in the run's state, never a failed
//! restore.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::Run;
use super::record::{Discarded, RestoreRecord, SetAside};
use super::wait::call;
use crate::config::values::format_duration;
use crate::output::timestamp;
use crate::provider::Stopped;

/// How long to wait for the environment's name to resolve to the restored
/// writer. DNS answers for a database endpoint are short-lived (seconds), but
/// resolvers and clients may keep them longer.
const DNS_SETTLE_LIMIT: Duration = Duration::from_secs(300);
/// How often to resolve meanwhile.
const DNS_POLL: Duration = Duration::from_secs(2);

/// Record which writes the restored database does not have: those made after
/// the snapshot (or the point in time) and before the swap, kept in `kept_in`.
pub(super) async fn account_discarded(run: &mut Run, names: &RestoreRecord, kept_in: &str) {
    if run.record.restore.as_ref().is_some_and(|r| r.discarded.is_some()) {
        return;
    }
    let from = match names.to_time {
        Some(t) => Some(t),
        None => {
            let db = run.cloud.database.clone();
            let id = names.snapshot_id.clone();
            call("describe the snapshot", || db.describe_snapshot(&id)).await.ok().flatten().and_then(|s| s.created_at)
        }
    };
    let discarded = Discarded { from, until: Utc::now(), kept_in: kept_in.to_string() };
    run.out.info(&format!("    {}", discarded_line(&discarded)));
    if let Some(r) = run.record.restore.as_mut() {
        r.discarded = Some(discarded);
    }
    let _ = run.save();
}

fn discarded_line(d: &Discarded) -> String {
    let from = d.from.map_or_else(|| "the snapshot (its time not given)".to_string(), timestamp);
    format!(
        "writes made from {from} to {} are not in the restored database; they are kept in {}",
        timestamp(d.until),
        d.kept_in
    )
}

/// Wait for the name to settle on the restored database, then stop the
/// set-aside one `failed` (unless configured not to). Recorded, never fatal.
pub(super) async fn fence(run: &mut Run, restored: &str, failed: &str) {
    if run.record.restore.as_ref().and_then(|r| r.set_aside.as_ref()).is_some_and(|s| s.stopped) {
        return;
    }
    let dns_settled = settle_dns(run, restored).await;
    let (stopped, note) = if run.env.restore.stop_set_aside {
        stop(run, failed).await
    } else {
        (
            false,
            "left running (restore.stop_set_aside = false): clients still holding its address can write to it".into(),
        )
    };
    let set_aside = SetAside { id: failed.to_string(), stopped, note, dns_settled };
    let line = format!("    {failed}: {}", set_aside.note);
    if stopped {
        run.out.info(&line)
    } else {
        run.out.warn(line.trim_start())
    }
    if let Some(r) = run.record.restore.as_mut() {
        r.set_aside = Some(set_aside);
    }
    let _ = run.save();
}

async fn stop(run: &Run, failed: &str) -> (bool, String) {
    let db = run.cloud.database.clone();
    let run_id = run.record.run_id.clone();
    match call("stop the set-aside database", || db.stop_set_aside(failed, &run_id)).await {
        Ok(Stopped::Stopped(note)) => (true, format!("stopped (storage kept, nothing deleted){note}")),
        Ok(Stopped::Already) => (true, "already stopped".into()),
        Ok(Stopped::NotPossible(why)) => (false, format!("not stopped: {why}")),
        Err(e) => (false, format!("not stopped: {e}; it keeps running (stop it by hand once nothing needs it)")),
    }
}

/// `Some(true)` once the name clients use resolves only to the restored
/// writer's addresses; `Some(false)` if it still did not after
/// [`DNS_SETTLE_LIMIT`]; `None` where the provider has no names to resolve or
/// they do not resolve from here.
async fn settle_dns(run: &Run, restored: &str) -> Option<bool> {
    let db = run.cloud.database.clone();
    let (name, writer) = call("read the restored database's endpoints", || db.writer_hosts(restored)).await.ok()??;
    let start = Instant::now();
    loop {
        let (seen, wanted) = (resolve(&name).await, resolve(&writer).await);
        if seen.is_empty() || wanted.is_empty() {
            run.out.info(&format!("    {name} does not resolve from here: which database it reaches was not checked"));
            return None;
        }
        if seen.is_subset(&wanted) {
            run.out.info(&format!("    {name} resolves to the restored writer {writer}"));
            return Some(true);
        }
        if start.elapsed() >= DNS_SETTLE_LIMIT {
            run.out.warn(&format!(
                "{name} still resolves to {} after {}, not to the restored writer {writer}: clients may reach the \
                 set-aside database until their resolvers catch up",
                seen.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", "),
                format_duration(DNS_SETTLE_LIMIT)
            ));
            return Some(false);
        }
        run.progress(&format!("DNS of {name}"), "still the set-aside database's address", start.elapsed());
        tokio::time::sleep(DNS_POLL).await;
    }
}

async fn resolve(host: &str) -> BTreeSet<IpAddr> {
    match tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, 0))).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        _ => BTreeSet::new(),
    }
}

/// The window and the fence, for the closing `state:` line.
pub(super) fn fence_summary(r: &RestoreRecord) -> String {
    let mut out = String::new();
    if let Some(d) = &r.discarded {
        out.push_str(&format!("; {}", discarded_line(d)));
    }
    if let Some(s) = &r.set_aside {
        out.push_str(&format!("; {}: {}", s.id, s.note));
    }
    out
}
