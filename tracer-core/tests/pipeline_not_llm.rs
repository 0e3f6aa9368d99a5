//! `Pipeline::take_not_llm`: per exchange, an HTTP/1.1 connection whose latest request no
//! provider claims is reported with the write offset right after that request (the agent mutes
//! the response's reads in the kernel until the next write); a later LLM call on the same
//! keep-alive connection is never affected, and after a skipped response the tracker resyncs at
//! the next status line.

use tracer_core::event::{flags, ConnKey, Direction, TlsEvent};
use tracer_core::pipeline::{NotLlm, Pipeline, PipelineConfig};

const LLM: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: 67\r\n\r\n{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: internal.example\r\n\r\n";
const LLM_RESPONSE_BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;

fn ev(
    pid: u32,
    conn: u64,
    ts_ns: u64,
    direction: Direction,
    offset: u64,
    data: &[u8],
    flags: u32,
) -> TlsEvent {
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
        flags,
    }
}

fn write(pid: u32, conn: u64, ts_ns: u64, offset: u64, data: &[u8]) -> TlsEvent {
    ev(pid, conn, ts_ns, Direction::Write, offset, data, 0)
}

#[test]
fn latest_unclaimed_request_is_reported_with_its_write_offset() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(1, 0xa, 1_000, 0, HEALTH));
    p.feed(write(1, 0xb, 1_000, 0, LLM));
    assert_eq!(
        p.take_not_llm(),
        vec![NotLlm {
            key: ConnKey { pid: 1, conn: 0xa },
            write_offset: HEALTH.len() as u64
        }]
    );
    assert!(p.take_not_llm().is_empty(), "reported once per request");
    // A second unclaimed request: reported again, at its own end.
    p.feed(write(1, 0xa, 2_000, HEALTH.len() as u64, HEALTH));
    assert_eq!(p.take_not_llm()[0].write_offset, 2 * HEALTH.len() as u64);
}

#[test]
fn a_later_llm_request_in_the_same_batch_cancels_the_report() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(1, 0xa, 1_000, 0, HEALTH));
    p.feed(write(1, 0xa, 1_100, HEALTH.len() as u64, LLM));
    assert!(p.take_not_llm().is_empty());
}

#[test]
fn never_reported_while_a_request_is_in_progress() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(1, 0xa, 1_000, 0, HEALTH));
    // The head of an LLM call, its body not written yet: it could be anything, so no mute.
    let head_end = LLM.iter().position(|&b| b == b'{').unwrap();
    p.feed(write(1, 0xa, 1_100, HEALTH.len() as u64, &LLM[..head_end]));
    assert!(p.take_not_llm().is_empty());
}

#[test]
fn closed_connection_is_forgotten() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(7, 0xa, 1_000, 0, HEALTH));
    // The process ends before the report is taken: nothing to mute.
    p.feed(write(7, 0, 2_000, 0, b"").with_flags(flags::PROCESS_EXIT));
    assert!(p.take_not_llm().is_empty());
    // The same (pid, conn) later is a new connection.
    p.feed(write(7, 0xa, 3_000, 0, HEALTH));
    assert_eq!(p.take_not_llm()[0].key, ConnKey { pid: 7, conn: 0xa });
    // The kernel reports the connection freed: closed at once, nothing left open.
    p.feed(write(7, 0xa, 4_000, 0, b"").with_flags(flags::CONN_CLOSED));
    assert_eq!(p.stats().connections_open, 0);
}

trait WithFlags {
    fn with_flags(self, flags: u32) -> Self;
}

impl WithFlags for TlsEvent {
    fn with_flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }
}

/// What the kernel does with a muted response: its bytes only advance the read offset, and the
/// next read record says SKIPPED_BEFORE. The LLM call after it on the same connection is whole.
#[test]
fn llm_call_after_a_skipped_response_is_complete() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(3, 0xc, 1_000, 0, HEALTH));
    let big_head = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n";
    let mut first = big_head.to_vec();
    first.extend_from_slice(&[b'z'; 1000]);
    p.feed(ev(3, 0xc, 1_100, Direction::Read, 0, &first, 0));
    let muted = p.take_not_llm();
    assert_eq!(muted.len(), 1);
    // The kernel skips the rest of the download (99000 bytes); then the LLM request.
    let resp_end = big_head.len() as u64 + 100_000;
    let calls = p.feed(write(3, 0xc, 2_000, HEALTH.len() as u64, LLM));
    assert!(calls.is_empty());
    assert!(p.take_not_llm().is_empty(), "an LLM request is never muted");
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        LLM_RESPONSE_BODY.len(),
        LLM_RESPONSE_BODY
    );
    let calls = p.feed(ev(
        3,
        0xc,
        2_100,
        Direction::Read,
        resp_end,
        resp.as_bytes(),
        flags::SKIPPED_BEFORE,
    ));
    assert_eq!(calls.len(), 1, "the LLM call is exported at once");
    let call = &calls[0];
    assert_eq!(
        call.response.model.as_deref(),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(call.http_status, Some(200));
    assert!(
        !call.quality.gap && !call.quality.incomplete,
        "{:?}",
        call.quality
    );
    assert_eq!(call.usage.input_tokens, Some(5));
    assert_eq!(call.usage.output_tokens, Some(1));
    assert!(call.error_type.is_none(), "{:?}", call.error_type);
}

/// The kernel muted the whole non-LLM response, head included (the agent was faster than the
/// server): the next status line answers the LLM request written after it, not the old one.
#[test]
fn a_response_skipped_whole_is_not_given_to_the_next_request() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(write(4, 0xd, 1_000, 0, HEALTH));
    assert_eq!(p.take_not_llm().len(), 1);
    // Nothing of the health response reached userspace (155 bytes skipped), then the LLM call.
    p.feed(write(4, 0xd, 2_000, HEALTH.len() as u64, LLM));
    let resp = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{}",
        LLM_RESPONSE_BODY.len(),
        LLM_RESPONSE_BODY
    );
    let calls = p.feed(ev(
        4,
        0xd,
        2_100,
        Direction::Read,
        155,
        resp.as_bytes(),
        flags::SKIPPED_BEFORE,
    ));
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].response.model.as_deref(),
        Some("gpt-4o-mini-2024-07-18")
    );
    assert_eq!(calls[0].http_status, Some(200));
    assert!(calls[0].error_type.is_none(), "{:?}", calls[0].error_type);
}
