//! Scalar value types of ferry.toml, each parsed and checked at deserialisation so
//! errors carry the position of the offending value.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written like `30m`, `1h30m`, `45s`, `500ms` or `2d`.
///
/// The grammar is ferry's own (docs/config.md, "Durations"), narrower than the
/// `humantime` crate's, which also reads `5 minutes`, `1min` and `2weeks` (all
/// refused here, with a hint) and displays `1h 30m` and `2days` where `plan`
/// prints `1h30m` and `2d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub fn parse(text: &str) -> Result<Self, String> {
        let expected = "expected a duration like \"30m\", \"1h30m\", \"45s\" or \"500ms\"";
        let s = text.trim();
        if s.is_empty() {
            return Err(format!("empty duration: {expected}"));
        }
        let mut total: u128 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: {expected}"));
            }
            let number: u128 =
                rest[..digits].parse().map_err(|_| format!("invalid duration {text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            let millis_per = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1_000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "" => {
                    return Err(format!("invalid duration {text:?}: missing unit after {number} ({expected})"));
                }
                other => {
                    return Err(format!("invalid duration {text:?}: unknown unit {other:?} ({expected})"));
                }
            };
            total = total
                .checked_add(number.saturating_mul(millis_per))
                .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
            rest = &rest[unit_len..];
        }
        if total == 0 {
            return Err(format!("invalid duration {text:?}: must be greater than zero"));
        }
        let millis = u64::try_from(total).map_err(|_| format!("invalid duration {text:?}: too large"))?;
        Ok(HumanDuration(Duration::from_millis(millis)))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

/// `1h30m`, `45s`, `500ms`: the inverse of [`HumanDuration::parse`] for display.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HumanDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A string that may contain `${output:Name}` references to CloudFormation stack
/// outputs, resolved later by the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub raw: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Output(String),
}

impl Template {
    /// The text, when it refers to no stack output.
    pub fn as_literal(&self) -> Option<&str> {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_))).then_some(self.raw.as_str())
    }

    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            if start > 0 {
                parts.push(Part::Literal(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end =
                after.find('}').ok_or_else(|| format!("unclosed reference in {raw:?}: expected ${{output:Name}}"))?;
            let inner = &after[..end];
            let name = inner.strip_prefix("output:").ok_or_else(|| {
                format!("unknown reference ${{{inner}}} in {raw:?}: only ${{output:Name}} is supported")
            })?;
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(format!(
                    "invalid output name {name:?} in {raw:?}: CloudFormation output names are alphanumeric"
                ));
            }
            parts.push(Part::Output(name.to_string()));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Template { raw: raw.to_string(), parts })
    }

    pub fn literal(s: &str) -> Self {
        Template { raw: s.to_string(), parts: vec![Part::Literal(s.to_string())] }
    }

    /// Names of the stack outputs this value refers to.
    pub fn outputs(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Output(n) => Some(n.as_str()),
            Part::Literal(_) => None,
        })
    }

    pub fn has_outputs(&self) -> bool {
        self.outputs().next().is_some()
    }

    /// Substitute outputs; the error names the missing output.
    pub fn resolve(&self, outputs: &BTreeMap<String, String>) -> Result<String, String> {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                Part::Literal(l) => s.push_str(l),
                Part::Output(n) => s.push_str(outputs.get(n).ok_or_else(|| n.clone())?),
            }
        }
        Ok(s)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A list given either as an array or as one string; a string such as
/// `"${output:PrivateSubnetIds}"` whose value is comma-separated fills the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateList(pub Vec<Template>);

impl TemplateList {
    pub fn resolve(&self, outputs: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for t in &self.0 {
            for item in t.resolve(outputs)?.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    out.push(item.to_string());
                }
            }
        }
        Ok(out)
    }
}

impl<'de> Deserialize<'de> for TemplateList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a string or an array of strings")]
        enum OneOrMany {
            One(Template),
            Many(Vec<Template>),
        }
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(t) => TemplateList(vec![t]),
            OneOrMany::Many(v) => TemplateList(v),
        })
    }
}

