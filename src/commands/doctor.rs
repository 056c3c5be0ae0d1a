//! `ferry doctor`: what would block or slow a migration right now, read through
//! the database URL (no AWS credentials needed).

use super::check::open_session;
use super::{CmdResult, CommandError, Context, print_json};
use crate::cli::DoctorArgs;
use ferry_core::output::Redactor;
use serde_json::json;

/// `ferry doctor <env>`: 0 when nothing would block a migration, 3 when
/// something would; warnings do not change the exit code.
pub async fn doctor(ctx: &Context, a: DoctorArgs) -> CmdResult {
    let env = ctx.env(&a.env)?;
    let session = open_session(ctx, env)?;
    let d = session
        .diagnose(a.threshold.0, a.lag_threshold.0)
        .await
        .map_err(|e| CommandError::Usage(format!("cannot inspect the database: {e}")))?;
    let blocking = d.findings.iter().filter(|f| f.blocks_migration).count();
    let redactor = Redactor::new(env.secrets());
    if ctx.json() {
        print_json(
            &json!({
                "env": env.name,
                "server": d.server,
                "ok": blocking == 0,
                "checked": d.checked,
                "findings": d.findings,
            }),
            &redactor,
        )?;
    } else {
        crate::outln!("{} ({}): checked", env.name, d.server)?;
        for c in &d.checked {
            crate::outln!("  - {c}")?;
        }
        for f in &d.findings {
            let tag = if f.blocks_migration { "BLOCKS " } else { "warning" };
            crate::outln!("\n{tag} {}: {}", f.kind, redactor.clean(&f.summary))?;
            if let Some(q) = f.query.as_deref().filter(|q| !q.is_empty()) {
                let one_line: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
                let shown: String = one_line.chars().take(200).collect();
                crate::outln!("        query: {}", redactor.clean(&shown))?;
            }
            if let Some(since) = f.since {
                crate::outln!("        since: {}", ferry_core::output::timestamp(since))?;
            }
            crate::outln!("        what to do: {}", f.advice)?;
        }
        let warnings = d.findings.len() - blocking;
        match blocking {
            0 if warnings == 0 => crate::outln!("\nnothing would block a migration")?,
            0 => crate::outln!("\nnothing would block a migration ({warnings} warning(s) above)")?,
            n => crate::outln!("\n{n} finding(s) would block a migration")?,
        }
    }
    Ok(if blocking == 0 { 0 } else { 3 })
}
