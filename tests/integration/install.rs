//! scripts/install.sh and the setup action (action.yml) against fake releases
//! served on 127.0.0.1: the asset for this machine is installed into
//! FERRY_INSTALL_DIR, `--version` picks that release, a checksum mismatch is
//! refused with nothing installed, an unknown platform is named. The action's
//! steps are run as action.yml spells them, with the environment GitHub gives
//! them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::common::Run;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The release target install.sh picks for this machine.
fn host_target() -> String {
    let os = match std::env::consts::OS {
        "linux" => "unknown-linux-musl",
        "macos" => "apple-darwin",
        other => panic!("no release target for {other}"),
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

const TARGETS: [&str; 4] =
    ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl", "x86_64-apple-darwin", "aarch64-apple-darwin"];

/// Fake releases on a loopback HTTP server: `<url>/download/<tag>/<asset>` and
/// `<url>/latest/download/<asset>`, as GitHub lays them out. Each archive's
/// `ferry` is a shell script printing its version and target.
struct Releases {
    root: tempfile::TempDir,
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Releases {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/releases", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (dir, log) = (root.path().to_path_buf(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &dir, &log);
            }
        });
        Releases { root, url, requests }
    }

    /// A release `tag` with an archive per target and its SHA256SUMS; `latest`
    /// also publishes it under latest/.
    fn publish(&self, tag: &str, latest: bool) -> PathBuf {
        let dir = self.root.path().join("releases/download").join(tag);
        std::fs::create_dir_all(&dir).unwrap();
        let work = tempfile::tempdir().unwrap();
        for target in TARGETS {
            let inner = work.path().join(format!("ferry-{target}"));
            std::fs::create_dir_all(&inner).unwrap();
            let script = format!(
                "#!/bin/sh\necho \"ferry {} (commit fake, built 2026-01-01, {target})\"\n",
                tag.trim_start_matches('v')
            );
            write_executable(&inner.join("ferry"), &script);
            let archive = dir.join(format!("ferry-{target}.tar.gz"));
            let ok = Command::new("tar")
                .arg("-czf")
                .arg(&archive)
                .arg("-C")
                .arg(work.path())
                .arg(format!("ferry-{target}"))
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let sums = Command::new("sh").arg("-c").arg("sha256sum *.tar.gz > SHA256SUMS").current_dir(&dir).status();
        assert!(sums.unwrap().success());
        if latest {
            let latest = self.root.path().join("releases/latest/download");
            let _ = std::fs::remove_dir_all(&latest);
            std::fs::create_dir_all(&latest).unwrap();
            for e in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
                std::fs::copy(e.path(), latest.join(e.file_name())).unwrap();
            }
        }
        dir
    }

    fn requested(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// One GET, answered from `root` (200 with the file, else 404), then closed.
fn serve(stream: std::net::TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(&stream);
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header == "\r\n" {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let file = root.join(path.trim_start_matches('/'));
    let mut out = &stream;
    let body = (!path.contains("..")).then(|| std::fs::read(&file).ok()).flatten();
    let _ = match body {
        Some(body) => out
            .write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes(),
            )
            .and_then(|()| out.write_all(&body)),
        None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// install.sh from the repository with a clean environment: FERRY_DOWNLOAD_URL
/// at `releases`, HOME in `home`, no platform override.
fn install_cmd(releases: &Releases, home: &Path) -> Command {
    let mut c = Command::new("sh");
    c.arg(repo().join("scripts/install.sh"))
        .env("FERRY_DOWNLOAD_URL", &releases.url)
        .env("HOME", home)
        .env_remove("FERRY_INSTALL_DIR")
        .env_remove("FERRY_INSTALL_OS")
        .env_remove("FERRY_INSTALL_ARCH")
        .env_remove("GITHUB_OUTPUT")
        .env_remove("GITHUB_PATH")
        .env_remove("INPUT_VERSION")
        .stdin(Stdio::null());
    c
}

fn run(mut c: Command) -> Run {
    c.output().unwrap().into()
}

/// What the installed ferry says about itself.
fn installed_version(bin: &Path) -> String {
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn installs_the_latest_release_for_this_machine_into_ferry_install_dir() {
    let releases = Releases::new();
    releases.publish("v1.0.0", false);
    releases.publish("v1.1.0", true);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("tools/bin");
    let mut c = install_cmd(&releases, home.path());
    c.env("FERRY_INSTALL_DIR", &dir);
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    let target = host_target();
    assert_eq!(installed_version(&dir.join("ferry")), format!("ferry 1.1.0 (commit fake, built 2026-01-01, {target})"));
    assert_eq!(
        releases.requested(),
        vec![
            "/releases/latest/download/SHA256SUMS".to_string(),
            format!("/releases/latest/download/ferry-{target}.tar.gz")
        ]
    );
    assert!(r.stderr.contains(&format!("installed {}", dir.join("ferry").display())), "{r:?}");
    assert!(r.stderr.contains("is not on PATH"), "says how to reach it: {r:?}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("ferry")], "nothing but ferry in the install dir");

    // Without FERRY_INSTALL_DIR: ~/.local/bin.
    let r = run(install_cmd(&releases, home.path()));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(installed_version(&home.path().join(".local/bin/ferry")).starts_with("ferry 1.1.0 "));
}

#[test]
fn version_picks_that_releases_asset_for_the_platform_asked_for() {
    let releases = Releases::new();
    releases.publish("v1.0.0", false);
    releases.publish("v1.1.0", true);
    let home = tempfile::tempdir().unwrap();
    for (args, os, arch, target, version, from) in [
        (vec!["--version", "v1.0.0"], "Linux", "x86_64", "x86_64-unknown-linux-musl", "1.0.0", "download/v1.0.0"),
        (vec!["--version=1.0.0"], "Linux", "aarch64", "aarch64-unknown-linux-musl", "1.0.0", "download/v1.0.0"),
        (vec!["--version", "v1.1.0"], "Darwin", "arm64", "aarch64-apple-darwin", "1.1.0", "download/v1.1.0"),
        (vec!["--version", "latest"], "Darwin", "x86_64", "x86_64-apple-darwin", "1.1.0", "latest/download"),
        (vec![], "Linux", "amd64", "x86_64-unknown-linux-musl", "1.1.0", "latest/download"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = install_cmd(&releases, home.path());
        c.args(&args).env("FERRY_INSTALL_DIR", dir.path()).env("FERRY_INSTALL_OS", os).env("FERRY_INSTALL_ARCH", arch);
        let r = run(c);
        assert_eq!(r.code, 0, "{args:?} {os} {arch}: {r:?}");
        assert_eq!(
            installed_version(&dir.path().join("ferry")),
            format!("ferry {version} (commit fake, built 2026-01-01, {target})"),
            "{args:?} {os} {arch}"
        );
        let asset = releases.requested().last().cloned().unwrap();
        assert_eq!(asset, format!("/releases/{from}/ferry-{target}.tar.gz"), "{args:?} {os} {arch}");
    }

    // A release that does not exist: named, nothing installed.
    let dir = tempfile::tempdir().unwrap();
    let mut c = install_cmd(&releases, home.path());
    c.args(["--version", "v9.9.9"]).env("FERRY_INSTALL_DIR", dir.path());
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("could not download {}/download/v9.9.9/SHA256SUMS", releases.url)), "{r:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_checksum_mismatch_is_refused_and_the_installed_ferry_is_left_alone() {
    let releases = Releases::new();
    releases.publish("v1.0.0", true);
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("bin");
    let mut c = install_cmd(&releases, home.path());
    c.env("FERRY_INSTALL_DIR", &dir);
    assert_eq!(run(c).code, 0);
    let before = std::fs::read(dir.join("ferry")).unwrap();

    // v1.1.0's archive for this machine is not the one its SHA256SUMS describes.
    let release = releases.publish("v1.1.0", false);
    let archive = release.join(format!("ferry-{}.tar.gz", host_target()));
    let mut bytes = std::fs::read(&archive).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&archive, bytes).unwrap();

    let mut c = install_cmd(&releases, home.path());
    c.args(["--version", "v1.1.0"]).env("FERRY_INSTALL_DIR", &dir);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("checksum mismatch for ferry-{}.tar.gz", host_target())), "{r:?}");
    assert!(r.stderr.contains("nothing was installed"), "{r:?}");
    assert_eq!(std::fs::read(dir.join("ferry")).unwrap(), before, "the installed ferry was replaced");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a partial file was left behind");

    // And into an empty directory: nothing at all.
    let empty = home.path().join("empty");
    let mut c = install_cmd(&releases, home.path());
    c.args(["--version", "v1.1.0"]).env("FERRY_INSTALL_DIR", &empty);
    let r = run(c);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!empty.join("ferry").exists());
}

#[test]
fn an_unknown_platform_is_named_and_nothing_is_downloaded() {
    let releases = Releases::new();
    releases.publish("v1.0.0", true);
    let home = tempfile::tempdir().unwrap();
    for (os, arch) in [("FreeBSD", "amd64"), ("Linux", "riscv64"), ("MINGW64_NT-10.0", "x86_64")] {
        let mut c = install_cmd(&releases, home.path());
        c.env("FERRY_INSTALL_OS", os).env("FERRY_INSTALL_ARCH", arch).env("FERRY_INSTALL_DIR", home.path().join("bin"));
        let r = run(c);
        assert_eq!(r.code, 1, "{os} {arch}: {r:?}");
        assert!(r.stderr.contains(&format!("ferry has no release binary for {os} on {arch}")), "{r:?}");
        assert!(r.stderr.contains("Linux and macOS (Darwin) on x86_64 and aarch64"), "{r:?}");
        // Run from the repository, it names the repository to build from.
        assert!(r.stderr.contains(&format!("cargo install --locked --git {}", cargo_repository())), "{r:?}");
    }
    assert!(releases.requested().is_empty(), "downloaded for a platform without binaries: {:?}", releases.requested());
    assert!(!home.path().join("bin").exists());
}

#[test]
fn usage_errors_exit_2_and_help_documents_the_environment() {
    let releases = Releases::new();
    let home = tempfile::tempdir().unwrap();
    let mut c = install_cmd(&releases, home.path());
    c.arg("--help");
    let r = run(c);
    assert_eq!(r.code, 0, "{r:?}");
    for says in ["--version", "FERRY_INSTALL_DIR", "FERRY_DOWNLOAD_URL", "FERRY_INSTALL_OS", "SHA256SUMS"] {
        assert!(r.stdout.contains(says), "--help lacks {says}: {r:?}");
    }
    for args in [&["--version"][..], &["--version", "one two"], &["--version", "nightly"], &["--frobnicate"]] {
        let mut c = install_cmd(&releases, home.path());
        c.args(args);
        let r = run(c);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains("error:"), "{r:?}");
    }
    assert!(releases.requested().is_empty());
}

