//! ferry's Alembic revision graph against Alembic itself. Each test generates a
//! real Alembic project with the alembic CLI (linear; branched then merged; two
//! heads; depends_on), in both the annotated style of the current template and
//! the plain style of older ones, on a throwaway PostgreSQL database. For each
//! version-table state (set with `alembic stamp`) ferry's `check` must report
//! the rows `alembic current` reports and the heads `alembic heads` reports,
//! and its pending list must be exactly what `alembic upgrade heads` then runs.
//!
//! Needs FERRY_EMULATOR_PYTHON (the venv with alembic) and FERRY_TEST_PG_URL;
//! scripts/test provides both. Skipped without them unless
//! FERRY_TEST_REQUIRE_EMULATOR=1 / FERRY_TEST_REQUIRE_PG=1.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use crate::common::{self, Project, Run, emulator_python, pg_server, pg_url_with_db};

struct Alembic {
    py: PathBuf,
    p: Project,
    tag: String,
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn json_set(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

impl Alembic {
    /// A project with `alembic init`, ferry.toml env `app` on a new database.
    fn new() -> Option<Self> {
        let py = emulator_python()?;
        let server = pg_server()?;
        let tag = format!("alg{:08x}", fastrand::u32(..));
        let app = pg_url_with_db(&server, &tag);
        let p = Project::new(&format!(
            "project = \"t\"\n[env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{server}\" }}\nmigration = {{ command = [\"true\"] }}\n[env.app]\nprovider = \"local\"\ndatabase = {{ url = \"{app}\" }}\nmigration = {{ command = [\"{}\", \"-m\", \"alembic\", \"upgrade\", \"heads\"], alembic = {{ versions = \"alembic/versions\" }} }}\n",
            py.display()
        ));
        let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}\"")]);
        assert_eq!(r.code, 0, "{r:?}");
        let a = Alembic { py, p, tag }; // from here on, Drop cleans up
        a.alembic(&["init", "-t", "generic", "alembic"]);
        let ini = a.p.path().join("alembic.ini");
        let text = std::fs::read_to_string(&ini).unwrap();
        let driver = app.replacen("postgres://", "postgresql+psycopg://", 1).replacen(
            "postgresql://",
            "postgresql+psycopg://",
            1,
        );
        let text = text
            .lines()
            .map(|l| {
                if l.starts_with("sqlalchemy.url") {
                    format!("sqlalchemy.url = {}", driver.replace('%', "%%"))
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&ini, text).unwrap();
        Some(a)
    }

    fn run_alembic(&self, args: &[&str]) -> Run {
        Command::new(&self.py)
            .args(["-m", "alembic"])
            .args(args)
            .current_dir(self.p.path())
            .output()
            .expect("run alembic")
            .into()
    }

    fn alembic(&self, args: &[&str]) -> Run {
        let r = self.run_alembic(args);
        assert_eq!(r.code, 0, "alembic {args:?}: {r:?}");
        r
    }

    /// `alembic revision --rev-id ID` (or `merge` when `merge` is given).
    fn revision(&self, id: &str, extra: &[&str]) {
        let mut args = vec!["revision", "-m", id, "--rev-id", id];
        args.extend_from_slice(extra);
        self.alembic(&args);
    }

    fn merge(&self, id: &str, parents: &[&str]) {
        let mut args = vec!["merge", "-m", id, "--rev-id", id];
        args.extend_from_slice(parents);
        self.alembic(&args);
    }

    fn file_of(&self, id: &str) -> PathBuf {
        let dir = self.p.path().join("alembic/versions");
        std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{id}_")))
            .unwrap_or_else(|| panic!("no file for {id} in {}", dir.display()))
    }

    /// Rewrite a generated (annotated) revision file in the plain style of
    /// older templates: `revision = 'x'`, `down_revision = 'y'`.
    fn plain(&self, id: &str) {
        let f = self.file_of(id);
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("revision: str = "), "alembic writes annotated files: {text}");
        let text =
            text.replace("revision: str = ", "revision = ").replace(": Union[str, Sequence[str], None] = ", " = ");
        std::fs::write(&f, text).unwrap();
    }

    /// Spread a tuple-valued `down_revision` over several lines, with comments.
    fn multi_line(&self, id: &str) {
        let f = self.file_of(id);
        let text = std::fs::read_to_string(&f).unwrap();
        let out: Vec<String> = text
            .lines()
            .map(|l| match (l.starts_with("down_revision"), l.find("= (")) {
                (true, Some(at)) => {
                    let items = l[at + 3..].trim_end_matches(')');
                    let items: Vec<String> = items
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| format!("    {s},  # parent"))
                        .collect();
                    format!("{}= (\n{}\n)", &l[..at], items.join("\n"))
                }
                _ => l.to_string(),
            })
            .collect();
        assert_ne!(out.join("\n"), text.trim_end(), "{id} has a tuple down_revision");
        std::fs::write(&f, out.join("\n")).unwrap();
    }

    /// First words of each line of `alembic heads` / `alembic current`.
    fn listed(&self, command: &str) -> BTreeSet<String> {
        let r = self.alembic(&[command]);
        r.stdout.lines().filter_map(|l| l.split_whitespace().next()).map(String::from).collect()
    }

    fn stamp(&self, revs: &[&str]) {
        let mut args = vec!["stamp", "--purge"];
        if revs.is_empty() {
            args.push("base");
        } else {
            args.extend_from_slice(revs);
        }
        self.alembic(&args);
    }

    /// `alembic upgrade heads`: the revisions it ran.
    fn upgrade_heads(&self) -> BTreeSet<String> {
        let r = self.alembic(&["upgrade", "heads"]);
        r.stderr
            .lines()
            .filter_map(|l| l.split_once("Running upgrade ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split_once("-> ").map(|(_, to)| to))
            .map(|to| to.split(',').next().unwrap().trim().to_string())
            .collect()
    }

    fn check(&self) -> (i32, serde_json::Value) {
        let r = self.p.ferry(&["check", "app", "--output", "json"]);
        assert!(matches!(r.code, 0 | 3), "{r:?}");
        (r.code, r.json())
    }

    /// For each state: ferry agrees with `alembic current` and `alembic heads`,
    /// and its pending list is what `alembic upgrade heads` runs next.
    fn compare(&self, states: &[&[&str]]) {
        let heads = self.listed("heads");
        for state in states {
            self.stamp(state);
            let current = self.listed("current");
            let (code, r) = self.check();
            assert_eq!(json_set(&r["current_version"]), current, "state {state:?}: current");
            assert_eq!(json_set(&r["expected_heads"]), heads, "state {state:?}: heads");
            let pending: Vec<String> =
                r["pending"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            let applied = self.upgrade_heads();
            assert_eq!(pending.iter().cloned().collect::<BTreeSet<_>>(), applied, "state {state:?}: pending");
            assert_eq!(pending.len(), applied.len(), "state {state:?}: each pending revision once");
            assert_eq!(code, if pending.is_empty() { 0 } else { 3 }, "state {state:?}: {r}");
            assert_eq!(r["ok"], pending.is_empty());
            // After the upgrade: at the heads, and ferry says so.
            let (code, r) = self.check();
            assert_eq!(code, 0, "after upgrade heads from {state:?}: {r}");
            assert_eq!(json_set(&r["current_version"]), self.listed("current"));
            assert!(r["pending"].as_array().unwrap().is_empty());
        }
    }

    fn databases(&self) -> Vec<String> {
        common::tagged_databases(&self.p, &self.tag)
    }
}

impl Drop for Alembic {
    fn drop(&mut self) {
        common::drop_tagged_databases(&self.p, &self.tag);
    }
}

#[test]
fn linear_history() {
    let Some(a) = Alembic::new() else { return };
    a.revision("a1", &[]);
    a.revision("b1", &[]);
    a.revision("c1", &[]);
    a.plain("b1");
    assert_eq!(a.listed("heads"), set(&["c1"]));
    a.compare(&[&[], &["a1"], &["b1"], &["c1"]]);
}

#[test]
fn branched_then_merged() {
    let Some(a) = Alembic::new() else { return };
    a.revision("a1", &[]);
    a.revision("b1", &[]);
    a.revision("c1", &["--head", "a1", "--splice"]);
    a.merge("m1", &["b1", "c1"]);
    a.revision("d1", &[]);
    a.plain("a1");
    a.plain("c1");
    a.multi_line("m1");
    assert_eq!(a.listed("heads"), set(&["d1"]));
    a.compare(&[&[], &["a1"], &["b1"], &["c1"], &["b1", "c1"], &["m1"], &["d1"]]);
}

#[test]
fn two_heads_are_reported_and_deploy_refuses_with_the_merge_command() {
    let Some(a) = Alembic::new() else { return };
    a.revision("a1", &[]);
    a.revision("b1", &[]);
    a.revision("c1", &["--head", "a1", "--splice"]);
    a.plain("c1");
    assert_eq!(a.listed("heads"), set(&["b1", "c1"]));
    a.compare(&[&["a1"], &["b1"], &["b1", "c1"]]);

    a.stamp(&["a1"]);
    let before = a.databases();
    let r = a.p.ferry(&["deploy", "app", "--output", "json"]);
    assert_eq!(r.code, 3, "{r:?}");
    let rec = r.json();
    assert_eq!(rec["outcome"], "aborted");
    assert!(rec["snapshot"].is_null(), "no snapshot: {rec}");
    let error = rec["error"].as_str().unwrap();
    assert!(error.contains("alembic merge -m \"merge heads\" b1 c1"), "{error}");
    assert!(r.stderr.contains("alembic merge -m \"merge heads\" b1 c1"), "{r:?}");
    assert_eq!(a.databases(), before, "no snapshot database was made");
    assert_eq!(a.listed("current"), set(&["a1"]), "nothing migrated");
    // Merged with exactly that command, the deploy goes through.
    a.alembic(&["merge", "-m", "merge heads", "b1", "c1"]);
    let r = a.p.ferry(&["deploy", "app"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(a.check().0, 0);
}

#[test]
fn depends_on_another_branch() {
    let Some(a) = Alembic::new() else { return };
    a.revision("a1", &[]);
    a.revision("x1", &["--head", "base", "--branch-label", "other"]);
    a.revision("b1", &["--head", "a1", "--depends-on", "x1"]);
    a.revision("x2", &["--head", "x1"]);
    a.plain("x1");
    a.plain("b1");
    let f = std::fs::read_to_string(a.file_of("b1")).unwrap();
    assert!(f.contains("depends_on = 'x1'"), "{f}");
    assert_eq!(a.listed("heads"), set(&["b1", "x2"]));
    a.compare(&[&[], &["a1"], &["x1"], &["a1", "x1"], &["b1"], &["x2"], &["b1", "x2"]]);
}

#[test]
fn deploy_skips_a_database_already_at_the_head_and_force_runs_it() {
    let Some(a) = Alembic::new() else { return };
    a.revision("a1", &[]);
    a.revision("b1", &[]);
    a.stamp(&["a1"]);
    let r = a.p.ferry(&["deploy", "app", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json()["snapshot"].is_object(), "a pending revision: snapshot taken");
    assert_eq!(a.listed("current"), set(&["b1"]), "the migration ran");
    let before = a.databases();

    let r = a.p.ferry(&["deploy", "app", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let rec = r.json();
    assert!(rec["snapshot"].is_null(), "{rec}");
    assert!(rec["task"].is_null(), "{rec}");
    let steps = rec["steps"].as_array().unwrap();
    let migrate = steps.iter().find(|s| s["name"] == "migrate").unwrap();
    assert_eq!(migrate["status"], "skipped");
    assert!(migrate["detail"].as_str().unwrap().contains("already at the head (b1)"), "{migrate}");
    assert!(rec["state"].as_str().unwrap().contains("nothing was changed"), "{rec}");
    assert_eq!(a.databases(), before, "no snapshot database");

    let r = a.p.ferry(&["deploy", "app", "--force", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.json()["snapshot"].is_object(), "--force snapshots and migrates");
}

/// The same comparison with the version table elsewhere: `version_table`.
#[test]
fn a_custom_version_table() {
    let Some(a) = Alembic::new() else { return };
    let toml = std::fs::read_to_string(a.p.path().join("ferry.toml")).unwrap();
    a.p.write(
        "ferry.toml",
        &toml.replace(
            "versions = \"alembic/versions\"",
            "versions = \"alembic/versions\", version_table = \"public.app_versions\"",
        ),
    );
    let env = std::fs::read_to_string(a.p.path().join("alembic/env.py")).unwrap();
    std::fs::write(
        a.p.path().join("alembic/env.py"),
        env.replace(
            "target_metadata=target_metadata",
            "target_metadata=target_metadata, version_table=\"app_versions\"",
        ),
    )
    .unwrap();
    a.revision("a1", &[]);
    a.revision("b1", &[]);
    a.compare(&[&[], &["a1"]]);
    let (_, r) = a.check();
    assert_eq!(json_set(&r["current_version"]), set(&["b1"]));
}
