//! What every HTTP connector (SCIM target, Graph source) shares: the client's build (timeouts,
//! an extra CA, no redirects, a proxy only when configured), bodies read against a cap,
//! `Retry-After` parsing, and error text that never carries a header (so never a token).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Longest single wait a `Retry-After` may impose before idsync gives up on the call.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

/// Default cap on one reply's body (`max_response_bytes`).
pub const DEFAULT_MAX_RESPONSE: usize = 64 << 20;

/// How a connector talks HTTP: where its CA and proxy come from (config keys for errors).
pub struct ClientSettings<'a> {
    pub timeout: Duration,
    pub ca_file: Option<&'a Path>,
    pub ca_key: &'a str,
    /// The only proxy used; `HTTP_PROXY` and friends are ignored.
    pub proxy: Option<&'a url::Url>,
}

/// A reqwest client with idsync's timeouts and user agent, trusting `ca_file` too when given.
/// It follows no redirect (a 3xx is the caller's error to report, so no byte and no
/// credential goes to an origin the config does not name) and uses no proxy from the
/// environment: only `proxy`, when configured.
pub fn client(s: ClientSettings<'_>) -> Result<reqwest::Client, String> {
    let ClientSettings {
        timeout,
        ca_file,
        ca_key,
        proxy,
    } = s;
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("idsync/", env!("CARGO_PKG_VERSION")));
    if let Some(p) = proxy {
        let proxy = reqwest::Proxy::all(p.as_str()).map_err(|e| format!("proxy {p}: {e}"))?;
        builder = builder.proxy(proxy);
    }
    if let Some(ca) = ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read {ca_key} {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{ca_key} {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
}

/// A reply's body, read as it streams in, never more than a cap.
pub enum Body {
    Whole(Vec<u8>),
    /// Longer than the cap: the first `cap + 1` bytes (or none, when `Content-Length` said
    /// so up front), and the announced length if any.
    Over {
        head: Vec<u8>,
        announced: Option<u64>,
    },
}

/// Reads a body to its end or to `cap`, whichever comes first. A transport error (a reset,
/// the timeout cutting an endless body) is an error, never an empty or short body.
pub async fn read_body(mut resp: reqwest::Response, cap: usize) -> Result<Body, reqwest::Error> {
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > cap as u64) {
        return Ok(Body::Over {
            head: Vec::new(),
            announced,
        });
    }
    let mut out = Vec::with_capacity(announced.map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > cap {
            let take = cap + 1 - out.len();
            out.extend_from_slice(&chunk[..take.min(chunk.len())]);
            return Ok(Body::Over {
                head: out,
                announced,
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(out))
}

/// What to tell about a body over its cap, and which key raises it.
pub fn over_cap(cap: usize, key: &str) -> String {
    format!("the reply is larger than {key} ({cap} bytes); nothing of it was used: raise {key} if the server is right")
}

/// A 3xx reply as an error text: idsync follows no redirect.
pub fn redirect_text(status: reqwest::StatusCode, location: Option<&str>, key: &str) -> String {
    format!(
        "{status} redirect to {}; idsync follows no redirect (no byte goes to an origin the config does not name): set {key} to the final URL",
        location.unwrap_or("(no Location)")
    )
}

/// Exponential backoff for attempt `n` (1-based) when the server gives no `Retry-After`.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * (1 << (attempt.saturating_sub(1)).min(6)))
}

/// `Retry-After` as delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response, if it has a readable one.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// True when a request failed in TLS (an unknown CA, a certificate for another host, a
/// handshake the server refused): retrying will not help, and the fix is the CA or the URL.
pub fn is_tls(e: &reqwest::Error) -> bool {
    std::iter::successors(std::error::Error::source(e), |s| s.source()).any(is_tls_cause)
}

/// A rustls error, or I/O errors wrapping one (tokio-rustls wraps it in an I/O error, which
/// hyper wraps again; `io::Error::source` skips the wrapped error itself).
pub fn is_tls_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    if e.is::<rustls::Error>() {
        return true;
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        .is_some_and(|inner| is_tls_cause(inner))
}

/// An id a server gave, as one URL path segment: every reserved character escaped. Ids
/// `.` and `..` must be refused before (as a segment they address another resource).
pub fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// True for an id that may stand in a URL path: not empty, `.` or `..`.
pub fn usable_id(id: &str) -> bool {
    !id.is_empty() && id != "." && id != ".."
}

/// At most 300 characters of a reply body, for error messages.
pub fn snippet(text: &str) -> String {
    // One line: an HTML error page's tags dropped, every run of whitespace (newlines
    // included) one space, so a reply never breaks `idsync runs` or a log line.
    let html = text.trim_start().starts_with('<');
    let mut flat = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' if html => in_tag = true,
            '>' if html && in_tag => {
                in_tag = false;
                flat.push(' ');
            }
            _ if in_tag => {}
            c if c.is_whitespace() => flat.push(' '),
            c => flat.push(c),
        }
        if flat.len() > 8192 {
            break;
        }
    }
    let t = flat.split_whitespace().collect::<Vec<_>>().join(" ");
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t,
    }
}

/// A transport error with its causes. reqwest errors carry the URL, never headers: safe to
/// print.
pub fn transport_text(e: &reqwest::Error) -> String {
    error_text(e)
}

/// An error and its causes, on one line.
pub fn error_text(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn ids_are_escaped_as_one_path_segment() {
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_segment("../../evil/x"), "..%2F..%2Fevil%2Fx");
        assert!(!usable_id("..") && !usable_id(".") && !usable_id(""));
        assert!(usable_id("..a"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(backoff(40), backoff(7));
    }

    #[test]
    fn a_reply_is_shown_on_one_line_cut_to_a_sane_length() {
        let page = "<html>\n<head><title>500 Internal Server Error</title></head>\n<body>\n<h1>Oops</h1>\n</body></html>";
        assert_eq!(snippet(page), "500 Internal Server Error Oops");
        assert_eq!(snippet("{\"detail\":\n  \"bad\"}"), "{\"detail\": \"bad\"}");
        let long = "x".repeat(1000);
        assert_eq!(snippet(&long).chars().count(), 303);
    }
}
