//! Comparing a restored database with the one it replaced, and choosing what a
//! modify call still has to apply, field by field as the table in `settings`
//! says. Every field the SDK returns is looked at, listed in the table or not:
//! the fields are read from the values' `Debug` form (the SDK derives it for
//! every type), so a field added to the API model is compared, not skipped.

use std::collections::BTreeMap;
use std::fmt::Debug;

use aws_sdk_rds::types::{DbCluster, DbInstance};

use super::settings::{CLUSTER, ClusterSetting, How, INSTANCE, Setting};

/// The top-level fields of a value's derived `Debug` form
/// (`Name { a: x, b: y }`), in order, each with its value's text.
pub(super) fn debug_fields(text: &str) -> Vec<(String, String)> {
    let (Some(open), Some(close)) = (text.find('{'), text.rfind('}')) else { return Vec::new() };
    if close <= open {
        return Vec::new();
    }
    let body = &text[open + 1..close];
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut escaped, mut start) = (0i32, false, false, 0usize);
    let mut push = |piece: &str| {
        if let Some((k, v)) = piece.trim().split_once(": ") {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    };
    for (i, ch) in body.char_indices() {
        if in_str {
            match ch {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match ch {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    push(&body[start..]);
    out
}

/// The same value, however the API spells "nothing": absent or empty. (Not
/// `false` or 0: where a flag's default is on, absent and off are not the same.)
pub(super) fn norm(v: &str) -> &str {
    match v.trim() {
        "None" | "[]" | "Some([])" | "Some(\"\")" | "\"\"" => "",
        v => v,
    }
}

/// A value for people: `Some("aurora-iopt1")` → `aurora-iopt1`.
pub(super) fn pretty(v: &str) -> String {
    let mut v = norm(v);
    if v.is_empty() {
        return "not set".into();
    }
    while let Some(inner) = v.strip_prefix("Some(").and_then(|x| x.strip_suffix(')')) {
        v = inner;
    }
    match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) if !inner.contains('"') => inner.to_string(),
        _ => v.to_string(),
    }
}

/// One compared field: its name for people, its value, and why it may differ.
struct Compared {
    api: String,
    value: String,
    why: String,
}

/// The compared value of each field of `value`: the entry's view where it has
/// one, else the field's `Debug` text. Fields of the allowlist are left out.
fn compared<S: Debug, C, M>(table: &[Setting<S, C, M>], value: &S) -> BTreeMap<String, Compared> {
    debug_fields(&format!("{value:?}"))
        .into_iter()
        .filter_map(|(field, text)| {
            let entry = table.iter().find(|s| s.field == field);
            let why = match entry.map(|e| &e.how) {
                Some(How::Differs(_)) => return None,
                Some(How::NotCopied(why)) => format!(" (ferry does not copy it: {why})"),
                Some(How::Same(why)) => format!(" (expected the same: {why})"),
                Some(How::Create { .. } | How::Modify { .. }) => String::new(),
                // A field newer than ferry's table: compared all the same.
                None => " (a setting ferry does not know yet)".to_string(),
            };
            let api = entry.map_or_else(|| field.clone(), |e| e.api.to_string());
            let value = entry.and_then(|e| e.view).map_or(text, |view| view(value));
            Some((field, Compared { api, value, why }))
        })
        .collect()
}

/// `<label><Setting>: <original> on the original, <restored> on the restored`
/// for every compared field that differs.
pub(super) fn diff<S: Debug, C, M>(table: &[Setting<S, C, M>], label: &str, original: &S, restored: &S) -> Vec<String> {
    let (a, b) = (compared(table, original), compared(table, restored));
    a.iter()
        .filter_map(|(field, x)| {
            let vb = b.get(field).map_or("", |y| y.value.as_str());
            (norm(&x.value) != norm(vb)).then(|| {
                format!(
                    "{label}{}: {} on the original, {} on the restored{}",
                    x.api,
                    pretty(&x.value),
                    pretty(vb),
                    x.why
                )
            })
        })
        .collect()
}

pub fn compare_clusters(original: &DbCluster, restored: &DbCluster) -> Vec<String> {
    diff(CLUSTER, "", original, restored)
}

/// The instances in twin order: the writer first, then the readers by name
/// (shorter first, so `x-2` comes before `x-10`). The restored database's
/// `<n>`-th instance is the twin of the original's `<n>`-th.
pub fn twin_order(cluster: &DbCluster, mut instances: Vec<DbInstance>) -> Vec<DbInstance> {
    let writer = cluster
        .db_cluster_members()
        .iter()
        .find(|m| m.is_cluster_writer() == Some(true))
        .and_then(|m| m.db_instance_identifier())
        .map(str::to_ascii_lowercase);
    instances.sort_by_key(|i| {
        let id = i.db_instance_identifier().unwrap_or("").to_ascii_lowercase();
        (Some(&id) != writer.as_ref(), id.len(), id)
    });
    instances
}

fn role(n: usize) -> String {
    if n == 0 { "writer".into() } else { format!("reader {n}") }
}

/// Instance by instance, in twin order; a missing or extra instance is a difference.
pub fn compare_instances(
    original: (&DbCluster, Vec<DbInstance>),
    restored: (&DbCluster, Vec<DbInstance>),
) -> Vec<String> {
    let a = twin_order(original.0, original.1);
    let b = twin_order(restored.0, restored.1);
    let mut out = Vec::new();
    if a.len() != b.len() {
        out.push(format!("instances: {} on the original, {} on the restored", a.len(), b.len()));
    }
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        let label = format!(
            "{} ({} / {}) ",
            role(n),
            x.db_instance_identifier().unwrap_or("?"),
            y.db_instance_identifier().unwrap_or("?")
        );
        out.extend(diff(INSTANCE, &label, x, y));
    }
    out
}

/// What the operator must know although it was intended.
pub fn notes(original_id: &str, original: &DbCluster, restored_id: &str, restored: &DbCluster) -> Vec<String> {
    let arn = |c: &DbCluster| c.master_user_secret().and_then(|s| s.secret_arn()).map(String::from);
    match (arn(original), arn(restored)) {
        (Some(old), Some(new)) if old != new => vec![format!(
            "the master user password of {restored_id} is in a new Secrets Manager secret, {new}; the original's \
             secret {old} stays with {original_id}: anything that reads the master password must read the new secret \
             (the cluster's MasterUserSecret)"
        )],
        _ => Vec::new(),
    }
}

/// The `Modify` settings of the original that apply to it and that the
/// restored cluster does not have yet.
pub fn pending_modifications(source: &DbCluster, restored: &DbCluster) -> Vec<&'static ClusterSetting> {
    let (a, b) = (compared(CLUSTER, source), compared(CLUSTER, restored));
    CLUSTER
        .iter()
        .filter(|s| match s.how {
            How::Modify { ref when, .. } => {
                let va = a.get(s.field).map_or("", |x| x.value.as_str());
                let vb = b.get(s.field).map_or("", |x| x.value.as_str());
                (when.holds)(source) && norm(va) != norm(vb)
            }
            _ => false,
        })
        .collect()
}
