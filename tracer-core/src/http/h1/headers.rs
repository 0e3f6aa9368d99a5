//! Header handling of HTTP/1.1 messages: conversion (names lower-cased, secrets removed) and
//! the headers that decide body framing and content coding.

use crate::http::decode::Coding;
use crate::http::{count_drop, DropCounts, Headers};
use crate::redact;

/// Lower-cased names, lossy UTF-8 values, secrets replaced.
pub(super) fn convert_headers(raw: &[httparse::Header<'_>]) -> Headers {
    Headers(
        raw.iter()
            .map(|h| {
                let name = h.name.to_ascii_lowercase();
                let value = if redact::is_secret_header(&name) {
                    redact::REDACTED.to_string()
                } else {
                    String::from_utf8_lossy(h.value).trim().to_string()
                };
                (name, value)
            })
            .collect(),
    )
}

/// The body length a `Content-Length` set gives (several equal values are accepted).
pub(super) fn content_length(headers: &Headers) -> Result<Option<u64>, ()> {
    let mut found = None;
    for (n, v) in &headers.0 {
        if n != "content-length" {
            continue;
        }
        for part in v.split(',').map(str::trim) {
            if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(());
            }
            let len: u64 = part.parse().map_err(|_| ())?;
            if found.is_some_and(|f| f != len) {
                return Err(());
            }
            found = Some(len);
        }
    }
    Ok(found)
}

/// Whether `Transfer-Encoding` is present, and whether its last coding is `chunked`.
pub(super) fn transfer_encoding(headers: &Headers) -> Option<bool> {
    let mut last = None;
    for (n, v) in &headers.0 {
        if n == "transfer-encoding" {
            if let Some(c) = v.split(',').map(str::trim).rfind(|c| !c.is_empty()) {
                last = Some(c.eq_ignore_ascii_case("chunked"));
            }
        }
    }
    last
}

/// The content coding of a body; an unsupported one is passed through undecoded and counted.
pub(super) fn coding(headers: &Headers, drops: &mut DropCounts) -> Coding {
    Coding::from_header(headers.get("content-encoding")).unwrap_or_else(|_| {
        count_drop(drops, "h1_unsupported_content_encoding");
        Coding::Identity
    })
}
