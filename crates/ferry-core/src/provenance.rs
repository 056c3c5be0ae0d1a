//! Who and what ran ferry: recorded in every run record and every lock, so a run
//! seen from another machine says who started it, with which ferry, from which CI
//! run and with which configuration.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The person (or CI identity) and machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub host: String,
}

impl Actor {
    pub fn current() -> Actor {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .or_else(|| nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name))
            .unwrap_or_else(|| format!("uid-{}", nix::unistd::getuid()));
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".into());
        Actor { user, host }
    }
}

/// This ferry's build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub version: String,
    pub commit: Option<String>,
}

pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// The git commit ferry was built from, when the build knew it.
pub fn commit() -> Option<&'static str> {
    Some(env!("FERRY_VERSION_COMMIT")).filter(|c| !c.is_empty() && *c != "unknown")
}

pub fn build() -> Build {
    Build { version: version().to_string(), commit: commit().map(str::to_string) }
}

/// The GitHub Actions run this process belongs to, when it runs in one.
pub fn ci_url() -> Option<String> {
    if std::env::var("GITHUB_ACTIONS").ok().as_deref() != Some("true") {
        return None;
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (server, repo, run) = (var("GITHUB_SERVER_URL")?, var("GITHUB_REPOSITORY")?, var("GITHUB_RUN_ID")?);
    let mut url = format!("{server}/{repo}/actions/runs/{run}");
    if let Some(attempt) = var("GITHUB_RUN_ATTEMPT") {
        url.push_str(&format!("/attempts/{attempt}"));
    }
    Some(url)
}

/// SHA-256 of the config file as it was read, hex.
pub fn file_sha256(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    Some(Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect())
}
