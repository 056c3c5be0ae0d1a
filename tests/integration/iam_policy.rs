//! Keeps ferry's IAM policy honest: the actions it allows are exactly the AWS
//! operations ferry's code calls, plus a short, explained list of permissions
//! AWS checks on ferry's behalf. The operations are read from the source
//! (every method call in `src/` and `crates/` named like an operation of an AWS SDK crate the
//! file uses, with the operation's name as the SDK spells it, or the action IAM
//! authorizes it as where the two differ, as for S3), so adding an SDK
//! call without its permission, or leaving a permission behind when a call goes,
//! fails here with the action's name.
//!
//! The policy lives twice: infra/ferry-iam.yaml (CloudFormation, the source of
//! truth) and infra/ferry-policy.json (the same statements rendered for a
//! sample account). The JSON must be exactly the template rendered with the
//! sample values (SAMPLE): every Sid, effect, action, resource and condition.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// IAM service prefix of each AWS SDK crate ferry uses. A new SDK crate in
/// src/ or crates/ fails the test until it is added here.
const SDK_CRATES: &[(&str, &str)] = &[
    ("aws_sdk_apprunner", "apprunner"),
    ("aws_sdk_cloudformation", "cloudformation"),
    ("aws_sdk_cloudwatchlogs", "logs"),
    ("aws_sdk_ecs", "ecs"),
    ("aws_sdk_rds", "rds"),
    ("aws_sdk_s3", "s3"),
];

/// Operations IAM authorizes under another action's name (S3's REST operations
/// mostly). Any other operation `Op` of service `svc` needs `svc:Op`.
const ACTIONS_OF_OPERATION: &[(&str, &[&str])] = &[
    ("s3:HeadObject", &["s3:GetObject"]),
    ("s3:ListObjects", &["s3:ListBucket"]),
    ("s3:ListObjectsV2", &["s3:ListBucket"]),
    ("s3:HeadBucket", &["s3:ListBucket"]),
    ("s3:CopyObject", &["s3:GetObject", "s3:PutObject"]),
    ("s3:DeleteObjects", &["s3:DeleteObject"]),
    ("s3:ListObjectVersions", &["s3:ListBucketVersions"]),
];

/// Permissions AWS checks that are not operations ferry calls, each with the
/// call that needs it. Nothing else may be in the policy.
const REQUIRED_BY_AWS: &[(&str, &str)] = &[
    // RunTask on a task definition with an execution role and a task role, and
    // RegisterTaskDefinition of a revision naming them (`--image`), hand both
    // roles to ECS; IAM authorizes that as PassRole on each. CreateDBInstance
    // with a MonitoringRoleArn hands that role to RDS's enhanced monitoring.
    (
        "iam:PassRole",
        "ecs:RunTask and ecs:RegisterTaskDefinition pass the task definition's execution and task roles; \
         rds:CreateDBInstance the monitoring role",
    ),
    // Tags on RunTask (ferry:run-id, ferry:env) and on RegisterTaskDefinition
    // (the original's and ferry:run-id) are authorized as TagResource with
    // ecs:CreateAction = RunTask / RegisterTaskDefinition.
    ("ecs:TagResource", "ecs:RunTask and ecs:RegisterTaskDefinition with tags (tag-on-create)"),
    // Tags passed to CreateDBClusterSnapshot, RestoreDBClusterFromSnapshot,
    // RestoreDBClusterToPointInTime and CreateDBInstance are authorized as
    // AddTagsToResource on the new resource.
    (
        "rds:AddTagsToResource",
        "rds:CreateDBClusterSnapshot, rds:RestoreDBClusterFromSnapshot, rds:RestoreDBClusterToPointInTime and \
         rds:CreateDBInstance with tags",
    ),
    // Restoring an encrypted cluster (and creating its writer): RDS creates a
    // grant on the cluster's KMS key with the caller's permissions.
    ("kms:CreateGrant", "rds:RestoreDBClusterFromSnapshot of an encrypted cluster"),
    ("kms:DescribeKey", "rds:RestoreDBClusterFromSnapshot of an encrypted cluster"),
    // Releasing a lock deletes it with If-Match: <its ETag>; S3 authorizes a
    // conditional delete as GetObject as well as DeleteObject.
    ("s3:GetObject", "s3:DeleteObject with If-Match (the lock's release)"),
    // ModifyDBCluster with ManageMasterUserPassword: RDS creates and tags the
    // cluster's new secret with the caller's permissions, encrypted with the
    // original secret's KMS key through Secrets Manager.
    ("secretsmanager:CreateSecret", "rds:ModifyDBCluster with ManageMasterUserPassword"),
    ("secretsmanager:TagResource", "rds:ModifyDBCluster with ManageMasterUserPassword"),
    ("kms:Decrypt", "rds:ModifyDBCluster with ManageMasterUserPassword and a customer managed key"),
    ("kms:GenerateDataKey", "rds:ModifyDBCluster with ManageMasterUserPassword and a customer managed key"),
];

/// The S3 actions the policy allows, all of them on the state prefix only.
const STATE_ACTIONS: &[&str] = &["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"];

/// Deny statements: guard rails for promise 2 of ARCHITECTURE.md, not grants.
const DENIED: &[&str] =
    &["rds:DeleteDBCluster", "rds:DeleteDBInstance", "rds:DeleteDBClusterSnapshot", "rds:AddTagsToResource"];

