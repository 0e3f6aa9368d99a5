//! Recogniser behaviour beyond single fixtures: cut streams, keep-alive and interleaved
//! exchanges, non-LLM traffic, caps, and garbage.

use std::path::Path;

use tracer_core::call::{LlmCall, Origin};
use tracer_core::genai::fixture::Fixture;
use tracer_core::genai::{Recognizer, RecognizerConfig};
use tracer_core::http::{Body, EndReason, ExchangeEvent, Headers, RequestHead};

fn origin() -> Origin {
    Origin {
        pid: 1,
        tid: 1,
        comm: "t".into(),
        conn: 7,
    }
}

fn fixture(name: &str) -> Fixture {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/genai")
        .join(name);
    Fixture::parse(
        &std::fs::read(dir.join("request.http")).unwrap(),
        &std::fs::read(dir.join("response.http")).unwrap(),
    )
    .unwrap()
}

fn feed(r: &mut Recognizer, events: Vec<ExchangeEvent>) -> Vec<LlmCall> {
    events
        .into_iter()
        .flat_map(|e| r.on_event(&origin(), e))
        .collect()
}

/// The fixture's events with the body cut at `keep` bytes and the given end.
fn cut(f: &Fixture, exchange: u64, keep: usize, reason: EndReason) -> Vec<ExchangeEvent> {
    let mut f = f.clone();
    f.response_body.truncate(keep);
    f.events(exchange, &[], reason)
}

#[test]
fn stream_cut_before_any_finish_is_incomplete_with_unknown_usage() {
    let f = fixture("anthropic_stream");
    let keep = f.response_body.len() / 2;
    let mut r = Recognizer::new(RecognizerConfig::default());
    let calls = feed(&mut r, cut(&f, 1, keep, EndReason::ConnectionClosed));
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert!(c.quality.incomplete);
    assert_eq!(c.error_type.as_deref(), Some("connection_closed"));
    assert!(c.response.finish_reasons.is_empty());
    assert_eq!(
        c.usage.output_tokens, None,
        "placeholder output count must not leak"
    );
    assert_eq!(
        c.usage.input_tokens,
        Some(502),
        "input side is known from message_start"
    );
    assert_eq!(
        c.response.id.as_deref(),
        Some("msg_014p7gG3wDgGV9EUtLvnow3U")
    );
    assert!(c.timing.first_output_ns.is_some());
}

#[test]
fn client_stopping_after_finish_chunk_is_not_an_error_and_usage_stays_unknown() {
    // openai_chat_stream_usage: cut right after the finish chunk (before the usage chunk).
    let f = fixture("openai_chat_stream_usage");
    let body = &f.response_body;
    let finish = String::from_utf8_lossy(body)
        .find("\"finish_reason\":\"stop\"")
        .unwrap();
    let end_of_event = finish
        + String::from_utf8_lossy(&body[finish..])
            .find("\n\n")
            .unwrap()
        + 2;
    let mut r = Recognizer::new(RecognizerConfig::default());
    let calls = feed(&mut r, cut(&f, 1, end_of_event, EndReason::Reset));
    let c = &calls[0];
    assert!(!c.quality.incomplete);
    assert_eq!(c.error_type, None);
    assert_eq!(c.response.finish_reasons, vec!["stop".to_string()]);
    assert_eq!(c.usage.input_tokens, None);
    assert_eq!(c.usage.output_tokens, None);
}

#[test]
fn abandoned_before_response_head() {
    let f = fixture("openai_chat");
    let mut r = Recognizer::new(RecognizerConfig::default());
    let mut ev = f.events(1, &[], EndReason::Complete);
    ev.truncate(1); // only the request
    assert!(feed(&mut r, ev).is_empty());
    assert_eq!(r.open_exchanges(), 1);
    let calls = r.finish(9_999);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].quality.incomplete);
    assert_eq!(calls[0].error_type.as_deref(), Some("incomplete"));
    assert_eq!(calls[0].http_status, None);
    assert_eq!(calls[0].timing.end_ns, 9_999);
    assert_eq!(r.open_exchanges(), 0);
}

