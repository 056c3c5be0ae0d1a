//! Invariant 5: secrets never reach stdout, stderr, the journal or a step summary.
//! Every text ferry writes passes through one [`Redactor`].

use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<Vec<String>>,
}

const MASK: &str = "***";

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
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
        crate::config::redact_url(&out)
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
}