#[test]
fn piped_into_sh_it_needs_to_be_told_where_the_releases_are() {
    let releases = Releases::new();
    releases.publish("v1.0.0", true);
    let home = tempfile::tempdir().unwrap();
    let script = std::fs::read(repo().join("scripts/install.sh")).unwrap();
    let pipe = |url: Option<&str>| -> Run {
        let mut c = Command::new("sh");
        c.args(["-s", "--", "--version", "v1.0.0"])
            .current_dir(home.path())
            .env("HOME", home.path())
            .env_remove("FERRY_INSTALL_DIR")
            .env_remove("FERRY_INSTALL_OS")
            .env_remove("FERRY_INSTALL_ARCH")
            .env_remove("FERRY_DOWNLOAD_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = url {
            c.env("FERRY_DOWNLOAD_URL", url);
        }
        let mut child = c.spawn().unwrap();
        child.stdin.take().unwrap().write_all(&script).unwrap();
        child.wait_with_output().unwrap().into()
    };
    let r = pipe(Some(&releases.url));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(installed_version(&home.path().join(".local/bin/ferry")).starts_with("ferry 1.0.0 "));
    // The copy in the repository has no URL of its own: the URL lives in
    // Cargo.toml, and the copy attached to a release has it filled in.
    let r = pipe(None);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot tell where ferry's releases are: set FERRY_DOWNLOAD_URL"), "{r:?}");
}

