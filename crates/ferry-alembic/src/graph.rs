//! The revision graph: heads, and what `alembic upgrade heads` would apply to a
//! database whose version table holds given rows.
//!
//! Alembic's rules, as ferry applies them:
//! - a head is a revision no other revision names as its `down_revision`
//!   (`depends_on` does not make a revision a parent: `alembic heads` lists a
//!   revision that is only depended on);
//! - a revision in the version table means it and everything it descends from,
//!   through `down_revision` and `depends_on`, is applied;
//! - `upgrade heads` applies every revision not applied that way.
//!
//! `depends_on` may name a revision id or a branch label, like Alembic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

/// One revision, with where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub id: String,
    pub down_revision: Vec<String>,
    pub branch_labels: Vec<String>,
    pub depends_on: Vec<String>,
    pub file: PathBuf,
    /// Line of the `revision` assignment.
    pub line: usize,
    pub down_revision_line: usize,
    pub depends_on_line: usize,
}

/// Why the revision graph is not usable. Every variant names the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// A file could not be read or parsed.
    File {
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    Duplicate {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    DuplicateLabel {
        label: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// `down_revision` or `depends_on` names a revision that does not exist.
    Missing {
        file: PathBuf,
        line: usize,
        key: &'static str,
        name: String,
    },
    /// A revision descends from itself; the files along the cycle, in order.
    Cycle {
        files: Vec<PathBuf>,
        ids: Vec<String>,
    },
    /// The version table names a revision the versions directories do not have.
    UnknownApplied {
        id: String,
    },
    Empty {
        dirs: Vec<PathBuf>,
    },
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphError::File { file, line: Some(l), message } => write!(f, "{}:{l}: {message}", file.display()),
            GraphError::File { file, line: None, message } => write!(f, "{}: {message}", file.display()),
            GraphError::Duplicate { id, first, second } => write!(
                f,
                "revision {id} is defined twice: in {} and in {}; give one of them a new revision id",
                first.display(),
                second.display()
            ),
            GraphError::DuplicateLabel { label, first, second } => write!(
                f,
                "branch label {label:?} is used by two revisions: {} and {}",
                first.display(),
                second.display()
            ),
            GraphError::Missing { file, line, key, name } => write!(
                f,
                "{}:{line}: {key} names revision {name}, which no file in the versions directories defines",
                file.display()
            ),
            GraphError::Cycle { files, ids } => {
                let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
                write!(f, "the revisions form a cycle ({}): {}", ids.join(" -> "), files.join(", "))
            }
            GraphError::UnknownApplied { id } => write!(
                f,
                "the database's version table holds revision {id}, which no file in the versions directories \
                 defines: the database is ahead of this checkout, or the revision was removed"
            ),
            GraphError::Empty { dirs } => {
                let dirs: Vec<String> = dirs.iter().map(|p| p.display().to_string()).collect();
                write!(f, "no revision files (*.py) in {}", dirs.join(", "))
            }
        }
    }
}

impl std::error::Error for GraphError {}

/// A checked revision graph: unique ids, every parent known, no cycle.
#[derive(Debug, Clone)]
pub struct Graph {
    revisions: BTreeMap<String, Revision>,
    labels: BTreeMap<String, String>,
}

impl Graph {
    pub fn build(revisions: Vec<Revision>) -> Result<Graph, GraphError> {
        let mut map: BTreeMap<String, Revision> = BTreeMap::new();
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        for r in revisions {
            if let Some(first) = map.get(&r.id) {
                return Err(GraphError::Duplicate { id: r.id.clone(), first: first.file.clone(), second: r.file });
            }
            for label in &r.branch_labels {
                if let Some(owner) = labels.get(label).and_then(|id| map.get(id)) {
                    return Err(GraphError::DuplicateLabel {
                        label: label.clone(),
                        first: owner.file.clone(),
                        second: r.file.clone(),
                    });
                }
                labels.insert(label.clone(), r.id.clone());
            }
            map.insert(r.id.clone(), r);
        }
        let graph = Graph { revisions: map, labels };
        for r in graph.revisions.values() {
            if let Some(name) = r.down_revision.iter().find(|d| !graph.revisions.contains_key(*d)) {
                return Err(GraphError::Missing {
                    file: r.file.clone(),
                    line: r.down_revision_line,
                    key: "down_revision",
                    name: name.clone(),
                });
            }
            if let Some(name) = r.depends_on.iter().find(|d| graph.resolve(d).is_none()) {
                return Err(GraphError::Missing {
                    file: r.file.clone(),
                    line: r.depends_on_line,
                    key: "depends_on",
                    name: name.clone(),
                });
            }
        }
        graph.check_acyclic()?;
        Ok(graph)
    }