/// Actions that AWS offers no resource-level restriction for (or only a
/// condition, which the policy must then carry). Every other Allow names its
/// resources.
const RESOURCE_STAR_ALLOWED: &[&str] =
    &["rds:DescribeAccountAttributes", "ecs:DescribeTaskDefinition", "ecs:ListTasks", "ecs:RegisterTaskDefinition"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

// --- the operations ferry calls --------------------------------------------

/// Rust source with comments, string and char literals blanked, and every
/// `#[cfg(test)]` item removed: what is left is code that ships.
fn shipped_code(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && !prev_is_ident(b, i) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..].iter().position(|&x| x == b'\'').map(|p| i + 2 + p)
            } else {
                let ch_len = src[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            match end {
                Some(e) => {
                    out.push_str("' '");
                    i = e + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    remove_test_items(&out)
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Drops each `#[cfg(test)]` item: up to its matching `}` or its `;`.
fn remove_test_items(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let b = item.as_bytes();
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, &c) in b.iter().enumerate() {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Names of methods called in `code`: `.name(`, `.name::<T>(`, with any
/// whitespace or line breaks between the parts.
fn method_calls(code: &str) -> BTreeSet<String> {
    let b = code.as_bytes();
    let mut calls = BTreeSet::new();
    let skip_ws = |mut k: usize| {
        while k < b.len() && b[k].is_ascii_whitespace() {
            k += 1;
        }
        k
    };
    for (i, &c) in b.iter().enumerate() {
        if c != b'.' || b.get(i + 1) == Some(&b'.') || (i > 0 && b[i - 1] == b'.') {
            continue;
        }
        let start = skip_ws(i + 1);
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if end == start || b[start].is_ascii_digit() {
            continue;
        }
        let mut k = skip_ws(end);
        if code[k..].starts_with("::") {
            // Turbofish: skip `::<...>`.
            let mut depth = 0;
            k += 2;
            while k < b.len() {
                match b[k] {
                    b'<' => depth += 1,
                    b'>' => {
                        depth -= 1;
                        if depth == 0 {
                            k += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                k += 1;
            }
            k = skip_ws(k);
        }
        if b.get(k) == Some(&b'(') {
            calls.insert(code[start..end].to_string());
        }
    }
    calls
}

/// Every operation of one SDK crate: snake_case method name → the operation's
/// name as the SDK (and IAM) spells it, e.g. `describe_db_clusters` → `DescribeDBClusters`.
fn sdk_operations(crate_dir: &Path) -> BTreeMap<String, String> {
    let dir = crate_dir.join("src/operation");
    let mut ops = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let snake = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = read(&path);
        let name = text
            .lines()
            .find_map(|l| l.strip_prefix("pub struct ").and_then(|r| r.strip_suffix(';')))
            .unwrap_or_else(|| panic!("{}: no `pub struct Operation;`", path.display()));
        ops.insert(snake, name.trim().to_string());
    }
    assert!(ops.len() > 5, "{} lists only {} operations", dir.display(), ops.len());
    ops
}

/// Source directories of the AWS SDK crates ferry builds with, from `cargo metadata`.
fn sdk_crate_dirs() -> BTreeMap<String, PathBuf> {
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())).arg("-vV").output().unwrap();
    let host = String::from_utf8_lossy(&rustc.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(String::from))
        .expect("rustc -vV prints the host triple");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(out.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&out.stderr));
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut dirs = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().replace('-', "_");
        if SDK_CRATES.iter().any(|(c, _)| *c == name) {
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap());
            dirs.insert(name, manifest.parent().unwrap().to_path_buf());
        }
    }
    dirs
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// SDK crates a file names (`use aws_sdk_rds::Client`, `aws_sdk_ecs::types::…`).
fn crates_used(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("aws_sdk_") {
        let tail = &rest[at..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        used.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    used
}

/// `service:Operation` → the files under src/ and crates/ that call it.
fn actions_called() -> BTreeMap<String, BTreeSet<String>> {
    let dirs = sdk_crate_dirs();
    let mut ops_of: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    let mut called: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let files = rust_files(&repo().join("src")).into_iter().chain(rust_files(&repo().join("crates")));
    for file in files {
        // A module's tests in their own file (`#[cfg(test)] mod tests;`) do not ship.
        if file.file_name().is_some_and(|n| n == "tests.rs" || n.to_string_lossy().ends_with("_tests.rs")) {
            continue;
        }
        let code = shipped_code(&read(&file));
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        let calls = method_calls(&code);
        for krate in crates_used(&code) {
            let (_, prefix) = SDK_CRATES
                .iter()
                .find(|(c, _)| *c == krate)
                .unwrap_or_else(|| panic!("{rel} uses {krate}: add its IAM service prefix to SDK_CRATES"));
            let dir = dirs.get(&krate).unwrap_or_else(|| panic!("cargo metadata does not list {krate}"));
            let ops = ops_of.entry(prefix).or_insert_with(|| sdk_operations(dir));
            for call in &calls {
                if let Some(op) = ops.get(call) {
                    for action in actions_of(&format!("{prefix}:{op}")) {
                        called.entry(action).or_default().insert(rel.clone());
                    }
                }
            }
        }
    }
    called
}

/// The IAM actions that authorize one operation (`service:Operation`).
fn actions_of(operation: &str) -> Vec<String> {
    match ACTIONS_OF_OPERATION.iter().find(|(op, _)| *op == operation) {
        Some((_, actions)) => actions.iter().map(|a| a.to_string()).collect(),
        None => vec![operation.to_string()],
    }
}

// --- the policy ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Statement {
    sid: String,
    effect: String,
    actions: BTreeSet<String>,
}

fn as_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().expect("a string").to_string()).collect(),
        other => panic!("expected a string or a list, got {other}"),
    }
}

fn policy_json() -> Value {
    let path = repo().join("infra/ferry-policy.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_statements(policy: &Value) -> Vec<Statement> {
    policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .map(|s| {
            assert!(s.get("NotAction").is_none(), "NotAction: {s}");
            // NotResource widens an Allow to everything else: only a Deny may use it.
            assert!(s.get("NotResource").is_none() || s["Effect"] == "Deny", "NotResource in an Allow: {s}");
            Statement {
                sid: s["Sid"].as_str().unwrap_or_else(|| panic!("statement without Sid: {s}")).to_string(),
                effect: s["Effect"].as_str().unwrap().to_string(),
                actions: as_list(&s["Action"]).into_iter().collect(),
            }
        })
        .collect()
}

/// The parameters infra/ferry-policy.json is rendered with.
const SAMPLE: &[(&str, &str)] = &[
    ("AWS::Partition", "aws"),
    ("AWS::Region", "us-east-1"),
    ("AWS::AccountId", "123456789012"),
    ("AppName", "app"),
    ("StackNamePattern", "app-*"),
    ("DatabaseNamePattern", "app-*"),
    ("MonitoringRoleName", "rds-monitoring-role"),
    ("AppRunnerServiceArn", "arn:aws:apprunner:us-east-1:123456789012:service/app/0123456789abcdef0123456789abcdef"),
    ("StateBucket", "app-ferry-state"),
    ("StatePrefix", "ferry"),
];

fn param(name: &str, extra: &BTreeMap<String, String>) -> String {
    extra
        .get(name)
        .cloned()
        .or_else(|| SAMPLE.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        .unwrap_or_else(|| panic!("the template's policy uses ${{{name}}}, which has no sample value in SAMPLE"))
}

/// `Fn::Sub` of one string.
fn substitute(text: &str, extra: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find('}').unwrap_or_else(|| panic!("unclosed ${{ in {text}")) + at;
        out.push_str(&param(&rest[at + 2..end], extra));
        rest = &rest[end + 1..];
    }
    out + rest
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v).to_string()
}

/// A scalar as the template writes it: plain, quoted, `!Sub "..."`, `!Ref Name`,
/// or `!Select [N, !Split ["/", !Ref Name]]`.
fn scalar(v: &str, extra: &BTreeMap<String, String>) -> String {
    let v = v.trim();
    if let Some(t) = v.strip_prefix("!Sub ") {
        substitute(&unquote(t), extra)
    } else if let Some(name) = v.strip_prefix("!Ref ") {
        param(name.trim(), extra)
    } else if let Some(args) = v.strip_prefix("!Select [") {
        let (n, split) = args.split_once(',').unwrap_or_else(|| panic!("unexpected {v}"));
        let inner = split.trim().strip_prefix("!Split [").unwrap_or_else(|| panic!("unexpected {v}"));
        let (sep, rest) = inner.split_once(',').unwrap_or_else(|| panic!("unexpected {v}"));
        let source = scalar(rest.trim().trim_end_matches(']'), extra);
        let n: usize = n.trim().parse().unwrap_or_else(|_| panic!("unexpected {v}"));
        source.split(unquote(sep).as_str()).nth(n).unwrap_or_else(|| panic!("{v}: no part {n}")).to_string()
    } else if v.starts_with('!') || v.starts_with('[') || v.starts_with('{') {
        panic!("the policy test does not read {v:?}: write it as !Sub, !Ref or !Select/!Split, or teach scalar()")
    } else {
        unquote(v)
    }
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start().len()
}

/// The statements of every `AWS::IAM::ManagedPolicy` in the template,
/// rendered with SAMPLE as IAM JSON. A reader for the template's block style
/// (`- Sid:` first; `Effect:`; `Action:` and `Resource:` as block lists or
/// `"*"`; `Condition:` as operator → key: value); anything it does not know
/// fails loudly rather than being skipped.
fn render_template_policy(yaml: &str) -> Vec<Value> {
    let lines: Vec<&str> = yaml.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')).collect();
    let mut out = Vec::new();
    let mut in_policy = false;
    let mut i = 0;
    while i < lines.len() {
        let (line, t) = (lines[i], lines[i].trim());
        if indent(line) == 2 && t.ends_with(':') {
            in_policy = lines[i + 1..]
                .iter()
                .take_while(|l| indent(l) > 2)
                .any(|l| l.trim() == "Type: AWS::IAM::ManagedPolicy");
            i += 1;
            continue;
        }
        let Some(sid) = t.strip_prefix("- Sid: ").filter(|_| in_policy) else {
            i += 1;
            continue;
        };
        let dash = indent(line);
        let end = (i + 1..lines.len()).find(|&k| indent(lines[k]) <= dash).unwrap_or(lines.len());
        out.push(render_statement(sid, &lines[i + 1..end], dash + 2));
        i = end;
    }
    out
}

fn render_statement(sid: &str, body: &[&str], key_indent: usize) -> Value {
    let none = BTreeMap::new();
    let mut st = serde_json::Map::new();
    st.insert("Sid".into(), Value::String(sid.into()));
    let mut k = 0;
    while k < body.len() {
        let t = body[k].trim();
        assert_eq!(indent(body[k]), key_indent, "{sid}: unexpected line {t:?}");
        let (key, value) = t.split_once(':').unwrap_or_else(|| panic!("{sid}: not a key: {t:?}"));
        let block_end = (k + 1..body.len()).find(|&j| indent(body[j]) <= key_indent).unwrap_or(body.len());
        let block = &body[k + 1..block_end];
        let rendered = match (key, value.trim()) {
            ("Effect", v) => Value::String(v.to_string()),
            ("Action" | "Resource" | "NotResource", "") => {
                let items = list_items(block, &none, sid);
                if items.len() == 1 { Value::String(items[0].clone()) } else { Value::from(items) }
            }
            ("Resource", v) => Value::String(scalar(v, &none)),
            ("Condition", "") => {
                let mut ops = serde_json::Map::new();
                let mut op = String::new();
                for l in block {
                    let (name, v) = l.trim().split_once(": ").map_or((l.trim().trim_end_matches(':'), ""), |x| x);
                    if v.is_empty() {
                        // YAML would read a bare `Null:` as null: the template quotes it.
                        op = unquote(name);
                        ops.insert(op.clone(), Value::Object(serde_json::Map::new()));
                    } else {
                        let m = ops.get_mut(&op).and_then(Value::as_object_mut).expect("operator before key");
                        m.insert(name.to_string(), Value::String(scalar(v, &none)));
                    }
                }
                Value::Object(ops)
            }
            _ => panic!("{sid}: the policy test does not read {t:?} (NotAction, inline lists, ...)"),
        };
        st.insert(key.to_string(), rendered);
        k = block_end;
    }
    Value::Object(st)
}

/// Items of a block list: `- scalar`, or `- !Sub` followed by its
/// `[template, {Name: value}]` list.
fn list_items(block: &[&str], extra: &BTreeMap<String, String>, sid: &str) -> Vec<String> {
    let Some(first) = block.first() else { panic!("{sid}: empty list") };
    let at = indent(first);
    let mut items = Vec::new();
    let mut k = 0;
    while k < block.len() {
        let t = block[k].trim();
        let item = t.strip_prefix("- ").or((t == "-").then_some("")).unwrap_or_else(|| panic!("{sid}: {t:?}"));
        let nested_end = (k + 1..block.len()).find(|&j| indent(block[j]) <= at).unwrap_or(block.len());
        if item.trim() == "!Sub" {
            // [template, {Name: value, ...}]
            let parts = &block[k + 1..nested_end];
            let template = unquote(parts[0].trim().strip_prefix("- ").expect("the !Sub template"));
            let mut vars = extra.clone();
            for l in &parts[1..] {
                let l = l.trim().trim_start_matches("- ");
                let (name, v) = l.split_once(": ").unwrap_or_else(|| panic!("{sid}: {l:?}"));
                vars.insert(name.to_string(), scalar(v, extra));
            }
            items.push(substitute(&template, &vars));
        } else {
            assert_eq!(nested_end, k + 1, "{sid}: unexpected lines under {t:?}");
            items.push(scalar(item, extra));
        }
        k = nested_end;
    }
    items
}

fn allowed(statements: &[Statement]) -> BTreeSet<String> {
    statements.iter().filter(|s| s.effect == "Allow").flat_map(|s| s.actions.iter().cloned()).collect()
}

/// IAM action names are case-insensitive.
fn key(action: &str) -> String {
    action.to_ascii_lowercase()
}

// --- tests ----------------------------------------------------------------------

#[test]
fn the_policy_allows_exactly_the_calls_ferry_makes() {
    let called = actions_called();
    assert!(
        called.keys().any(|a| a == "rds:CreateDBClusterSnapshot") && called.keys().any(|a| a == "ecs:RunTask"),
        "the source scan found none of ferry's core calls; the extraction is broken: {called:?}"
    );
    let granted = allowed(&json_statements(&policy_json()));
    let granted_keys: BTreeMap<String, &String> = granted.iter().map(|a| (key(a), a)).collect();
    let extra_ok: BTreeMap<String, &str> = REQUIRED_BY_AWS.iter().map(|(a, why)| (key(a), *why)).collect();

    let mut problems = Vec::new();
    for (action, files) in &called {
        if !granted_keys.contains_key(&key(action)) {
            let files: Vec<&str> = files.iter().map(String::as_str).collect();
            problems.push(format!(
                "missing: {action} (called in {}) is not allowed by infra/ferry-iam.yaml / infra/ferry-policy.json",
                files.join(", ")
            ));
        }
    }
    let called_keys: BTreeSet<String> = called.keys().map(|a| key(a)).collect();
    for (k, action) in &granted_keys {
        if !called_keys.contains(k) && !extra_ok.contains_key(k) {
            problems.push(format!(
                "extra: {action} is allowed, but ferry never calls it (remove it, or add it to REQUIRED_BY_AWS with the reason)"
            ));
        }
    }
    for (k, why) in &extra_ok {
        if !granted_keys.contains_key(k) {
            problems.push(format!("missing: {k} (needed for {why}) is not allowed by the policy"));
        }
    }
    assert!(problems.is_empty(), "ferry's IAM policy and its AWS calls disagree:\n  {}", problems.join("\n  "));
}

#[test]
fn ferry_policy_json_is_the_template_rendered() {
    let rendered = render_template_policy(&read(&repo().join("infra/ferry-iam.yaml")));
    assert!(rendered.len() >= 10, "found only {} statements in infra/ferry-iam.yaml: {rendered:?}", rendered.len());
    let policy = policy_json();
    let json = policy["Statement"].as_array().expect("Statement is a list");
    let sids =
        |v: &[Value]| -> Vec<String> { v.iter().map(|s| s["Sid"].as_str().unwrap_or("?").to_string()).collect() };
    let order = (sids(&rendered), sids(json));
    let by_sid = |v: &[Value]| -> BTreeMap<String, Value> {
        v.iter().map(|s| (s["Sid"].as_str().expect("a Sid").to_string(), s.clone())).collect()
    };
    let (yaml, json) = (by_sid(&rendered), by_sid(json));
    let mut problems = Vec::new();
    for (sid, y) in &yaml {
        match json.get(sid) {
            None => problems.push(format!("{sid}: in infra/ferry-iam.yaml, not in infra/ferry-policy.json")),
            Some(j) if j != y => problems.push(format!("{sid}:\n    template renders {y}\n    ferry-policy.json  {j}")),
            Some(_) => {}
        }
    }
    for sid in json.keys().filter(|s| !yaml.contains_key(*s)) {
        problems.push(format!("{sid}: in infra/ferry-policy.json, not in infra/ferry-iam.yaml"));
    }
    assert!(problems.is_empty(), "the two copies of ferry's policy differ:\n  {}", problems.join("\n  "));
    // In the same order too, so the two read alike.
    assert_eq!(order.0, order.1, "the statements are in a different order");
}

#[test]
fn the_deploy_role_trusts_one_repository_and_one_github_environment() {
    let yaml = read(&repo().join("infra/ferry-iam.yaml"));
    let trust: Vec<&str> = yaml
        .lines()
        .skip_while(|l| !l.contains("AssumeRolePolicyDocument:"))
        .take_while(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::trim)
        .collect();
    for want in [
        "Action: sts:AssumeRoleWithWebIdentity",
        "token.actions.githubusercontent.com:aud: sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub: !Sub repo:${GitHubRepository}:environment:${GitHubEnvironment}",
    ] {
        assert!(trust.contains(&want), "the deploy role's trust policy lacks `{want}`:\n{}", trust.join("\n"));
    }
    assert!(
        !trust.iter().any(|l| l.contains("StringLike") || l.contains('*')),
        "the trust policy must match the subject exactly, no wildcards:\n{}",
        trust.join("\n")
    );
}

#[test]
fn the_policy_deletes_no_database_but_a_rehearsal_clone_and_scopes_what_it_can() {
    let policy = policy_json();
    let statements = policy["Statement"].as_array().unwrap();
    let denied: BTreeSet<String> = json_statements(&policy)
        .iter()
        .filter(|s| s.effect == "Deny")
        .flat_map(|s| s.actions.iter().cloned())
        .collect();
    assert_eq!(denied, DENIED.iter().map(|s| s.to_string()).collect(), "the Deny guard rails changed");
    for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let actions = as_list(&s["Action"]);
        if actions.iter().any(|a| a == "rds:DeleteDBCluster" || a == "rds:DeleteDBInstance") {
            // A database is deleted only as a rehearsal's clone (see the evaluation below).
            assert_eq!(
                s["Condition"]["StringEquals"]["aws:ResourceTag/ferry:purpose"], "rehearsal",
                "database deletes must be limited to rehearsal clones: {s}"
            );
            assert!(
                as_list(&s["Resource"]).iter().all(|r| r.contains("-rehearsal-")),
                "database deletes beyond the rehearsal clones' names: {s}"
            );
        }
        if actions.iter().any(|a| a == "rds:RestoreDBClusterToPointInTime") {
            let purpose = &s["Condition"]["StringEquals"]["aws:RequestTag/ferry:purpose"];
            assert!(
                purpose == "rehearsal" || purpose == "restore",
                "a cluster is made from a point in time only tagged as a rehearsal's clone or a restore's: {s}"
            );
        }
        assert!(actions.iter().all(|a| !a.contains('*')), "wildcard action in {s}");
        let resources = as_list(&s["Resource"]);
        if resources.iter().any(|r| r == "*") {
            for a in &actions {
                assert!(RESOURCE_STAR_ALLOWED.contains(&a.as_str()), "{a} is allowed on every resource: {s}");
            }
        }
        if actions.iter().any(|a| a == "rds:DeleteDBClusterSnapshot") {
            assert_eq!(
                s["Condition"]["StringEquals"]["aws:ResourceTag/ferry:purpose"], "pre-deploy",
                "snapshot deletes must be limited to ferry's pre-deploy snapshots: {s}"
            );
        }
        if actions.iter().any(|a| a == "iam:PassRole") {
            // Each role only to the service that uses it: the task roles to ECS, the
            // enhanced monitoring role to RDS's monitoring.
            match s["Condition"]["StringEquals"]["iam:PassedToService"].as_str() {
                Some("ecs-tasks.amazonaws.com") => assert!(
                    resources.iter().all(|r| r.contains(":role/app-migrate-")),
                    "PassRole to ECS beyond the task roles: {s}"
                ),
                Some("monitoring.rds.amazonaws.com") => assert!(
                    resources.iter().all(|r| r.ends_with(":role/rds-monitoring-role")),
                    "PassRole to RDS beyond the monitoring role: {s}"
                ),
                other => panic!("PassRole without a known iam:PassedToService ({other:?}): {s}"),
            }
        }
        if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
            assert!(
                resources.iter().all(|r| r.ends_with(":secret:rds!cluster-*")),
                "Secrets Manager beyond the secrets RDS manages for clusters: {s}"
            );
        }
        if actions.iter().any(|a| a.starts_with("kms:")) {
            assert!(s["Condition"]["StringEquals"]["kms:ViaService"].is_string(), "KMS only through a service: {s}");
        }
        if actions.iter().any(|a| a == "ecs:RegisterTaskDefinition") {
            assert_eq!(
                s["Condition"]["Null"]["aws:RequestTag/ferry:run-id"], "false",
                "task definitions are registered only with ferry's run tag: {s}"
            );
        }
        if actions.iter().any(|a| a == "ecs:TagResource") {
            let create = &s["Condition"]["StringEquals"]["ecs:CreateAction"];
            assert!(
                create == "RunTask" || create == "RegisterTaskDefinition",
                "tags only as part of creating a task or a task definition, never on existing resources: {s}"
            );
            assert!(
                resources
                    .iter()
                    .all(|r| r.contains(":task/app-migrations/") || r.contains(":task-definition/app-migrate:")),
                "tags only on the stack's tasks and task family: {s}"
            );
        }
        if actions.iter().any(|a| a == "ecs:ListTasks") {
            assert!(
                s["Condition"]["ArnEquals"]["ecs:cluster"].is_string(),
                "ListTasks needs its cluster condition: {s}"
            );
        }
        if actions.iter().any(|a| a.starts_with("apprunner:")) {
            assert!(resources.iter().all(|r| !r.contains('*')), "App Runner actions beyond the one service: {s}");
        }
        if actions.iter().any(|a| a == "rds:StopDBCluster") {
            assert_eq!(actions, ["rds:StopDBCluster"], "StopDBCluster in a statement of its own: {s}");
            assert!(
                resources.iter().all(|r| r.ends_with(":cluster:app-*-failed-*")),
                "StopDBCluster only on the clusters a restore set aside: {s}"
            );
            assert_eq!(
                s["Condition"]["Null"]["aws:ResourceTag/ferry:run-id"], "false",
                "StopDBCluster only on a cluster a ferry run tagged: {s}"
            );
        }
        if actions.iter().any(|a| a.starts_with("logs:")) {
            assert!(
                resources
                    .iter()
                    .all(|r| r.contains(":log-group:/ferry/app/migrations")
                        || r.contains(":log-group:/aws/apprunner/app/")),
                "log reads beyond the migration and App Runner log groups: {s}"
            );
        }
    }
}

