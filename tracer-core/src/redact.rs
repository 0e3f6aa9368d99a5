//! Secret removal: header values, query parameters and command-line arguments.
//!
//! Applied inside the HTTP parsers, so a secret never leaves the parser: every [`crate::http::Headers`]
//! and request target that reaches the LLM layer has already been through here. The values are
//! replaced (not dropped) so that "the request was authenticated" stays visible.
//!
//! Names are judged by their parts (split on `-`, `_`, `.`), so `x-api-key`, `x-goog-api-key`,
//! `x-amz-security-token` and `OPENAI_API_KEY` are secret, while `x-ratelimit-remaining-tokens`,
//! `max_tokens` and `x-amzn-bedrock-input-token-count` (usage figures, not secrets) are not.

/// What a secret value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Name parts that make a header, parameter or flag secret.
const SECRET_PARTS: &[&str] = &[
    "authorization",
    "auth",
    "cookie",
    "key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "credential",
    "credentials",
    "signature",
    "sig",
    "session",
];

/// Parts that mark a name as a figure about secrets rather than a secret (`...-token-count`).
const FIGURE_PARTS: &[&str] = &["count", "limit", "remaining", "reset", "usage", "type"];

/// Whether a header, query parameter, flag or variable name denotes a secret.
pub fn is_secret_name(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let mut secret = false;
    for part in lower.split(['-', '_', '.']) {
        if FIGURE_PARTS.contains(&part) {
            return false;
        }
        if SECRET_PARTS.contains(&part) {
            secret = true;
        }
    }
    // Exact well-known names that the part rule alone would not see.
    secret
        || matches!(
            lower.as_str(),
            "set-cookie" | "proxy-authorization" | "code"
        )
}

/// Whether a header (by name) must have its value removed.
pub fn is_secret_header(name: &str) -> bool {
    is_secret_name(name)
}

/// The value to keep for a header: the value itself, or [`REDACTED`].
pub fn header_value<'a>(name: &str, value: &'a str) -> &'a str {
    if is_secret_header(name) {
        REDACTED
    } else {
        value
    }
}

