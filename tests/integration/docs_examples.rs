//! The docs' local examples run, so they cannot rot.
//!
//! Convention: a fenced `sh` block directly after the line
//! `<!-- local-example -->` is executed. Options go inside the comment:
//!
//! - `exit=N`: the block must exit N (default 0);
//! - `before: COMMANDS`: commands run first, unseen by the reader (everything
//!   after `before:` up to `-->`); they must exit 0.
//!
//! The blocks of one file run in order, as `sh -e` scripts, in one fresh copy
//! of examples/quickstart whose app.db is seeded from seed.sql (`../../scripts/`
//! reaches the repository's scripts), with the ferry under test first on PATH
//! (and in `FERRY`). A block fails the test naming the
//! file, its line, the expected and actual exit codes and its output.
//!
//! The second test checks that every command's `--help` names its page in
//! docs/commands/ and that the page exists.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::CommandFactory;

const MARKER: &str = "<!-- local-example";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
struct Example {
    line: usize,
    exit: i32,
    before: Option<String>,
    script: String,
}

/// The marked blocks of one markdown file.
fn examples(path: &Path, text: &str) -> Vec<Example> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        if let Some(rest) = line.strip_prefix(MARKER) {
            let opts = rest.strip_suffix("-->").unwrap_or_else(|| {
                panic!("{}:{}: the marker must fit on one line and end with -->", path.display(), i + 1)
            });
            let (opts, before) = match opts.split_once("before:") {
                Some((o, b)) => (o, Some(b.trim().to_string())),
                None => (opts, None),
            };
            let mut exit = 0;
            for opt in opts.split_whitespace() {
                match opt.strip_prefix("exit=") {
                    Some(n) => exit = n.parse().unwrap_or_else(|_| panic!("{}:{}: bad {opt}", path.display(), i + 1)),
                    None => panic!("{}:{}: unknown option {opt:?} (exit=N, before: ...)", path.display(), i + 1),
                }
            }
            let fence = i + 1;
            assert!(
                lines.get(fence).is_some_and(|l| l.trim() == "```sh"),
                "{}:{}: a local-example marker must be followed directly by a ```sh block",
                path.display(),
                i + 1
            );
            let end = (fence + 1..lines.len())
                .find(|&k| lines[k].trim() == "```")
                .unwrap_or_else(|| panic!("{}:{}: unclosed block", path.display(), fence + 1));
            out.push(Example { line: fence + 1, exit, before, script: lines[fence + 1..end].join("\n") });
            i = end;
        }
        i += 1;
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "md") {
                out.push(p);
            }
        }
    }
    let mut files = vec![repo().join("README.md"), repo().join("examples/quickstart/README.md")];
    walk(&repo().join("docs"), &mut files);
    files.sort();
    files
}

/// A fresh, seeded copy of examples/quickstart at `<tmp>/examples/quickstart`,
/// with `<tmp>/scripts` linked to the repository's scripts, so that
/// `../../scripts/deploy-stage.sh` works from it as from the real one.
fn quickstart() -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("examples/quickstart");
    std::fs::create_dir_all(&dir).unwrap();
    copy_dir(&repo().join("examples/quickstart"), &dir);
    std::os::unix::fs::symlink(repo().join("scripts"), root.path().join("scripts")).unwrap();
    let seeded = run(&dir, "ferry db exec local --create --file seed.sql");
    assert_eq!(seeded.0, 0, "seeding the quickstart failed: {}", seeded.1);
    (root, dir)
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().filter_map(Result::ok) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".ferry" || name.starts_with("app") {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The directory that puts the ferry under test first on PATH.
fn bin_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(common::FERRY, d.path().join("ferry")).unwrap();
        d
    })
    .path()
}

