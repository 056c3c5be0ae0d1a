//! What a release ships and how an application's repository uses it:
//! `ferry --version` (commit, build date, target), `ferry completions` and
//! `ferry man` (no ferry.toml needed), scripts/package-release.sh on the host
//! target, the repository URL kept once in Cargo.toml, and
//! examples/app-repo (its config, its Alembic project on real PostgreSQL,
//! its workflow's promises).

#[allow(dead_code)] // only the date and commit helpers are tested; main() is cargo's
#[path = "../../build.rs"]
mod build_script;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::{self, FERRY, Project, Run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// ferry run outside any project, with FERRY_CONFIG naming a file that does
/// not exist: a command that read the config would fail.
fn ferry_anywhere(args: &[&str]) -> (Run, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let r = Command::new(FERRY)
        .args(args)
        .current_dir(dir.path())
        .env("FERRY_CONFIG", dir.path().join("missing.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    (r, dir)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(repo()).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

// --- ferry --version -----------------------------------------------------------

#[test]
fn version_names_the_commit_the_build_date_and_the_target() {
    let (r, _dir) = ferry_anywhere(&["--version"]);
    assert_eq!(r.code, 0, "{r:?}");
    let line = r.stdout.trim_end();
    assert_eq!(line, format!("ferry {}", ferry::cli::LONG_VERSION));
    let rest = line.strip_prefix(&format!("ferry {} (commit ", env!("CARGO_PKG_VERSION"))).unwrap();
    let (commit, rest) = rest.split_once(", built ").unwrap();
    let (date, target) = rest.trim_end_matches(')').split_once(", ").unwrap();
    assert!(chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok(), "build date {date:?}");
    assert!(target.split('-').count() >= 3, "target triple {target:?}");
    // Built from a git checkout of this repository: its HEAD; otherwise unknown.
    let checkout = git(&["rev-parse", "--show-toplevel"])
        .is_some_and(|top| Path::new(&top).canonicalize().ok() == repo().canonicalize().ok());
    let want = if checkout { git(&["rev-parse", "--short=12", "HEAD"]).unwrap() } else { "unknown".into() };
    assert_eq!(commit, want);

    let (r, _dir) = ferry_anywhere(&["-V"]);
    assert_eq!((r.code, r.stdout.trim_end()), (0, format!("ferry {}", env!("CARGO_PKG_VERSION")).as_str()));
}

#[test]
fn the_build_scripts_dates_are_the_calendars() {
    // Years 1 to 9999: the dates a build can have.
    for days in (-719_162..2_932_896).step_by(97).chain([0, 59, 60, 365, 10_956, 11_016, 20_454]) {
        let want = chrono::DateTime::from_timestamp(days * 86_400, 0).unwrap().date_naive();
        let (y, m, d) = build_script::civil_date(days);
        assert_eq!(format!("{y:04}-{m:02}-{d:02}"), want.format("%Y-%m-%d").to_string(), "day {days}");
    }
    // FERRY_BUILD_DATE wins, then SOURCE_DATE_EPOCH, then the clock.
    let now = 1_780_000_000; // 2026-05-28
    assert_eq!(build_script::build_date(Some("2026-01-02".into()), Some("0".into()), now).unwrap(), "2026-01-02");
    assert_eq!(build_script::build_date(None, Some("1700000000".into()), now).unwrap(), "2023-11-14");
    assert_eq!(build_script::build_date(None, None, now).unwrap(), "2026-05-28");
    let bad = build_script::build_date(None, Some("yesterday".into()), now).unwrap_err();
    assert!(bad.contains("SOURCE_DATE_EPOCH must be seconds"), "{bad}");
    assert!(build_script::build_date(Some("2026\n01".into()), None, now).is_err());
    // FERRY_BUILD_COMMIT wins over git; without either, unknown.
    let full = "0095b960dc4bd7c4ed1f19a9b0f4e1d1c2f3a4b5";
    assert_eq!(build_script::commit(Some(full.into()), || panic!("git asked")), "0095b960dc4b");
    assert_eq!(build_script::commit(None, || Some("abc123".into())), "abc123");
    assert_eq!(build_script::commit(None, || None), "unknown");
    assert_eq!(build_script::shorten("a\nb"), "a b");
    assert_eq!(build_script::shorten(full), "0095b960dc4b");
    assert_eq!(build_script::shorten("0095b96"), "0095b96");
    assert_eq!(build_script::shorten("release-build"), "release-build");
}

// --- completions and man pages ---------------------------------------------------

#[test]
fn bash_completion_completes_subcommands_without_a_project() {
    let (r, dir) = ferry_anywhere(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{r:?}");
    for sub in ["deploy", "plan", "snapshot", "restore", "resume", "doctor", "completions", "man"] {
        assert!(r.stdout.contains(sub), "the bash completion does not mention {sub}");
    }
    assert!(!r.stdout.contains("task-supervisor"), "a hidden subcommand is offered");
    let script = dir.path().join("ferry.bash");
    std::fs::write(&script, &r.stdout).unwrap();
    // What bash offers for `ferry sn<TAB>` and `ferry snapshot <TAB>`.
    let complete = |words: &str, cword: usize| -> String {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE=\"${{COMP_WORDS[*]}}\"; COMP_POINT=${{#COMP_LINE}}; \
             _ferry ferry \"${{COMP_WORDS[$COMP_CWORD]}}\" \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            script.display()
        );
        let out = Command::new("bash").args(["--noprofile", "--norc", "-c", &probe]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("ferry sn", 1), "snapshot");
    let offered = complete("ferry snapshot ''", 2);
    for sub in ["create", "list", "wait", "delete", "prune"] {
        assert!(offered.split(' ').any(|w| w == sub), "`ferry snapshot <TAB>` offers {offered:?}");
    }
    assert!(complete("ferry deploy --no-", 2).contains("--no-snapshot"));

    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let (r, _dir) = ferry_anywhere(&["completions", shell]);
        assert_eq!(r.code, 0, "{shell}: {r:?}");
        assert!(r.stdout.contains("deploy") && !r.stdout.contains("task-supervisor"), "{shell}");
    }
    let (r, _dir) = ferry_anywhere(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("possible values: bash"), "{r:?}");
}

#[test]
fn man_writes_ferry_1_and_a_page_per_subcommand() {
    let (r, dir) = ferry_anywhere(&["man", "--dir", "pages/man1"]);
    assert_eq!(r.code, 0, "{r:?}");
    let pages = dir.path().join("pages/man1");
    let mut names: Vec<String> =
        std::fs::read_dir(&pages).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    for want in [
        "ferry.1",
        "ferry-deploy.1",
        "ferry-snapshot.1",
        "ferry-snapshot-create.1",
        "ferry-completions.1",
        "ferry-man.1",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    assert!(!names.iter().any(|n| n.contains("supervisor") || n.contains("help")), "{names:?}");
    let listed: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(listed.len(), names.len(), "stdout lists every page written: {r:?}");
    assert!(listed.iter().all(|l| l.starts_with("pages/man1/ferry")), "{r:?}");
    let deploy = std::fs::read_to_string(pages.join("ferry-deploy.1")).unwrap();
    assert!(deploy.contains(".TH ferry-deploy 1"), "{deploy}");
    assert!(deploy.contains("no\\-snapshot"), "the page documents the flags: {deploy}");

    // Without --dir: ferry(1) on stdout.
    let (r, _dir) = ferry_anywhere(&["man"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(".TH ferry 1") && r.stdout.contains("deploy"), "{r:?}");

    // A directory that cannot be made (a file is in the way): exit 2, named.
    let blocked = tempfile::tempdir().unwrap();
    std::fs::write(blocked.path().join("file"), "").unwrap();
    let r: Run =
        Command::new(FERRY).args(["man", "--dir", "file/man1"]).current_dir(blocked.path()).output().unwrap().into();
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot write the man pages to file/man1"), "{r:?}");
}

// --- packaging ----------------------------------------------------------------------

fn host_triple() -> String {
    let out = Command::new("rustc").arg("-vV").output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| l.strip_prefix("host: ")).unwrap().to_string()
}

fn package(args: &[&str]) -> Run {
    Command::new(repo().join("scripts/package-release.sh")).args(args).stdin(Stdio::null()).output().unwrap().into()
}

#[test]
fn packaging_the_host_target_ships_the_binary_completions_man_pages_and_license() {
    let dist = tempfile::tempdir().unwrap();
    let out = dist.path().to_str().unwrap();
    let r = package(&["archive", "--bin", FERRY, "--out", out]);
    assert_eq!(r.code, 0, "{r:?}");
    let target = host_triple();
    let archive = dist.path().join(format!("ferry-{target}.tar.gz"));
    assert_eq!(r.stdout.trim(), archive.display().to_string());

    let unpacked = tempfile::tempdir().unwrap();
    let ok = Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(unpacked.path()).status().unwrap();
    assert!(ok.success());
    let top = unpacked.path().join(format!("ferry-{target}"));
    for file in [
        "ferry",
        "completions/ferry.bash",
        "completions/_ferry",
        "completions/ferry.fish",
        "completions/_ferry.ps1",
        "completions/ferry.elv",
        "man/man1/ferry.1",
        "man/man1/ferry-deploy.1",
        "man/man1/ferry-snapshot-prune.1",
        "LICENSE",
        "README.md",
    ] {
        let path = top.join(file);
        assert!(path.metadata().is_ok_and(|m| m.len() > 0), "the archive lacks {file}");
    }
    let out = Command::new(top.join("ferry")).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("ferry {}", ferry::cli::LONG_VERSION));
    let bash = std::fs::read_to_string(top.join("completions/ferry.bash")).unwrap();
    assert!(bash.contains("_ferry()") && bash.contains("snapshot"), "bash completion: {bash}");

    // finish: install.sh with Cargo.toml's releases URL, SHA256SUMS over all.
    let r = package(&["finish", dist.path().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    let installer = std::fs::read_to_string(dist.path().join("install.sh")).unwrap();
    let stamped = format!("stamped_download_url='{}/releases'", cargo_key("repository"));
    assert!(installer.lines().any(|l| l == stamped), "install.sh is not stamped with {stamped}");
    let sums = std::fs::read_to_string(dist.path().join("SHA256SUMS")).unwrap();
    let names: Vec<&str> = sums.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(names, vec![format!("ferry-{target}.tar.gz").as_str(), "install.sh"]);
    let check = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(dist.path()).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
}

#[test]
fn a_release_tag_must_match_cargo_toml_and_the_actions_default() {
    let tag = format!("v{}", env!("CARGO_PKG_VERSION"));
    let r = package(&["check-tag", &tag]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = package(&["check-tag", "v0.0.0-not-this"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("is not v<Cargo.toml's version> ({tag})")), "{r:?}");
    let r = package(&["frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
}

// --- the repository URL, once -------------------------------------------------------

fn cargo_key(key: &str) -> String {
    let toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let prefix = format!("{key} = \"");
    toml.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap().trim_end_matches('"').to_string()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_repository_url_comes_from_cargo_toml_and_every_mention_agrees() {
    let repository = cargo_key("repository");
    let owner_repo = repository.strip_prefix("https://github.com/").unwrap();
    assert!(cargo_key("homepage").starts_with(&repository));
    assert_eq!(
        std::fs::read_to_string(repo().join(".github/action-version")).unwrap().trim(),
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "the setup action's default release is the version in Cargo.toml"
    );
    // install.sh reads Cargo.toml (or FERRY_DOWNLOAD_URL, or its stamped copy).
    let installer = std::fs::read_to_string(repo().join("scripts/install.sh")).unwrap();
    assert!(!installer.contains(owner_repo), "scripts/install.sh spells out the repository");

    let mut files = vec![repo().join("README.md"), repo().join("action.yml")];
    for dir in ["docs", "examples", ".github"] {
        files_under(&repo().join(dir), &mut files);
    }
    let mut checked = 0;
    for file in files.iter().filter(|f| f.extension().is_some_and(|x| x == "md" || x == "yml")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (marker, end) in [("github.com/", ['/', '#', ')', '`', ' ', '"']), ("uses: ", ['@'; 6])] {
                let Some(at) = line.find(marker) else { continue };
                let rest = &line[at + marker.len()..];
                let mut parts = rest.splitn(3, '/');
                let (Some(owner), Some(name)) = (parts.next(), parts.next()) else { continue };
                let name = name.split(|c| end.contains(&c)).next().unwrap();
                // A GitHub owner, not a placeholder (<owner>, OWNER) or a local path.
                let real = !owner.is_empty()
                    && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && owner.chars().any(|c| c.is_ascii_lowercase());
                if name != "ferry" || !real {
                    continue;
                }
                checked += 1;
                assert_eq!(format!("{owner}/{name}"), owner_repo, "{}:{}: {line}", file.display(), n + 1);
            }
        }
    }
    assert!(checked >= 4, "only {checked} mentions of the repository found: the scan is broken");
}

// --- examples/app-repo ------------------------------------------------------------------

fn app_repo() -> PathBuf {
    repo().join("examples/app-repo")
}

#[test]
fn the_app_repo_example_config_validates_and_its_alembic_project_is_read() {
    let config = app_repo().join("ferry.toml");
    let (r, _dir) = ferry_anywhere(&["--config", config.to_str().unwrap(), "config", "validate"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("valid (2 environments: production, staging)"), "{r:?}");
    let r: Run = Command::new(FERRY)
        .args(["--config", config.to_str().unwrap(), "plan", "production"])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    let text = format!("{}{}", r.stdout, r.stderr);
    assert!(text.contains("Alembic revisions: 2, head(s): 0002_add_products_sku"), "{r:?}");
    assert!(text.contains("run `alembic upgrade head` as a one-off ECS Fargate task (container migrate)"), "{r:?}");
}

/// The example's Alembic project, run by ferry on the local provider against
/// a fresh PostgreSQL database: it migrates to its head, and `ferry check`
/// agrees.
#[test]
fn the_app_repo_alembic_project_migrates_a_real_database() {
    let (Some(url), Some(python)) = (common::pg_server(), common::emulator_python()) else { return };
    let tag = format!("apprepo{:08x}", fastrand::u32(..));
    let db = common::pg_url_with_db(&url, &format!("{tag}_app"));
    let ini = app_repo().join("alembic.ini");
    let versions = app_repo().join("migrations/versions");
    let p = Project::new(&format!(
        "project = \"{tag}\"\n\
         [env.admin]\nprovider = \"local\"\ndatabase = {{ url = \"{url}\" }}\nmigration = {{ command = [\"true\"] }}\n\
         [env.app]\nprovider = \"local\"\ndatabase = {{ url = \"{db}\" }}\n\
         migration = {{ command = [\"{}\", \"-m\", \"alembic\", \"-c\", \"{}\", \"upgrade\", \"head\"], alembic = {{ versions = \"{}\" }} }}\n",
        python.display(),
        ini.display(),
        versions.display()
    ));
    struct Cleanup<'a>(&'a Project, String);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            common::drop_tagged_databases(self.0, &self.1);
        }
    }
    let r = p.ferry(&["db", "exec", "admin", "--sql", &format!("CREATE DATABASE \"{tag}_app\"")]);
    assert_eq!(r.code, 0, "{r:?}");
    let _cleanup = Cleanup(&p, tag.clone());

    let r = p.ferry(&["deploy", "app", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.json()["outcome"], "succeeded");
    let r = p.ferry(&["db", "exec", "app", "--sql", "SELECT version_num FROM alembic_version"]);
    assert_eq!(r.stdout.lines().nth(1), Some("0002_add_products_sku"), "{r:?}");
    let r = p.ferry(&[
        "db",
        "exec",
        "app",
        "--sql",
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'products' ORDER BY ordinal_position",
    ]);
    assert_eq!(r.stdout.lines().skip(1).collect::<Vec<_>>(), ["id", "name", "price_cents", "sku"], "{r:?}");
    let r = p.ferry(&["check", "app"]);
    assert_eq!(r.code, 0, "{r:?}");
}

fn yaml_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn the_app_repo_workflow_sets_up_ferry_and_plans_before_it_deploys_the_image() {
    let w = yaml_lines(&app_repo().join(".github/workflows/migrate.yml"));
    let has = |want: &str, why: &str| assert!(w.iter().any(|l| l == want), "migrate.yml lacks `{want}`: {why}");
    let owner_repo = cargo_key("repository").strip_prefix("https://github.com/").unwrap().to_string();
    has(&format!("uses: {owner_repo}@{}", action_major_tag()), "the setup action, not a build of ferry");
    has("id-token: write", "OIDC");
    has("role-to-assume: ${{ vars.AWS_ROLE_ARN }}", "the per-environment deploy role");
    has("environment: ${{ inputs.environment }}", "GitHub environment protection");
    has("group: ferry-migrate-${{ inputs.environment }}", "one migration per environment at a time");
    has("cancel-in-progress: false", "a second run waits");
    has("FERRY_IMAGE: ${{ inputs.image }}", "one image for the plan and the deploy");
    has("include-hidden-files: true", "the journal under .ferry/ is part of the artefact");
    has(".ferry/runs/", "the journal is uploaded");
    has("exit \"${CODE:-1}\"", "the job fails with ferry's exit code");
    assert!(!w.iter().any(|l| l.contains("cargo ")), "an app repository does not build ferry");
    let plan = w.iter().position(|l| l == "run: ferry plan \"$FERRY_ENV\"").expect("ferry plan step");
    let deploy =
        w.iter().position(|l| l.contains("ferry deploy \"$FERRY_ENV\" --yes --output json > run.json")).unwrap();
    assert!(plan < deploy, "the plan comes first");
    let upload = w.iter().position(|l| l == "uses: actions/upload-artifact@v4").unwrap();
    assert_eq!(w[upload - 1], "if: always()", "the record is uploaded whatever the outcome");
}

#[test]
fn the_release_workflow_builds_every_target_and_publishes_checksums() {
    let w = yaml_lines(&repo().join(".github/workflows/release.yml"));
    let has = |want: &str| assert!(w.iter().any(|l| l == want), "release.yml lacks `{want}`");
    has("- \"v[0-9]+.[0-9]+.[0-9]+*\"");
    for target in
        ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-apple-darwin", "aarch64-apple-darwin"]
    {
        has(&format!("- target: {target}"));
    }
    has("run: scripts/package-release.sh check-tag \"$GITHUB_REF_NAME\"");
    has("scripts/package-release.sh archive --target \"$TARGET\" --out dist");
    has("run: scripts/package-release.sh finish dist");
    has("uses: ./.github/workflows/action-selftest.yml");
    let selftest = yaml_lines(&repo().join(".github/workflows/action-selftest.yml"));
    assert!(selftest.iter().any(|l| l == "uses: ./"), "the self-test uses the action of this repository");
}

/// The major tag the release workflow moves for the action's default version
/// (.github/action-version): `v0` while ferry is 0.x.
fn action_major_tag() -> String {
    let version = std::fs::read_to_string(repo().join(".github/action-version")).unwrap();
    let w = yaml_lines(&repo().join(".github/workflows/release.yml"));
    assert!(w.iter().any(|l| l == "major=${GITHUB_REF_NAME%%.*}"), "the release moves the tag's major part");
    version.trim().split('.').next().unwrap().to_string()
}

#[test]
fn every_setup_action_tag_in_the_docs_is_the_one_the_release_moves() {
    let owner_repo = cargo_key("repository").strip_prefix("https://github.com/").unwrap().to_string();
    let want = format!("{owner_repo}@{}", action_major_tag());
    let mut files = vec![repo().join("README.md")];
    files_under(&repo().join("docs"), &mut files);
    files_under(&repo().join("examples"), &mut files);
    let needle = format!("{owner_repo}@");
    let mut seen = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        for (at, _) in text.match_indices(&needle) {
            let tag: String = text[at..].chars().take_while(|c| !c.is_whitespace() && *c != '`').collect();
            assert_eq!(tag, want, "{} names {tag}", f.display());
            seen += 1;
        }
    }
    assert!(seen >= 3, "the README, docs/github-actions.md and the example name the action");
}