/// A request target (`/path?query`) or URL with the values of secret query parameters replaced
/// (and `user:password@` userinfo removed from absolute URLs). Everything else is kept byte for
/// byte; a target without secrets is returned unchanged.
pub fn redact_target(target: &str) -> String {
    let target = redact_userinfo(target);
    let Some(q) = target.find('?') else {
        return target;
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
            Some((name, _)) if is_secret_name(&percent_decode_lossy(name)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    out.push_str(fragment);
    out
}

/// `scheme://user:pass@host/...` -> `scheme://[REDACTED]@host/...`.
fn redact_userinfo(s: &str) -> String {
    if let Some(scheme_end) = s.find("://") {
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{}{}@{}", &s[..scheme_end + 3], REDACTED, &rest[at + 1..]);
        }
    }
    s.to_string()
}

fn percent_decode_lossy(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Values that are secrets whatever flag or variable carries them (well-known key prefixes).
fn looks_like_key(value: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_",
        "pk_live_",
        "rk_live_",
        "AIza",
        "ghp_",
        "gho_",
        "github_pat_",
        "xoxb-",
        "xoxp-",
        "hf_",
        "gsk_",
        "AKIA",
        "ASIA",
        "Bearer ",
        "bearer ",
    ];
    let v = value.trim_matches(['"', '\'']);
    v.len() >= 12 && PREFIXES.iter().any(|p| v.starts_with(p))
}

/// A header given as an argument (`curl -H 'Authorization: Bearer X'`, `wget --header`,
/// httpie `x-api-key:X`), with its value replaced when the header is secret.
fn redact_header_arg(arg: &str) -> Option<String> {
    let (name, _) = arg.split_once(':')?;
    let name = name.trim();
    let header_shaped = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    (header_shaped && is_secret_header(name)).then(|| format!("{name}: {REDACTED}"))
}

/// Flags whose value is a request body given inline, in the HTTP client tools of `HTTP_TOOLS`
/// (elsewhere `-d` means other things): a prompt typed on the command line must not reach
/// `process.command_line`.
const DATA_FLAGS: &[&str] = &[
    "d",
    "data",
    "data-raw",
    "data-binary",
    "data-ascii",
    "data-urlencode",
    "json",
    "F",
    "form",
    "form-string",
    "body",
    "post-data",
    "body-data",
    "raw",
];

const HTTP_TOOLS: &[&str] = &[
    "curl", "wget", "http", "https", "xh", "xhs", "curlie", "grpcurl",
];

/// An argument that is a payload rather than an option: inline JSON, multi-line text, or long
/// enough to be a prompt. A file reference (`@body.json`) is kept: it names, not carries, data.
fn looks_like_payload(arg: &str) -> bool {
    let a = arg.trim_start();
    !a.starts_with('@')
        && (a.starts_with('{') || a.starts_with('[') || a.contains('\n') || a.len() > 256)
}

fn payload_placeholder(arg: &str) -> String {
    format!("[CONTENT: {} bytes]", arg.len())
}

/// A process command line (argv) with secrets replaced, for `process.command_line`:
/// `--api-key=X`, `--token X`, `-p X` after a secret flag, `OPENAI_API_KEY=X`, URLs with
/// credentials or secret query parameters, and anything that looks like a well-known API key.
/// Inline request bodies (`curl -d '{"messages":...}'`, `--data=...`, any inline JSON or long
/// text) are replaced by their size: prompt text leaves the agent only with content capture.
pub fn redact_command_line<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut redact_next = false;
    let mut payload_next = false;
    let http_tool = args.first().is_some_and(|a| {
        let exe = a.as_ref().rsplit('/').next().unwrap_or_default();
        HTTP_TOOLS.contains(&exe)
    });
    for arg in args {
        let arg = arg.as_ref();
        if payload_next {
            payload_next = false;
            if !arg.starts_with('@') {
                out.push(payload_placeholder(arg));
                continue;
            }
        }
        if looks_like_payload(arg) && !arg.starts_with('-') {
            out.push(payload_placeholder(arg));
            continue;
        }
        if redact_next {
            redact_next = false;
            if !arg.starts_with('-') || looks_like_key(arg) {
                out.push(REDACTED.to_string());
                continue;
            }
        }
        if looks_like_key(arg) {
            out.push(REDACTED.to_string());
            continue;
        }
        if let Some(redacted) = redact_header_arg(arg) {
            out.push(redacted);
            continue;
        }
        if let Some(flag) = arg.strip_prefix('-') {
            let flag = flag.trim_start_matches('-');
            match flag.split_once('=') {
                // `--header=Authorization: Bearer X`
                Some((name, value)) if redact_header_arg(value).is_some() => {
                    let value = redact_header_arg(value).unwrap_or_default();
                    out.push(format!(
                        "{}={value}",
                        &arg[..arg.len() - flag.len() + name.len()]
                    ));
                }
                Some((name, _)) if is_secret_name(name) => {
                    out.push(format!(
                        "{}={}",
                        &arg[..arg.len() - flag.len() + name.len()],
                        REDACTED
                    ));
                }
                Some((name, value))
                    if http_tool && DATA_FLAGS.contains(&name) && !value.starts_with('@') =>
                {
                    out.push(format!(
                        "{}={}",
                        &arg[..arg.len() - flag.len() + name.len()],
                        payload_placeholder(value)
                    ));
                }
                Some(_) => out.push(redact_target(arg)),
                None => {
                    redact_next = is_secret_name(flag);
                    payload_next = http_tool && DATA_FLAGS.contains(&flag);
                    out.push(arg.to_string());
                }
            }
            continue;
        }
        // `NAME=value` (environment-style assignment passed as an argument).
        if let Some((name, _)) = arg.split_once('=') {
            let is_var = !name.is_empty()
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.');
            if is_var && is_secret_name(name) {
                out.push(format!("{name}={REDACTED}"));
                continue;
            }
        }
        if arg.contains("://") || arg.contains('?') {
            out.push(redact_target(arg));
        } else {
            out.push(arg.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-fake-secret-0123";

    #[test]
    fn command_line_headers_are_redacted() {
        let bearer = format!("Authorization: Bearer {CANARY}");
        let api_key = format!("x-api-key:{CANARY}");
        let long = format!("--header=Authorization: Bearer {CANARY}");
        let args = [
            "curl",
            "-sk",
            "https://api.example/v1/chat/completions",
            "-H",
            bearer.as_str(),
            "-H",
            "Content-Type: application/json",
            "-H",
            api_key.as_str(),
            long.as_str(),
            "http://localhost:8080",
        ];
        let out = redact_command_line(&args);
        assert_eq!(
            out,
            [
                "curl",
                "-sk",
                "https://api.example/v1/chat/completions",
                "-H",
                "Authorization: [REDACTED]",
                "-H",
                "Content-Type: application/json",
                "-H",
                "x-api-key: [REDACTED]",
                "--header=Authorization: [REDACTED]",
                "http://localhost:8080",
            ]
        );
    }

    #[test]
    fn secret_headers() {
        for h in [
            "Authorization",
            "proxy-authorization",
            "x-api-key",
            "api-key",
            "X-Goog-Api-Key",
            "Cookie",
            "set-cookie",
            "x-amz-security-token",
            "X-Auth-Token",
            "openai-session",
            "x-client-secret",
        ] {
            assert!(is_secret_header(h), "{h} must be secret");
            assert_eq!(header_value(h, CANARY), REDACTED);
        }
        for h in [
            "content-type",
            "host",
            "x-ratelimit-remaining-tokens",
            "anthropic-ratelimit-input-tokens-limit",
            "x-amzn-bedrock-input-token-count",
            "anthropic-version",
            "openai-organization",
            "traceparent",
            "user-agent",
            "x-stainless-arch",
        ] {
            assert!(!is_secret_header(h), "{h} must be kept");
            assert_eq!(header_value(h, "v"), "v");
        }
    }

    #[test]
    fn query_params() {
        let t = format!("/v1beta/models/gemini:generateContent?key={CANARY}&alt=sse");
        let r = redact_target(&t);
        assert!(!r.contains(CANARY), "{r}");
        assert_eq!(
            r,
            "/v1beta/models/gemini:generateContent?key=[REDACTED]&alt=sse"
        );
        for p in [
            "api_key",
            "api-key",
            "access_token",
            "token",
            "sig",
            "X-Amz-Signature",
            "X-Amz-Credential",
            "client_secret",
            "api%5Fkey",
        ] {
            let t = format!("/p?a=1&{p}={CANARY}#frag");
            let r = redact_target(&t);
            assert!(!r.contains(CANARY), "{p}: {r}");
            assert!(r.ends_with("#frag") && r.starts_with("/p?a=1&"), "{r}");
        }
        for t in [
            "/v1/chat/completions",
            "/p?api-version=2024-10-21",
            "/p?a&b=&=c",
            "?",
            "/p?max_tokens=5",
        ] {
            assert_eq!(redact_target(t), t);
        }
        let u = format!("https://user:{CANARY}@example.invalid/x?y=1");
        assert_eq!(
            redact_target(&u),
            "https://[REDACTED]@example.invalid/x?y=1"
        );
    }

    #[test]
    fn command_lines() {
        let argv = [
            "python".to_string(),
            format!("--api-key={CANARY}"),
            "--token".to_string(),
            CANARY.to_string(),
            format!("OPENAI_API_KEY={CANARY}"),
            "--max-tokens".to_string(),
            "100".to_string(),
            format!("https://example.invalid/x?key={CANARY}"),
            "sk-fakefakefake".to_string(),
            "--model=gpt-4o".to_string(),
            "-v".to_string(),
        ];
        let r = redact_command_line(&argv);
        let joined = r.join(" ");
        assert!(!joined.contains(CANARY), "{joined}");
        assert!(!joined.contains("sk-fake"), "{joined}");
        assert_eq!(
            r,
            vec![
                "python",
                "--api-key=[REDACTED]",
                "--token",
                "[REDACTED]",
                "OPENAI_API_KEY=[REDACTED]",
                "--max-tokens",
                "100",
                "https://example.invalid/x?key=[REDACTED]",
                "[REDACTED]",
                "--model=gpt-4o",
                "-v",
            ]
        );
        // A secret flag followed by another flag: nothing to redact, nothing eaten.
        assert_eq!(
            redact_command_line(&["--token", "-v"]),
            vec!["--token", "-v"]
        );
    }

    #[test]
    fn inline_request_bodies_are_replaced_by_their_size() {
        let prompt = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"PROMPT-CANARY"}]}"#;
        let argv = [
            "curl",
            "-d",
            prompt,
            "--data-raw=PROMPT-CANARY plain text",
            "--json",
            "PROMPT-CANARY",
            "-d",
            "@body.json",
            "https://api.openai.com/v1/chat/completions",
        ];
        let r = redact_command_line(&argv);
        let joined = r.join(" ");
        assert!(!joined.contains("PROMPT-CANARY"), "{joined}");
        assert_eq!(r[2], format!("[CONTENT: {} bytes]", prompt.len()));
        assert_eq!(r[3], "--data-raw=[CONTENT: 24 bytes]");
        assert_eq!(r[7], "@body.json", "a file reference is kept");
        assert_eq!(r[8], "https://api.openai.com/v1/chat/completions");
        // `-d` is a data flag only in HTTP tools.
        assert_eq!(
            redact_command_line(&["/usr/bin/python3", "-d", "app.py"]),
            vec!["/usr/bin/python3", "-d", "app.py"]
        );
        // A bare JSON or multi-line argument is a payload whatever flag comes before it.
        let r = redact_command_line(&["tool", "[1,2]", "line one\nline two", "--model", "m"]);
        assert_eq!(
            r,
            vec![
                "tool",
                "[CONTENT: 5 bytes]",
                "[CONTENT: 17 bytes]",
                "--model",
                "m"
            ]
        );
    }

    #[test]
    fn odd_input_never_panics() {
        for s in [
            "%",
            "%4",
            "%zz",
            "?%",
            "?&&==",
            "://@",
            "a://b@",
            "é?é=é",
            "?\u{1F600}%e2%82=1",
        ] {
            let _ = redact_target(s);
            let _ = redact_command_line(&[s]);
            let _ = is_secret_name(s);
        }
    }
}
