//! Build metadata for `ferry --version`: the git commit and the build date.
//!
//! - commit: `FERRY_BUILD_COMMIT` if set (a 40-hex id is shortened to 12),
//!   else `git rev-parse` when this crate is the top of a git checkout, else
//!   `unknown`. A plain `cargo build` without git works.
//! - date (UTC, `YYYY-MM-DD`): `FERRY_BUILD_DATE` if set, else
//!   `SOURCE_DATE_EPOCH` (reproducible builds), else today.
//!
//! They reach the crate as `FERRY_VERSION_COMMIT`, `FERRY_VERSION_DATE` and
//! `FERRY_VERSION_TARGET` (the target triple). tests/integration/release.rs includes
//! this file to test its `pub(crate)` helpers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn main() {
    for var in ["FERRY_BUILD_COMMIT", "FERRY_BUILD_DATE", "SOURCE_DATE_EPOCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));

    let commit = commit(non_empty("FERRY_BUILD_COMMIT"), || git_commit(&workspace_root(&manifest_dir)));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let date = build_date(non_empty("FERRY_BUILD_DATE"), non_empty("SOURCE_DATE_EPOCH"), now)
        .unwrap_or_else(|e| panic!("{e}"));
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=FERRY_VERSION_COMMIT={commit}");
    println!("cargo:rustc-env=FERRY_VERSION_DATE={date}");
    println!("cargo:rustc-env=FERRY_VERSION_TARGET={target}");
}

fn non_empty(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// A full 40-hex commit id becomes the 12-character form `git` prints;
/// control characters (a second line) become spaces.
pub(crate) fn shorten(commit: &str) -> String {
    if commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        commit[..12].to_string()
    } else {
        commit.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
    }
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// The workspace this crate belongs to: a member under `crates/` is two
/// levels below it (ferry-core runs this script too, for the run record).
fn workspace_root(manifest_dir: &Path) -> PathBuf {
    match manifest_dir.parent() {
        Some(parent) if parent.file_name().is_some_and(|n| n == "crates") => {
            parent.parent().map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
        }
        _ => manifest_dir.to_path_buf(),
    }
}

/// The commit of the checkout this crate's workspace is the top of. A crate vendored into
/// some other repository gets `None`, not that repository's commit.
fn git_commit(dir: &Path) -> Option<String> {
    let top = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    // Rebuild when HEAD moves: HEAD itself, the branch it points to, packed refs.
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = if Path::new(&path).is_absolute() { PathBuf::from(path) } else { dir.join(path) };
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(dir, &["rev-parse", "--short=12", "HEAD"])
}

/// The commit: the override (a 40-hex id shortened), else git's, else `unknown`.
pub(crate) fn commit(overridden: Option<String>, git: impl FnOnce() -> Option<String>) -> String {
    match overridden {
        Some(c) => shorten(&c),
        None => git().unwrap_or_else(|| "unknown".into()),
    }
}

/// The build date: FERRY_BUILD_DATE as given, else the day of
/// SOURCE_DATE_EPOCH, else the day of `now` (seconds since 1970, UTC).
pub(crate) fn build_date(
    overridden: Option<String>,
    source_date_epoch: Option<String>,
    now: i64,
) -> Result<String, String> {
    if let Some(date) = overridden {
        if date.chars().any(char::is_control) {
            return Err(format!("FERRY_BUILD_DATE must be one line (got {date:?})"));
        }
        return Ok(date);
    }
    let seconds = match source_date_epoch {
        Some(s) => {
            s.parse::<i64>().map_err(|_| format!("SOURCE_DATE_EPOCH must be seconds since 1970-01-01 (got {s:?})"))?
        }
        None => now,
    };
    let (y, m, d) = civil_date(seconds.div_euclid(86_400));
    Ok(format!("{y:04}-{m:02}-{d:02}"))
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub(crate) fn civil_date(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
