//! `Pipeline::take_not_llm`: a connection whose requests no provider claims is reported once (the
//! agent mutes it in the kernel); an LLM connection never is; a closed connection is forgotten, so
//! a new connection at the same address starts clean.

use tracer_core::event::{flags, ConnKey, Direction, TlsEvent};
use tracer_core::pipeline::{Pipeline, PipelineConfig};

const LLM: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: 68\r\n\r\n{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: internal.example\r\n\r\n";

fn ev(pid: u32, conn: u64, ts_ns: u64, offset: u64, data: &[u8], flags: u32) -> TlsEvent {
    TlsEvent {
        pid,
        tid: pid,
        comm: "app".into(),
        conn,
        direction: Direction::Write,
        ts_ns,
        offset,
        len: data.len() as u32,
        data: data.to_vec(),
        flags,
    }
}

#[test]
fn unclaimed_connection_reported_once_llm_never() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(ev(1, 0xa, 1_000, 0, HEALTH, 0));
    p.feed(ev(1, 0xb, 1_000, 0, LLM, 0));
    assert_eq!(p.take_not_llm(), vec![ConnKey { pid: 1, conn: 0xa }]);
    // A second unclaimed request on the same connection: not reported again.
    p.feed(ev(1, 0xa, 2_000, HEALTH.len() as u64, HEALTH, 0));
    assert!(p.take_not_llm().is_empty());
}

#[test]
fn closed_connection_is_forgotten() {
    let mut p = Pipeline::new(PipelineConfig::default());
    p.feed(ev(7, 0xa, 1_000, 0, HEALTH, 0));
    assert_eq!(p.take_not_llm().len(), 1);
    // The process ends: its connections close. The same (pid, conn) later is a new connection.
    p.feed(ev(7, 0, 2_000, 0, b"", flags::PROCESS_EXIT));
    p.feed(ev(7, 0xa, 3_000, 0, HEALTH, 0));
    assert_eq!(p.take_not_llm(), vec![ConnKey { pid: 7, conn: 0xa }]);
}