#[test]
fn the_source_scan_sees_calls_however_they_are_written() {
    let src = r#"
        use aws_sdk_ecs::Client;
        // self.client.delete_cluster() in a comment is not a call
        const S: &str = "self.client.delete_service()";
        fn f(c: &Client, x: char) {
            let _ = '.';
            let a = c.describe_tasks().send();
            let b = self
                .client
                .list_tasks()
                .into_paginator()
                .send();
            let d = client .   run_task ::<>( );
            /* block comment .stop_task() */
        }
        #[cfg(test)]
        mod tests {
            fn g(c: &Client) { c.delete_task_definitions(); }
        }
        fn h(c: &Client) { c.stop_task(); }
    "#;
    let code = shipped_code(src);
    let calls = method_calls(&code);
    for want in ["describe_tasks", "list_tasks", "into_paginator", "send", "run_task", "stop_task"] {
        assert!(calls.contains(want), "{want} not found in {calls:?}\n{code}");
    }
    for not in ["delete_cluster", "delete_service", "delete_task_definitions"] {
        assert!(!calls.contains(not), "{not} found in {calls:?}\n{code}");
    }
    assert_eq!(crates_used(&code), BTreeSet::from(["aws_sdk_ecs".to_string()]));
}

#[test]
fn sdk_operation_names_keep_the_services_spelling() {
    let dirs = sdk_crate_dirs();
    let rds = sdk_operations(&dirs["aws_sdk_rds"]);
    assert_eq!(rds["describe_db_clusters"], "DescribeDBClusters");
    assert_eq!(rds["restore_db_cluster_from_snapshot"], "RestoreDBClusterFromSnapshot");
    let logs = sdk_operations(&dirs["aws_sdk_cloudwatchlogs"]);
    assert_eq!(logs["get_log_events"], "GetLogEvents");
    let s3 = sdk_operations(&dirs["aws_sdk_s3"]);
    assert_eq!(s3["list_objects_v2"], "ListObjectsV2");
    assert_eq!(actions_of(&format!("s3:{}", s3["list_objects_v2"])), ["s3:ListBucket"]);
    assert_eq!(actions_of(&format!("s3:{}", s3["head_object"])), ["s3:GetObject"]);
    assert_eq!(actions_of(&format!("s3:{}", s3["put_object"])), ["s3:PutObject"]);
}