/// A database URL for the local provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    /// Path as written (relative paths are relative to ferry.toml's directory).
    Sqlite(String),
    Postgres(String),
}

impl DbUrl {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(format!("invalid database url {s:?}: expected sqlite://PATH"));
            }
            Ok(DbUrl::Sqlite(path.to_string()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            crate::db_url::check_escapes(s).map_err(|e| {
                format!("database url {}: {e}", crate::db_url::rewrite(s, None, crate::db_url::Password::Mask))
            })?;
            if let Some((_, mode)) = crate::db_url::query(s).into_iter().rev().find(|(k, _)| k == "sslmode") {
                SslMode::parse(&mode).map_err(|e| format!("database url {}: {e}", crate::db_url::redact(s)))?;
            }
            Ok(DbUrl::Postgres(s.to_string()))
        } else {
            Err(format!(
                "invalid database url {:?}: expected sqlite://PATH or postgres://USER@HOST/DB",
                crate::db_url::redact(s)
            ))
        }
    }
}

impl<'de> Deserialize<'de> for DbUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DbUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// libpq's `sslmode` in a PostgreSQL URL: whether ferry's own sessions use TLS,
/// and what they check of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ACCEPTED: &str = "disable, prefer, require, verify-ca, verify-full";

    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return Err(format!("unknown sslmode {s:?}: expected one of {}", Self::ACCEPTED)),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What `ferry restore --snapshot` takes: any cluster snapshot id RDS takes as
/// the source of RestoreDBClusterFromSnapshot (the RDS API Reference:
/// "SnapshotIdentifier: The identifier for the DB snapshot or DB cluster
/// snapshot to restore from. You can use either the name or the Amazon
/// Resource Name (ARN) to specify a DB cluster snapshot"): a manual snapshot's
/// id, an automated one's (`rds:<cluster>-<yyyy-mm-dd-hh-mm>`), or a cluster
/// snapshot ARN (a snapshot shared by another account).
pub fn check_restore_snapshot(id: &str) -> Result<(), String> {
    let what = "--snapshot takes a snapshot id (e.g. app-prod-pre-deploy-20261121-193300-abcd), an automated \
                snapshot id (rds:<cluster>-<yyyy-mm-dd-hh-mm>), a cluster snapshot ARN, or `latest`";
    if let Some(rest) = id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = id.len() <= 1011
            && parts.len() == 6
            && parts[0].starts_with("aws")
            && parts[1] == "rds"
            && !parts[2].is_empty()
            && parts[3].len() == 12
            && parts[3].bytes().all(|b| b.is_ascii_digit())
            && parts[4] == "cluster-snapshot"
            && named_snapshot(parts[5]).is_ok();
        return if ok { Ok(()) } else { Err(format!("{id:?} is not a cluster snapshot ARN: {what}")) };
    }
    named_snapshot(id).map_err(|e| format!("{e}; {what}"))
}

/// A snapshot's name: a manual id, or `rds:` and an automated one's.
fn named_snapshot(name: &str) -> Result<(), String> {
    match name.strip_prefix("rds:") {
        Some(automated) => {
            check_snapshot_id(automated).map_err(|e| e.replacen("snapshot id", "automated snapshot id", 1))
        }
        None => check_snapshot_id(name),
    }
}

