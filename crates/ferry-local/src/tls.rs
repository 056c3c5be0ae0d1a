//! TLS for ferry's own PostgreSQL sessions (`check`, `doctor`, the version
//! preflight): libpq's `sslmode` and `sslrootcert` read from `database.url`,
//! rustls underneath, and the Amazon RDS CA bundle built in so `verify-full`
//! works with no file on disk.
//!
//! The modes mean what they mean to libpq: `disable` never encrypts; `prefer`
//! encrypts when the server offers TLS; `require` insists on it; `verify-ca`
//! also checks the server's chain; `verify-full` the chain and the host name.
//! With `sslrootcert` given, `prefer` and `require` check the chain too (libpq
//! does the same). Without `sslmode` the provider decides: `verify-full` on
//! aws, `prefer` (libpq's own default) on local. Unix-socket hosts never use
//! TLS (PostgreSQL does not offer it there).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::{WebPkiSupportedAlgorithms, aws_lc_rs, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode as WireMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use ferry_core::config::ProviderKind;
use ferry_core::config::values::SslMode;
use ferry_core::db_url;

/// The Amazon RDS CA bundle (every region's RDS and Aurora certificate
/// authorities); where it comes from and its fingerprints: certs/README.md.
pub const RDS_CA_BUNDLE: &str = include_str!("certs/rds-ca-bundle.pem");

/// The URL parameters ferry reads itself (tokio-postgres does not know them).
const OWN_PARAMS: [&str; 2] = ["sslmode", "sslrootcert"];

/// `sslmode` when the URL does not say.
pub fn default_mode(provider: ProviderKind) -> SslMode {
    match provider {
        ProviderKind::Aws => SslMode::VerifyFull,
        ProviderKind::Local => SslMode::Prefer,
    }
}

/// What one URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub mode: SslMode,
    /// The mode is the provider's default, not written in the URL.
    pub defaulted: bool,
    /// `sslrootcert=PATH`: the CAs to trust instead of the built-in bundle.
    pub rootcert: Option<PathBuf>,
}

impl Settings {
    /// The `sslmode` and `sslrootcert` of `url` (the last of each, as libpq reads them).
    pub fn of(url: &str, provider: ProviderKind) -> Result<Self, String> {
        let params = db_url::query(url);
        let last = |key: &str| params.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let (mode, defaulted) = match last("sslmode") {
            Some(m) => (SslMode::parse(&m)?, false),
            None => (default_mode(provider), true),
        };
        let rootcert = last("sslrootcert").filter(|p| !p.is_empty()).map(PathBuf::from);
        Ok(Settings { mode, defaulted, rootcert })
    }

    /// Is the server's certificate chain checked against trusted CAs?
    pub fn checks_chain(&self) -> bool {
        match self.mode {
            SslMode::Disable => false,
            SslMode::Prefer | SslMode::Require => self.rootcert.is_some(),
            SslMode::VerifyCa | SslMode::VerifyFull => true,
        }
    }

    /// Why the certificate was checked, when the URL alone does not make it plain.
    fn why_checked(&self) -> Option<String> {
        match self.mode {
            m if self.defaulted => Some(format!("sslmode={m} is ferry's default on this provider")),
            SslMode::Prefer | SslMode::Require => {
                Some(format!("sslmode={} with sslrootcert checks the chain, as libpq does", self.mode))
            }
            _ => None,
        }
    }

    /// Where the trusted CAs come from, for messages.
    fn roots_label(&self) -> String {
        match &self.rootcert {
            Some(p) => format!("sslrootcert={}", p.display()),
            None => "the Amazon RDS CA bundle built into ferry".into(),
        }
    }
}

/// A PostgreSQL URL ready to connect: tokio-postgres's config (ferry's own
/// parameters taken out) and the TLS connector its settings call for.
pub struct Target {
    pub config: Config,
    pub settings: Settings,
    pub connector: MakeRustlsConnect,
}

/// Parse `url` for a session of `provider`. Errors name what is wrong (never
/// the password: the URL is not repeated here).
pub fn target(url: &str, provider: ProviderKind) -> Result<Target, String> {
    let settings = Settings::of(url, provider)?;
    let mut config = Config::from_str(&without_own_params(url)).map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    let hosts = config.get_hosts();
    let only_sockets = !hosts.is_empty() && hosts.iter().all(|h| matches!(h, Host::Unix(_)));
    config.ssl_mode(match settings.mode {
        _ if only_sockets => WireMode::Disable,
        SslMode::Disable => WireMode::Disable,
        SslMode::Prefer => WireMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireMode::Require,
    });
    let connector = MakeRustlsConnect::new(client_config(&settings)?);
    Ok(Target { config, settings, connector })
}

/// `url` without `sslmode` and `sslrootcert`; other parameters kept as written.
fn without_own_params(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else { return url.to_string() };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| !OWN_PARAMS.contains(&db_url::decode(p.split_once('=').map_or(*p, |(k, _)| k)).as_str()))
        .collect();
    if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) }
}