// --- S3: the state prefix and nothing else ------------------------------------

/// IAM's wildcard match: `*` any run of characters (`/` included), `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether the policy's Allow statements grant `action` on `resource` to a
/// request with the condition keys `context`. (Its Deny statements name no
/// S3 action; the test checks that.)
fn allows(policy: &Value, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
    policy["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow").any(|s| {
        as_list(&s["Action"]).iter().any(|a| glob(&key(a), &key(action)))
            && as_list(&s["Resource"]).iter().any(|r| glob(r, resource))
            && conditions_hold(s, context)
    })
}

fn conditions_hold(statement: &Value, context: &[(&str, &str)]) -> bool {
    let Some(ops) = statement.get("Condition").and_then(Value::as_object) else { return true };
    ops.iter().all(|(op, keys)| {
        assert!(
            op == "StringLike" || op == "StringEquals",
            "this evaluation does not know the condition operator {op}: {statement}"
        );
        keys.as_object().unwrap().iter().all(|(name, want)| {
            // A key the request does not carry fails the condition (no ...IfExists here).
            let Some((_, got)) = context.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)) else { return false };
            as_list(want).iter().any(|w| if op == "StringLike" { glob(w, got) } else { w == got })
        })
    })
}

#[test]
fn iam_wildcards_match_as_iam_does() {
    assert!(glob("ferry/*", "ferry/runs/a.json") && glob("ferry/*", "ferry/") && glob("a?c", "abc"));
    assert!(!glob("ferry/*", "ferry") && !glob("ferry/*", "ferryx/a") && !glob("ferry/*", "x/ferry/a"));
    assert!(glob("arn:aws:s3:::b/ferry/*", "arn:aws:s3:::b/ferry/locks/db.json"));
    assert!(!glob("arn:aws:s3:::b", "arn:aws:s3:::b2") && !glob("arn:aws:s3:::b/ferry/*", "arn:aws:s3:::b2/ferry/a"));
}

