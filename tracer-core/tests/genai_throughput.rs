//! Throughput and linearity of the recogniser on a long stream (run explicitly:
//! `cargo test -p tracer-core --test genai_throughput -- --ignored --nocapture`). Ignored by
//! default because wall-clock figures on a shared machine are not pass/fail material; the
//! ratio check guards against quadratic behaviour when fed one byte at a time.

use std::time::Instant;

use tracer_core::call::Origin;
use tracer_core::genai::{Recognizer, RecognizerConfig};
use tracer_core::http::{Body, EndReason, ExchangeEvent, Headers, RequestHead, ResponseHead};

fn stream(events: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..events {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

/// Seconds to recognise `body` fed in `piece`-byte pieces.
fn run(body: &[u8], piece: usize, capture: Option<usize>) -> f64 {
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: capture,
        ..Default::default()
    });
    let o = Origin::default();
    let head = RequestHead {
        method: "POST".into(),
        target: "/v1/chat/completions".into(),
        authority: Some("api.openai.com".into()),
        version: "1.1".into(),
        headers: Headers::default(),
    };
    let req =
        br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let t = Instant::now();
    r.on_event(
        &o,
        ExchangeEvent::Request {
            exchange: 1,
            head,
            body: Body {
                bytes: req.to_vec(),
                ..Default::default()
            },
            start_ns: 1,
            end_ns: 2,
            late_attach: false,
        },
    );
    r.on_event(
        &o,
        ExchangeEvent::ResponseHead {
            exchange: 1,
            head: ResponseHead {
                status: 200,
                headers: Headers(vec![("content-type".into(), "text/event-stream".into())]),
            },
            ts_ns: 3,
        },
    );
    for (i, p) in body.chunks(piece).enumerate() {
        r.on_event(
            &o,
            ExchangeEvent::ResponseData {
                exchange: 1,
                ts_ns: 4 + i as u64,
                data: p.to_vec(),
            },
        );
    }
    let calls = r.on_event(
        &o,
        ExchangeEvent::ResponseEnd {
            exchange: 1,
            ts_ns: u64::MAX,
            reason: EndReason::Complete,
            truncated: false,
            gap: false,
            decompression_capped: false,
        },
    );
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].output_chunks > 0);
    secs
}

#[test]
#[ignore]
fn throughput_and_linearity() {
    let small = stream(5_000);
    let big = stream(10_000);
    let mb = big.len() as f64 / 1e6;
    for piece in [1usize, 64, 4096] {
        for capture in [None, Some(1 << 20)] {
            let t = run(&big, piece, capture);
            println!(
                "{:.1} MB SSE, {piece}-byte pieces, capture {:?}: {:.3} s = {:.1} MB/s",
                mb,
                capture.is_some(),
                t,
                mb / t
            );
        }
    }
    let (t1, t2) = (run(&small, 1, None), run(&big, 1, None));
    println!("1-byte pieces: 2x input took {:.2}x the time", t2 / t1);
    assert!(t2 / t1 < 3.5, "not linear: {t1} s then {t2} s");
}