fn get_request(exchange: u64, path: &str) -> ExchangeEvent {
    ExchangeEvent::Request {
        exchange,
        head: RequestHead {
            method: "GET".into(),
            target: path.into(),
            authority: Some("api.openai.com".into()),
            version: "1.1".into(),
            headers: Headers::default(),
        },
        body: Body::default(),
        start_ns: 1,
        end_ns: 2,
        late_attach: false,
    }
}

#[test]
fn keep_alive_mixed_with_non_llm_requests_pairs_each_call() {
    let mut r = Recognizer::new(RecognizerConfig::default());
    let mut ev = vec![get_request(0, "/v1/models")];
    ev.extend(fixture("openai_chat").events(1, &[10], EndReason::Complete));
    ev.push(get_request(2, "/v1/files"));
    ev.extend(fixture("openai_chat_stream_usage").events(3, &[100, 200], EndReason::Complete));
    ev.extend(fixture("openai_error_429").events(4, &[], EndReason::Complete));
    let calls = feed(&mut r, ev);
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[0].response.id.as_deref(),
        Some("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG")
    );
    assert_eq!(calls[1].response.id.as_deref(), Some("chatcmpl-123"));
    assert_eq!(calls[1].usage.input_tokens, Some(9));
    assert_eq!(calls[2].error_type.as_deref(), Some("insufficient_quota"));
    assert_eq!(r.stats().requests, 5);
    assert_eq!(r.stats().unclaimed, 2);
    assert!(!r.not_llm_traffic());
}

#[test]
fn non_llm_connection_is_flagged() {
    let mut r = Recognizer::new(RecognizerConfig::default());
    feed(
        &mut r,
        vec![get_request(0, "/index.html"), get_request(1, "/app.js")],
    );
    assert!(r.not_llm_traffic());
    assert_eq!(r.open_exchanges(), 0);
}

#[test]
fn interleaved_exchanges_like_http2_streams() {
    let a = fixture("anthropic_stream").events(1, &[50, 400, 900], EndReason::Complete);
    let b = fixture("gemini_stream_sse").events(3, &[30, 300], EndReason::Complete);
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    let mut ev = Vec::new();
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        ev.extend(x);
        ev.extend(y);
    }
    let mut r = Recognizer::new(RecognizerConfig::default());
    let calls = feed(&mut r, ev);
    assert_eq!(calls.len(), 2);
    let ant = calls.iter().find(|c| c.provider == "anthropic").unwrap();
    let gem = calls.iter().find(|c| c.provider == "gcp.gemini").unwrap();
    assert_eq!(ant.usage.output_tokens, Some(15));
    assert_eq!(gem.usage.output_tokens, Some(230));
}

#[test]
fn reused_exchange_number_yields_the_old_one_as_incomplete() {
    let f = fixture("openai_chat");
    let mut r = Recognizer::new(RecognizerConfig::default());
    let mut ev = f.events(1, &[], EndReason::Complete);
    ev.truncate(2); // request + head, no body, no end
    ev.extend(f.events(1, &[], EndReason::Complete));
    let calls = feed(&mut r, ev);
    assert_eq!(calls.len(), 2);
    assert!(calls[0].quality.incomplete);
    assert!(!calls[1].quality.incomplete);
    assert_eq!(calls[1].usage.input_tokens, Some(1117));
}

#[test]
fn open_exchanges_are_capped() {
    let f = fixture("openai_chat");
    let mut r = Recognizer::new(RecognizerConfig {
        max_open_exchanges: 4,
        ..Default::default()
    });
    let mut given_up = 0;
    for x in 0..10 {
        let mut ev = f.events(x, &[], EndReason::Complete);
        ev.truncate(1);
        given_up += feed(&mut r, ev).len();
    }
    assert_eq!(r.open_exchanges(), 4);
    assert_eq!(given_up, 6);
    assert_eq!(r.stats().evicted, 6);
}

