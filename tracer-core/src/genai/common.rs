//! Helpers shared by the provider modules: the request as the detectors see it, JSON getters,
//! error codes, the authority, percent-decoding, the tail scan of over-cap bodies.

use serde_json::Value;

use crate::http::{Headers, RequestHead};

/// A request as the detector chain sees it.
#[derive(Debug)]
pub struct RequestCtx<'a> {
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// The query string (already redacted by the HTTP layer), without `?`.
    pub query: &'a str,
    /// Host, lower-cased, without port or brackets.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub headers: &'a Headers,
    /// The body parsed as JSON, when it is JSON.
    pub body: Option<&'a Value>,
}

impl<'a> RequestCtx<'a> {
    pub fn new(head: &'a RequestHead, body: Option<&'a Value>) -> Self {
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p, q),
            None => (head.target.as_str(), ""),
        };
        let (host, port) = head
            .authority
            .as_deref()
            .map(split_authority)
            .unwrap_or((None, None));
        RequestCtx {
            method: &head.method,
            path,
            query,
            host,
            port,
            headers: &head.headers,
            body,
        }
    }

    pub fn host_is(&self, name: &str) -> bool {
        self.host.as_deref() == Some(name)
    }

    pub fn host_ends_with(&self, suffix: &str) -> bool {
        self.host.as_deref().is_some_and(|h| h.ends_with(suffix))
    }

    pub fn host_contains(&self, part: &str) -> bool {
        self.host.as_deref().is_some_and(|h| h.contains(part))
    }

    /// A query parameter's value (first occurrence).
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    pub fn body_has(&self, key: &str) -> bool {
        self.body.and_then(|b| b.get(key)).is_some()
    }
}

/// `host[:port]` or `[v6]:port` -> (lower-cased host, port). An unparsable port is dropped.
pub fn split_authority(authority: &str) -> (Option<String>, Option<u16>) {
    let a = authority.trim();
    // userinfo never appears in Host, but strip it if a client put it there
    let a = a.rsplit_once('@').map_or(a, |(_, h)| h);
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, tail)) => (h, tail.strip_prefix(':')),
            None => (rest, None),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (a, None),
        }
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (
        (!host.is_empty()).then_some(host),
        port.and_then(|p| p.parse().ok()),
    )
}

/// JSON path lookup: `get(v, &["usage", "prompt_tokens"])`.
pub fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

pub fn str_at(v: &Value, path: &[&str]) -> Option<String> {
    get(v, path)?.as_str().map(str::to_string)
}

/// A non-empty string at `path` (Azure's content-filter chunk carries `"id": ""`).
pub fn nonempty_str_at(v: &Value, path: &[&str]) -> Option<String> {
    str_at(v, path).filter(|s| !s.is_empty())
}

/// A token count: a non-negative integer (a float with no fraction is accepted too).
pub fn u64_at(v: &Value, path: &[&str]) -> Option<u64> {
    let x = get(v, path)?;
    x.as_u64().or_else(|| {
        x.as_f64()
            .filter(|f| *f >= 0.0 && f.fract() == 0.0)
            .map(|f| f as u64)
    })
}

pub fn f64_at(v: &Value, path: &[&str]) -> Option<f64> {
    get(v, path)?.as_f64()
}

pub fn i64_at(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path)?.as_i64()
}

pub fn bool_at(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path)?.as_bool()
}

/// `stop` as a string or a list of strings.
pub fn strings_at(v: &Value, path: &[&str]) -> Option<Vec<String>> {
    match get(v, path)? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
        ),
        _ => None,
    }
}