/// RDS DB cluster snapshot identifier rules: 1–63 characters, ASCII letters,
/// digits and hyphens, starts with a letter, no two consecutive hyphens, does
/// not end with a hyphen.
pub fn check_snapshot_id(id: &str) -> Result<(), String> {
    let rule = "snapshot ids are 1-63 letters, digits and hyphens, start with a letter, \
                contain no \"--\" and do not end with a hyphen";
    let problem = if id.is_empty() {
        Some("is empty".to_string())
    } else if id.len() > 63 {
        Some(format!("is {} characters long", id.len()))
    } else if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("does not start with a letter".to_string())
    } else if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
        Some(format!("contains {c:?}"))
    } else if id.contains("--") {
        Some("contains \"--\"".to_string())
    } else if id.ends_with('-') {
        Some("ends with a hyphen".to_string())
    } else {
        None
    };
    match problem {
        Some(p) => Err(format!("snapshot id {id:?} {p}: {rule}")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_compound_units() {
        assert_eq!(HumanDuration::parse("30m").unwrap().0, Duration::from_secs(1800));
        assert_eq!(HumanDuration::parse("1h30m").unwrap().0, Duration::from_secs(5400));
        assert_eq!(HumanDuration::parse("500ms").unwrap().0, Duration::from_millis(500));
        assert_eq!(HumanDuration::parse("2d").unwrap().0, Duration::from_secs(172_800));
        for bad in ["", "30", "m", "10x", "0s", "1.5h", "-1m", "99999999999999999999999999999h"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn templates_find_outputs_and_resolve() {
        let t = Template::parse("arn:${output:Role}/x/${output:Name}").unwrap();
        assert_eq!(t.outputs().collect::<Vec<_>>(), ["Role", "Name"]);
        let outs = BTreeMap::from([("Role".into(), "r".into()), ("Name".into(), "n".into())]);
        assert_eq!(t.resolve(&outs).unwrap(), "arn:r/x/n");
        assert_eq!(t.resolve(&BTreeMap::new()).unwrap_err(), "Role");
        assert!(Template::parse("${output:}").is_err());
        assert!(Template::parse("${env:HOME}").is_err());
        assert!(Template::parse("${output:Open").is_err());
        let list = TemplateList(vec![Template::parse("${output:Subnets}").unwrap()]);
        let outs = BTreeMap::from([("Subnets".into(), "subnet-a, subnet-b".into())]);
        assert_eq!(list.resolve(&outs).unwrap(), ["subnet-a", "subnet-b"]);
    }

    #[test]
    fn restore_takes_every_snapshot_id_rds_takes_and_nothing_else() {
        for good in [
            "app-prod-pre-deploy-20261121-193300-abcd",
            "rds:acme-staging-2026-12-07-03-10",
            "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:shared-before-cutover",
            "arn:aws-us-gov:rds:us-gov-west-1:123456789012:cluster-snapshot:rds:acme-2026-12-07-03-10",
        ] {
            check_restore_snapshot(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "rds:",
            "rds:-x",
            "x:y",
            "arn:aws:rds:us-east-1:123456789012:snapshot:db-snap",
            "arn:aws:ec2:us-east-1:123456789012:cluster-snapshot:x",
            "arn:aws:rds:us-east-1:1234:cluster-snapshot:x",
            "../etc/passwd",
        ] {
            let err = check_restore_snapshot(bad).unwrap_err();
            assert!(err.contains("--snapshot takes"), "{bad}: {err}");
        }
    }

    #[test]
    fn snapshot_ids_follow_rds_rules() {
        check_snapshot_id("wumbo-prod-pre-deploy-20261121-193300").unwrap();
        check_snapshot_id("a").unwrap();
        for bad in ["", "1abc", "a--b", "a-", "a_b", "ab.c", &"a".repeat(64)] {
            let err = check_snapshot_id(bad).unwrap_err();
            assert!(err.contains("snapshot id"), "{err}");
        }
    }

    #[test]
    fn sslmode_is_one_of_libpqs_and_checked_with_the_url() {
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(m).unwrap().as_str(), m);
        }
        for bad in ["", "allow", "verify_full", "Require", "true"] {
            let e = SslMode::parse(bad).unwrap_err();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("disable, prefer, require, verify-ca, verify-full"),
                "{e}"
            );
        }
        assert!(DbUrl::parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem").is_ok());
        let e = DbUrl::parse("postgres://u:pw@h/db?application_name=x&sslmode=verify-fll").unwrap_err();
        assert!(e.contains("unknown sslmode \"verify-fll\"") && e.contains("verify-full"), "{e}");
        assert!(e.contains("u:***@h") && !e.contains("pw"), "the password never shows: {e}");
        assert!(DbUrl::parse("postgres://u@h/db?sslmode=ver%69fy-ca").is_ok(), "percent-decoded like libpq");
    }
}
