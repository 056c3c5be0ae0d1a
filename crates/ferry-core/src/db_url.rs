//! Database URLs in one place: the parts ferry reads (query parameters, the
//! password), the rewrites it makes (another database name, the password
//! masked or left out), and the redaction of URLs inside any text.
//!
//! PostgreSQL URLs follow libpq, which the `url` crate does not parse whole: a
//! libpq URL may list several hosts with ports (`postgres://h1:5432,h2:5433/db`)
//! and reads `+` in a query as itself, not as a space. So the URL is split here
//! by its delimiters, and only the percent-encoding is the library's
//! (`percent-encoding`, the `url` crate's own). Pure: no I/O.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// What a password is shown as.
pub const MASK: &str = "***";

/// Everything but RFC 3986's unreserved characters is encoded.
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `s` with every byte outside RFC 3986's unreserved set percent-encoded (upper-case hex).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

/// `%XX` escapes decoded; anything else (a stray `%` included) kept as written.
pub fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// A URL cut at its delimiters: `scheme://[user[:password]@]hosts[/path][?query]`.
struct Parts<'a> {
    scheme: &'a str,
    /// `user[:password]`, as written.
    credentials: Option<&'a str>,
    hosts: &'a str,
    /// `/database`, or empty.
    path: &'a str,
    /// The `key=value` parameters, as written.
    params: Vec<&'a str>,
}

fn split(url: &str) -> Parts<'_> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    Parts { scheme, credentials, hosts, path, params: query.split('&').filter(|p| !p.is_empty()).collect() }
}

/// Whether every `%` escape of the URL is whole (`%` and two hex digits) and
/// every part decodes to UTF-8. The error names the part (user, password,
/// host, database, a parameter's key), never its text: it may be the password.
pub fn check_escapes(url: &str) -> Result<(), String> {
    let parts = split(url);
    let mut named: Vec<(String, &str)> = Vec::new();
    if let Some(c) = parts.credentials {
        match c.split_once(':') {
            Some((user, pw)) => named.extend([("the user name".to_string(), user), ("the password".to_string(), pw)]),
            None => named.push(("the user name".to_string(), c)),
        }
    }
    named.push(("the host".to_string(), parts.hosts));
    named.push(("the database name".to_string(), parts.path));
    for p in &parts.params {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let key = if whole_escapes(k) { decode(k) } else { "a parameter".to_string() };
        named.push((format!("the parameter {key:?}"), v));
        named.push(("a parameter's name".to_string(), k));
    }
    for (what, text) in named {
        if !whole_escapes(text) {
            return Err(format!("{what} has a `%` not followed by two hex digits (write a literal % as %25)"));
        }
        if percent_decode_str(text).decode_utf8().is_err() {
            return Err(format!("{what} has %-escapes that do not decode to UTF-8 text"));
        }
    }
    Ok(())
}

fn whole_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

/// The `key=value` parameters of a URL's query, percent-decoded as libpq does
/// (`+` stays `+`). A key without `=` has an empty value.
pub fn query(url: &str) -> Vec<(String, String)> {
    if !url.contains('?') {
        return Vec::new();
    }
    split(url)
        .params
        .into_iter()
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The URL's passwords as written (still percent-encoded): the one in the user
/// info and any `password=` parameter. A `Redactor` masks their other forms.
pub fn passwords(url: &str) -> Vec<String> {
    let parts = split(url);
    let mut out: Vec<String> =
        parts.credentials.and_then(|c| c.split_once(':')).map(|(_, pw)| pw.to_string()).into_iter().collect();
    out.extend(parts.params.iter().filter_map(|p| p.strip_prefix("password=")).map(str::to_string));
    out.retain(|p| !p.is_empty());
    out
}

/// What [`rewrite`] does with the URL's password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Password {
    /// Shown as `***` (endpoints, messages).
    Mask,
    /// Left out (handed to `pg_dump`, with the password in `PGPASSWORD`).
    Drop,
    /// Kept (the URL a rehearsal's migration connects to its clone with).
    Keep,
}

