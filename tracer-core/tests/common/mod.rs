//! Helpers for feeding recorded byte streams through the tracker at chosen split points.
#![allow(dead_code)]

use std::io::Write;

use tracer_core::call::Origin;
use tracer_core::conn::{ExchangeSink, Tracker, TrackerConfig};
use tracer_core::event::{flags, Direction, TlsEvent};
use tracer_core::http::{EndReason, ExchangeEvent};

pub const W: Direction = Direction::Write;
pub const R: Direction = Direction::Read;

/// xorshift64*: deterministic split points without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// How to cut each message into records.
#[derive(Clone, Copy)]
pub enum Split {
    Whole,
    Bytes(usize),
    Random(u64),
}

/// One captured write or read, or a capture loss of `n` bytes in a direction.
#[derive(Clone)]
pub enum Item {
    Msg(Direction, Vec<u8>),
    Lost(Direction, u64),
}

pub fn msg(d: Direction, b: impl AsRef<[u8]>) -> Item {
    Item::Msg(d, b.as_ref().to_vec())
}

/// Records for a script: offsets per direction, one ts step per record.
pub fn records(script: &[Item], split: Split) -> Vec<TlsEvent> {
    let mut rng = match split {
        Split::Random(seed) => Some(Rng::new(seed)),
        _ => None,
    };
    let mut off = [0u64; 2];
    let mut ts = 1_000u64;
    let mut out = Vec::new();
    let mut lost = [false; 2];
    for item in script {
        match item {
            Item::Lost(d, n) => {
                off[*d as usize] += n;
                lost[*d as usize] = true;
            }
            Item::Msg(d, bytes) => {
                let i = *d as usize;
                let mut rest = &bytes[..];
                while !rest.is_empty() {
                    let n = match split {
                        Split::Whole => rest.len(),
                        Split::Bytes(n) => n.min(rest.len()),
                        Split::Random(_) => {
                            let r = rng.as_mut().unwrap();
                            // Mostly small pieces, sometimes large ones.
                            let max = if r.below(4) == 0 {
                                rest.len()
                            } else {
                                64.min(rest.len())
                            };
                            1 + r.below(max as u64) as usize
                        }
                    };
                    let (piece, tail) = rest.split_at(n);
                    rest = tail;
                    ts += 1_000;
                    out.push(TlsEvent {
                        pid: 42,
                        tid: 43,
                        comm: "python3".into(),
                        conn: 0xfeed,
                        direction: *d,
                        ts_ns: ts,
                        offset: off[i],
                        len: piece.len() as u32,
                        data: piece.to_vec(),
                        flags: if std::mem::take(&mut lost[i]) {
                            flags::LOST_BEFORE
                        } else {
                            0
                        },
                    });
                    off[i] += piece.len() as u64;
                }
            }
        }
    }
    out
}

/// Events without timestamps, response data merged per exchange: what must not depend on how
/// the bytes were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum N {
    Req {
        ex: u64,
        method: String,
        target: String,
        authority: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        truncated: bool,
        gap: bool,
        late: bool,
    },
    Head {
        ex: u64,
        status: u16,
        headers: Vec<(String, String)>,
    },
    Data {
        ex: u64,
        data: Vec<u8>,
    },
    End {
        ex: u64,
        reason: EndReason,
        truncated: bool,
        gap: bool,
        capped: bool,
    },
}

/// `N::End` for exchange `ex`, with the named flags ("truncated", "gap", "capped") set.
#[allow(dead_code)] // not every test file that includes `common` asserts on ends
pub fn ended(ex: u64, reason: EndReason, flags: &[&str]) -> N {
    for f in flags {
        assert!(
            ["truncated", "gap", "capped"].contains(f),
            "unknown flag {f}"
        );
    }
    N::End {
        ex,
        reason,
        truncated: flags.contains(&"truncated"),
        gap: flags.contains(&"gap"),
        capped: flags.contains(&"capped"),
    }
}

/// `N::Data` for exchange `ex` (adjacent data events are merged by `normalize`).
#[allow(dead_code)]
pub fn response_data(ex: u64, bytes: &[u8]) -> N {
    N::Data {
        ex,
        data: bytes.to_vec(),
    }
}

