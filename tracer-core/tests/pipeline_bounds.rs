//! Bounds of the whole pipeline: memory held anywhere for a connection (HTTP buffers and the
//! response bodies the LLM layer keeps whole for parsing) is capped per connection and in all;
//! a connection past a cap is closed and its call still comes out, flagged; a process exit and
//! idle expiry free everything of their connections.

use tracer_core::call::LlmCall;
use tracer_core::event::{flags, Direction, TlsEvent};
use tracer_core::pipeline::{Pipeline, PipelineConfig};

const REQUEST: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: 68\r\n\r\n{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
const SSE_REQUEST: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: 82\r\n\r\n{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}";

fn ev(pid: u32, conn: u64, direction: Direction, ts_ns: u64, offset: u64, data: &[u8]) -> TlsEvent {
    TlsEvent {
        pid,
        tid: pid,
        comm: "app".into(),
        conn,
        direction,
        ts_ns,
        offset,
        len: data.len() as u32,
        data: data.to_vec(),
        flags: 0,
    }
}

fn exit(pid: u32, ts_ns: u64) -> TlsEvent {
    TlsEvent {
        flags: flags::PROCESS_EXIT,
        ..ev(pid, 0, Direction::Read, ts_ns, 0, b"")
    }
}

/// A non-streamed JSON response announcing `total` body bytes, of which `sent` are given: the
/// recogniser keeps the body whole until it ends.
fn partial_json(total: usize, sent: usize) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {total}\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(b"{\"id\":\"chatcmpl-1\",\"pad\":\"");
    out.resize(out.len() + sent, b'x');
    out
}

fn config(max_conn: usize, max_total: usize) -> PipelineConfig {
    let mut cfg = PipelineConfig::default();
    cfg.tracker.max_conn_bytes = max_conn;
    cfg.tracker.max_total_bytes = max_total;
    cfg
}

fn drops(p: &Pipeline, reason: &str) -> u64 {
    p.stats().drops.get(reason).copied().unwrap_or(0)
}

#[test]
fn bodies_kept_for_parsing_count_against_the_total_cap() {
    let mut p = Pipeline::new(config(64 << 20, 4 << 20));
    let mut calls: Vec<LlmCall> = Vec::new();
    let resp = partial_json(2 << 20, 1 << 20);
    for conn in 0..8u64 {
        let ts = 1_000 + conn * 100;
        calls.extend(p.feed(ev(10, conn, Direction::Write, ts, 0, REQUEST)));
        calls.extend(p.feed(ev(10, conn, Direction::Read, ts + 10, 0, &resp)));
        let s = p.stats();
        assert!(
            s.memory_bytes <= 4 << 20,
            "{} bytes held, cap 4 MiB",
            s.memory_bytes
        );
    }
    // 8 connections of 1 MiB each do not fit in 4 MiB: the oldest ones were closed.
    assert!(
        drops(&p, "conn_global_memory_cap") >= 4,
        "{:?}",
        p.stats().drops
    );
    assert!(
        p.stats().memory_bytes >= 3 << 20,
        "the newest bodies are still held"
    );
    // Every closed connection's call came out, flagged as cut short; nothing vanished.
    assert_eq!(calls.len() as u64, 8 - p.stats().connections_open);
    for c in &calls {
        assert!(c.quality.incomplete && c.error_type.is_some(), "{c:?}");
        assert_eq!(c.request.model.as_deref(), Some("gpt-4o-mini"));
    }
    calls.extend(p.finish(10_000));
    assert_eq!(calls.len(), 8);
    assert_eq!(p.stats().memory_bytes, 0);
}

#[test]
fn a_connection_over_its_own_cap_is_closed_and_its_call_exported() {
    let mut p = Pipeline::new(config(512 << 10, 1 << 30));
    let resp = partial_json(4 << 20, 1 << 20);
    assert!(p
        .feed(ev(10, 1, Direction::Write, 1, 0, REQUEST))
        .is_empty());
    let calls = p.feed(ev(10, 1, Direction::Read, 2, 0, &resp));
    assert_eq!(drops(&p, "conn_memory_cap"), 1);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].quality.incomplete);
    assert_eq!(p.stats().connections_open, 0);
    assert_eq!(p.stats().memory_bytes, 0);
}

#[test]
fn process_exit_frees_its_connections_and_yields_partial_calls() {
    let mut p = Pipeline::new(PipelineConfig::default());
    let head =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
    let event = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}],\"model\":\"gpt-4o-mini\"}\n\n";
    let mut chunk = format!("{:x}\r\n", event.len()).into_bytes();
    chunk.extend_from_slice(event);
    chunk.extend_from_slice(b"\r\n");
    for (pid, conn) in [(5, 1), (5, 2), (5, 3), (6, 1)] {
        assert!(p
            .feed(ev(pid, conn, Direction::Write, 10, 0, SSE_REQUEST))
            .is_empty());
        let mut resp = head.to_vec();
        resp.extend_from_slice(&chunk);
        assert!(p
            .feed(ev(pid, conn, Direction::Read, 20, 0, &resp))
            .is_empty());
    }
    assert_eq!(p.stats().connections_open, 4);
    let calls = p.feed(exit(5, 30));
    assert_eq!(
        calls.len(),
        3,
        "one partial call per connection of the process"
    );
    for c in &calls {
        assert_eq!(c.origin.pid, 5);
        assert!(c.quality.incomplete);
        assert_eq!(c.error_type.as_deref(), Some("incomplete"));
        assert!(c.streamed);
        assert_eq!(c.timing.end_ns, 30);
        assert!(c.timing.first_output_ns.is_some());
    }
    assert_eq!(
        p.stats().connections_open,
        1,
        "the other process is untouched"
    );
    assert!(p.feed(exit(6, 40)).len() == 1);
    assert_eq!(p.stats().connections_open, 0);
    assert_eq!(p.stats().memory_bytes, 0);
}

#[test]
fn idle_connections_expire_and_free_their_memory() {
    let mut cfg = PipelineConfig::default();
    cfg.tracker.idle_timeout_ns = 1_000_000;
    let mut p = Pipeline::new(cfg);
    let resp = partial_json(1 << 20, 100 << 10);
    p.feed(ev(7, 1, Direction::Write, 1_000, 0, REQUEST));
    p.feed(ev(7, 1, Direction::Read, 2_000, 0, &resp));
    assert!(p.stats().memory_bytes >= 100 << 10, "the body is held");
    assert!(p.tick(500_000).is_empty(), "not idle yet");
    let calls = p.tick(2_000_000);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].quality.incomplete);
    assert_eq!(p.stats().connections_expired, 1);
    assert_eq!(p.stats().connections_open, 0);
    assert_eq!(p.stats().memory_bytes, 0);
}