#[test]
fn the_policy_allows_s3_only_under_the_state_prefix() {
    let policy = policy_json();
    let statements = json_statements(&policy);
    let s3_actions: BTreeSet<String> =
        statements.iter().flat_map(|s| s.actions.iter()).filter(|a| key(a).starts_with("s3:")).cloned().collect();
    let want: BTreeSet<String> = STATE_ACTIONS.iter().map(|a| a.to_string()).collect();
    assert_eq!(s3_actions, want, "the policy's S3 actions are the state backend's, no more");
    for s in &statements {
        assert!(
            s.actions.iter().all(|a| !a.contains('*')),
            "{}: a wildcard action (s3:* or *) reaches beyond the state: {:?}",
            s.sid,
            s.actions
        );
        if s.effect == "Deny" {
            assert!(!s.actions.iter().any(|a| key(a).starts_with("s3:")), "{}: an S3 Deny changes this test", s.sid);
        }
    }

    // The sample's state is s3://app-ferry-state/ferry (SAMPLE).
    let object = |k: &str| format!("arn:aws:s3:::app-ferry-state/{k}");
    let bucket = "arn:aws:s3:::app-ferry-state";
    for (action, k) in [
        ("s3:GetObject", "ferry/runs/20260101-0123.json"),
        ("s3:PutObject", "ferry/runs/20260101-0123.json"),
        ("s3:PutObject", "ferry/locks/app-prod.json"),
        ("s3:DeleteObject", "ferry/locks/app-prod.json"),
    ] {
        assert!(allows(&policy, action, &object(k), &[]), "{action} on {k} must be allowed");
    }
    for (action, resource) in [
        ("s3:GetObject", object("other/runs/20260101-0123.json")),
        ("s3:PutObject", object("ferry-other/locks/app-prod.json")),
        ("s3:PutObject", object("ferryx")),
        ("s3:PutObject", object("runs/20260101-0123.json")),
        ("s3:GetObject", "arn:aws:s3:::other-bucket/ferry/runs/20260101-0123.json".into()),
        ("s3:GetObject", "arn:aws:s3:::app-ferry-state-2/ferry/runs/20260101-0123.json".into()),
        ("s3:GetObjectVersion", object("ferry/runs/20260101-0123.json")),
        ("s3:DeleteObjectVersion", object("ferry/runs/20260101-0123.json")),
        ("s3:PutObjectAcl", object("ferry/runs/20260101-0123.json")),
        ("s3:PutBucketPolicy", bucket.into()),
        ("s3:PutBucketVersioning", bucket.into()),
        ("s3:PutLifecycleConfiguration", bucket.into()),
        ("s3:DeleteBucket", bucket.into()),
        ("s3:ListAllMyBuckets", "arn:aws:s3:::*".into()),
    ] {
        assert!(!allows(&policy, action, &resource, &[]), "{action} on {resource} must not be allowed");
    }

    let listing = |b: &str, prefix: Option<&str>| {
        let context: Vec<(&str, &str)> = prefix.map(|p| ("s3:prefix", p)).into_iter().collect();
        allows(&policy, "s3:ListBucket", b, &context)
    };
    for p in ["ferry/", "ferry/runs/", "ferry/locks/app-prod.json"] {
        assert!(listing(bucket, Some(p)), "listing {p} in the state bucket must be allowed");
    }
    for p in [None, Some(""), Some("ferry"), Some("ferryx/"), Some("other/"), Some("/ferry/")] {
        assert!(!listing(bucket, p), "listing {p:?} in the state bucket must not be allowed");
    }
    for other in ["arn:aws:s3:::other-bucket", "arn:aws:s3:::app-ferry-state-2"] {
        assert!(!listing(other, Some("ferry/")), "listing {other} must not be allowed");
    }
    assert!(
        !allows(&policy, "s3:ListBucketVersions", bucket, &[("s3:prefix", "ferry/")]),
        "old versions are for humans, not ferry"
    );

    // The template builds those resources from its parameters, not from the sample's names.
    let yaml = read(&repo().join("infra/ferry-iam.yaml"));
    for want in [
        "- !Sub arn:${AWS::Partition}:s3:::${StateBucket}/${StatePrefix}/*",
        "- !Sub arn:${AWS::Partition}:s3:::${StateBucket}",
        "s3:prefix: !Sub ${StatePrefix}/*",
    ] {
        assert!(yaml.lines().any(|l| l.trim() == want), "infra/ferry-iam.yaml lacks `{want}`");
    }
}