fn cargo_repository() -> String {
    let toml = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let line = toml.lines().find(|l| l.starts_with("repository = ")).unwrap();
    line.trim_start_matches("repository = ").trim_matches('"').to_string()
}

// --- the setup action ---------------------------------------------------------

/// The `run:` lines of action.yml's steps, in order.
fn action_runs() -> Vec<String> {
    std::fs::read_to_string(repo().join("action.yml"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("run: ").map(String::from))
        .collect()
}

/// Runs one action step as GitHub does (bash -e), with `env` on top of what
/// GitHub sets for a composite action's step.
fn action_step(run_line: &str, gh: &GithubFiles, env: &[(&str, &str)]) -> Run {
    let mut c = Command::new("bash");
    c.args(["--noprofile", "--norc", "-e", "-o", "pipefail", "-c", run_line])
        .env("GITHUB_ACTION_PATH", repo())
        .env("GITHUB_OUTPUT", &gh.output)
        .env("GITHUB_PATH", &gh.path)
        .env("RUNNER_TOOL_CACHE", gh.dir.path().join("toolcache"))
        .env("RUNNER_TEMP", gh.dir.path().join("temp"))
        .env_remove("FERRY_INSTALL_DIR")
        .env_remove("FERRY_INSTALL_OS")
        .env_remove("FERRY_INSTALL_ARCH")
        .env_remove("INPUT_VERSION")
        .env_remove("FERRY_VERSION")
        .current_dir(gh.dir.path())
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap().into()
}

struct GithubFiles {
    dir: tempfile::TempDir,
    output: PathBuf,
    path: PathBuf,
}

impl GithubFiles {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (output, path) = (dir.path().join("github_output"), dir.path().join("github_path"));
        std::fs::write(&output, "").unwrap();
        std::fs::write(&path, "").unwrap();
        GithubFiles { dir, output, path }
    }

    /// The step outputs written so far (the last value of each key).
    fn outputs(&self) -> std::collections::HashMap<String, String> {
        std::fs::read_to_string(&self.output)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
            .collect()
    }
}

