//! Fixtures: a recorded exchange as two HTTP/1.1-style texts (request and response: head, empty
//! line, body — the response body already de-chunked and decoded) turned into the
//! [`ExchangeEvent`]s the HTTP layer would deliver. Pure (bytes in, events out) so the HTTP
//! layer's and the fuzzer's tests can reuse the fixture files under `tracer-core/fixtures/`.
//!
//! A response file may hold a compressed body (`Content-Encoding: gzip | deflate | br | zstd`):
//! [`Fixture::response_body`] is then the decoded body (what the HTTP layer hands the
//! recogniser) and [`Fixture::response_http1`] sends the compressed bytes with the header, so a
//! whole-pipeline test exercises the decoder too.
//!
//! Timestamps are chosen so that a test can predict them for any split of the response body:
//! request at [`REQUEST_START_NS`]..[`REQUEST_END_NS`], response head at [`RESPONSE_HEAD_NS`],
//! each body piece at `BODY_BASE_NS + offset of its last byte + 1`, the end at
//! `BODY_BASE_NS + body length + 1`.

use crate::http::{Body, EndReason, ExchangeEvent, Headers, RequestHead, ResponseHead};

pub const REQUEST_START_NS: u64 = 1_000;
pub const REQUEST_END_NS: u64 = 2_000;
pub const RESPONSE_HEAD_NS: u64 = 5_000;
pub const BODY_BASE_NS: u64 = 1_000_000;

/// A parsed fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub request: RequestHead,
    pub request_body: Vec<u8>,
    pub response: ResponseHead,
    /// The decoded response body.
    pub response_body: Vec<u8>,
    /// The response body as on the wire (compressed when the file says so).
    pub response_wire_body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum FixtureError {
    #[error("no empty line between head and body")]
    NoBody,
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("cannot decode the {0} body: {1}")]
    Decode(String, std::io::Error),
}

/// Fixture bodies are small and trusted; still, never inflate past this.
const MAX_DECODED: u64 = 64 << 20;

fn decode(encoding: &str, body: &[u8]) -> Result<Vec<u8>, FixtureError> {
    use std::io::Read;
    let mut out = Vec::new();
    let res = match encoding {
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(body)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "br" => brotli::Decompressor::new(body, 4096)
            .take(MAX_DECODED)
            .read_to_end(&mut out),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(MAX_DECODED).read_to_end(&mut out)),
        _ => return Ok(body.to_vec()),
    };
    res.map_err(|e| FixtureError::Decode(encoding.to_string(), e))?;
    Ok(out)
}

/// Split `head\r\n\r\nbody` (or with bare `\n`).
fn split_message(raw: &[u8]) -> Result<(Vec<String>, Vec<u8>), FixtureError> {
    let (head, body) = if let Some(i) = super::common::find(raw, b"\r\n\r\n") {
        (&raw[..i], &raw[i + 4..])
    } else if let Some(i) = super::common::find(raw, b"\n\n") {
        (&raw[..i], &raw[i + 2..])
    } else {
        return Err(FixtureError::NoBody);
    };
    let lines = String::from_utf8_lossy(head)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    Ok((lines, body.to_vec()))
}

fn headers(lines: &[String]) -> Headers {
    Headers(
        lines
            .iter()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect(),
    )
}

impl Fixture {
    /// Parse `request` (`POST /path HTTP/1.1`, headers, body) and `response` (`HTTP/1.1 200 OK`,
    /// headers, decoded body).
    pub fn parse(request: &[u8], response: &[u8]) -> Result<Fixture, FixtureError> {
        let (rl, request_body) = split_message(request)?;
        let start = rl.first().cloned().unwrap_or_default();
        let mut it = start.split_whitespace();
        let (method, target) = match (it.next(), it.next()) {
            (Some(m), Some(t)) => (m.to_string(), t.to_string()),
            _ => return Err(FixtureError::StartLine(start)),
        };
        let req_headers = headers(&rl[1..]);
        let (sl, response_wire_body) = split_message(response)?;
        let status_line = sl.first().cloned().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| FixtureError::StartLine(status_line.clone()))?;
        let resp_headers = headers(&sl[1..]);
        let encoding = resp_headers
            .get("content-encoding")
            .unwrap_or("identity")
            .trim()
            .to_ascii_lowercase();
        let response_body = decode(&encoding, &response_wire_body)?;
        Ok(Fixture {
            request: RequestHead {
                method,
                target,
                authority: req_headers.get("host").map(str::to_string),
                version: "1.1".into(),
                headers: req_headers,
            },
            request_body,
            response: ResponseHead {
                status,
                headers: resp_headers,
            },
            response_body,
            response_wire_body,
        })
    }

    /// The events with the response body cut at `cuts` (sorted offsets inside the body).
    pub fn events(&self, exchange: u64, cuts: &[usize], reason: EndReason) -> Vec<ExchangeEvent> {
        let mut ev = vec![
            ExchangeEvent::Request {
                exchange,
                head: self.request.clone(),
                body: Body {
                    bytes: self.request_body.clone(),
                    truncated: false,
                    gap: false,
                },
                start_ns: REQUEST_START_NS,
                end_ns: REQUEST_END_NS,
                late_attach: false,
            },
            ExchangeEvent::ResponseHead {
                exchange,
                head: self.response.clone(),
                ts_ns: RESPONSE_HEAD_NS,
            },
        ];
        let body = &self.response_body;
        let mut from = 0;
        for &c in cuts.iter().chain(std::iter::once(&body.len())) {
            let c = c.min(body.len());
            if c > from {
                ev.push(ExchangeEvent::ResponseData {
                    exchange,
                    ts_ns: BODY_BASE_NS + c as u64,
                    data: body[from..c].to_vec(),
                });
                from = c;
            }
        }
        ev.push(ExchangeEvent::ResponseEnd {
            exchange,
            ts_ns: BODY_BASE_NS + body.len() as u64 + 1,
            reason,
            truncated: false,
            gap: false,
            decompression_capped: false,
        });
        ev
    }

    /// The response as HTTP/1.1 bytes: the wire body (compressed when the fixture is) framed by
    /// `Content-Length`, or by chunked encoding (chunks of `chunk` bytes) when `chunk > 0`.
    pub fn response_http1_framed(&self, chunk: usize) -> Vec<u8> {
        let mut out = format!("HTTP/1.1 {} X\r\n", self.response.status).into_bytes();
        for (n, v) in &self.response.headers.0 {
            if n != "content-length" && n != "transfer-encoding" {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
        }
        let body = &self.response_wire_body;
        if chunk == 0 {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        } else {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for c in body.chunks(chunk) {
                out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend_from_slice(c);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        out
    }

    /// [`Fixture::response_http1_framed`] with `Content-Length`.
    pub fn response_http1(&self) -> Vec<u8> {
        self.response_http1_framed(0)
    }

    /// The request as HTTP/1.1 bytes with a `Content-Length`.
    pub fn request_http1(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\n",
            self.request.method, self.request.target
        )
        .into_bytes();
        for (n, v) in &self.request.headers.0 {
            if n != "content-length" && n != "transfer-encoding" {
                out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(
            format!("content-length: {}\r\n\r\n", self.request_body.len()).as_bytes(),
        );
        out.extend_from_slice(&self.request_body);
        out
    }
}