/// Whether the policy permits `action` on `resource` for a request with the
/// condition keys `context` (a key given several times is multi-valued, as
/// `aws:TagKeys`): an Allow matches and no Deny does. Reads Resource and
/// NotResource and the condition operators the policy uses on RDS.
fn permitted(policy: &Value, action: &str, resource: &str, context: &[(&str, &str)]) -> bool {
    let matching = |effect: &str| {
        policy["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == effect).any(|s| {
            let on_resource = match s.get("NotResource") {
                Some(not) => !as_list(not).iter().any(|r| glob(r, resource)),
                None => as_list(&s["Resource"]).iter().any(|r| glob(r, resource)),
            };
            as_list(&s["Action"]).iter().any(|a| glob(&key(a), &key(action)))
                && on_resource
                && conditions_of(s).iter().all(|(op, name, want)| condition(op, name, want, context, s))
        })
    };
    matching("Allow") && !matching("Deny")
}

fn conditions_of(statement: &Value) -> Vec<(String, String, Vec<String>)> {
    let Some(ops) = statement.get("Condition").and_then(Value::as_object) else { return Vec::new() };
    ops.iter()
        .flat_map(|(op, keys)| {
            keys.as_object().unwrap().iter().map(move |(name, want)| (op.clone(), name.clone(), as_list(want)))
        })
        .collect()
}