fn action_default_version() -> String {
    std::fs::read_to_string(repo().join(".github/action-version")).unwrap().trim().to_string()
}

#[test]
fn the_setup_actions_steps_are_calls_of_the_install_script_fed_by_each_other() {
    let runs = action_runs();
    assert_eq!(
        runs,
        vec![
            r#"sh "$GITHUB_ACTION_PATH/scripts/install.sh" --github-action resolve"#,
            r#"sh "$GITHUB_ACTION_PATH/scripts/install.sh" --version "$FERRY_VERSION""#,
            r#"sh "$GITHUB_ACTION_PATH/scripts/install.sh" --github-action path"#,
        ],
        "the action's logic belongs in scripts/install.sh (the next test runs these lines)"
    );
    let text = std::fs::read_to_string(repo().join("action.yml")).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    for want in [
        "using: composite",
        "INPUT_VERSION: ${{ inputs.version }}",
        "if: steps.resolve.outputs.cache == 'true'",
        "uses: actions/cache@v4",
        "path: ${{ steps.resolve.outputs.dir }}",
        "key: ferry-${{ steps.resolve.outputs.version }}-${{ runner.os }}-${{ runner.arch }}",
        "if: steps.cache.outputs.cache-hit != 'true'",
        "FERRY_INSTALL_DIR: ${{ steps.resolve.outputs.dir }}",
        "FERRY_VERSION: ${{ steps.resolve.outputs.version }}",
        "value: ${{ steps.path.outputs.version }}",
    ] {
        assert!(lines.contains(&want), "action.yml lacks `{want}`");
    }
}

