//! Every JSON document ferry prints has the fields docs/json.md lists for it,
//! and `format_version` 1: each command with a `--output json` result runs
//! against a local SQLite project, and its document's top-level fields (and
//! those of the snapshots, log events and runs inside) are compared with the
//! tables of the page.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::{self, Project, Run};
use serde_json::Value;

const MARKER: &str = "<!-- json-shape:";

/// A shape's fields from docs/json.md: name → optional.
type Shape = BTreeMap<String, bool>;

/// The shapes of docs/json.md: the table after each `<!-- json-shape: NAME -->`.
fn documented() -> BTreeMap<String, Shape> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    let mut shapes = BTreeMap::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix(MARKER).and_then(|r| r.strip_suffix("-->")) else { continue };
        let mut shape = Shape::new();
        while let Some(row) = lines.next_if(|l| l.starts_with('|')) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            if let Some(field) = cells.get(1).and_then(|c| c.strip_prefix('`')).and_then(|c| c.strip_suffix('`')) {
                shape.insert(field.to_string(), cells.get(2).is_some_and(|t| t.contains("optional")));
            }
        }
        assert!(!shape.is_empty(), "docs/json.md: the shape {name:?} has no table of fields after its marker");
        shapes.insert(name.trim().to_string(), shape);
    }
    shapes
}

struct Checker {
    shapes: BTreeMap<String, Shape>,
    seen: BTreeSet<String>,
}

impl Checker {
    /// `value`'s fields against the shape: nothing undocumented, nothing required missing.
    fn fields(&mut self, shape: &str, what: &str, value: &Value) {
        let doc = self.shapes.get(shape).unwrap_or_else(|| panic!("docs/json.md has no shape {shape:?}"));
        let obj = value.as_object().unwrap_or_else(|| panic!("{what}: not an object: {value}"));
        let printed: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
        let undocumented: Vec<&&str> = printed.iter().filter(|k| !doc.contains_key(**k)).collect();
        assert!(undocumented.is_empty(), "{what} prints {undocumented:?}, which docs/json.md ({shape}) does not list");
        let missing: Vec<&String> =
            doc.iter().filter(|(k, optional)| !**optional && !printed.contains(k.as_str())).map(|(k, _)| k).collect();
        assert!(missing.is_empty(), "docs/json.md ({shape}) lists {missing:?}, which {what} does not print");
        self.seen.insert(shape.to_string());
    }

    /// A whole document: one JSON object on stdout, `format_version` 1, the shape's fields.
    fn document(&mut self, shape: &str, r: &Run, codes: &[i32]) -> Value {
        assert!(codes.contains(&r.code), "exit {} not in {codes:?}: {r:?}", r.code);
        let v = r.json();
        assert_eq!(v["format_version"], 1, "{shape}: {v}");
        self.fields(shape, shape, &v);
        v
    }

    fn each(&mut self, shape: &str, what: &str, items: &Value) {
        for item in items.as_array().unwrap_or_else(|| panic!("{what}: not a list")) {
            self.fields(shape, what, item);
        }
    }
}

const ALEMBIC: &str = "revision = 'a1'\ndown_revision = None\n";

fn project() -> Project {
    let p = Project::sqlite(
        "echo 'applying a1'\n",
        "migration = { command = [\"sh\", \"migrate.sh\"], alembic = { versions = \"alembic/versions\" } }",
    );
    std::fs::create_dir_all(p.path().join("alembic/versions")).unwrap();
    p.write("alembic/versions/a1_init.py", ALEMBIC);
    p
}

#[test]
fn every_json_document_has_the_fields_docs_json_md_lists_and_format_version_1() {
    let p = project();
    let mut c = Checker { shapes: documented(), seen: BTreeSet::new() };
    let json = |args: &[&str]| p.ferry(&[args, &["--output", "json"]].concat());

    c.document("config validate", &json(&["config", "validate"]), &[0]);
    let plan = c.document("plan", &json(&["plan", "local"]), &[0]);
    assert_eq!(plan["exit_code"], 0, "{plan}");

    let made = c.document("snapshots", &json(&["snapshot", "create", "local", "--id", "manual-1", "--wait"]), &[0]);
    c.each("snapshot", "snapshot create", &made["snapshots"]);
    let waited = c.document("snapshots", &json(&["snapshot", "wait", "local", "manual-1"]), &[0]);
    c.each("snapshot", "snapshot wait", &waited["snapshots"]);

    let rec = c.document("run record", &json(&["deploy", "local"]), &[0]);
    let run_id = rec["run_id"].as_str().unwrap().to_string();
    let listed = c.document("snapshots", &json(&["snapshot", "list", "local"]), &[0]);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 2, "the manual and the pre-deploy snapshot: {listed}");
    c.each("snapshot", "snapshot list", &listed["snapshots"]);

    c.document("run record", &json(&["runs", "show", &run_id]), &[0]);
    c.document("run record", &json(&["resume", &run_id]), &[0]);
    let runs = c.document("runs list", &json(&["runs", "list"]), &[0]);
    c.each("run record", "runs list", &runs["runs"]);

    let logs = c.document("logs", &json(&["logs", "local", "--run", &run_id]), &[0]);
    assert_eq!(logs["events"][0]["message"], "applying a1", "{logs}");
    c.each("log event", "logs", &logs["events"]);

    let status = c.document("status", &json(&["status", "local"]), &[0]);
    c.each("snapshot", "status", &status["snapshots"]);
    c.fields("run record", "status's last_run", &status["last_run"]);
    // The migration does not stamp the version table: check says a1 is pending.
    c.document("check", &json(&["check", "local"]), &[3]);
    c.document("doctor", &json(&["doctor", "local"]), &[0]);

    c.document("run record", &json(&["migrate", "local", "--force"]), &[0]);
    c.document("run record", &json(&["restore", "local", "--snapshot", "manual-1", "--yes"]), &[0]);
    let pruned = c.document("snapshots", &json(&["snapshot", "prune", "local", "--keep", "0", "--yes"]), &[0]);
    assert!(!pruned["snapshots"].as_array().unwrap().is_empty(), "the pre-deploy snapshots were pruned: {pruned}");
    c.each("snapshot", "snapshot prune", &pruned["snapshots"]);

    // The App Runner service exists only on AWS: the next test, on the emulator.
    let unchecked: Vec<&String> = c.shapes.keys().filter(|s| !c.seen.contains(*s) && *s != "service").collect();
    assert!(unchecked.is_empty(), "docs/json.md documents shapes no command here printed: {unchecked:?}");
}

#[test]
fn the_service_document_has_the_fields_docs_json_md_lists() {
    let Some(emu) = common::emulator::Emulator::start() else { return };
    let s = emu.setup(true);
    let p = emu.project(&s, &["true"], "");
    let mut c = Checker { shapes: documented(), seen: BTreeSet::new() };
    let status = c.document("service", &p.ferry(&["service", "status", "stage", "--output", "json"]), &[0]);
    assert_eq!(status["status"], "RUNNING", "{status}");
    let paused = c.document("service", &p.ferry(&["service", "pause", "stage", "--output", "json"]), &[0]);
    assert_eq!(paused["status"], "PAUSED", "{paused}");
}