fn condition(op: &str, name: &str, want: &[String], context: &[(&str, &str)], statement: &Value) -> bool {
    let got: Vec<&str> = context.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| *v).collect();
    let equal = |g: &&str| want.iter().any(|w| w == g);
    match op {
        // A key the request does not carry fails StringEquals and holds for StringNotEquals.
        "StringEquals" => !got.is_empty() && got.iter().all(equal),
        "StringLike" => !got.is_empty() && got.iter().all(|g| want.iter().any(|w| glob(w, g))),
        "StringNotEquals" => !got.iter().any(equal),
        "ForAnyValue:StringEquals" => got.iter().any(equal),
        "Null" => want.iter().all(|w| (w == "true") == got.is_empty()),
        other => panic!("this evaluation does not know the condition operator {other}: {statement}"),
    }
}

#[test]
fn ferry_deletes_only_its_tagged_rehearsal_clone_and_cannot_mark_an_existing_database() {
    let policy = policy_json();
    let cluster = |id: &str| format!("arn:aws:rds:us-east-1:123456789012:cluster:{id}");
    let db = |id: &str| format!("arn:aws:rds:us-east-1:123456789012:db:{id}");
    let tagged = |purpose: &'static str| vec![("aws:ResourceTag/ferry:purpose", purpose)];
    let rehearsal = tagged("rehearsal");

    // The clone and its instance, tagged in the call that made them: deleted.
    assert!(permitted(&policy, "rds:DeleteDBCluster", &cluster("app-prod-rehearsal-1a2b"), &rehearsal));
    assert!(permitted(&policy, "rds:DeleteDBInstance", &db("app-prod-rehearsal-1a2b-1"), &rehearsal));
    // Nothing else, however it is named or tagged.
    for (action, resource, context) in [
        ("rds:DeleteDBCluster", cluster("app-prod"), vec![]),
        ("rds:DeleteDBCluster", cluster("app-prod"), rehearsal.clone()),
        ("rds:DeleteDBCluster", cluster("app-prod-rehearsal-1a2b"), vec![]),
        ("rds:DeleteDBCluster", cluster("app-prod-rehearsal-1a2b"), tagged("restore")),
        ("rds:DeleteDBCluster", cluster("app-prod-restored-20261201-0600"), tagged("restore")),
        ("rds:DeleteDBCluster", cluster("app-prod-failed-20261201-0600"), vec![]),
        ("rds:DeleteDBCluster", cluster("billing-rehearsal-1a2b"), rehearsal.clone()),
        ("rds:DeleteDBInstance", db("app-prod-writer"), vec![]),
        ("rds:DeleteDBInstance", db("app-prod-writer"), rehearsal.clone()),
        ("rds:DeleteDBInstance", db("app-prod-rehearsal-1a2b-1"), tagged("pre-deploy")),
    ] {
        assert!(!permitted(&policy, action, &resource, &context), "{action} on {resource} {context:?} must be refused");
    }

    // Making the clone: only tagged as a rehearsal's, and the tags of the call
    // (AddTagsToResource on the new cluster) put ferry:purpose only on a
    // rehearsal's name.
    let clone_tags = [
        ("aws:RequestTag/ferry:purpose", "rehearsal"),
        ("aws:TagKeys", "ferry:purpose"),
        ("aws:TagKeys", "ferry:run-id"),
        ("aws:TagKeys", "ferry:env"),
    ];
    assert!(permitted(&policy, "rds:RestoreDBClusterToPointInTime", &cluster("app-prod"), &clone_tags));
    assert!(!permitted(&policy, "rds:RestoreDBClusterToPointInTime", &cluster("app-prod"), &[]));
    assert!(permitted(&policy, "rds:AddTagsToResource", &cluster("app-prod-rehearsal-1a2b"), &clone_tags));
    assert!(permitted(&policy, "rds:AddTagsToResource", &db("app-prod-rehearsal-1a2b-1"), &clone_tags));
    assert!(!permitted(&policy, "rds:AddTagsToResource", &cluster("app-prod-copy"), &clone_tags));

    // An existing production cluster or instance can never be marked as a rehearsal (or anything).
    for resource in [cluster("app-prod"), db("app-prod-writer"), cluster("app-prod-failed-20261201-0600")] {
        for purpose in ["rehearsal", "restore", "pre-deploy"] {
            let marking = [("aws:RequestTag/ferry:purpose", purpose), ("aws:TagKeys", "ferry:purpose")];
            assert!(!permitted(&policy, "rds:AddTagsToResource", &resource, &marking), "{purpose} on {resource}");
        }
        // The run's own tag, which a restore puts on a cluster before renaming it, stays allowed.
        assert!(permitted(&policy, "rds:AddTagsToResource", &resource, &[("aws:TagKeys", "ferry:run-id")]));
    }
    // What the other create calls tag stays allowed: a restore's new cluster and
    // instances, a pre-deploy snapshot.
    let restore = [("aws:RequestTag/ferry:purpose", "restore"), ("aws:TagKeys", "ferry:purpose")];
    assert!(permitted(&policy, "rds:AddTagsToResource", &cluster("app-prod-restored-20261201-0600"), &restore));
    assert!(permitted(&policy, "rds:AddTagsToResource", &db("app-prod-restored-20261201-0600-1"), &restore));
    let snapshot = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:app-prod-20261201-060000-1a2b";
    assert!(permitted(&policy, "rds:AddTagsToResource", snapshot, &[("aws:TagKeys", "ferry:purpose")]));
}