#[test]
fn the_setup_action_installs_its_own_release_by_default_and_puts_ferry_on_path() {
    let default = action_default_version();
    let releases = Releases::new();
    releases.publish(&default, false);
    releases.publish("v99.0.0", true);
    let runs = action_runs();
    let gh = GithubFiles::new();
    let url = releases.url.clone();

    // resolve: no input, so the tag in .github/action-version.
    let r = action_step(&runs[0], &gh, &[("INPUT_VERSION", ""), ("FERRY_DOWNLOAD_URL", &url)]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = gh.outputs();
    let dir = gh.dir.path().join(format!("toolcache/ferry/{default}/{}", host_target()));
    assert_eq!(out["version"], default);
    assert_eq!(out["target"], host_target());
    assert_eq!(out["dir"], dir.display().to_string());
    assert_eq!(out["cache"], "true");

    // (cache miss) download and verify, into the directory the cache keeps.
    let env = [
        ("FERRY_INSTALL_DIR", out["dir"].as_str()),
        ("FERRY_VERSION", out["version"].as_str()),
        ("FERRY_DOWNLOAD_URL", &url),
    ];
    let r = action_step(&runs[1], &gh, &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(releases.requested().contains(&format!("/releases/download/{default}/ferry-{}.tar.gz", host_target())));

    // path: on PATH for the next steps, and the installed version as output.
    let r = action_step(&runs[2], &gh, &[("FERRY_INSTALL_DIR", out["dir"].as_str())]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::read_to_string(&gh.path).unwrap(), format!("{}\n", dir.display()));
    assert_eq!(gh.outputs()["version"], default.trim_start_matches('v'));
}

#[test]
fn the_setup_action_takes_a_version_input_and_does_not_cache_latest() {
    let releases = Releases::new();
    releases.publish("v1.2.3", true);
    let runs = action_runs();
    for (input, version, cache) in
        [("1.2.3", "v1.2.3", "true"), ("v1.2.3", "v1.2.3", "true"), ("latest", "latest", "false")]
    {
        let gh = GithubFiles::new();
        let r = action_step(&runs[0], &gh, &[("INPUT_VERSION", input)]);
        assert_eq!(r.code, 0, "{r:?}");
        let out = gh.outputs();
        assert_eq!((out["version"].as_str(), out["cache"].as_str()), (version, cache), "input {input}");
        let env = [
            ("FERRY_INSTALL_DIR", out["dir"].as_str()),
            ("FERRY_VERSION", version),
            ("FERRY_DOWNLOAD_URL", releases.url.as_str()),
        ];
        assert_eq!(action_step(&runs[1], &gh, &env).code, 0);
        assert_eq!(action_step(&runs[2], &gh, &[("FERRY_INSTALL_DIR", out["dir"].as_str())]).code, 0);
        assert_eq!(gh.outputs()["version"], "1.2.3");
    }

    // A runner ferry has no binary for fails at the first step, saying so.
    let gh = GithubFiles::new();
    let r = action_step(&runs[0], &gh, &[("FERRY_INSTALL_OS", "Windows_NT"), ("FERRY_INSTALL_ARCH", "AMD64")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("ferry has no release binary for Windows_NT on AMD64"), "{r:?}");
    assert!(gh.outputs().is_empty());

    // path without an installed ferry: a clear failure, PATH untouched.
    let r = action_step(&runs[2], &gh, &[("FERRY_INSTALL_DIR", "/nonexistent/ferry")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no ferry in FERRY_INSTALL_DIR"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&gh.path).unwrap(), "");
}
