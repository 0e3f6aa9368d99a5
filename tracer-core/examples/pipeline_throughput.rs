//! Single-threaded throughput of the whole pure pipeline (tracker, HTTP/1.1, decoding,
//! recognition) on synthetic OpenAI-style traffic.
//!
//! `cargo run --release -p tracer-core --example pipeline_throughput [-- ITERATIONS [KIND]]`
//!
//! ITERATIONS (default 4000) exchanges per kind; KIND (`sse`, `json`, `gzip`) runs one kind only.
//! For instruction counts (wall time on a shared machine is noisy), run a few hundred
//! iterations under `valgrind --tool=callgrind` and read the inclusive cost of
//! `Pipeline::feed` + `Pipeline::finish` with `callgrind_annotate --inclusive=yes`.

use std::io::Write;
use std::time::Instant;

use tracer_core::call::Origin;
use tracer_core::conn::{ExchangeSink, Tracker, TrackerConfig};
use tracer_core::event::{Direction, TlsEvent};
use tracer_core::http::ExchangeEvent;

struct Count(u64);

impl ExchangeSink for Count {
    fn exchange(&mut self, _origin: &Origin, _event: ExchangeEvent) {
        self.0 += 1;
    }
}
use tracer_core::pipeline::{Pipeline, PipelineConfig};

const RECORD: usize = 16 << 10;

fn sse_response(n: usize) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..n {
        let ev = format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}]}}\n\n"
        );
        body.extend_from_slice(format!("{:x}\r\n", ev.len()).as_bytes());
        body.extend_from_slice(ev.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    let last = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\ndata: [DONE]\n\n";
    body.extend_from_slice(format!("{:x}\r\n{last}\r\n0\r\n\r\n", last.len()).as_bytes());
    let mut m =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    m.extend(body);
    m
}

fn json_response(gzip: bool) -> Vec<u8> {
    let text = "word ".repeat(4000);
    let body = format!(
        "{{\"id\":\"chatcmpl-2\",\"object\":\"chat.completion\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"{text}\"}},\"finish_reason\":\"stop\"}}],\"usage\":{{\"prompt_tokens\":9,\"completion_tokens\":4000,\"total_tokens\":4009}}}}"
    );
    let (body, enc) = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(body.as_bytes()).unwrap();
        (e.finish().unwrap(), "Content-Encoding: gzip\r\n")
    } else {
        (body.into_bytes(), "")
    };
    let mut m = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{enc}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend(body);
    m
}

fn request(stream: bool) -> Vec<u8> {
    let prompt = "lorem ipsum ".repeat(150);
    let body = format!(
        "{{\"model\":\"gpt-4o-mini\",\"stream\":{stream},\"stream_options\":{{\"include_usage\":true}},\"messages\":[{{\"role\":\"user\",\"content\":\"{prompt}\"}}]}}"
    );
    let mut m = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nAuthorization: Bearer test-key\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    m.extend(body.into_bytes());
    m
}

fn main() {
    let mut args = std::env::args().skip(1);
    let iterations: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(4000);
    let only = args.next();
    let kinds = [
        ("sse stream", request(true), sse_response(400)),
        ("json", request(false), json_response(false)),
        ("gzip json", request(false), json_response(true)),
    ];
    for (name, req, resp) in &kinds {
        let short = name.split(' ').next().unwrap_or(name);
        if only.as_deref().is_some_and(|o| o != short) {
            continue;
        }
        let mut records = Vec::new();
        let mut off = [0u64; 2];
        let mut ts = 0u64;
        let conns = 8u64;
        for i in 0..iterations {
            let conn = i % conns;
            for (d, bytes) in [(Direction::Write, req), (Direction::Read, resp)] {
                for piece in bytes.chunks(RECORD) {
                    ts += 1000;
                    let k = d as usize;
                    records.push(TlsEvent {
                        pid: 1,
                        tid: 1,
                        comm: "bench".into(),
                        conn,
                        direction: d,
                        ts_ns: ts,
                        offset: off[k] + conn * (1 << 40),
                        len: piece.len() as u32,
                        data: piece.to_vec(),
                        flags: 0,
                    });
                    off[k] += piece.len() as u64;
                }
            }
            // Keep offsets per connection consistent: each connection gets its own range.
            if conn != conns - 1 {
                continue;
            }
        }
        // Per-connection offsets: recompute so each connection's stream is contiguous.
        let mut next = std::collections::HashMap::new();
        for r in records.iter_mut() {
            let e = next.entry((r.conn, r.direction as u8)).or_insert(0u64);
            r.offset = *e;
            *e += r.data.len() as u64;
        }
        let bytes: usize = records.iter().map(|r| r.data.len()).sum();
        // The connection tracker and HTTP layer alone (events counted, not recognised).
        let mut t = Tracker::new(TrackerConfig::default());
        let mut sink = Count(0);
        let start = Instant::now();
        for r in records.iter().cloned() {
            t.feed(r, &mut sink);
        }
        t.finish(ts + 1, &mut sink);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:>10}: tracker+http {:.0} MB/s ({} events)",
            bytes as f64 / 1e6 / secs,
            sink.0
        );
        let mut p = Pipeline::new(PipelineConfig::default());
        let cpu0 = thread_cpu_ns();
        let start = Instant::now();
        let mut calls = 0;
        for r in records {
            calls += p.feed(r).len();
        }
        calls += p.finish(ts + 1).len();
        let secs = start.elapsed().as_secs_f64();
        // CPU time of this thread: on a shared, loaded machine wall time mostly measures the
        // others; CPU time does not (it still suffers their cache pressure).
        let cpu = match (cpu0, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => {
                let cs = (b - a) as f64 / 1e9;
                format!(
                    ", {:.0} MB/s of CPU time ({cs:.3} s)",
                    bytes as f64 / 1e6 / cs
                )
            }
            _ => String::new(),
        };
        println!(
            "{name:>10}: pipeline {bytes} bytes in {secs:.3} s = {:.0} MB/s{cpu}, {calls} calls",
            bytes as f64 / 1e6 / secs
        );
    }
}

/// This thread's CPU time (Linux `/proc/thread-self/schedstat`, nanoseconds on CPU).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
