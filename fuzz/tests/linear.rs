//! A 10 MB SSE response fed one byte per read through the HTTP/1.1 parser and the recogniser
//! (content capture on) costs ten times a 1 MB one, not a hundred: counted in bytes allocated
//! (deterministic) and in thread CPU time (the thread's own, so other load on the machine hardly
//! moves it; the bound is far from the quadratic ratio).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use tracer_core::call::Origin;
use tracer_core::event::Direction;
use tracer_core::genai::{Recognizer, RecognizerConfig};
use tracer_core::http::h1::H1Connection;
use tracer_core::http::{ConnectionParser, HttpConfig};

/// Counts the bytes this thread's work asks the allocator for.
struct Counting;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An OpenAI chat stream of about `bytes` bytes, chunked HTTP/1.1 in 4 KiB chunks.
fn response(bytes: usize) -> Vec<u8> {
    let mut body = Vec::new();
    let mut i = 0;
    while body.len() < bytes {
        body.extend_from_slice(format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token {i} \"}},\"finish_reason\":null}}]}}\n\n"
        ).as_bytes());
        i += 1;
    }
    body.extend_from_slice(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}\n\ndata: [DONE]\n\n");
    let mut out =
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_vec();
    for c in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const REQUEST: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nhost: api.openai.com\r\ncontent-type: application/json\r\ncontent-length: 84\r\n\r\n{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}";

/// (allocated bytes, CPU ns) to parse and recognise `resp` one byte per read.
fn work(resp: &[u8]) -> (u64, u64) {
    let mut p = H1Connection::new(HttpConfig::default());
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: Some(64 << 10),
        ..Default::default()
    });
    let origin = Origin::default();
    let mut events = Vec::new();
    let mut calls = Vec::new();
    let a0 = ALLOCATED.load(Ordering::Relaxed);
    let t0 = thread_cpu_ns();
    p.feed(Direction::Write, 1, REQUEST, &mut events);
    for (i, b) in resp.chunks(1).enumerate() {
        p.feed(Direction::Read, 2 + i as u64, b, &mut events);
        for e in events.drain(..) {
            calls.extend(r.on_event(&origin, e));
        }
    }
    let t = thread_cpu_ns() - t0;
    let a = ALLOCATED.load(Ordering::Relaxed) - a0;
    assert_eq!(calls.len(), 1, "one call recognised");
    let c = &calls[0];
    assert_eq!(c.usage.output_tokens, Some(7));
    assert_eq!(c.response.finish_reasons, vec!["stop".to_string()]);
    assert!(c.output_chunks > 1000, "{} chunks", c.output_chunks);
    (a, t)
}

#[test]
fn ten_megabyte_sse_body_one_byte_per_read_is_linear() {
    let small = response(1 << 20);
    let big = response(10 << 20);
    let (a1, t1) = work(&small);
    let (a10, t10) = work(&big);
    let size_ratio = big.len() as f64 / small.len() as f64;
    let alloc_ratio = a10 as f64 / a1 as f64;
    let time_ratio = t10 as f64 / t1 as f64;
    println!(
        "1 MB: {a1} bytes allocated, {:.2} s CPU; 10 MB: {a10} bytes, {:.2} s; ratios: size {size_ratio:.2}, allocations {alloc_ratio:.2}, CPU {time_ratio:.2}",
        t1 as f64 / 1e9,
        t10 as f64 / 1e9
    );
    assert!(
        alloc_ratio < size_ratio * 1.5,
        "allocations grow faster than the input: {alloc_ratio:.2}"
    );
    // quadratic work would show a ratio near 100
    assert!(
        time_ratio < size_ratio * 2.5,
        "CPU time ratio {time_ratio:.2}"
    );
}
