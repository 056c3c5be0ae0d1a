use sha2::{Digest, Sha256};

use super::*;

/// The fingerprints listed in certs/README.md, in order.
fn listed_fingerprints() -> Vec<String> {
    include_str!("../certs/README.md")
        .lines()
        .filter(|l| l.starts_with("| "))
        .flat_map(|l| l.split('`').nth(1))
        .filter(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_embedded_bundle_is_the_one_the_readme_lists() {
    let computed: Vec<String> = CertificateDer::pem_slice_iter(RDS_CA_BUNDLE.as_bytes())
        .map(|c| {
            let der = c.expect("PEM");
            Sha256::digest(der.as_ref()).iter().map(|b| format!("{b:02x}")).collect()
        })
        .collect();
    let listed = listed_fingerprints();
    assert_eq!(listed.len(), 115, "the README lists the package's 115 certificates");
    assert_eq!(computed, listed, "rds-ca-bundle.pem differs from the fingerprints in certs/README.md");
}

#[test]
fn every_certificate_of_the_bundle_is_a_usable_ca() {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(RDS_CA_BUNDLE.as_bytes()).map(|c| c.expect("PEM")).collect();
    let mut store = RootCertStore::empty();
    let (added, unusable) = store.add_parsable_certificates(certs);
    assert_eq!((added, unusable), (115, 0));
    let s = Settings::of("postgres://u@db.example.com/app", ProviderKind::Aws).unwrap();
    assert_eq!(trusted(&s).unwrap().len(), 115);
}

#[test]
fn the_provider_decides_when_the_url_does_not() {
    let url = "postgres://u@h/app";
    let aws = Settings::of(url, ProviderKind::Aws).unwrap();
    assert_eq!((aws.mode, aws.defaulted, aws.rootcert), (SslMode::VerifyFull, true, None));
    let local = Settings::of(url, ProviderKind::Local).unwrap();
    assert_eq!((local.mode, local.defaulted), (SslMode::Prefer, true));
    let given = Settings::of("postgres://u@h/app?sslmode=disable", ProviderKind::Aws).unwrap();
    assert_eq!((given.mode, given.defaulted), (SslMode::Disable, false));
    let last = Settings::of("postgres://u@h/app?sslmode=disable&sslmode=verify-ca", ProviderKind::Local).unwrap();
    assert_eq!(last.mode, SslMode::VerifyCa, "the last one wins, as in libpq");
    let e = Settings::of("postgres://u@h/app?sslmode=strict", ProviderKind::Aws).unwrap_err();
    assert!(e.contains("\"strict\"") && e.contains(SslMode::ACCEPTED), "{e}");
}

#[test]
fn a_root_certificate_makes_prefer_and_require_check_the_chain() {
    let s = |q: &str| Settings::of(&format!("postgres://u@h/app?{q}"), ProviderKind::Local).unwrap();
    assert!(!s("sslmode=require").checks_chain(), "require alone only encrypts");
    assert!(!s("sslmode=prefer").checks_chain());
    assert!(s("sslmode=require&sslrootcert=%2Fca.pem").checks_chain());
    assert!(s("sslrootcert=/ca.pem").checks_chain(), "the local default (prefer) with a CA");
    assert_eq!(s("sslrootcert=%2Fetc%2Fca.pem").rootcert, Some(PathBuf::from("/etc/ca.pem")));
    assert!(s("sslmode=verify-ca").checks_chain());
    assert!(!s("sslmode=disable&sslrootcert=/ca.pem").checks_chain(), "disable never looks at certificates");
}

#[test]
fn ferrys_own_parameters_are_not_passed_to_tokio_postgres() {
    assert_eq!(
        without_own_params("postgres://u:p@h/db?sslmode=verify-full&application_name=x&ssl%72ootcert=%2Fa.pem"),
        "postgres://u:p@h/db?application_name=x"
    );
    assert_eq!(without_own_params("postgres://u@h/db?sslmode=require"), "postgres://u@h/db");
    assert_eq!(without_own_params("postgres://u@h/db"), "postgres://u@h/db");
    let t = target("postgres://u@h:5433/db?sslmode=verify-full&connect_timeout=3", ProviderKind::Local).unwrap();
    assert_eq!(t.config.get_ports(), [5433]);
    assert_eq!(t.config.get_connect_timeout(), Some(&std::time::Duration::from_secs(3)));
}

#[test]
fn modes_map_onto_what_tokio_postgres_sends() {
    let wire = |url: &str, p| target(url, p).unwrap().config.get_ssl_mode();
    assert_eq!(wire("postgres://u@h/db", ProviderKind::Aws), WireMode::Require);
    assert_eq!(wire("postgres://u@h/db", ProviderKind::Local), WireMode::Prefer);
    assert_eq!(wire("postgres://u@h/db?sslmode=disable", ProviderKind::Aws), WireMode::Disable);
    assert_eq!(wire("postgres://u@h/db?sslmode=verify-ca", ProviderKind::Local), WireMode::Require);
    assert_eq!(wire("postgres://u@%2Frun%2Fpostgresql/db", ProviderKind::Aws), WireMode::Disable, "a Unix socket");
}

#[test]
fn a_missing_or_empty_root_certificate_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let url = format!("postgres://u@h/db?sslmode=verify-full&sslrootcert={}", missing.display());
    let e = target(&url, ProviderKind::Aws).err().expect("missing file");
    assert!(e.contains("cannot read sslrootcert=") && e.contains("nope.pem"), "{e}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let url = format!("postgres://u@h/db?sslmode=verify-ca&sslrootcert={}", empty.display());
    let e = target(&url, ProviderKind::Aws).err().expect("no certificate");
    assert!(e.contains("holds no usable CA certificate"), "{e}");
    let url = format!("postgres://u@h/db?sslmode=require&sslrootcert={}", missing.display());
    assert!(target(&url, ProviderKind::Local).is_err(), "require with a CA file reads it");
    let url = format!("postgres://u@h/db?sslmode=disable&sslrootcert={}", missing.display());
    assert!(target(&url, ProviderKind::Local).is_ok(), "disable never reads it");
}

#[test]
fn certificate_failures_say_what_to_change() {
    let aws = Settings::of("postgres://u@h/db", ProviderKind::Aws).unwrap();
    let name = rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
        expected: ServerName::try_from("127.0.0.1").unwrap(),
        presented: vec!["DnsName(\"db.example.com\")".into(), "IpAddress(10.0.0.5)".into(), "DirectoryName".into()],
    });
    let m = handshake_failure(&aws, &name);
    assert!(
        m.starts_with(
            "certificate verify failed: the server's certificate is not valid for 127.0.0.1 (it names db.example.com, \
             10.0.0.5) (sslmode=verify-full is ferry's default on this provider); "
        ),
        "{m}"
    );
    assert!(m.contains("hostaddr=127.0.0.1") && m.contains("sslmode=verify-ca"), "{m}");
    let m = handshake_failure(&aws, &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
    assert!(
        m.starts_with(
            "certificate verify failed: the server's certificate is not signed by a CA in the Amazon RDS CA bundle \
             built into ferry (sslmode=verify-full is ferry's default on this provider); set sslrootcert=PATH"
        ),
        "{m}"
    );
    assert!(m.ends_with("or sslmode=require to encrypt without checking it"), "{m}");

    let require = Settings::of("postgres://u@h/db?sslmode=require&sslrootcert=/ca.pem", ProviderKind::Local).unwrap();
    let m = handshake_failure(&require, &rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer));
    assert!(m.contains("not signed by a CA in sslrootcert=/ca.pem (sslmode=require with sslrootcert checks"), "{m}");
    assert!(m.contains("remove sslrootcert and set sslmode=require"), "{m}");

    let full = Settings::of("postgres://u@h/db?sslmode=verify-full", ProviderKind::Local).unwrap();
    let at = |secs| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let expired = CertificateError::ExpiredContext { time: at(200), not_after: at(100) };
    let m = handshake_failure(&full, &rustls::Error::InvalidCertificate(expired));
    assert!(m.starts_with("certificate verify failed: invalid peer certificate: certificate expired"), "{m}");
    assert!(!m.contains("ferry's default"), "the URL said verify-full itself: {m}");
}
