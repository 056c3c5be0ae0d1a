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
use crate::provider::{Snapshot, Stopped, TAG_RUN_ID, TableWrites};

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
    // The snapshot is read once: its time starts the window, its run tag finds the baseline.
    let snapshot = match names.to_time {
        Some(_) => None,
        None => {
            let db = run.cloud.database.clone();
            let id = names.snapshot_id.clone();
            call("describe the snapshot", || db.describe_snapshot(&id)).await.ok().flatten()
        }
    };
    let from = names.to_time.or_else(|| snapshot.as_ref().and_then(|s| s.created_at));
    let until = Utc::now();
    let (tables, not_counted) = match count_writes(run, names, snapshot.as_ref(), kept_in).await {
        Ok(tables) => (Some(tables), None),
        Err(why) => (None, Some(why)),
    };
    let discarded = Discarded { from, until, kept_in: kept_in.to_string(), tables, not_counted };
    run.out.info(&format!("    {}", discarded_line(&discarded)));

    if let Some(r) = run.record.restore.as_mut() {
        r.discarded = Some(discarded);
    }
    let _ = run.save();
}

/// Per table, the writes the restored database does not have: the kept
/// database's running counts now, less the baseline recorded with the
/// deploy's snapshot. Or why they cannot be counted.
async fn count_writes(
    run: &Run,
    names: &RestoreRecord,
    snapshot: Option<&Snapshot>,
    kept_in: &str,
) -> Result<Vec<TableWrites>, String> {
    if names.to_time.is_some() {
        return Err(
            "a point in time has no baseline of write counts (ferry records one with each deploy's snapshot)".into()
        );
    }
    let Some(baseline) = baseline_of(run, &names.snapshot_id, snapshot) else {
        return Err("ferry counts them only when restoring a deploy's snapshot, whose baseline it recorded".into());
    };
    let db = run.cloud.database.clone();
    let session = match call("reach the set-aside database", || db.session_of(kept_in)).await {
        Ok(Some(s)) => s,
        Ok(None) => return Err(format!("{kept_in} cannot be reached from here")),
        Err(e) => return Err(format!("{kept_in} cannot be reached: {e}")),
    };
    let now = match tokio::time::timeout(Duration::from_secs(30), session.write_counts()).await {
        Ok(Ok(Some(now))) => now,
        Ok(Ok(None)) => return Err(format!("{kept_in} keeps no per-table write counts")),
        Ok(Err(e)) => return Err(format!("cannot read {kept_in}'s write counts: {e}")),
        Err(_) => return Err(format!("{kept_in} did not answer within 30s")),
    };
    difference(&baseline, &now)
}

/// The write counts recorded with snapshot `id`: by this run (a deploy
/// restoring its own snapshot) or by the run that took it, found by the
/// snapshot's `ferry:run-id` tag and read from the same state backend.
fn baseline_of(run: &Run, id: &str, snapshot: Option<&Snapshot>) -> Option<Vec<TableWrites>> {
    let own = |r: &crate::runbook::record::RunRecord| {
        r.snapshot.as_ref().filter(|s| s.id == id).and_then(|s| s.baseline.clone())
    };
    if let Some(b) = own(&run.record) {
        return Some(b);
    }
    let taken_by = snapshot?.tags.get(TAG_RUN_ID)?;
    own(&run.journal.read_other(taken_by).ok()?)
}

/// `now` less `baseline`, table by table; tables with no writes left out. A
/// count that went down means the server's statistics were reset meanwhile:
/// no honest difference, so none.
fn difference(baseline: &[TableWrites], now: &[TableWrites]) -> Result<Vec<TableWrites>, String> {
    let mut out = Vec::new();
    for n in now {
        let b = baseline.iter().find(|b| b.table == n.table);
        let (bi, bu, bd) = b.map_or((0, 0, 0), |b| (b.inserted, b.updated, b.deleted));
        if n.inserted < bi || n.updated < bu || n.deleted < bd {
            return Err(format!("the server's statistics of {} were reset since the snapshot", n.table));
        }
        let d = TableWrites {
            table: n.table.clone(),
            inserted: n.inserted - bi,
            updated: n.updated - bu,
            deleted: n.deleted - bd,
        };
        if d.inserted + d.updated + d.deleted > 0 {
            out.push(d);
        }
    }
    Ok(out)
}

fn discarded_line(d: &Discarded) -> String {
    let from = d.from.map_or_else(|| "the snapshot (its time not given)".to_string(), timestamp);
    let counted = match (&d.tables, &d.not_counted) {
        (Some(t), _) if t.is_empty() => " (no rows were written in that window)".to_string(),
        (Some(t), _) => {
            format!(
                " ({} tables written: {})",
                t.len(),
                t.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            )
        }
        (None, Some(why)) => format!(" (not counted per table: {why})"),
        (None, None) => String::new(),
    };
    format!(
        "writes made from {from} to {} are not in the restored database; they are kept in {}{counted}",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(table: &str, i: i64, u: i64, d: i64) -> TableWrites {
        TableWrites { table: table.into(), inserted: i, updated: u, deleted: d }
    }

    #[test]
    fn the_window_is_the_counts_now_less_the_baseline() {
        let base = [t("public.orders", 10, 2, 0), t("public.idle", 5, 5, 5)];
        let now = [t("public.orders", 13, 2, 1), t("public.idle", 5, 5, 5), t("public.new", 4, 0, 0)];
        assert_eq!(difference(&base, &now), Ok(vec![t("public.orders", 3, 0, 1), t("public.new", 4, 0, 0)]));
    }

    #[test]
    fn reset_statistics_give_no_counts_rather_than_wrong_ones() {
        let e = difference(&[t("public.orders", 10, 0, 0)], &[t("public.orders", 2, 0, 0)]).unwrap_err();
        assert!(e.contains("public.orders") && e.contains("reset"), "{e}");
    }
}
