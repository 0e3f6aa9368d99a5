//! The whole pipeline on the wire: every genai fixture (`fixtures/genai/<name>/`) is put back on
//! the wire as HTTP/1.1 (response body with Content-Length, chunked, and gzip + chunked; all on
//! one keep-alive connection), turned into TLS records cut at random points, and fed to
//! `Pipeline`. Each call must equal the fixture's `expected.json` in every field but the
//! timestamps (which here come from the records).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tracer_core::call::LlmCall;
use tracer_core::genai::RecognizerConfig;
use tracer_core::pipeline::{Pipeline, PipelineConfig};

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/genai");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/genai exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("request.http").exists() && p.join("expected.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// (start line + headers without framing headers, body)
fn split_http(raw: &[u8]) -> (Vec<String>, Vec<u8>) {
    let (head, body) = match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => {
            let i = raw
                .windows(2)
                .position(|w| w == b"\n\n")
                .expect("head/body separator");
            (&raw[..i], &raw[i + 2..])
        }
    };
    let lines = String::from_utf8_lossy(head)
        .lines()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| {
            let n = l
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            n != "content-length" && n != "transfer-encoding" && n != "content-encoding"
        })
        .collect();
    (lines, body.to_vec())
}

fn wire(lines: &[String], extra: &[String], body: &[u8]) -> Vec<u8> {
    let mut s = String::new();
    for l in lines.iter().chain(extra) {
        s.push_str(l);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    let mut b = s.into_bytes();
    b.extend_from_slice(body);
    b
}

/// The three on-the-wire variants of one fixture's exchange.
fn exchanges(dir: &Path) -> Vec<Item> {
    let (req_lines, req_body) = split_http(&std::fs::read(dir.join("request.http")).unwrap());
    let raw_response = std::fs::read(dir.join("response.http")).unwrap();
    let (resp_lines, _) = split_http(&raw_response);
    // The decoded body: a fixture may store it compressed (`Content-Encoding`), which the
    // fixture loader undoes.
    let resp_body = tracer_core::genai::fixture::Fixture::parse(
        &std::fs::read(dir.join("request.http")).unwrap(),
        &raw_response,
    )
    .unwrap()
    .response_body;
    let request = wire(
        &req_lines,
        &[format!("Content-Length: {}", req_body.len())],
        &req_body,
    );
    let pieces: Vec<&[u8]> = resp_body.chunks(37).collect();
    let gz = gzip(&resp_body);
    let gz_pieces: Vec<&[u8]> = gz.chunks(50).collect();
    vec![
        msg(W, &request),
        msg(
            R,
            wire(
                &resp_lines,
                &[format!("Content-Length: {}", resp_body.len())],
                &resp_body,
            ),
        ),
        msg(W, &request),
        msg(
            R,
            wire(
                &resp_lines,
                &["Transfer-Encoding: chunked".into()],
                &chunked(&pieces),
            ),
        ),
        msg(W, &request),
        msg(
            R,
            wire(
                &resp_lines,
                &[
                    "Content-Encoding: gzip".into(),
                    "Transfer-Encoding: chunked".into(),
                ],
                &chunked(&gz_pieces),
            ),
        ),
    ]
}

fn run_pipeline(script: &[Item], split: Split) -> Vec<LlmCall> {
    let mut p = Pipeline::new(PipelineConfig {
        recognizer: RecognizerConfig {
            capture_content: Some(4096),
            ..Default::default()
        },
        ..Default::default()
    });
    let mut calls = Vec::new();
    let mut last = 0;
    for mut r in records(script, split) {
        (r.pid, r.tid, r.conn) = (4242, 4243, 0xdead_beef);
        last = r.ts_ns;
        calls.extend(p.feed(r));
    }
    calls.extend(p.finish(last + 1));
    assert_eq!(p.stats().connections_open, 0);
    assert_eq!(p.stats().calls, calls.len() as u64);
    calls
}

/// The call as JSON without the capture-clock timestamps.
fn untimed(call: &LlmCall) -> serde_json::Value {
    let mut v = serde_json::to_value(call).unwrap();
    v.as_object_mut().unwrap().remove("timing");
    v
}

#[test]
fn every_fixture_through_the_pipeline_at_any_split() {
    let dirs = fixtures();
    assert!(dirs.len() >= 10, "fixtures missing: {dirs:?}");
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        let mut expected = expected;
        expected.as_object_mut().unwrap().remove("timing");
        let script = exchanges(&dir);
        let mut splits = vec![Split::Whole, Split::Bytes(1), Split::Bytes(5)];
        splits.extend((0..30).map(Split::Random));
        for (i, split) in splits.into_iter().enumerate() {
            let calls = run_pipeline(&script, split);
            assert_eq!(calls.len(), 3, "{name} split #{i}: {calls:#?}");
            for (k, c) in calls.iter().enumerate() {
                assert_eq!(untimed(c), expected, "{name} split #{i}, variant {k}");
                let t = &c.timing;
                assert!(t.request_start_ns <= t.request_end_ns.unwrap());
                assert!(t.request_end_ns.unwrap() <= t.response_start_ns.unwrap());
                assert!(t.response_start_ns.unwrap() <= t.end_ns);
                if let Some(f) = t.first_output_ns {
                    assert!(t.response_start_ns.unwrap() <= f && f <= t.end_ns, "{name}");
                }
            }
        }
    }
}

#[test]
fn non_llm_traffic_yields_no_call_and_is_counted() {
    let script = vec![
        msg(W, request("GET", "/index.html", &[], b"")),
        msg(R, response(200, &[("Content-Length", "5")], b"hello")),
    ];
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut calls = Vec::new();
    for r in records(&script, Split::Bytes(3)) {
        calls.extend(p.feed(r));
    }
    calls.extend(p.finish(u64::MAX));
    assert!(calls.is_empty());
    let s = p.stats();
    assert_eq!(
        (s.requests, s.unclaimed_requests, s.connections_opened),
        (1, 1, 1)
    );
    assert!(s.events > 0 && s.bytes > 0);
}

/// The capture starts at every point of a first exchange (mid-request, mid-response), followed by
/// a whole second one: no call may carry wrong data, and the second is always recognised.
#[test]
fn late_attach_at_any_byte_yields_no_wrong_call() {
    for dir in fixtures() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        expected.as_object_mut().unwrap().remove("timing");
        let ex = exchanges(&dir);
        // The chunked variant: request and response.
        let (Item::Msg(_, req), Item::Msg(_, resp)) = (&ex[2], &ex[3]) else {
            unreachable!()
        };
        let step = (req.len() + resp.len()) / 60 + 1;
        let cuts = (0..req.len())
            .step_by(step)
            .map(|k| vec![msg(W, &req[k..]), msg(R, resp)])
            .chain(
                (1..resp.len())
                    .step_by(step)
                    .map(|k| vec![msg(R, &resp[k..])]),
            );
        for (i, mut script) in cuts.enumerate() {
            script.push(msg(W, req));
            script.push(msg(R, resp));
            let calls = run_pipeline(&script, Split::Random(i as u64));
            assert!(
                !calls.is_empty() && calls.len() <= 2,
                "{name} cut #{i}: {} calls",
                calls.len()
            );
            for c in &calls {
                let mut got = untimed(c);
                // Skipped bytes before the first request mark it late; that is the only
                // difference allowed.
                got["quality"]["late_attach"] = expected["quality"]["late_attach"].clone();
                assert_eq!(got, expected, "{name} cut #{i}");
            }
        }
    }
}