/// Runs `script` with `sh -e` in `dir`: (exit code, stdout and stderr).
fn run(dir: &Path, script: &str) -> (i32, String) {
    let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("FERRY", common::FERRY)
        .env_remove("FERRY_CONFIG")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs one file's blocks in order in a fresh quickstart; the failures, named.
fn run_file(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(repo()).unwrap().display().to_string();
    let blocks = examples(file, &std::fs::read_to_string(file).unwrap());
    let mut failures = Vec::new();
    if blocks.is_empty() {
        return failures;
    }
    let (_root, dir) = quickstart();
    for b in blocks {
        if let Some(before) = &b.before {
            let (code, out) = run(&dir, before);
            if code != 0 {
                failures.push(format!("{rel}:{}: its `before:` commands exited {code}: {before}\n{out}", b.line));
                continue;
            }
        }
        let (code, out) = run(&dir, &b.script);
        if code != b.exit {
            failures.push(format!(
                "{rel}:{}: the example exited {code}, the docs say {}\n--- the block\n{}\n{out}",
                b.line, b.exit, b.script
            ));
        }
    }
    failures
}

#[test]
fn every_local_example_in_the_docs_runs() {
    let files = markdown_files();
    let with_examples: Vec<String> = files
        .iter()
        .filter(|f| !examples(f, &std::fs::read_to_string(f).unwrap()).is_empty())
        .map(|f| f.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    // The pages promised to carry runnable examples.
    for page in ["README.md", "docs/runbooks/release.md", "docs/runbooks/incident-restore.md"] {
        assert!(with_examples.iter().any(|p| p == page), "{page} has no local-example block");
    }
    let commands = std::fs::read_dir(repo().join("docs/commands")).unwrap().count();
    let with = with_examples.iter().filter(|p| p.starts_with("docs/commands/")).count();
    assert!(with + 1 >= commands, "every page in docs/commands/ (but its README) runs an example: {with_examples:?}");

    // One thread per file: each has its own copy of the quickstart.
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = files.iter().map(|f| s.spawn(move || run_file(f))).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert!(failures.is_empty(), "{} doc examples failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn the_marker_convention_is_read_as_documented() {
    let text = "x\n<!-- local-example exit=4 before: ferry deploy local -->\n```sh\nferry deploy broken\n```\n\
                ```sh\nnot marked\n```\n<!-- local-example -->\n```sh\na\nb\n```\n";
    let ex = examples(Path::new("t.md"), text);
    assert_eq!(ex.len(), 2, "{ex:?}");
    assert_eq!((ex[0].line, ex[0].exit, ex[0].before.as_deref()), (3, 4, Some("ferry deploy local")));
    assert_eq!(ex[0].script, "ferry deploy broken");
    assert_eq!((ex[1].exit, ex[1].before.as_deref(), ex[1].script.as_str()), (0, None, "a\nb"));
}

#[test]
fn every_commands_help_names_its_docs_page() {
    let mut missing = Vec::new();
    fn visit(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let name = format!("{path} {}", sub.get_name());
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            // A URL into the release tag's tree: the page must exist here, at the same path.
            let page = help.split_once("Docs: ").map(|(_, p)| p.trim());
            match page.map(|p| p.strip_prefix(ferry::cli::DOCS_BASE).map(|rel| format!("docs/{rel}"))) {
                Some(Some(page)) if repo().join(&page).is_file() => {}
                Some(None) => {
                    missing.push(format!("`{name} --help` names {page:?}, not a URL under {}", ferry::cli::DOCS_BASE))
                }
                Some(Some(page)) => missing.push(format!("`{name} --help` names {page}, which does not exist")),
                None => {
                    missing.push(format!("`{name} --help` names no docs page (after_help \"Docs: docs/commands/...\")"))
                }
            }
            visit(sub, &name, missing);
        }
    }
    visit(&ferry::cli::Cli::command(), "ferry", &mut missing);
    assert!(missing.is_empty(), "{}", missing.join("\n"));

    // And the binary prints it.
    let out = Command::new(common::FERRY).args(["snapshot", "prune", "--help"]).output().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let url = format!("Docs: https://github.com/ferry-dev/ferry/blob/v{version}/docs/commands/snapshot.md");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&url), "{}", String::from_utf8_lossy(&out.stdout));
    // The tag the URL names is the one the release workflow is started by: v<version>.
    let release = std::fs::read_to_string(repo().join(".github/workflows/release.yml")).unwrap();
    assert!(release.contains("- \"v[0-9]+.[0-9]+.[0-9]+*\""), "release tags are v<version>");
    let top = Command::new(common::FERRY).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&top.stdout).contains(&format!("/blob/v{version}/docs/commands/README.md")));
}

#[test]
fn every_positional_argument_is_described_in_help() {
    let mut bare = Vec::new();
    fn visit(cmd: &clap::Command, path: &str, bare: &mut Vec<String>) {
        for arg in cmd.get_positionals().filter(|a| a.get_help().is_none_or(|h| h.to_string().trim().is_empty())) {
            bare.push(format!("`{path}`: {}", arg.get_id()));
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            visit(sub, &format!("{path} {}", sub.get_name()), bare);
        }
    }
    visit(&ferry::cli::Cli::command(), "ferry", &mut bare);
    assert!(bare.is_empty(), "positional arguments without a description in --help:\n{}", bare.join("\n"));
    let out = Command::new(common::FERRY).args(["deploy", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("The environment: an [env.NAME] table of ferry.toml"));
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// `[text](target)` links outside code blocks and code spans.
fn links(markdown: &str) -> Vec<(usize, String)> {
    let mut in_fence = false;
    let mut out = Vec::new();
    for (n, line) in markdown.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut rest = line;
        let mut in_code = false;
        while let Some(at) = rest.find(['`', ']']) {
            let c = rest.as_bytes()[at];
            if c == b'`' {
                in_code = !in_code;
            } else if !in_code
                && rest[at + 1..].starts_with('(')
                && let Some(end) = rest[at + 2..].find(')')
            {
                out.push((n + 1, rest[at + 2..at + 2 + end].to_string()));
            }
            rest = &rest[at + 1..];
        }
    }
    out
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut files = markdown_files();
    files.push(repo().join("infra/README.md"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let rel = file.strip_prefix(repo()).unwrap().display().to_string();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = target.split_once('#').map_or((target.as_str(), None), |(p, a)| (p, Some(a)));
            let dest = if path.is_empty() { file.clone() } else { file.parent().unwrap().join(path) };
            if !dest.exists() {
                broken.push(format!("{rel}:{line}: {target}: no such file"));
                continue;
            }
            if let Some(anchor) = anchor
                && dest.extension().is_some_and(|x| x == "md")
                && !anchors(&std::fs::read_to_string(&dest).unwrap()).iter().any(|a| a == anchor)
            {
                broken.push(format!("{rel}:{line}: {target}: no heading with that anchor"));
            }
        }
    }
    assert!(checked > 50, "only {checked} links found: the link reader is broken");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_are_githubs() {
    assert_eq!(slug(" `${output:Name}` references"), "outputname-references");
    assert_eq!(slug(" 6. AWS: the migration stack and ferry's policy"), "6-aws-the-migration-stack-and-ferrys-policy");
    assert_eq!(links("see [a](b.md#c) and `[x](y)`\n```\n[p](q)\n```"), vec![(1, "b.md#c".to_string())]);
}