/// The request targets, in order.
#[allow(dead_code)]
pub fn targets(got: &[N]) -> Vec<String> {
    got.iter()
        .filter_map(|n| match n {
            N::Req { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect()
}

#[allow(dead_code)]
#[track_caller]
pub fn assert_has(got: &[N], want: &N) {
    assert!(got.contains(want), "missing {want:?} in {got:?}");
}

pub fn normalize(events: &[ExchangeEvent]) -> Vec<N> {
    let mut out: Vec<N> = Vec::new();
    for e in events {
        match e {
            ExchangeEvent::Request {
                exchange,
                head,
                body,
                late_attach,
                start_ns,
                end_ns,
            } => {
                assert!(start_ns <= end_ns);
                out.push(N::Req {
                    ex: *exchange,
                    method: head.method.clone(),
                    target: head.target.clone(),
                    authority: head.authority.clone(),
                    headers: head.headers.0.clone(),
                    body: body.bytes.clone(),
                    truncated: body.truncated,
                    gap: body.gap,
                    late: *late_attach,
                })
            }
            ExchangeEvent::ResponseHead { exchange, head, .. } => out.push(N::Head {
                ex: *exchange,
                status: head.status,
                headers: head.headers.0.clone(),
            }),
            ExchangeEvent::ResponseData { exchange, data, .. } => {
                assert!(!data.is_empty(), "empty ResponseData");
                if let Some(N::Data { ex, data: d }) = out.last_mut() {
                    if ex == exchange {
                        d.extend_from_slice(data);
                        continue;
                    }
                }
                out.push(N::Data {
                    ex: *exchange,
                    data: data.clone(),
                })
            }
            ExchangeEvent::ResponseEnd {
                exchange,
                reason,
                truncated,
                gap,
                decompression_capped,
                ..
            } => out.push(N::End {
                ex: *exchange,
                reason: *reason,
                truncated: *truncated,
                gap: *gap,
                capped: *decompression_capped,
            }),
        }
    }
    out
}

/// Collects events and checks the tracker's memory after every record.
pub struct Collect {
    pub events: Vec<ExchangeEvent>,
    pub origins: Vec<Origin>,
    pub closed: usize,
}

impl ExchangeSink for Collect {
    fn exchange(&mut self, origin: &Origin, event: ExchangeEvent) {
        self.origins.push(origin.clone());
        self.events.push(event);
    }
    fn closed(&mut self, _origin: &Origin, _ts_ns: u64) {
        self.closed += 1;
    }
}

pub struct Run {
    pub events: Vec<ExchangeEvent>,
    pub origins: Vec<Origin>,
    pub max_memory: usize,
    pub tracker: Tracker,
}

pub fn run_with(cfg: TrackerConfig, records: Vec<TlsEvent>, finish: bool) -> Run {
    let mut t = Tracker::new(cfg);
    let mut sink = Collect {
        events: Vec::new(),
        origins: Vec::new(),
        closed: 0,
    };
    let mut max_memory = 0;
    let mut last_ts = 0;
    for r in records {
        last_ts = r.ts_ns;
        t.feed(r, &mut sink);
        max_memory = max_memory.max(t.stats().memory_bytes);
    }
    if finish {
        t.finish(last_ts + 1, &mut sink);
        assert_eq!(t.open_connections(), 0);
        assert_eq!(t.stats().memory_bytes, 0);
    }
    Run {
        events: sink.events,
        origins: sink.origins,
        max_memory,
        tracker: t,
    }
}

pub fn run(records: Vec<TlsEvent>) -> Vec<ExchangeEvent> {
    run_with(TrackerConfig::default(), records, true).events
}

/// The script's events whole, then at every split (1 byte, a few fixed sizes, many random
/// seeds): all must normalise to the same list. Returns it.
pub fn split_invariant(script: &[Item], seeds: u64) -> Vec<N> {
    let whole = normalize(&run(records(script, Split::Whole)));
    let mut splits = vec![
        Split::Bytes(1),
        Split::Bytes(2),
        Split::Bytes(3),
        Split::Bytes(7),
        Split::Bytes(100),
    ];
    splits.extend((0..seeds).map(Split::Random));
    for (i, s) in splits.into_iter().enumerate() {
        let got = normalize(&run(records(script, s)));
        assert_eq!(got, whole, "split #{i} differs");
    }
    whole
}

// ---- building HTTP messages ----

pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut m = format!("{method} {target} HTTP/1.1\r\nHost: api.example.invalid\r\n");
    for (n, v) in headers {
        m.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"))
    {
        m.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    m.push_str("\r\n");
    let mut b = m.into_bytes();
    b.extend_from_slice(body);
    b
}

pub fn response(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut m = format!("HTTP/1.1 {status} X\r\n");
    for (n, v) in headers {
        m.push_str(&format!("{n}: {v}\r\n"));
    }
    m.push_str("\r\n");
    let mut b = m.into_bytes();
    b.extend_from_slice(body);
    b
}

/// A chunked body from pieces (chunk sizes in mixed-case hex, with an extension on one).
pub fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut b = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if i == 1 {
            b.extend_from_slice(format!("{:X};ext=1\r\n", p.len()).as_bytes());
        } else {
            b.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
        }
        b.extend_from_slice(p);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(b"0\r\n\r\n");
    b
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

pub fn deflate_raw(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}