/// `url` with its password masked, dropped or kept (in the user info and in a
/// `password=` parameter), naming database `dbname` when given (any `dbname=`
/// parameter removed).
pub fn rewrite(url: &str, dbname: Option<&str>, password: Password) -> String {
    let parts = split(url);
    let mut out = format!("{}://", parts.scheme);
    if let Some(credentials) = parts.credentials {
        match (credentials.split_once(':'), password) {
            (Some((user, _)), Password::Mask) => out.push_str(&format!("{user}:{MASK}@")),
            (Some((user, _)), Password::Drop) => out.push_str(&format!("{user}@")),
            _ => out.push_str(&format!("{credentials}@")),
        }
    }
    out.push_str(parts.hosts);
    match dbname {
        Some(db) => out.push_str(&format!("/{}", encode(db))),
        None => out.push_str(parts.path),
    }
    let params: Vec<String> = parts
        .params
        .into_iter()
        .filter_map(|p| match (p.split('=').next().unwrap_or(""), password) {
            ("dbname", _) if dbname.is_some() => None,
            ("password", Password::Mask) => Some(format!("password={MASK}")),
            ("password", Password::Drop) => None,
            _ => Some(p.to_string()),
        })
        .collect();
    if !params.is_empty() {
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `url` reaching `host:port` instead of its own host(s): the same scheme,
/// user, password, database and parameters. A URL listing several hosts is
/// refused (which of them the new host stands for is not known).
pub fn with_host(url: &str, host: &str, port: u16) -> Result<String, String> {
    let parts = split(url);
    if parts.hosts.contains(',') {
        return Err("it lists several hosts; give one host to be replaced by the clone's".into());
    }
    if host.is_empty() || host.contains(['/', '?', '@', '#', ' ']) {
        return Err(format!("{host:?} is not a host name"));
    }
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    let mut out = format!("{}://", parts.scheme);
    if let Some(credentials) = parts.credentials {
        out.push_str(&format!("{credentials}@"));
    }
    out.push_str(&format!("{host}:{port}{}", parts.path));
    if !parts.params.is_empty() {
        out.push('?');
        out.push_str(&parts.params.join("&"));
    }
    Ok(out)
}

/// Replace the password of every `scheme://user:password@host` in `text` with
/// `***` (a whole URL, or URLs inside a line of output).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first character that cannot be in it.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `scheme://user:pass@HOST:port/db?x` with HOST replaced; `None` if `url` has no host.
pub fn replace_host(url: &str, host: &str) -> Option<String> {
    let scheme_end = url.find("://")? + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port = host_port.rfind(':').map_or("", |i| &host_port[i..]);
    Some(format!("{}{}{host}{port}{}", &url[..scheme_end], &authority[..host_start], &rest[authority_end..]))
}

#[cfg(test)]
mod escape_tests {
    use super::*;

    #[test]
    fn broken_escapes_are_named_by_part_never_shown() {
        let e = check_escapes("postgres://u:p%zzsecret@db/app").unwrap_err();
        assert!(e.contains("the password") && !e.contains("secret"), "{e}");
        assert!(check_escapes("postgres://u:p%2@db/app").unwrap_err().contains("the password"));
        assert!(check_escapes("postgres://u:p%ff%fe@db/app").unwrap_err().contains("UTF-8"));
        assert!(check_escapes("postgres://u%zz@db/app").unwrap_err().contains("user name"));
        assert!(check_escapes("postgres://u@db/a%pp").unwrap_err().contains("database name"));
        assert!(check_escapes("postgres://u@db/app?password=x%z").unwrap_err().contains("\"password\""));
        check_escapes("postgres://u:p%40ss%25@h1:5432,h2/app?sslmode=require&application_name=a+b").unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://app:p%40ss@db1:5432,db2:5433/app?sslmode=require&password=x%2By&dbname=other";

    #[test]
    fn a_libpq_url_is_rewritten_for_another_database_with_its_password_masked_dropped_or_kept() {
        assert_eq!(
            rewrite(URL, Some("app-rehearsal 1"), Password::Mask),
            "postgres://app:***@db1:5432,db2:5433/app-rehearsal%201?sslmode=require&password=***"
        );
        assert_eq!(
            rewrite(URL, None, Password::Drop),
            "postgres://app@db1:5432,db2:5433/app?sslmode=require&dbname=other"
        );
        assert_eq!(
            rewrite(URL, Some("b"), Password::Keep),
            "postgres://app:p%40ss@db1:5432,db2:5433/b?sslmode=require&password=x%2By"
        );
        assert_eq!(rewrite("postgresql://h/db", Some("e"), Password::Mask), "postgresql://h/e");
    }

    #[test]
    fn passwords_are_found_as_written_in_the_user_info_and_the_query() {
        assert_eq!(passwords(URL), ["p%40ss", "x%2By"]);
        assert!(passwords("postgres://app@h/db").is_empty());
        assert!(passwords("postgres://app:@h/db").is_empty());
    }

    #[test]
    fn url_queries_are_percent_decoded() {
        assert_eq!(
            query("postgres://h/db?sslrootcert=%2Ftmp%2Fa+b.pem&flag&x=%zz"),
            [("sslrootcert".into(), "/tmp/a+b.pem".into()), ("flag".into(), String::new()), ("x".into(), "%zz".into())]
        );
        assert!(query("postgres://h/db").is_empty());
    }

    #[test]
    fn urls_in_text_lose_their_password() {
        assert_eq!(redact("postgres://app:s3cret@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(redact("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact("sqlite://./app.db"), "sqlite://./app.db");
        assert_eq!(redact("to postgres://u:pw@h/db failed"), "to postgres://u:***@h/db failed");
    }

    #[test]
    fn percent_encoding_round_trips_outside_the_unreserved_set() {
        assert_eq!(encode("a b/c-d.e_f~g@"), "a%20b%2Fc-d.e_f~g%40");
        assert_eq!(decode("a%20b%2fc%zz%"), "a b/c%zz%");
    }

    #[test]
    fn with_host_replaces_only_the_host_and_port() {
        assert_eq!(
            with_host("postgres://ro:p%40ss@db.internal:5433/app?sslmode=verify-full", "clone.example", 5432).unwrap(),
            "postgres://ro:p%40ss@clone.example:5432/app?sslmode=verify-full"
        );
        assert_eq!(with_host("postgresql://u@h/app", "::1", 6000).unwrap(), "postgresql://u@[::1]:6000/app");
        assert!(with_host("postgres://u@h1:5432,h2:5433/app", "c", 5432).unwrap_err().contains("several hosts"));
        assert!(with_host("postgres://u@h/app", "a/b", 5432).is_err());
    }
}