#[test]
fn huge_embeddings_body_is_capped_but_usage_found_in_the_tail() {
    let f = fixture("openai_embeddings_base64");
    let mut big = f.clone();
    // Blow the data array up to ~3 MiB.
    let text = String::from_utf8(f.response_body.clone()).unwrap();
    let vec_start = text.find("\"embedding\": \"").unwrap() + 14;
    let vec_end = vec_start + text[vec_start..].find('"').unwrap();
    let one = &text[vec_start..vec_end];
    let huge = one.repeat((3 << 20) / one.len());
    big.response_body = text.replacen(one, &huge, 1).into_bytes();
    let mut r = Recognizer::new(RecognizerConfig {
        max_response_body: 1 << 20,
        ..Default::default()
    });
    let cuts: Vec<usize> = (1..big.response_body.len()).step_by(4096).collect();
    let calls = feed(&mut r, big.events(1, &cuts, EndReason::Complete));
    let c = &calls[0];
    assert!(c.quality.truncated);
    assert!(!c.quality.incomplete);
    assert_eq!(c.usage.input_tokens, Some(2));
    assert_eq!(c.response.model.as_deref(), Some("text-embedding-3-small"));
}

#[test]
fn oversized_stream_event_is_skipped_and_flagged() {
    let f = fixture("openai_chat_stream_usage");
    let mut r = Recognizer::new(RecognizerConfig {
        max_stream_message: 300, // the first (role) chunk is bigger than this
        ..Default::default()
    });
    let calls = feed(&mut r, f.events(1, &[], EndReason::Complete));
    let c = &calls[0];
    assert!(c.quality.truncated);
    assert!(r.stats().dropped_messages >= 1);
}

#[test]
fn secrets_in_request_are_not_copied_into_the_call() {
    let f = fixture("openai_chat");
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: Some(1 << 16),
        ..Default::default()
    });
    let calls = feed(&mut r, f.events(1, &[], EndReason::Complete));
    let s = serde_json::to_string(&calls[0]).unwrap();
    assert!(!s.contains("sk-test-not-a-real-key"));
}

#[test]
fn content_is_capped() {
    let f = fixture("openai_chat");
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: Some(5),
        ..Default::default()
    });
    let calls = feed(&mut r, f.events(1, &[], EndReason::Complete));
    let c = calls[0].content.as_ref().unwrap();
    assert!(c.truncated);
    let input: serde_json::Value =
        serde_json::from_str(c.input_messages.as_deref().unwrap()).unwrap();
    assert_eq!(input[0]["parts"][0]["content"], "Be br");
    assert_eq!(input[1]["parts"][0]["content"], "");
}

#[test]
fn garbage_bodies_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/genai");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| dir.join(n).join("request.http").exists())
        .collect();
    let mut rng = fastrand::Rng::with_seed(99);
    for name in &names {
        let f = fixture(name);
        for round in 0..30 {
            let mut g = f.clone();
            match round % 3 {
                // flip random bytes of the response body
                0 => {
                    for _ in 0..rng.usize(1..20) {
                        if !g.response_body.is_empty() {
                            let i = rng.usize(..g.response_body.len());
                            g.response_body[i] = rng.u8(..);
                        }
                    }
                }
                // random bytes instead of the body, random request body too
                1 => {
                    g.response_body = (0..rng.usize(0..2000)).map(|_| rng.u8(..)).collect();
                    g.request_body = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
                }
                // truncated JSON everywhere
                _ => {
                    let n = g.request_body.len();
                    g.request_body.truncate(rng.usize(0..=n));
                    let n = g.response_body.len();
                    g.response_body.truncate(rng.usize(0..=n));
                }
            }
            let len = g.response_body.len();
            let cuts: Vec<usize> = {
                let mut c: Vec<usize> = (0..rng.usize(0..10)).map(|_| rng.usize(0..=len)).collect();
                c.sort_unstable();
                c
            };
            let mut r = Recognizer::new(RecognizerConfig {
                capture_content: Some(256),
                ..Default::default()
            });
            let calls = feed(&mut r, g.events(1, &cuts, EndReason::ConnectionClosed));
            assert!(calls.len() <= 1);
            r.finish(0);
        }
    }
}