fn client_config(settings: &Settings) -> Result<ClientConfig, String> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = Verifier {
        roots: if settings.checks_chain() { Some(Arc::new(trusted(settings)?)) } else { None },
        check_name: settings.mode == SslMode::VerifyFull,
        algorithms: provider.signature_verification_algorithms,
    };
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The CAs to trust: `sslrootcert`'s PEM file, else the built-in RDS bundle.
fn trusted(settings: &Settings) -> Result<RootCertStore, String> {
    let (pem, what) = match &settings.rootcert {
        Some(path) => {
            let what = format!("sslrootcert={}", path.display());
            (std::fs::read(path).map_err(|e| format!("cannot read {what}: {e}"))?, what)
        }
        None => (RDS_CA_BUNDLE.as_bytes().to_vec(), "the built-in RDS CA bundle".to_string()),
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not a PEM certificate file: {e}"))?;
    let mut store = RootCertStore::empty();
    let (added, _unusable) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!("{what} holds no usable CA certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"));
    }
    Ok(store)
}

/// libpq's checks: the chain (when there are roots) and the host name (verify-full).
/// The handshake's own signatures are always verified.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else { return Ok(ServerCertVerified::assertion()) };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(&cert, roots, intermediates, now, self.algorithms.all)?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What went wrong with TLS in a failed connection, and what to change; `None`
/// when the failure has nothing to do with TLS.
pub fn explain(settings: &Settings, e: &tokio_postgres::Error) -> Option<String> {
    if let Some(db) = e.as_db_error() {
        let refused_plain = db.code() == &tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && db.message().contains("no encryption");
        return (refused_plain && settings.mode == SslMode::Disable).then(|| {
            format!(
                "the server accepts only TLS connections and sslmode=disable turns TLS off ({}); remove \
                 sslmode=disable from database.url, or set sslmode=require or verify-full",
                db.message()
            )
        });
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.to_string() == "server does not support TLS" {
            let default = if settings.defaulted { ", ferry's default on this provider," } else { "" };
            return Some(format!(
                "the server does not support TLS and sslmode={}{default} requires it: turn on ssl in the \
                 server's configuration, or set sslmode=prefer (or disable) in database.url if this connection \
                 never crosses a network",
                settings.mode
            ));
        }
        if let Some(r) = as_rustls(c) {
            return Some(handshake_failure(settings, r));
        }
        cause = c.source();
    }
    None
}

/// The rustls error inside a cause (tokio-postgres wraps it in an io::Error).
fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    e.downcast_ref::<rustls::Error>().or_else(|| {
        let io = e.downcast_ref::<std::io::Error>()?;
        io.get_ref()?.downcast_ref::<rustls::Error>()
    })
}

fn handshake_failure(settings: &Settings, e: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = e else {
        return format!("TLS handshake failed (sslmode={}): {e}", settings.mode);
    };
    let why = settings.why_checked().map(|w| format!(" ({w})")).unwrap_or_default();
    let name_fix = "connect to a name the certificate holds (through a tunnel: that name as the URL's host and \
                    hostaddr=127.0.0.1 for the tunnel's address), or set sslmode=verify-ca to check only the chain";
    let chain_fix = match &settings.rootcert {
        Some(_) => {
            "point sslrootcert at a PEM file with the CA that signed the server's certificate, or remove \
                    sslrootcert and set sslmode=require to encrypt without checking it"
        }
        None => {
            "set sslrootcert=PATH in database.url to a PEM file with the CA that signed the server's \
                 certificate, or sslmode=require to encrypt without checking it"
        }
    };
    let reason = match cert {
        CertificateError::NotValidForNameContext { expected, presented } => {
            let names: Vec<&str> = presented.iter().filter_map(|n| shown_name(n)).collect();
            let names = if names.is_empty() { "no host name".to_string() } else { names.join(", ") };
            let reason = format!("the server's certificate is not valid for {} (it names {names})", expected.to_str());
            return format!("certificate verify failed: {reason}{why}; {name_fix}");
        }
        CertificateError::NotValidForName => {
            return format!(
                "certificate verify failed: the server's certificate is not valid for this host{why}; {name_fix}"
            );
        }
        CertificateError::UnknownIssuer => {
            format!("the server's certificate is not signed by a CA in {}", settings.roots_label())
        }
        _ => e.to_string(),
    };
    format!("certificate verify failed: {reason}{why}; {chain_fix}")
}

/// `DnsName("db.example.com")` → `db.example.com`, `IpAddress(10.0.0.5)` → `10.0.0.5`;
/// other kinds of subjectAltName do not name a host.
fn shown_name(presented: &str) -> Option<&str> {
    if let Some(dns) = presented.strip_prefix("DnsName(\"") {
        return dns.strip_suffix("\")");
    }
    presented.strip_prefix("IpAddress(")?.strip_suffix(')')
}

#[cfg(test)]
mod tests;
