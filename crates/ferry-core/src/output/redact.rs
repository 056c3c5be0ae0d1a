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
    /// (a URL password `p%40ss` is `p@ss` to the program that uses it),
    /// percent-encoded (upper- and lower-case hex), form-encoded
    /// (`application/x-www-form-urlencoded`: `+` for a space), JSON-escaped
    /// (as serde and as an ASCII-only encoder write it, `/` as `\/` too), and
    /// base64, standard and URL-safe, at each of the three alignments the
    /// secret can have inside a longer encoded stream (see [`base64_cores`]).
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
                    forms.push(form_encode(base, false));
                    forms.push(form_encode(base, true));
                    forms.extend(json_escapes(base));
                    forms.extend(base64_cores(base.as_bytes()));
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

/// `s` as `application/x-www-form-urlencoded` writes it (HTML Living Standard,
/// "application/x-www-form-urlencoded serializer"): ASCII letters, digits and
/// `*-._` as they are, a space as `+`, every other byte of its UTF-8 `%XX`.
fn form_encode(s: &str, lower: bool) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            _ if lower => out.push_str(&format!("%{b:02x}")),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `s` inside a JSON string: as serde writes it, as an ASCII-only encoder writes
/// it (every non-ASCII character `\uXXXX`, lower- and upper-case hex, UTF-16
/// surrogate pairs beyond the BMP), and each with `/` escaped as `\/`.
fn json_escapes(s: &str) -> Vec<String> {
    let serde = serde_json::to_string(s).map(|q| q[1..q.len() - 1].to_string()).unwrap_or_default();
    let ascii = |upper: bool| {
        let mut out = String::new();
        for c in serde.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&if upper { format!("\\u{u:04X}") } else { format!("\\u{u:04x}") });
                }
            }
        }
        out
    };
    let mut forms = vec![serde.clone(), ascii(false), ascii(true)];
    let slashed: Vec<String> = forms.iter().filter(|f| f.contains('/')).map(|f| f.replace('/', "\\/")).collect();
    forms.extend(slashed);
    forms
}

/// The shortest base64 run that encodes a secret this long, in characters:
/// below it a masked run would hide ordinary text by chance.
const MIN_BASE64_RUN: usize = 6;

/// The base64 text that `secret` turns into wherever it sits in a longer
/// encoded stream. Base64 encodes 3 bytes as 4 characters, so the secret starts
/// at one of three alignments; for each, the characters whose 6 bits all come
/// from the secret are the same whatever bytes surround it. Standard (`+/`) and
/// URL-safe (`-_`) alphabets (RFC 4648, sections 4 and 5), plus the whole
/// secret encoded alone, with and without `=` padding.
fn base64_cores(secret: &[u8]) -> Vec<String> {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut forms = Vec::new();
    let n = secret.len();
    for align in 0..3 {
        let mut bytes = vec![0u8; align];
        bytes.extend_from_slice(secret);
        let encoded = base64(&bytes, STANDARD, false);
        // Characters [first, last) carry only the secret's bits.
        let first = (8 * align).div_ceil(6);
        let last = (8 * (align + n)) / 6;
        if last > first && last - first >= MIN_BASE64_RUN {
            forms.push(encoded[first..last].to_string());
        }
    }
    if base64(secret, STANDARD, false).len() >= MIN_BASE64_RUN {
        forms.push(base64(secret, STANDARD, true));
        forms.push(base64(secret, STANDARD, false));
    }
    let url_safe: Vec<String> =
        forms.iter().filter(|f| f.contains(['+', '/'])).map(|f| f.replace('+', "-").replace('/', "_")).collect();
    forms.extend(url_safe);
    forms
}

/// Base64 of `bytes` in `alphabet`, `=`-padded or not.
fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((v >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
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

    #[test]
    fn masks_form_encoded_and_json_escaped_forms() {
        let r = Redactor::new(["s3cret pa$$/wörd\"q".to_string()]);
        for form in [
            "s3cret+pa%24%24%2Fw%C3%B6rd%22q",
            "s3cret+pa%24%24%2fw%c3%b6rd%22q",
            "s3cret pa$$/wörd\\\"q",
            "s3cret pa$$/w\\u00f6rd\\\"q",
            "s3cret pa$$\\/w\\u00F6rd\\\"q",
        ] {
            assert_eq!(r.clean(&format!("<{form}>")), "<***>", "{form}");
        }
    }

    #[test]
    fn masks_base64_at_every_alignment_in_both_alphabets() {
        // Bytes that give `+` and `/` (or `-` and `_`) in the encoding.
        let secret = "hunter2>>>???~~~";
        let r = Redactor::new([secret.to_string()]);
        for prefix in ["", "a", "ab", "abc", "user:"] {
            for url_safe in [false, true] {
                let text = format!("{prefix}{secret}!tail");
                let mut enc =
                    base64(text.as_bytes(), b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
                if url_safe {
                    enc = enc.replace('+', "-").replace('/', "_");
                }
                let cleaned = r.clean(&format!("Authorization: Basic {enc}"));
                assert!(cleaned.contains("***"), "{prefix:?} {url_safe}: {cleaned}");
                // What is left of the stream cannot spell the secret: at most
                // the two partial characters at its edges stay.
                let shown: String = cleaned.split("***").collect();
                assert!(shown.len() + 3 < format!("Authorization: Basic {enc}").len(), "{cleaned}");
            }
        }
        let alone =
            base64(secret.as_bytes(), b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", true);
        assert_eq!(r.clean(&format!("x {alone} y")), "x *** y");
        // A short secret has no base64 form: it would mask ordinary text.
        assert!(base64_cores(b"abc").is_empty());
    }
}