/// The RDS Describe actions, as IAM authorizes them: a Describe naming its
/// resource on that resource's ARN, one without an identifier (the instances of a
/// cluster by a `db-cluster-id` filter, a listing of clusters or of a cluster's
/// snapshots) on the resource type's wildcard ARN (`db:*`, `cluster:*`,
/// `cluster-snapshot:*`). The wildcards grant only those reads.
#[test]
fn identifier_less_rds_describes_are_allowed_and_the_wildcards_grant_only_reads() {
    let policy = policy_json();
    let rds = |rest: &str| format!("arn:aws:rds:us-east-1:123456789012:{rest}");
    for (action, resource) in [
        ("rds:DescribeDBInstances", "db:*"),
        ("rds:DescribeDBClusters", "cluster:*"),
        ("rds:DescribeDBClusterSnapshots", "cluster-snapshot:*"),
        ("rds:DescribeDBClusters", "cluster:app-prod"),
        ("rds:DescribeDBInstances", "db:app-prod-writer"),
        ("rds:DescribeDBClusterSnapshots", "cluster-snapshot:app-prod-pre-deploy-20261201-060000-1a2b"),
        ("rds:ListTagsForResource", "cluster:app-prod"),
        ("rds:ListTagsForResource", "cluster-snapshot:app-prod-pre-deploy-20261201-060000-1a2b"),
        // An automated backup (`snapshot list --all`, `restore --snapshot rds:...`).
        ("rds:ListTagsForResource", "cluster-snapshot:rds:app-prod-2026-12-01-06-00"),
        ("rds:RestoreDBClusterFromSnapshot", "cluster-snapshot:rds:app-prod-2026-12-01-06-00"),
    ] {
        assert!(permitted(&policy, action, &rds(resource), &[]), "{action} on {resource} must be allowed");
    }
    // Other regions and accounts stay out; tags are read only on ferry's names.
    for (action, resource) in [
        ("rds:DescribeDBClusters", "arn:aws:rds:eu-west-1:123456789012:cluster:*".to_string()),
        ("rds:DescribeDBInstances", "arn:aws:rds:us-east-1:210987654321:db:*".to_string()),
        ("rds:ListTagsForResource", rds("cluster:billing-prod")),
        ("rds:ListTagsForResource", rds("cluster:*")),
        ("rds:ListTagsForResource", rds("cluster-snapshot:rds:billing-prod-2026-12-01-06-00")),
        ("rds:RestoreDBClusterFromSnapshot", rds("cluster-snapshot:rds:billing-prod-2026-12-01-06-00")),
        // Nor may an automated backup be deleted (RDS deletes them itself).
        ("rds:DeleteDBClusterSnapshot", rds("cluster-snapshot:rds:app-prod-2026-12-01-06-00")),
    ] {
        assert!(!permitted(&policy, action, &resource, &[]), "{action} on {resource} must not be allowed");
    }
    // Every Allow on an RDS type's wildcard ARN is a Describe: the mutating
    // actions stay scoped to DatabaseNamePattern.
    for s in policy["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow") {
        let wildcard = as_list(&s["Resource"])
            .iter()
            .any(|r| ["cluster:*", "db:*", "cluster-snapshot:*"].iter().any(|t| r.ends_with(&format!(":{t}"))));
        if wildcard {
            for a in as_list(&s["Action"]) {
                assert!(a.starts_with("rds:Describe"), "{a} is granted on a wildcard RDS ARN: {s}");
            }
        }
    }
    let describe = policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "DescribeDatabase").unwrap();
    assert!(describe.get("Condition").is_none(), "the reads need no condition: {describe}");
}
