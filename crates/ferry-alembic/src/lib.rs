//! What ferry knows about the application's migrations: the Alembic revision
//! graph read from the versions directories (no Python at run time), and how a
//! database's version table compares with it.
//!
//! `alembic.rs` reads one file (pure), `graph.rs` checks the graph and computes
//! heads and pending revisions (pure); this file only lists the directories.

pub mod alembic;
pub mod graph;

use std::path::{Path, PathBuf};

pub use graph::{Graph, GraphError, Revision};
use serde::Serialize;

/// Read every revision file in `dirs` (Alembic's `version_locations`) and
/// build the graph. Like Alembic, a directory is not searched recursively, and
/// `__init__.py` and editor lock files (`.#name.py`) are not revisions.
pub fn load(dirs: &[PathBuf]) -> Result<Graph, GraphError> {
    let mut revisions = Vec::new();
    for dir in dirs {
        let entries = std::fs::read_dir(dir).map_err(|e| GraphError::File {
            file: dir.clone(),
            line: None,
            message: format!("cannot read the versions directory: {e} (migration.alembic.versions in ferry.toml)"),
        })?;
        let mut files: Vec<PathBuf> =
            entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file() && is_revision_file(p)).collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| GraphError::File {
                file: file.clone(),
                line: None,
                message: format!("cannot read: {e}"),
            })?;
            revisions.push(revision_of(&file, &text)?);
        }
    }
    if revisions.is_empty() {
        return Err(GraphError::Empty { dirs: dirs.to_vec() });
    }
    Graph::build(revisions)
}

fn is_revision_file(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    name.ends_with(".py") && name != "__init__.py" && !name.starts_with(".#")
}

/// One file's text → its revision (pure).
pub fn revision_of(file: &Path, text: &str) -> Result<Revision, GraphError> {
    let parsed = alembic::parse(text).map_err(|e| GraphError::File {
        file: file.to_path_buf(),
        line: Some(e.line),
        message: e.message,
    })?;
    let (id, line) = parsed.revision.ok_or_else(|| GraphError::File {
        file: file.to_path_buf(),
        line: None,
        message: "no `revision = \"...\"` assignment: every file in a versions directory must be an Alembic revision"
            .into(),
    })?;
    Ok(Revision {
        id,
        down_revision: parsed.down_revision,
        branch_labels: parsed.branch_labels,
        depends_on: parsed.depends_on,
        file: file.to_path_buf(),
        line,
        down_revision_line: parsed.down_revision_line,
        depends_on_line: parsed.depends_on_line,
    })
}

/// The database's version rows against the graph: `ferry check`'s answer,
/// in the readiness shape `{name, ok, current_version, expected_heads, pending}`.
/// `ok` exactly when nothing is pending, which is when `current_version`
/// equals `expected_heads`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub name: &'static str,
    pub ok: bool,
    pub current_version: Vec<String>,
    pub expected_heads: Vec<String>,
    pub pending: Vec<String>,
}

impl Readiness {
    /// `rows` as read from the version table; `current_version` is what
    /// `alembic current` shows for them (dependencies included).
    pub fn of(graph: &Graph, rows: Vec<String>) -> Result<Readiness, GraphError> {
        let pending = graph.pending(&rows)?;
        let current = graph.current(&rows)?;
        let expected_heads = graph.heads();
        Ok(Readiness { name: "migrations", ok: pending.is_empty(), current_version: current, expected_heads, pending })
    }
}

/// The command that merges several heads into one, each head quoted for a
/// POSIX shell unless it is plain (letters, digits, `_`, `-`, `.`).
pub fn merge_command(heads: &[String]) -> String {
    let quoted: Vec<String> = heads
        .iter()
        .map(|h| {
            let plain = !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if plain { h.clone() } else { format!("'{}'", h.replace('\'', "'\\''")) }
        })
        .collect();
    format!("alembic merge -m \"merge heads\" {}", quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_read_without_its_init_and_lock_files() {
        let dir = tempfile::tempdir().unwrap();
        let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        w("__init__.py", "");
        w(".#b.py", "garbage");
        w("notes.txt", "revision = 'txt'");
        w("a.py", "revision = 'a'\ndown_revision = None\n");
        w("b.py", "revision: str = 'b'\ndown_revision: Union[str, None] = 'a'\n");
        let g = load(&[dir.path().to_path_buf()]).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.heads(), vec!["b".to_string()]);
    }

    #[test]
    fn several_version_locations_make_one_graph() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(one.path().join("a.py"), "revision = 'a'\ndown_revision = None\n").unwrap();
        std::fs::write(two.path().join("p.py"), "revision = 'p'\ndown_revision = 'a'\nbranch_labels = ('plugin',)\n")
            .unwrap();
        let g = load(&[one.path().to_path_buf(), two.path().to_path_buf()]).unwrap();
        assert_eq!(g.heads(), vec!["p".to_string()]);
        std::fs::write(two.path().join("a2.py"), "revision = 'a'\ndown_revision = None\n").unwrap();
        let e = load(&[one.path().to_path_buf(), two.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("revision a is defined twice") && e.contains("a2.py"), "{e}");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "revision = 'a'\n\ndown_revision = other\n").unwrap();
        let e = load(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("a.py:3: `down_revision` is not a literal"), "{e}");
        std::fs::write(dir.path().join("a.py"), "down_revision = None\n").unwrap();
        let e = load(&[dir.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("a.py: no `revision"), "{e}");
        let e = load(&[dir.path().join("missing")]).unwrap_err().to_string();
        assert!(e.contains("cannot read the versions directory"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = load(&[empty.path().to_path_buf()]).unwrap_err().to_string();
        assert!(e.contains("no revision files"), "{e}");
    }

    #[test]
    fn readiness_is_ok_only_at_the_heads() {
        let g = Graph::build(vec![
            revision_of(Path::new("a.py"), "revision = 'a'\ndown_revision = None").unwrap(),
            revision_of(Path::new("b.py"), "revision = 'b'\ndown_revision = 'a'").unwrap(),
        ])
        .unwrap();
        let r = Readiness::of(&g, vec!["a".into()]).unwrap();
        assert!(!r.ok);
        assert_eq!(r.pending, vec!["b".to_string()]);
        assert!(Readiness::of(&g, vec!["b".into()]).unwrap().ok);
        assert_eq!(merge_command(&["x".into(), "y".into()]), "alembic merge -m \"merge heads\" x y");
        assert_eq!(merge_command(&["a b".into(), "it's".into()]), "alembic merge -m \"merge heads\" 'a b' 'it'\\''s'");
    }
}
