//! What every HTTP connector (SCIM target, Graph source) shares: the client's build (timeouts,
//! an extra CA), `Retry-After` parsing, and error text that never carries a header (so never
//! a token).

use std::path::Path;
use std::time::{Duration, SystemTime};

/// Longest single wait a `Retry-After` may impose before idsync gives up on the call.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);

/// A reqwest client with idsync's timeouts and user agent, trusting `ca_file` too when given
/// (`ca_key` names the config key in errors).
pub fn client(
    timeout: Duration,
    ca_file: Option<&Path>,
    ca_key: &str,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("idsync/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("cannot read {ca_key} {}: {e}", ca.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("{ca_key} {}: {e}", ca.display()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| e.to_string())
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

/// At most 300 characters of a reply body, for error messages.
pub fn snippet(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_string(),
    }
}

/// A transport error with its causes. reqwest errors carry the URL, never headers: safe to
/// print.
pub fn transport_text(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
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
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(1000));
        assert_eq!(backoff(40), backoff(7));
    }
}