    /// A revision id, branch label or unique id prefix (all of which Alembic
    /// accepts in `depends_on`) → the revision id.
    fn resolve(&self, name: &str) -> Option<&str> {
        if let Some((id, _)) = self.revisions.get_key_value(name) {
            return Some(id);
        }
        if let Some(id) = self.labels.get(name) {
            return Some(id);
        }
        let mut matching = self.revisions.keys().filter(|id| id.starts_with(name));
        match (matching.next(), matching.next()) {
            (Some(id), None) => Some(id),
            _ => None,
        }
    }

    /// Every revision this one needs first: `down_revision` and `depends_on`.
    fn parents<'a>(&'a self, r: &'a Revision) -> impl Iterator<Item = &'a str> + 'a {
        r.down_revision.iter().map(String::as_str).chain(r.depends_on.iter().filter_map(|d| self.resolve(d)))
    }

    fn check_acyclic(&self) -> Result<(), GraphError> {
        // Iterative depth-first search: 1 = on the current path, 2 = done.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        for start in self.revisions.keys() {
            if state.contains_key(start.as_str()) {
                continue;
            }
            let mut path: Vec<&str> = vec![start];
            let mut stack: Vec<Vec<&str>> = vec![self.parents_of(start)];
            state.insert(start, 1);
            while let Some(next) = stack.last_mut() {
                match next.pop() {
                    Some(p) => match state.get(p) {
                        Some(1) => {
                            let from = path.iter().position(|x| *x == p).unwrap_or(0);
                            // Path runs child → parent; show it as parent → child.
                            let mut ids = vec![p.to_string()];
                            ids.extend(path[from..].iter().rev().map(|s| s.to_string()));
                            let files = path[from..]
                                .iter()
                                .rev()
                                .filter_map(|id| self.revisions.get(*id))
                                .map(|r| r.file.clone())
                                .collect();
                            return Err(GraphError::Cycle { files, ids });
                        }
                        Some(_) => {}
                        None => {
                            state.insert(p, 1);
                            path.push(p);
                            stack.push(self.parents_of(p));
                        }
                    },
                    None => {
                        stack.pop();
                        if let Some(done) = path.pop() {
                            state.insert(done, 2);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn parents_of(&self, id: &str) -> Vec<&str> {
        self.revisions.get(id).map(|r| self.parents(r).collect()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.revisions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Revision> {
        self.revisions.get(id)
    }

    /// Revisions nothing names as its `down_revision`, sorted.
    pub fn heads(&self) -> Vec<String> {
        let parents: BTreeSet<&str> =
            self.revisions.values().flat_map(|r| r.down_revision.iter().map(String::as_str)).collect();
        self.revisions.keys().filter(|id| !parents.contains(id.as_str())).cloned().collect()
    }

    /// Heads that need a merge: several heads on the same branch. Alembic marks
    /// branches kept apart on purpose with `branch_labels` (inherited along
    /// `down_revision`), so heads whose label sets differ are separate branches;
    /// heads sharing one (both unlabelled, say) are the accident `alembic merge`
    /// fixes. Returns those heads, sorted; empty when there is nothing to merge.
    pub fn heads_to_merge(&self) -> Vec<String> {
        let heads = self.heads();
        let labels: Vec<BTreeSet<&str>> = heads.iter().map(|h| self.branch_of(h)).collect();
        heads
            .iter()
            .enumerate()
            .filter(|(i, _)| labels.iter().enumerate().any(|(j, l)| j != *i && *l == labels[*i]))
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// The branch labels of `id` and its `down_revision` ancestors.
    fn branch_of(&self, id: &str) -> BTreeSet<&str> {
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut labels = BTreeSet::new();
        let mut todo = vec![id];
        while let Some(x) = todo.pop() {
            let Some(r) = self.revisions.get(x) else { continue };
            if !seen.insert(r.id.as_str()) {
                continue;
            }
            labels.extend(r.branch_labels.iter().map(String::as_str));
            todo.extend(r.down_revision.iter().map(String::as_str));
        }
        labels
    }

    /// Every revision applied when the version table holds `rows`: each row
    /// and what it descends from through `down_revision` and `depends_on`.
    fn applied<'a>(&'a self, rows: &[String]) -> Result<BTreeSet<&'a str>, GraphError> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut todo: Vec<&str> = Vec::new();
        for row in rows {
            let id = self
                .revisions
                .get_key_value(row)
                .map(|(k, _)| k.as_str())
                .ok_or_else(|| GraphError::UnknownApplied { id: row.clone() })?;
            todo.push(id);
        }
        while let Some(id) = todo.pop() {
            if done.insert(id) {
                todo.extend(self.parents_of(id));
            }
        }
        Ok(done)
    }

    /// The current revisions as `alembic current` shows them for `rows`: of
    /// everything applied, those with no applied `down_revision` child. A row
    /// whose `depends_on` reaches another branch makes that branch's tip current too.
    pub fn current(&self, rows: &[String]) -> Result<Vec<String>, GraphError> {
        let done = self.applied(rows)?;
        let has_child: BTreeSet<&str> = done
            .iter()
            .filter_map(|id| self.revisions.get(*id))
            .flat_map(|r| r.down_revision.iter().map(String::as_str))
            .collect();
        Ok(done.iter().filter(|id| !has_child.contains(*id)).map(|id| id.to_string()).collect())
    }

    /// What `alembic upgrade heads` would apply to a database whose version
    /// table holds `applied`, parents before children (ties by id).
    pub fn pending(&self, applied: &[String]) -> Result<Vec<String>, GraphError> {
        let done = self.applied(applied)?;
        // Kahn's algorithm over what is left, smallest id first among the ready.
        let left: BTreeSet<&str> = self.revisions.keys().map(String::as_str).filter(|id| !done.contains(id)).collect();
        let mut waiting: BTreeMap<&str, usize> =
            left.iter().map(|id| (*id, self.parents_of(id).iter().filter(|p| left.contains(*p)).count())).collect();
        let mut order = Vec::new();
        let mut ready: BTreeSet<&str> = waiting.iter().filter(|(_, n)| **n == 0).map(|(id, _)| *id).collect();
        while let Some(id) = ready.pop_first() {
            waiting.remove(id);
            order.push(id.to_string());
            for (child, n) in waiting.iter_mut() {
                if *n > 0 && self.parents_of(child).contains(&id) {
                    *n -= self.parents_of(child).iter().filter(|p| **p == id).count();
                    if *n == 0 {
                        ready.insert(child);
                    }
                }
            }
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev(id: &str, down: &[&str], deps: &[&str]) -> Revision {
        Revision {
            id: id.into(),
            down_revision: down.iter().map(|s| s.to_string()).collect(),
            branch_labels: Vec::new(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            file: PathBuf::from(format!("versions/{id}.py")),
            line: 3,
            down_revision_line: 4,
            depends_on_line: 6,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn linear_history_has_one_head_and_pending_follows_the_rows() {
        let g = Graph::build(vec![rev("a", &[], &[]), rev("b", &["a"], &[]), rev("c", &["b"], &[])]).unwrap();
        assert_eq!(g.heads(), strings(&["c"]));
        assert_eq!(g.pending(&[]).unwrap(), strings(&["a", "b", "c"]));
        assert_eq!(g.pending(&strings(&["b"])).unwrap(), strings(&["c"]));
        assert!(g.pending(&strings(&["c"])).unwrap().is_empty());
    }

    #[test]
    fn branches_give_two_heads_until_merged() {
        let mut revs = vec![rev("a", &[], &[]), rev("b1", &["a"], &[]), rev("b2", &["a"], &[])];
        let g = Graph::build(revs.clone()).unwrap();
        assert_eq!(g.heads(), strings(&["b1", "b2"]));
        assert_eq!(g.pending(&strings(&["b1"])).unwrap(), strings(&["b2"]));
        revs.push(rev("m", &["b1", "b2"], &[]));
        let g = Graph::build(revs).unwrap();
        assert_eq!(g.heads(), strings(&["m"]));
        assert_eq!(g.pending(&strings(&["b1"])).unwrap(), strings(&["b2", "m"]));
    }

    #[test]
    fn depends_on_orders_but_does_not_make_a_parent() {
        let mut other = rev("x1", &[], &[]);
        other.branch_labels = strings(&["other"]);
        let g = Graph::build(vec![rev("a", &[], &[]), rev("b", &["a"], &["other"]), other]).unwrap();
        assert_eq!(g.heads(), strings(&["b", "x1"]));
        assert_eq!(g.pending(&strings(&["a"])).unwrap(), strings(&["x1", "b"]));
        // b applied means x1 is too.
        assert!(g.pending(&strings(&["b"])).unwrap().is_empty());
        assert_eq!(g.current(&strings(&["b"])).unwrap(), strings(&["b", "x1"]), "as `alembic current` shows it");
        assert_eq!(g.current(&strings(&["a", "b"])).unwrap(), strings(&["b", "x1"]));
    }

    #[test]
    fn heads_on_separately_labelled_branches_need_no_merge() {
        let mut x = rev("x1", &[], &[]);
        x.branch_labels = strings(&["other"]);
        let revs = vec![rev("a", &[], &[]), rev("b", &["a"], &["x1"]), x, rev("x2", &["x1"], &[])];
        let g = Graph::build(revs.clone()).unwrap();
        assert_eq!(g.heads(), strings(&["b", "x2"]));
        assert!(g.heads_to_merge().is_empty(), "two labelled branches are on purpose");
        let mut more = revs;
        more.push(rev("x3", &["x1"], &[]));
        let g = Graph::build(more).unwrap();
        assert_eq!(g.heads_to_merge(), strings(&["x2", "x3"]), "two heads within branch `other`");
        let g = Graph::build(vec![rev("a", &[], &[]), rev("b", &["a"], &[]), rev("c", &["a"], &[])]).unwrap();
        assert_eq!(g.heads_to_merge(), strings(&["b", "c"]));
    }

    #[test]
    fn errors_name_the_files() {
        let e = Graph::build(vec![rev("a", &[], &[]), rev("a", &[], &[])]).unwrap_err();
        assert!(e.to_string().contains("versions/a.py and in versions/a.py"), "{e}");
        let e = Graph::build(vec![rev("a", &["zz"], &[])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "versions/a.py:4: down_revision names revision zz, which no file in the versions directories defines"
        );
        let g = Graph::build(vec![rev("abc123", &[], &[]), rev("b", &[], &["abc"])]).unwrap();
        assert!(g.pending(&strings(&["b"])).unwrap().is_empty(), "a unique prefix in depends_on resolves");
        let e = Graph::build(vec![rev("ab1", &[], &[]), rev("ab2", &[], &[]), rev("b", &[], &["ab"])]).unwrap_err();
        assert!(e.to_string().contains("depends_on names revision ab"), "an ambiguous prefix does not: {e}");
        let e = Graph::build(vec![rev("a", &[], &["zz"])]).unwrap_err();
        assert!(e.to_string().starts_with("versions/a.py:6: depends_on names revision zz"), "{e}");
        let e = Graph::build(vec![rev("a", &["c"], &[]), rev("b", &["a"], &[]), rev("c", &["b"], &[])]).unwrap_err();
        let GraphError::Cycle { files, ids } = &e else { panic!("{e}") };
        assert_eq!(files.len(), 3, "{e}");
        assert_eq!(ids.first(), ids.last(), "{e}");
        let e = Graph::build(vec![rev("a", &[], &["b"]), rev("b", &["a"], &[])]).unwrap_err();
        assert!(matches!(e, GraphError::Cycle { .. }), "{e}");
        let g = Graph::build(vec![rev("a", &[], &[])]).unwrap();
        assert!(g.pending(&strings(&["nope"])).unwrap_err().to_string().contains("holds revision nope"));
    }

    proptest::proptest! {
        /// Random DAGs (parents always have smaller indices): heads are exactly
        /// the revisions with no child, pending respects every parent edge, and
        /// applying it brings the database to the heads.
        #[test]
        fn pending_is_a_topological_completion(
            edges in proptest::collection::vec(proptest::collection::vec(0usize..100, 0..3), 1..25),
            applied_pick in proptest::collection::vec(0usize..100, 0..3),
        ) {
            let n = edges.len();
            let revs: Vec<Revision> = edges.iter().enumerate().map(|(i, ps)| {
                let mut down: Vec<String> = ps.iter().filter(|_| i > 0).map(|p| format!("r{:02}", p % i)).collect();
                down.sort();
                down.dedup();
                let mut r = rev(&format!("r{i:02}"), &[], &[]);
                r.down_revision = down;
                r
            }).collect();
            let g = Graph::build(revs.clone()).unwrap();
            let applied: Vec<String> = applied_pick.iter().map(|p| format!("r{:02}", p % n)).collect();
            let pending = g.pending(&applied).unwrap();
            let position = |id: &str| pending.iter().position(|p| p == id);
            for r in &revs {
                if let Some(at) = position(&r.id) {
                    for d in &r.down_revision {
                        proptest::prop_assert!(position(d).is_none_or(|pd| pd < at), "{} before {}", d, r.id);
                    }
                }
            }
            let mut all: Vec<String> = applied.clone();
            all.extend(pending.clone());
            proptest::prop_assert!(g.pending(&all).unwrap().is_empty());
            for h in g.heads() {
                proptest::prop_assert!(!revs.iter().any(|r| r.down_revision.contains(&h)));
            }
        }
    }
}