/// The error code a JSON error body carries, in order of specificity: Google `error.status`
/// (`RESOURCE_EXHAUSTED`), `error.code` when it is a string (OpenAI `invalid_api_key`, Azure
/// `DeploymentNotFound`), `error.type` (Anthropic `overloaded_error`, OpenAI
/// `invalid_request_error`), a top-level `type`/`code` of an error event (Responses `error`
/// event). A message-only error (`{"error": "…"}`, `{"message": "…"}`) has no code: `None`.
pub fn error_code(v: &Value) -> Option<String> {
    fn nonempty(x: Option<&Value>) -> Option<&str> {
        x.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    if let Some(e) = v.get("error").filter(|e| e.is_object()) {
        return nonempty(e.get("status"))
            .or(nonempty(e.get("code")))
            .or(nonempty(e.get("type")))
            .map(str::to_string);
    }
    if v.get("type").and_then(Value::as_str) == Some("error") {
        return nonempty(v.get("code")).map(str::to_string);
    }
    None
}

/// Whether a JSON value is an error envelope (`{"error": …}` with something in it).
pub fn is_error_body(v: &Value) -> bool {
    match v.get("error") {
        Some(Value::Null) | None => v.get("type").and_then(Value::as_str) == Some("error"),
        Some(_) => true,
    }
}

/// Scan the tail of a body too big to keep whole for the last `"usage"` and `"model"` members
/// (OpenAI embeddings put both after the huge `data` array). Returns an object holding what was
/// found.
pub fn scan_tail(tail: &[u8]) -> Value {
    scan_members(tail, &["usage", "model", "usageMetadata", "modelVersion"])
}

/// Request members worth recovering from a body that is not valid JSON (cut by a capture gap
/// or the body cap).
pub const REQUEST_MEMBERS: &[&str] = &[
    "model",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "temperature",
    "top_p",
];

/// Best effort on bytes that do not parse as a whole: for each key, the value after its last
/// `"key":` occurrence (an escaped `\"key\"` inside a string does not count), when that value
/// parses. Returns an object holding what was found.
pub fn scan_members(bytes: &[u8], keys: &[&str]) -> Value {
    let mut found = serde_json::Map::new();
    for key in keys {
        let needle = format!("\"{key}\"");
        let mut at = None;
        let mut from = 0;
        while let Some(i) = find(&bytes[from..], needle.as_bytes()) {
            let pos = from + i;
            if pos == 0 || bytes[pos - 1] != b'\\' {
                at = Some(pos);
            }
            from = pos + 1;
        }
        let Some(i) = at else { continue };
        let rest = &bytes[i + needle.len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let mut values = serde_json::Deserializer::from_slice(&rest[colon + 1..]).into_iter();
        if let Some(Ok(value)) = values.next() {
            found.insert(key.to_string(), value);
        }
    }
    Value::Object(found)
}

pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decode a URL path segment (Bedrock model ids: `%3A` -> `:`, `%2F` -> `/`).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_forms() {
        assert_eq!(
            split_authority("API.OpenAI.com"),
            (Some("api.openai.com".into()), None)
        );
        assert_eq!(
            split_authority("localhost:11434"),
            (Some("localhost".into()), Some(11434))
        );
        assert_eq!(
            split_authority("[::1]:8080"),
            (Some("::1".into()), Some(8080))
        );
        assert_eq!(split_authority("[::1]"), (Some("::1".into()), None));
        assert_eq!(split_authority("h:99999"), (Some("h".into()), None));
        assert_eq!(split_authority(""), (None, None));
    }

    #[test]
    fn error_codes() {
        let j = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(error_code(&j(r#"{"error":{"message":"m","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#)).as_deref(), Some("invalid_api_key"));
        assert_eq!(
            error_code(&j(
                r#"{"error":{"message":"m","type":"insufficient_quota","code":null}}"#
            ))
            .as_deref(),
            Some("insufficient_quota")
        );
        assert_eq!(
            error_code(&j(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ))
            .as_deref(),
            Some("overloaded_error")
        );
        assert_eq!(
            error_code(&j(
                r#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED"}}"#
            ))
            .as_deref(),
            Some("RESOURCE_EXHAUSTED")
        );
        assert_eq!(
            error_code(&j(
                r#"{"type":"error","code":"server_error","message":"x"}"#
            ))
            .as_deref(),
            Some("server_error")
        );
        assert_eq!(error_code(&j(r#"{"error":"model not found"}"#)), None);
        assert_eq!(error_code(&j(r#"{"message":"x"}"#)), None);
    }

    #[test]
    fn members_of_a_cut_body() {
        // a capture gap removed the middle: not JSON, but model and stream are recoverable
        let body = br#"{"messages":[{"role":"user","content":"say \"model\": no"}, {"ro"stream":true,"model":"gpt-4o"}"#;
        let v = scan_members(body, REQUEST_MEMBERS);
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(v["stream"], true);
        assert!(v.get("temperature").is_none());
    }

    #[test]
    fn tail_scan_finds_last_usage_and_model() {
        let tail = br#"AAAA=="}],"model":"text-embedding-3-small","usage":{"prompt_tokens":5,"total_tokens":5}}"#;
        let v = scan_tail(tail);
        assert_eq!(v["model"], "text-embedding-3-small");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
    }
}
