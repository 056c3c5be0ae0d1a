//! Build metadata for `ferry --version`: the git commit and the build date.
//!
//! - commit: `FERRY_BUILD_COMMIT` if set (a 40-hex id is shortened to 12),
//!   else `git rev-parse` when this crate is the top of a git checkout, else
//!   `unknown`. A plain `cargo build` without git works.
//! - date (UTC, `YYYY-MM-DD`): `FERRY_BUILD_DATE` if set, else
//!   `SOURCE_DATE_EPOCH` (reproducible builds), else today.
//!
//! They reach the crate as `FERRY_VERSION_COMMIT`, `FERRY_VERSION_DATE` and
//! `FERRY_VERSION_TARGET` (the target triple).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    for var in ["FERRY_BUILD_COMMIT", "FERRY_BUILD_DATE", "SOURCE_DATE_EPOCH"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));

    let commit = match non_empty("FERRY_BUILD_COMMIT") {
        Some(c) => shorten(&c),
        None => git_commit(&manifest_dir).unwrap_or_else(|| "unknown".into()),
    };
    let date = match non_empty("FERRY_BUILD_DATE") {
        Some(d) => d,
        None => build_date(),
    };
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    for (name, value) in [("FERRY_VERSION_COMMIT", &commit), ("FERRY_VERSION_DATE", &date)] {
        if value.chars().any(char::is_control) {
            panic!("{name} must be one line (got {value:?}): check FERRY_BUILD_COMMIT / FERRY_BUILD_DATE");
        }
    }
    println!("cargo:rustc-env=FERRY_VERSION_COMMIT={commit}");
    println!("cargo:rustc-env=FERRY_VERSION_DATE={date}");
    println!("cargo:rustc-env=FERRY_VERSION_TARGET={target}");
}

fn non_empty(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// (`pub(crate)`: tests/release.rs includes this file to test it.)
/// A full 40-hex commit id becomes the 12-character form `git` prints.
pub(crate) fn shorten(commit: &str) -> String {
    if commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()) {
        commit[..12].to_string()
    } else {
        commit.to_string()
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

/// The commit of the checkout this crate is the top of. A crate vendored into
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

fn build_date() -> String {
    let seconds = match non_empty("SOURCE_DATE_EPOCH") {
        Some(s) => s
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH must be seconds since 1970-01-01 (got {s:?})")),
        None => SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
    };
    let (y, m, d) = civil_date(seconds.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
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
