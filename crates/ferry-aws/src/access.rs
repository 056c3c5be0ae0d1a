//! Before ferry's first AWS request: is the profile there, is there a region,
//! do credentials load, does the endpoint answer? Each failure is one line
//! naming what ferry was about to do, the cause in words and the next step
//! ([`Problem::line`]); the SDK's own text is kept apart ([`Problem::detail`])
//! for `-v`. Asked once per process and purpose: a command that opens the
//! state store several times checks once.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_types::error::display::DisplayErrorContext;

/// How long a name lookup or a TCP connect to the endpoint may take.
const REACH_TIMEOUT: Duration = Duration::from_secs(4);

/// Why ferry cannot talk to AWS: one line for everyone, the SDK's words for `-v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: String,
    pub detail: Option<String>,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.line)
    }
}

impl Problem {
    fn new(line: String) -> Self {
        Problem { line, detail: None }
    }
}

/// The shared config and credentials files the SDK reads, as it finds them.
fn aws_files() -> (String, String) {
    let home = std::env::var("HOME").map(|h| format!("{h}/.aws")).unwrap_or_else(|_| "~/.aws".into());
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    (
        var("AWS_CONFIG_FILE").unwrap_or_else(|| format!("{home}/config")),
        var("AWS_SHARED_CREDENTIALS_FILE").unwrap_or_else(|| format!("{home}/credentials")),
    )
}

/// The profile asked for (`--profile`, else `AWS_PROFILE`) must be in the
/// shared files: otherwise the SDK would only say that no provider gave credentials.
async fn check_profile(profile: Option<&str>, doing: &str) -> Result<(), Problem> {
    let env_profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let (name, from) = match (profile, env_profile) {
        (Some(p), _) => (p.to_string(), "--profile"),
        (None, Some(p)) => (p, "AWS_PROFILE"),
        (None, None) => return Ok(()),
    };
    // The alias aws_config::profile::load takes (its new name lives in aws-runtime).
    #[allow(deprecated)]
    let files = aws_config::profile::profile_file::ProfileFiles::default();
    let fs = aws_types::os_shim_internal::Fs::real();
    let env = aws_types::os_shim_internal::Env::real();
    let Ok(set) = aws_config::profile::load(&fs, &env, &files, Some(name.clone().into())).await else {
        // A file that does not parse: the SDK says so when it loads credentials.
        return Ok(());
    };
    if set.get_profile(&name).is_some() {
        return Ok(());
    }
    let (config, credentials) = aws_files();
    let mut known: Vec<&str> = set.profiles().collect();
    known.sort_unstable();
    let have =
        if known.is_empty() { "they define none".to_string() } else { format!("they define {}", known.join(", ")) };
    Err(Problem::new(format!(
        "cannot {doing}: the AWS profile {name:?} ({from}) is not in {config} or {credentials} ({have}); pass a \
         profile they define, or add it (`aws configure --profile {name}`)"
    )))
}

/// Where the SDK would send a request for `service` (`s3`, `rds`): the
/// service's endpoint override, the general one, or AWS's regional endpoint.
fn endpoint(sdk: &SdkConfig, service: &str, region: &str) -> (String, Option<&'static str>) {
    let var = format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase());
    if let Some(url) = std::env::var(&var).ok().filter(|v| !v.is_empty()) {
        return (url, Some(if service == "s3" { "AWS_ENDPOINT_URL_S3" } else { "AWS_ENDPOINT_URL_<SERVICE>" }));
    }
    if let Some(url) = sdk.endpoint_url() {
        return (url.to_string(), Some("AWS_ENDPOINT_URL"));
    }
    let suffix = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
    (format!("https://{service}.{region}.{suffix}"), None)
}

/// `host` and `port` of an endpoint URL (`https://host[:port]/...`, `[v6]` hosts too).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if scheme.eq_ignore_ascii_case("http") { 80 } else { 443 };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').map_or(Some(default), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default)),
    }
}

