//! Whole pipeline on the genai fixtures: every fixture's request and response, as HTTP/1.1
//! bytes (`Content-Length` framed), one after the other on ONE keep-alive connection, cut into
//! TLS records at random points, through `Pipeline` (connection tracker, HTTP/1.1 parser,
//! recogniser). Each call must match its `expected.json` on every field that does not depend on
//! the capture clock or the process identity.

use std::path::Path;

use tracer_core::call::LlmCall;
use tracer_core::event::{Direction, TlsEvent};
use tracer_core::genai::fixture::Fixture;
use tracer_core::genai::RecognizerConfig;
use tracer_core::pipeline::{Pipeline, PipelineConfig};

fn fixtures() -> Vec<(String, Fixture, LlmCall)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/genai");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| root.join(n).join("request.http").exists())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| {
            let d = root.join(&n);
            let f = Fixture::parse(
                &std::fs::read(d.join("request.http")).unwrap(),
                &std::fs::read(d.join("response.http")).unwrap(),
            )
            .unwrap();
            let e: LlmCall =
                serde_json::from_slice(&std::fs::read(d.join("expected.json")).unwrap()).unwrap();
            (n, f, e)
        })
        .collect()
}

/// Fields that depend on the capture clock or the process are reset before comparing.
fn comparable(mut c: LlmCall) -> LlmCall {
    c.origin = Default::default();
    c.timing = Default::default();
    c
}

#[test]
fn all_fixtures_on_one_keep_alive_connection_at_random_record_splits() {
    let fx = fixtures();
    for seed in 0..8u64 {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut p = Pipeline::new(PipelineConfig {
            recognizer: RecognizerConfig {
                capture_content: Some(4096),
                ..Default::default()
            },
            ..Default::default()
        });
        let mut off = [0u64; 2];
        let mut ts = 10_000u64;
        let mut calls = Vec::new();
        for (_, f, _) in &fx {
            for (dir, bytes) in [
                (Direction::Write, f.request_http1()),
                // odd seeds: chunked transfer encoding with small chunks
                (
                    Direction::Read,
                    f.response_http1_framed(if seed % 2 == 1 {
                        1 + seed as usize * 37
                    } else {
                        0
                    }),
                ),
            ] {
                let mut at = 0;
                while at < bytes.len() {
                    let n = if seed == 0 {
                        bytes.len()
                    } else {
                        rng.usize(1..=bytes.len().min(700))
                    };
                    let end = (at + n).min(bytes.len());
                    let d = usize::from(dir == Direction::Read);
                    ts += 1_000;
                    calls.extend(p.feed(TlsEvent {
                        pid: 77,
                        tid: 78,
                        comm: "python3".into(),
                        conn: 0xabc,
                        direction: dir,
                        ts_ns: ts,
                        offset: off[d],
                        len: (end - at) as u32,
                        data: bytes[at..end].to_vec(),
                        flags: 0,
                    }));
                    off[d] += (end - at) as u64;
                    at = end;
                }
            }
        }
        calls.extend(p.finish(ts + 1));
        assert_eq!(calls.len(), fx.len(), "seed {seed}: one call per fixture");
        for (call, (name, _, expected)) in calls.into_iter().zip(&fx) {
            assert_eq!(call.origin.pid, 77);
            assert!(call.timing.end_ns >= call.timing.request_start_ns);
            if call.streamed && call.output_chunks > 0 {
                let first = call.timing.first_output_ns.unwrap();
                assert!(
                    first >= call.timing.response_start_ns.unwrap() && first <= call.timing.end_ns
                );
            }
            assert_eq!(
                comparable(call),
                comparable(expected.clone()),
                "seed {seed}: fixture {name}"
            );
        }
    }
}
