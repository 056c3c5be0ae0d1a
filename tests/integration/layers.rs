//! The layer rules of ARCHITECTURE.md ("Layers"), checked on what cargo
//! resolves and on the runbook's source: ferry-core builds on no AWS SDK and no
//! database driver, the local provider on no AWS crate, the Alembic reader on
//! no ferry crate; and the runbook names no platform.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates a layer must not reach: any AWS SDK crate (the SDK, its runtime,
/// smithy, config and credentials; not the `aws-lc` cryptography that TLS
/// uses), any database driver.
fn forbidden_in_core(name: &str) -> bool {
    const SDK: [&str; 7] =
        ["aws-sdk-", "aws-smithy-", "aws-config", "aws-types", "aws-credential-types", "aws-runtime", "aws-sigv4"];
    SDK.iter().any(|p| name.starts_with(p))
        || ["rusqlite", "libsqlite3-sys", "tokio-postgres", "postgres-protocol", "tokio-postgres-rustls", "sqlx"]
            .contains(&name)
}

/// Every package `root` builds on (normal and build dependencies, not
/// dev-dependencies), by name, from `cargo metadata`'s resolve graph.
fn closure(meta: &Value, root: &str) -> BTreeSet<String> {
    let nodes: BTreeMap<&str, &Value> =
        meta["resolve"]["nodes"].as_array().unwrap().iter().map(|n| (n["id"].as_str().unwrap(), n)).collect();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let start = name_of.iter().find(|(_, n)| **n == root).map(|(id, _)| *id).expect(root);
    let (mut seen, mut todo) = (BTreeSet::new(), vec![start]);
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"].as_array().unwrap().iter().any(|k| k["kind"].as_str() != Some("dev"));
            let dep_id = dep["pkg"].as_str().unwrap();
            if normal && seen.insert(name_of[dep_id].to_string()) {
                todo.push(dep_id);
            }
        }
    }
    seen
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        // This machine's platform only: the resolve needs no package that is
        // not already here, so the test reads no registry.
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", env!("FERRY_VERSION_TARGET")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn each_crate_builds_only_on_what_its_layer_may_use() {
    let meta = metadata();
    let core = closure(&meta, "ferry-core");
    let bad: Vec<&String> = core.iter().filter(|n| forbidden_in_core(n)).collect();
    assert!(bad.is_empty(), "ferry-core builds on {bad:?}: the core knows the traits, never an SDK or a driver");
    assert!(
        !core.iter().any(|n| n.starts_with("ferry-") && n != "ferry-alembic"),
        "ferry-core reaches a provider: {core:?}"
    );

    let local = closure(&meta, "ferry-local");
    let aws: Vec<&String> =
        local.iter().filter(|n| (forbidden_in_core(n) && n.starts_with("aws-")) || *n == "ferry-aws").collect();
    assert!(aws.is_empty(), "the local provider builds on {aws:?}");

    let alembic = closure(&meta, "ferry-alembic");
    assert!(!alembic.iter().any(|n| n.starts_with("ferry")), "the Alembic reader is pure: {alembic:?}");

    // The rule is not vacuous: the AWS provider does build on the SDK.
    assert!(closure(&meta, "ferry-aws").contains("aws-sdk-rds"));
}

/// Words that name a platform or one of its states: the runbook asks the
/// provider (its profile, its states as ferry's enums, its plan words) instead.
const PLATFORM_WORDS: [&str; 14] = [
    "App Runner",
    "AppRunner",
    "apprunner",
    "Apprunner",
    "ECS",
    "Fargate",
    "RDS",
    "Aurora",
    "CloudWatch",
    "AWS",
    "PAUSED",
    "RUNNING",
    "OPERATION_IN_PROGRESS",
    "STOPPED",
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_runbook_names_no_platform() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/ferry-core/src/runbook");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(files.len() > 10, "the runbook's files were not found in {}", dir.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for word in PLATFORM_WORDS.iter().filter(|w| line.contains(*w)) {
                found.push(format!("{}:{}: {word}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "platform words in the runbook:\n{}", found.join("\n"));
}
