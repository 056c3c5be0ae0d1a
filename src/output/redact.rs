//! ARCHITECTURE.md promise 5: secrets never reach stdout, stderr, the journal or a step summary.
//! Every text ferry writes passes through one [`Redactor`].

use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

const MASK: &str = "***";

impl Redactor {
    /// Every secret is masked in each of its forms: as written, percent-decoded
    /// (a URL password `p%40ss` is `p@ss` to the program that uses it) and
    /// percent-encoded (upper- and lower-case hex).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .flat_map(|s| {
                let decoded = crate::db_url::decode(&s);
                let mut forms = vec![s.clone()];
                for base in [&s, &decoded] {
                    forms.push(base.clone());
                    forms.push(percent_encode(base, false));
                    forms.push(percent_encode(base, true));
                }
                forms.push(decoded);
                forms
            })
            // A one-character "form" would mask every such character in the output.
            .filter(|s| s.len() > 1)
            .collect();
        secrets.sort();
        secrets.dedup();
        // Longest first so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets: Arc::new(secrets) }
    }

    /// Mask every known secret and every password in a `scheme://user:pass@host` URL.
    pub fn clean(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        crate::db_url::redact(&out)
    }

    /// Like [`Redactor::clean`] for JSON text, where secrets appear escaped.
    pub fn clean_json(&self, json: &str) -> String {
        let mut out = json.to_string();
        for s in self.secrets.iter() {
            if let Ok(escaped) = serde_json::to_string(s) {
                let inner = &escaped[1..escaped.len() - 1];
                if out.contains(inner) {
                    out = out.replace(inner, MASK);
                }
            }
        }
        self.clean(&out)
    }
}

/// `s` percent-encoded with upper- or lower-case hex.
fn percent_encode(s: &str, lower: bool) -> String {
    let upper = crate::db_url::encode(s);
    if !lower {
        return upper;
    }
    let mut out = String::with_capacity(upper.len());
    let mut hex_left = 0u8;
    for c in upper.chars() {
        out.push(if hex_left > 0 { c.to_ascii_lowercase() } else { c });
        hex_left = if c == '%' { 2 } else { hex_left.saturating_sub(1) };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secrets_and_url_passwords() {
        let r = Redactor::new(["hunter2".to_string(), String::new()]);
        assert_eq!(
            r.clean("token=hunter2 url=postgres://app:pw@db:5432/app?x=1 sqlite://./a.db"),
            "token=*** url=postgres://app:***@db:5432/app?x=1 sqlite://./a.db"
        );
        assert_eq!(r.clean("http://host:8080/x"), "http://host:8080/x");
        let r = Redactor::new(["a\"b".to_string()]);
        let json = serde_json::to_string(&"x a\"b y").unwrap();
        assert_eq!(r.clean_json(&json), "\"x *** y\"");
    }

    #[test]
    fn masks_a_secret_in_every_form() {
        let r = Redactor::new(["Pw-URL-S3cr3t%40x".to_string()]);
        for form in ["Pw-URL-S3cr3t%40x", "Pw-URL-S3cr3t@x", "Pw-URL-S3cr3t%2540x"] {
            assert_eq!(r.clean(&format!("a {form} b")), "a *** b", "{form}");
        }
        let r = Redactor::new(["p@ss:w/rd".to_string()]);
        for form in ["p@ss:w/rd", "p%40ss%3Aw%2Frd", "p%40ss%3aw%2frd"] {
            assert_eq!(r.clean(&format!("[{form}]")), "[***]", "{form}");
        }
    }
}