/// One name lookup and one TCP connect, each bounded: a misspelt region or a
/// wrong endpoint is told in seconds, not after the SDK's retries. Skipped
/// behind a proxy (the proxy reaches the endpoint, not ferry).
async fn check_reachable(sdk: &SdkConfig, service: &str, region: &str, doing: &str) -> Result<(), Problem> {
    let proxied = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if proxied {
        return Ok(());
    }
    let (url, from) = endpoint(sdk, service, region);
    let Some((host, port)) = host_port(&url) else { return Ok(()) };
    let fix = match from {
        Some(var) => format!("check {var} ({url})"),
        None => format!("check the region ({region:?}; regions look like us-east-1) and this machine's network"),
    };
    let addrs: Vec<std::net::SocketAddr> =
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::lookup_host((host.as_str(), port))).await {
            Ok(Ok(a)) => a.collect(),
            Ok(Err(e)) => {
                return Err(Problem {
                    line: format!("cannot {doing}: the name {host} does not resolve (DNS); {fix}"),
                    detail: Some(e.to_string()),
                });
            }
            Err(_) => {
                return Err(Problem::new(format!(
                    "cannot {doing}: looking up {host} took more than {}s (DNS); {fix}",
                    REACH_TIMEOUT.as_secs()
                )));
            }
        };
    let mut last = None;
    for addr in &addrs {
        match tokio::time::timeout(REACH_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => last = Some(e),
            Err(_) => last = Some(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        }
    }
    let why = match last.as_ref().map(std::io::Error::kind) {
        Some(std::io::ErrorKind::ConnectionRefused) => "refused the connection".to_string(),
        Some(std::io::ErrorKind::TimedOut) => format!("did not answer within {}s", REACH_TIMEOUT.as_secs()),
        Some(_) => "cannot be connected to".to_string(),
        None => "has no address".to_string(),
    };
    Err(Problem { line: format!("cannot {doing}: {host}:{port} {why}; {fix}"), detail: last.map(|e| e.to_string()) })
}

/// Credentials load, and have not expired.
async fn check_credentials(sdk: &SdkConfig, profile: Option<&str>, doing: &str) -> Result<(), Problem> {
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = sdk.credentials_provider() else {
        return Err(Problem::new(format!("cannot {doing}: no AWS credentials provider is configured")));
    };
    match provider.provide_credentials().await {
        Ok(creds) => match creds.expiry() {
            Some(exp) if exp <= std::time::SystemTime::now() => Err(Problem::new(format!(
                "cannot {doing}: the AWS credentials have expired; refresh them (`aws sso login`, or run the OIDC \
                 step again) and retry"
            ))),
            _ => Ok(()),
        },
        Err(e) => {
            let (config, credentials) = aws_files();
            let profile = profile
                .map(str::to_string)
                .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
                .unwrap_or_else(|| "default".into());
            Err(Problem {
                line: format!(
                    "cannot {doing}: no AWS credentials found; the SDK looked in the environment \
                     (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), {config} and {credentials} (profile {profile}), \
                     SSO and web identity (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) and the container and \
                     instance metadata; set one of them (`aws sso login`, --profile, or in GitHub Actions the OIDC \
                     role)"
                ),
                detail: Some(DisplayErrorContext(&e).to_string()),
            })
        }
    }
}

/// Purposes already checked in this process (a command opens a store more than once).
fn checked() -> &'static Mutex<HashSet<String>> {
    static CHECKED: std::sync::OnceLock<Mutex<HashSet<String>>> = std::sync::OnceLock::new();
    CHECKED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Everything that must hold before ferry sends `service` a request to
/// `doing` (`read ferry's state in s3://b/p`): the profile, the region,
/// credentials, the endpoint reachable.
pub async fn check(sdk: &SdkConfig, profile: Option<&str>, service: &str, doing: &str) -> Result<(), Problem> {
    let key = format!("{service}\u{0}{doing}\u{0}{profile:?}");
    if checked().lock().unwrap_or_else(|e| e.into_inner()).contains(&key) {
        return Ok(());
    }
    check_profile(profile, doing).await?;
    let Some(region) = sdk.region().map(|r| r.to_string()) else {
        return Err(Problem::new(format!(
            "cannot {doing}: no AWS region; set `region` in ferry.toml, pass --region, or set AWS_REGION"
        )));
    };
    check_credentials(sdk, profile, doing).await?;
    check_reachable(sdk, service, &region, doing).await?;
    checked().lock().unwrap_or_else(|e| e.into_inner()).insert(key);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls_give_their_host_and_port() {
        assert_eq!(host_port("https://rds.us-east-1.amazonaws.com"), Some(("rds.us-east-1.amazonaws.com".into(), 443)));
        assert_eq!(host_port("http://127.0.0.1:5000/"), Some(("127.0.0.1".into(), 5000)));
        assert_eq!(host_port("http://[::1]:9/x"), Some(("::1".into(), 9)));
        assert_eq!(host_port("http://localhost"), Some(("localhost".into(), 80)));
        assert_eq!(host_port("not a url"), None);
    }
}
