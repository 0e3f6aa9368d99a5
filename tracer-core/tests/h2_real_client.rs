//! HTTP/2 captures of a real exchange over TLS: `tests/e2e/clients/h2_client.py` (python `h2`
//! over OpenSSL, one keep-alive connection) against `tests/fakes/llm_server_h2.py`, dumped with
//! `--dump` (the client's plaintext writes and reads). The client made calls, then a marker
//! record ("attach") stands where a tracer started late, then more calls on the same connection.
//!
//! Checked: the whole capture gives every call with its full head; from the marker on (HPACK
//! table unknown), the later calls still come out, flagged late, with no header attributed that
//! the client did not send, and the pipeline still recognises them as LLM calls.

mod common;

use common::*;
use tracer_core::event::Direction;
use tracer_core::http::h2::{H2Config, H2Connection};
use tracer_core::http::{ConnectionParser, EndReason, ExchangeEvent};
use tracer_core::pipeline::{Pipeline, PipelineConfig};

/// The headers `h2_client.py` sends (names and values); the key is a canary.
const SENT: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("accept", "application/json"),
    ("user-agent", "h2-test-client/1"),
];
const CANARY: &str = "test-canary-openai-0000";

/// (records before the attach marker, records after it).
fn load(name: &str) -> (Vec<Item>, Vec<Item>) {
    let path = format!("{}/tests/fixtures/h2/{name}", env!("CARGO_MANIFEST_DIR"));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut before, mut after) = (Vec::new(), Vec::new());
    let mut attached = false;
    for r in v["records"].as_array().unwrap() {
        let dir = match r["dir"].as_str().unwrap() {
            "write" => Direction::Write,
            "read" => Direction::Read,
            _ => {
                attached = true;
                continue;
            }
        };
        let hex = r["hex"].as_str().unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        if attached {
            after.push(msg(dir, bytes));
        } else {
            before.push(msg(dir, bytes));
        }
    }
    (before, after)
}

fn parse(items: &[Item]) -> Vec<ExchangeEvent> {
    let mut c = H2Connection::new(H2Config::default());
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if let Item::Msg(d, b) = it {
            c.feed(*d, i as u64, b, &mut out);
        }
    }
    c.close(u64::MAX, EndReason::ConnectionClosed, &mut out);
    out
}

fn check(name: &str, calls_before: usize, calls_after: usize, stream: bool) {
    let (before, after) = load(name);
    let all: Vec<Item> = before.iter().chain(&after).cloned().collect();

    // Whole capture: every call, full heads, nothing late.
    let whole = normalize(&parse(&all));
    let reqs: Vec<&N> = whole
        .iter()
        .filter(|e| matches!(e, N::Req { .. }))
        .collect();
    assert_eq!(reqs.len(), calls_before + calls_after);
    for r in &reqs {
        let N::Req {
            method,
            target,
            authority,
            headers,
            late,
            body,
            ..
        } = r
        else {
            unreachable!()
        };
        assert_eq!(
            (method.as_str(), target.as_str()),
            ("POST", "/v1/chat/completions")
        );
        assert!(authority
            .as_deref()
            .is_some_and(|a| a.starts_with("127.0.0.1:")));
        assert!(!late);
        for (n, v) in SENT {
            assert!(
                headers.iter().any(|(hn, hv)| hn == n && hv == v),
                "{n} missing"
            );
        }
        assert!(String::from_utf8_lossy(body).contains("please"));
    }
    assert!(!format!("{whole:?}").contains(CANARY), "key leaked");

    // Attached late: the later calls, flagged, never a header the client did not send.
    let late = normalize(&parse(&after));
    let reqs: Vec<&N> = late.iter().filter(|e| matches!(e, N::Req { .. })).collect();
    assert_eq!(reqs.len(), calls_after, "{late:?}");
    for r in &reqs {
        let N::Req {
            method,
            target,
            authority,
            headers,
            late,
            body,
            ..
        } = r
        else {
            unreachable!()
        };
        assert!(late);
        assert!(method.is_empty() || method == "POST");
        assert!(target.is_empty() || target == "/v1/chat/completions");
        assert!(authority
            .as_deref()
            .is_none_or(|a| a.starts_with("127.0.0.1:")));
        for (n, v) in headers {
            let known = SENT.iter().any(|(sn, sv)| sn == n && sv == v)
                || n == "authorization"
                || n == "content-length";
            assert!(known, "attributed {n}: {v}");
        }
        let body: serde_json::Value = serde_json::from_slice(body).expect("whole request body");
        assert_eq!(body["model"], "gpt-4o-mini");
    }
    let data: Vec<u8> = late
        .iter()
        .filter_map(|e| match e {
            N::Data { data, .. } => Some(data.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let text = String::from_utf8_lossy(&data);
    if stream {
        assert_eq!(text.matches("data: [DONE]").count(), calls_after);
    } else {
        assert_eq!(
            text.matches("\"object\": \"chat.completion\"").count(),
            calls_after
        );
    }
    assert!(!format!("{late:?}").contains(CANARY), "key leaked");

    // The whole pipeline on the late capture: the calls are recognised from their bodies.
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut calls = Vec::new();
    let mut last = 0;
    for ev in records(&after, Split::Random(7)) {
        last = ev.ts_ns;
        calls.extend(p.feed(ev));
    }
    calls.extend(p.finish(last + 1));
    assert_eq!(calls.len(), calls_after, "{calls:#?}");
    // What the parser could not know is counted in the pipeline's drops.
    let drops = &p.stats().drops;
    assert!(
        drops.get("h2_header_field_unknown").copied().unwrap_or(0) > 0,
        "{drops:?}"
    );
    assert_eq!(drops.get("h2_late_attach").copied(), Some(2), "{drops:?}");
    for c in &calls {
        assert!(c.quality.late_attach, "not flagged late");
        assert_eq!(c.http_version, "2");
        assert_eq!(c.request.model.as_deref(), Some("gpt-4o-mini"));
        assert_eq!(c.usage.output_tokens, Some(5));
    }
}

#[test]
fn real_client_streaming_calls_whole_and_attached_late() {
    check("real_client_stream.json", 1, 3, true);
}

#[test]
fn real_client_json_calls_whole_and_attached_late() {
    check("real_client_json.json", 2, 2, false);
}