#[test]
fn hostile_choice_indices_stay_bounded() {
    let mut f = fixture("openai_chat_stream_usage");
    let mut body = String::new();
    for i in 0..5000u64 {
        body.push_str(&format!(
            "data: {{\"id\":\"x\",\"choices\":[{{\"index\":{},\"delta\":{{\"content\":\"a\",\"tool_calls\":[{{\"index\":{i},\"function\":{{\"name\":\"f\"}}}}]}},\"finish_reason\":\"stop\"}}]}}\n\n",
            i * 1_000_003
        ));
    }
    f.response_body = body.into_bytes();
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: Some(1 << 20),
        ..Default::default()
    });
    let calls = feed(&mut r, f.events(1, &[], EndReason::Complete));
    let c = &calls[0];
    assert_eq!(
        c.response.finish_reasons.len(),
        1,
        "only index 0 is under the cap"
    );
    assert_eq!(c.output_chunks, 5000);
    let out: serde_json::Value = serde_json::from_str(
        c.content
            .as_ref()
            .unwrap()
            .output_messages
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(out.as_array().unwrap().len(), 1);
    assert!(c.content.as_ref().unwrap().truncated);
}

#[test]
fn request_body_with_a_gap_still_gives_model_and_stream() {
    let mut f = fixture("openai_chat_stream_usage");
    // Cut 15 bytes out of the messages (as a capture gap would): no longer JSON.
    assert!(f
        .request_body
        .starts_with(br#"{"messages": [{"role": "user", "#));
    f.request_body.drain(15..33);
    assert!(serde_json::from_slice::<serde_json::Value>(&f.request_body).is_err());
    let mut ev = f.events(1, &[], EndReason::Complete);
    if let ExchangeEvent::Request { body, .. } = &mut ev[0] {
        body.gap = true;
    }
    let mut r = Recognizer::new(RecognizerConfig::default());
    let calls = feed(&mut r, ev);
    let c = &calls[0];
    assert!(c.quality.gap);
    assert_eq!(c.request.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(c.request.stream, Some(true));
    assert_eq!(c.usage.output_tokens, Some(12));
}

#[test]
fn drops_are_drained_by_reason() {
    let f = fixture("openai_chat_stream_usage");
    let mut r = Recognizer::new(RecognizerConfig {
        max_stream_message: 300,
        ..Default::default()
    });
    feed(&mut r, f.events(1, &[], EndReason::Complete));
    let mut drops = std::collections::BTreeMap::new();
    r.drain_drops(&mut drops);
    assert!(drops["genai_stream_message_dropped"] >= 1);
    let mut again = std::collections::BTreeMap::new();
    r.drain_drops(&mut again);
    assert!(again.is_empty(), "drained counters are reset");
}

/// HTTP/2 attached late: method, path and authority unknown ("" / None); the body still says
/// what the call is.
fn unknown_head(f: &mut Fixture) {
    f.request.method = String::new();
    f.request.target = String::new();
    f.request.authority = None;
}

#[test]
fn unknown_method_and_path_recognised_by_body_shape() {
    let mut f = fixture("openai_chat_stream_usage");
    unknown_head(&mut f);
    let mut r = Recognizer::new(RecognizerConfig::default());
    let calls = feed(&mut r, f.events(1, &[], EndReason::Complete));
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.provider, "openai_compatible");
    assert_eq!(c.request.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(c.usage.output_tokens, Some(12));
    assert_eq!(c.server_address, None);

    let mut g = fixture("gemini_stream_json_array");
    unknown_head(&mut g);
    let calls = feed(&mut r, g.events(2, &[], EndReason::Complete));
    let c = &calls[0];
    assert_eq!(c.provider, "gcp.gen_ai");
    assert_eq!(c.request.model, None);
    assert_eq!(
        c.response.model.as_deref(),
        Some("gemini-2.5-flash-preview-05-20")
    );
    assert_eq!(c.usage.output_tokens, Some(230));
    assert_eq!(c.response.finish_reasons, vec!["stop".to_string()]);

    // a body of no recognisable shape (an embeddings request) on an unknown path: unclaimed
    let mut h = fixture("ollama_embed");
    unknown_head(&mut h);
    assert!(feed(&mut r, h.events(3, &[], EndReason::Complete)).is_empty());
}
