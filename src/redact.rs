//! Scrubs secrets out of text a server sent before idsync logs, journals or shows it. A
//! hostile or careless server may echo the request in its error reply; the loaded secret
//! values (bind password, client secret, SCIM token, the current access token) and anything
//! shaped like a credential (`Bearer ...`, `client_secret=...`, `"access_token": "..."`)
//! become `<redacted>`. Pure: no I/O, no global state.

use std::sync::Arc;

/// What replaces a secret.
pub const MASK: &str = "<redacted>";

/// Shortest secret value scrubbed by value: shorter ones would mask ordinary words.
const MIN_SECRET_LEN: usize = 4;

/// Credential-shaped prefixes: the value after each, up to a delimiter, is masked.
const PREFIXES: [&str; 5] = [
    "bearer ",
    "client_secret=",
    "access_token=",
    "password=",
    "authorization: ",
];

/// JSON keys whose string value is masked.
const KEYS: [&str; 6] = [
    "access_token",
    "refresh_token",
    "client_secret",
    "authorization",
    "password",
    "token",
];

/// A secret value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The secrets to scrub; cheap to clone.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Arc<[String]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut list: Vec<String> = secrets
            .into_iter()
            .map(str::trim)
            .filter(|s| s.len() >= MIN_SECRET_LEN)
            .map(str::to_string)
            .collect();
        // Longest first, so a secret containing another is masked whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
        list.dedup();
        Redactor {
            secrets: list.into(),
        }
    }

    /// This redactor, scrubbing `more` too (e.g. an access token fetched at run time).
    pub fn with(&self, more: &str) -> Redactor {
        Redactor::new(self.secrets.iter().map(String::as_str).chain([more]))
    }

    /// `text` with every secret value and credential-shaped value masked: for error text.
    pub fn clean(&self, text: &str) -> String {
        let out = self.values(text);
        let out = mask_after_prefixes(&out);
        mask_json_keys(&out)
    }

    /// `text` with the loaded secret values masked, and nothing else touched: for data a
    /// server sent (an account), where a credential-shaped word may be a real value.
    pub fn values(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
            // Secrets echoed inside a URL-encoded or JSON-escaped body.
            for form in encodings(s) {
                if out.contains(form.as_str()) {
                    out = out.replace(form.as_str(), MASK);
                }
            }
        }
        out
    }
}

/// The forms a secret takes in a form body or a JSON string, when they differ from it.
fn encodings(s: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(s.as_bytes()).collect();
    let json = serde_json::to_string(s).unwrap_or_default();
    let json = json.trim_matches('"').to_string();
    [form, json].into_iter().filter(|f| f != s).collect()
}

fn is_value_char(c: char) -> bool {
    !(c.is_whitespace() || matches!(c, '"' | '\'' | '&' | ',' | ';' | '<' | '>' | '}' | ']'))
}

/// Masks the value after each credential-shaped prefix (case-insensitive).
fn mask_after_prefixes(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for p in PREFIXES {
        let mut from = 0;
        while let Some(i) = lower[from..].find(p) {
            let start = from + i + p.len();
            let len: usize = text[start..]
                .chars()
                .take_while(|c| is_value_char(*c))
                .map(char::len_utf8)
                .sum();
            if len > 0 && !text[start..start + len].starts_with(MASK) {
                cuts.push((start, start + len));
            }
            from = start;
        }
    }
    splice(text, cuts)
}

/// Masks the string value of each credential key in JSON-ish text (`"token": "..."`).
fn mask_json_keys(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut cuts = Vec::new();
    for k in KEYS {
        let quoted = format!("\"{k}\"");
        let mut from = 0;
        while let Some(i) = lower[from..].find(&quoted) {
            let after = from + i + quoted.len();
            from = after;
            let rest = &text[after..];
            let trimmed = rest.trim_start_matches([' ', ':', '\t']);
            if !rest[..rest.len() - trimmed.len()].contains(':') || !trimmed.starts_with('"') {
                continue;
            }
            let start = after + (rest.len() - trimmed.len()) + 1;
            let mut end = start;
            let mut escaped = false;
            for (j, c) in text[start..].char_indices() {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = start + j;
                    break;
                }
                end = start + j + c.len_utf8();
            }
            if end > start && &text[start..end] != MASK {
                cuts.push((start, end));
            }
        }
    }
    splice(text, cuts)
}

/// `text` with each (start, end) range replaced by the mask; overlapping ranges merge.
fn splice(text: &str, mut cuts: Vec<(usize, usize)>) -> String {
    if cuts.is_empty() {
        return text.to_string();
    }
    cuts.sort();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e) in cuts {
        if e <= at {
            continue;
        }
        let s = s.max(at);
        out.push_str(&text[at..s]);
        out.push_str(MASK);
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_secrets_are_masked_wherever_a_server_echoes_them() {
        let r = Redactor::new(["s3cr3t/+value", "tok"]);
        let echoed = "bad request: client_id=x&client_secret=s3cr3t%2F%2Bvalue, body {\"p\":\"s3cr3t/+value\"}";
        let clean = r.clean(echoed);
        assert!(!clean.contains("s3cr3t"), "{clean}");
        // Too short to mask by value (it would eat ordinary words).
        assert_eq!(r.clean("token tokens"), "token tokens");
    }

    #[test]
    fn credential_shapes_are_masked_without_knowing_the_value() {
        let r = Redactor::default();
        let clean = r.clean(
            "headers: Authorization: Bearer eyJhbGciOi.abc.def; {\"access_token\": \"zzz\\\"q\", \"x\": 1} password=hunter2&y",
        );
        assert!(!clean.contains("eyJhbGciOi"), "{clean}");
        assert!(!clean.contains("zzz"), "{clean}");
        assert!(!clean.contains("hunter2"), "{clean}");
        assert!(clean.contains("\"x\": 1"), "{clean}");
        assert!(clean.ends_with("&y"), "{clean}");
    }

    #[test]
    fn clean_text_is_left_alone() {
        let r = Redactor::new(["correct-horse"]);
        let t = "409 userName ada@example.org is taken";
        assert_eq!(r.clean(t), t);
    }
}
