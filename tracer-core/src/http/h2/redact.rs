//! Secret removal for HTTP/2 heads.
//!
//! Seam: the shared redaction rules live in `crate::redact` (owned by the HTTP/1.1 work); until
//! they land there, HTTP/2 applies this small compatible subset so a secret never leaves the
//! parser. Same function names and behaviour (values replaced, not dropped).

/// What a secret value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "x-amz-security-token",
];

/// Parts of a name that make it secret (`x-foo-token`, `my_secret`...).
const SECRET_PARTS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "auth",
    "sig",
    "signature",
];
/// Parts that make it a figure about tokens rather than a secret (`...-token-count`).
const NOT_SECRET_PARTS: &[&str] = &["count", "remaining", "limit", "reset", "usage", "tokens"];

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if SECRET_HEADERS.contains(&lower.as_str()) {
        return true;
    }
    let parts: Vec<&str> = lower.split(['-', '_', '.']).collect();
    parts.iter().any(|p| SECRET_PARTS.contains(p))
        && !parts.iter().any(|p| NOT_SECRET_PARTS.contains(p))
}

/// The value to keep for a header: the value itself, or [`REDACTED`].
pub fn header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_name(name) {
        REDACTED
    } else {
        value
    }
}

/// A request target with the values of secret query parameters replaced.
pub fn redact_target(target: &str) -> String {
    let Some(q) = target.find('?') else {
        return target.to_string();
    };
    let (path, query) = target.split_at(q + 1);
    let (query, fragment) = match query.find('#') {
        Some(h) => query.split_at(h),
        None => (query, ""),
    };
    let mut out = String::with_capacity(target.len());
    out.push_str(path);
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((k, _)) if is_secret_name(k) || k.eq_ignore_ascii_case("sig") => {
                out.push_str(k);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced() {
        for n in [
            "authorization",
            "X-Api-Key",
            "x-goog-api-key",
            "api-key",
            "cookie",
            "x-my-token",
        ] {
            assert_eq!(header_value(n, "fake-secret"), REDACTED, "{n}");
        }
        for n in [
            "content-type",
            "x-ratelimit-remaining-tokens",
            "anthropic-version",
        ] {
            assert_eq!(header_value(n, "v"), "v", "{n}");
        }
        assert_eq!(
            redact_target("/v1beta/models/g:generateContent?alt=sse&key=FAKE-KEY-123"),
            "/v1beta/models/g:generateContent?alt=sse&key=[REDACTED]"
        );
        assert_eq!(
            redact_target("/v1/chat/completions"),
            "/v1/chat/completions"
        );
    }
}
