//! Bad, hostile and huge input: never a panic, memory within the caps, drops counted, and the
//! connection recovers at the next good exchange.

mod common;

use common::*;
use tracer_core::conn::TrackerConfig;
use tracer_core::event::Direction;
use tracer_core::http::h1::H1Connection;
use tracer_core::http::{ConnectionParser, DropCounts, EndReason, ExchangeEvent, HttpConfig};

fn drops_of(r: &mut Run) -> DropCounts {
    let mut d = DropCounts::new();
    r.tracker.drain_drops(&mut d);
    d
}

fn good_exchange() -> Vec<Item> {
    vec![
        msg(W, request("POST", "/good", &[], b"{\"ok\":1}")),
        msg(R, response(200, &[("Content-Length", "2")], b"ok")),
    ]
}

fn assert_recovers(got: &[N]) {
    assert!(
        got.iter()
            .any(|n| matches!(n, N::Req { target, .. } if target == "/good")),
        "no recovery: {got:?}"
    );
    assert!(
        got.iter()
            .any(|n| matches!(n, N::Data { data, .. } if data == b"ok")),
        "{got:?}"
    );
}

#[test]
fn bad_chunk_sizes_end_the_exchange_and_recover() {
    for bad in [
        &b"zz\r\nhello\r\n0\r\n\r\n"[..],
        b"-1\r\nx\r\n0\r\n\r\n",
        b"fffffffffffffffffffff\r\nx\r\n",
        b"\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
    ] {
        let mut script = vec![
            msg(W, request("POST", "/a", &[], b"{}")),
            msg(
                R,
                [
                    &response(200, &[("Transfer-Encoding", "chunked")], b"")[..],
                    bad,
                ]
                .concat(),
            ),
        ];
        script.extend(good_exchange());
        let got = normalize(&run(records(&script, Split::Random(7))));
        assert!(
            got.contains(&N::End {
                ex: 0,
                reason: EndReason::Abandoned,
                truncated: true,
                gap: false,
                capped: false
            }),
            "{:?}: {got:?}",
            String::from_utf8_lossy(bad)
        );
        assert_recovers(&got);
    }
    // A chunked body cut short (without a capture gap) swallows what follows until its framing
    // breaks: nothing can tell the next response from chunk data. It still ends flagged, and the
    // exchange after it is parsed.
    let mut script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(
            R,
            [
                &response(200, &[("Transfer-Encoding", "chunked")], b"")[..],
                b"5;",
            ]
            .concat(),
        ),
    ];
    script.extend(good_exchange());
    script.extend(good_exchange());
    let got = normalize(&run(records(&script, Split::Random(7))));
    assert_has(&got, &ended(0, EndReason::Abandoned, &["truncated"]));
    // The swallowed response cannot be told apart, so the pairing after it is off by one until
    // the connection ends; what matters is that the parser is back in sync and nothing panics.
    assert!(
        got.iter()
            .any(|n| matches!(n, N::Data { ex: 1.., data } if data == b"ok")),
        "{got:?}"
    );
}

#[test]
fn broken_gzip_is_flagged() {
    let mut gz = gzip(&b"data: {}\n\n".repeat(1000));
    let mid = gz.len() / 2;
    gz[mid..mid + 6].copy_from_slice(b"\xff\x00\xff\x00\xff\x00");
    let mut script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Encoding", "gzip"),
                    ("Content-Length", &gz.len().to_string()),
                ],
                &gz,
            ),
        ),
    ];
    script.extend(good_exchange());
    // How much decodes before the corrupt point depends on where the input was cut (the
    // decoder holds some output back); the flags and what follows do not.
    let strip = |v: Vec<N>| -> Vec<N> {
        v.into_iter()
            .filter(|n| !matches!(n, N::Data { ex: 0, .. }))
            .collect()
    };
    let whole = strip(normalize(&run(records(&script, Split::Whole))));
    for seed in 0..20 {
        assert_eq!(
            strip(normalize(&run(records(&script, Split::Random(seed))))),
            whole
        );
    }
    assert!(
        whole.contains(&N::End {
            ex: 0,
            reason: EndReason::Complete,
            truncated: true,
            gap: false,
            capped: false
        }),
        "{whole:?}"
    );
    assert_recovers(&whole);
}

#[test]
fn compression_bomb_stops_at_the_cap() {
    let bomb = gzip(&vec![0u8; 64 << 20]);
    let script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Encoding", "gzip"),
                    ("Content-Length", &bomb.len().to_string()),
                ],
                &bomb,
            ),
        ),
    ];
    let mut r = run_with(
        TrackerConfig::default(),
        records(&script, Split::Bytes(16 << 10)),
        true,
    );
    let got = normalize(&r.events);
    let out: usize = got
        .iter()
        .map(|n| {
            if let N::Data { data, .. } = n {
                data.len()
            } else {
                0
            }
        })
        .sum();
    // 64 KiB of gzip may expand to at most max(1 MiB, 200 x input).
    assert!(out <= (1 << 20).max(200 * bomb.len()), "{out}");
    assert_has(&got, &ended(0, EndReason::Complete, &["capped"]));
    assert!(r.max_memory < 4 << 20, "{}", r.max_memory);
    let _ = drops_of(&mut r);
}

#[test]
fn huge_content_length_request_is_capped() {
    let cfg = TrackerConfig {
        http: HttpConfig {
            max_request_body: 1 << 20,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut script = vec![msg(
        W,
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000000\r\n\r\n",
    )];
    for _ in 0..8 {
        script.push(msg(W, vec![b'a'; 1 << 20]));
    }
    let r = run_with(cfg, records(&script, Split::Bytes(64 << 10)), true);
    assert!(r.max_memory < 2 << 20, "memory {}", r.max_memory);
    let got = normalize(&r.events);
    let N::Req {
        body, truncated, ..
    } = &got[0]
    else {
        panic!("{got:?}")
    };
    assert_eq!(body.len(), 1 << 20);
    assert!(*truncated);
}

#[test]
fn huge_content_length_response_streams_in_bounded_memory() {
    let mut script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(R, response(200, &[("Content-Length", "1000000000")], b"")),
    ];
    for _ in 0..32 {
        script.push(msg(R, vec![b'x'; 1 << 20]));
    }
    let r = run_with(
        TrackerConfig::default(),
        records(&script, Split::Bytes(16 << 10)),
        true,
    );
    assert!(r.max_memory < 1 << 20, "memory {}", r.max_memory);
    let got = normalize(&r.events);
    let out: usize = got
        .iter()
        .map(|n| {
            if let N::Data { data, .. } = n {
                data.len()
            } else {
                0
            }
        })
        .sum();
    assert_eq!(out, 32 << 20);
    assert_eq!(
        got.last(),
        Some(&N::End {
            ex: 0,
            reason: EndReason::Abandoned,
            truncated: false,
            gap: false,
            capped: false
        })
    );
}

#[test]
fn header_floods_are_dropped_in_bounded_memory() {
    let mut flood = b"POST /flood HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..200_000 {
        flood.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    flood.extend_from_slice(b"\r\n");
    let mut many = b"POST /many HTTP/1.1\r\n".to_vec();
    for i in 0..500 {
        many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    let mut resp_flood = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..200_000 {
        resp_flood.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    resp_flood.extend_from_slice(b"\r\n");
    let mut script = vec![
        msg(W, flood),
        msg(R, response(200, &[("Content-Length", "0")], b"")),
        msg(W, many),
    ];
    script.extend(good_exchange());
    script.push(msg(W, request("GET", "/x", &[], b"")));
    script.push(msg(R, resp_flood));
    script.extend(good_exchange());
    let mut r = run_with(
        TrackerConfig::default(),
        records(&script, Split::Bytes(4096)),
        true,
    );
    assert!(r.max_memory < 256 << 10, "memory {}", r.max_memory);
    let got = normalize(&r.events);
    assert_eq!(targets(&got), vec!["/good", "/x", "/good"], "{got:?}");
    // The /x response head was too big: /x ends unanswered, the next exchange still pairs.
    assert_has(&got, &ended(1, EndReason::Abandoned, &["truncated"]));
    assert_has(&got, &response_data(2, b"ok"));
    let d = drops_of(&mut r);
    assert!(
        d.get("h1_head_too_large").copied().unwrap_or(0) >= 2,
        "{d:?}"
    );
    assert!(
        d.get("h1_too_many_headers").copied().unwrap_or(0) >= 1,
        "{d:?}"
    );
}

#[test]
fn garbage_and_mutations_never_panic_and_stay_bounded() {
    let base: Vec<Item> = {
        let mut v = vec![
            msg(
                W,
                request(
                    "POST",
                    "/v1/chat/completions",
                    &[("Transfer-Encoding", "chunked")],
                    &chunked(&[b"{\"a\":", b"1}"]),
                ),
            ),
            msg(
                R,
                response(
                    200,
                    &[
                        ("Transfer-Encoding", "chunked"),
                        ("Content-Encoding", "gzip"),
                    ],
                    &chunked(&[&gzip(b"data: x\n\n")]),
                ),
            ),
            msg(W, request("HEAD", "/", &[], b"")),
            msg(R, response(200, &[("Content-Length", "99")], b"")),
        ];
        v.extend(good_exchange());
        v
    };
    let cfg = TrackerConfig {
        max_conn_bytes: 8 << 20,
        ..Default::default()
    };
    for seed in 0..400u64 {
        let mut rng = Rng::new(seed);
        let mut script = Vec::new();
        for item in &base {
            let Item::Msg(d, bytes) = item else { continue };
            let mut b = bytes.clone();
            match rng.below(6) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(b.len() as u64) as usize;
                        b[i] = rng.next() as u8;
                    }
                }
                1 => b.truncate(rng.below(b.len() as u64) as usize),
                2 => b = (0..rng.below(300)).map(|_| rng.next() as u8).collect(),
                3 => {
                    let i = rng.below(b.len() as u64) as usize;
                    let extra = b[i..].to_vec();
                    b.extend_from_slice(&extra);
                }
                _ => {}
            }
            script.push(Item::Msg(*d, b));
            if rng.below(10) == 0 {
                script.push(Item::Lost(*d, rng.below(100)));
            }
        }
        let r = run_with(cfg.clone(), records(&script, Split::Random(seed)), true);
        assert!(
            r.max_memory < 8 << 20,
            "seed {seed}: memory {}",
            r.max_memory
        );
        // Every response event belongs to an exchange whose request was announced.
        let mut seen = std::collections::BTreeSet::new();
        for e in &r.events {
            match e {
                ExchangeEvent::Request { exchange, .. } => {
                    seen.insert(*exchange);
                }
                ExchangeEvent::ResponseHead { exchange, .. }
                | ExchangeEvent::ResponseData { exchange, .. } => {
                    assert!(
                        seen.contains(exchange),
                        "seed {seed}: response before request"
                    )
                }
                ExchangeEvent::ResponseEnd { .. } => {}
            }
        }
    }
    // Pure noise in both directions.
    for seed in 0..100u64 {
        let mut rng = Rng::new(seed ^ 0xabc);
        let script: Vec<Item> = (0..20)
            .map(|i| {
                let d = if i % 2 == 0 { W } else { R };
                Item::Msg(d, (0..rng.below(2000)).map(|_| rng.next() as u8).collect())
            })
            .collect();
        let r = run_with(cfg.clone(), records(&script, Split::Random(seed)), true);
        assert!(r
            .events
            .iter()
            .all(|e| !matches!(e, ExchangeEvent::ResponseData { .. })));
    }
}

#[test]
fn connection_memory_cap_closes_the_connection() {
    let cfg = TrackerConfig {
        max_conn_bytes: 1 << 20,
        ..Default::default()
    };
    let mut script = vec![msg(
        W,
        b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 4000000\r\n\r\n",
    )];
    for _ in 0..4 {
        script.push(msg(W, vec![b'a'; 1_000_000]));
    }
    script.extend(good_exchange());
    let mut r = run_with(cfg, records(&script, Split::Bytes(64 << 10)), true);
    assert!(
        r.max_memory <= (1 << 20) + (64 << 10) + (1 << 17),
        "memory {}",
        r.max_memory
    );
    let d = drops_of(&mut r);
    assert!(d.get("conn_memory_cap").copied().unwrap_or(0) >= 1, "{d:?}");
    let got = normalize(&r.events);
    // The big request goes out cut short; the connection is tracked afresh afterwards.
    assert!(
        matches!(&got[0], N::Req { target, truncated: true, .. } if target == "/big"),
        "{:?}",
        &got[..1]
    );
    assert_recovers(&got);
}

#[test]
fn global_memory_cap_evicts_the_oldest() {
    use tracer_core::event::{flags, TlsEvent};
    let cfg = TrackerConfig {
        max_total_bytes: 3 << 20,
        ..Default::default()
    };
    let mut recs = Vec::new();
    for c in 0..10u64 {
        let head = b"POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: 4000000\r\n\r\n".to_vec();
        let mut data = head;
        data.extend(vec![b'a'; 1 << 20]);
        recs.push(TlsEvent {
            pid: 1,
            tid: 1,
            comm: "c".into(),
            conn: c,
            direction: Direction::Write,
            ts_ns: 1000 + c,
            offset: 0,
            len: data.len() as u32,
            data,
            flags: 0,
        });
    }
    let _ = flags::TRUNCATED;
    let mut r = run_with(cfg, recs, false);
    assert!(r.tracker.stats().memory_bytes <= 3 << 20);
    assert!(r.max_memory <= (3 << 20) + (2 << 20), "{}", r.max_memory);
    assert!(r.tracker.open_connections() < 10);
    let d = drops_of(&mut r);
    assert!(
        d.get("conn_global_memory_cap").copied().unwrap_or(0) >= 7,
        "{d:?}"
    );
}

#[test]
fn ten_megabyte_chunked_body_one_byte_at_a_time_is_linear() {
    let body: Vec<u8> = (0..10 << 20).map(|i: u32| b'a' + (i % 26) as u8).collect();
    let pieces: Vec<&[u8]> = body.chunks(1000).collect();
    let mut stream = request("POST", "/v1/chat/completions", &[], b"{}");
    let resp = response(200, &[("Transfer-Encoding", "chunked")], &chunked(&pieces));
    let mut p = H1Connection::new(HttpConfig::default());
    let mut out = Vec::new();
    p.feed(Direction::Write, 1, &stream, &mut out);
    stream.clear();
    let mut got = 0usize;
    let mut sum = 0u64;
    let mut max_buffered = 0;
    for (i, b) in resp.iter().enumerate() {
        p.feed(
            Direction::Read,
            2 + i as u64,
            std::slice::from_ref(b),
            &mut out,
        );
        for e in out.drain(..) {
            if let ExchangeEvent::ResponseData { data, .. } = e {
                got += data.len();
                sum += data.iter().map(|&c| c as u64).sum::<u64>();
            }
        }
        if i % 4096 == 0 {
            max_buffered = max_buffered.max(p.buffered_bytes());
        }
    }
    assert_eq!(got, body.len());
    assert_eq!(sum, body.iter().map(|&c| c as u64).sum::<u64>());
    // Every byte looked at a bounded number of times, and nothing accumulates.
    let input = (resp.len() + request("POST", "/v1/chat/completions", &[], b"{}").len()) as u64;
    assert!(
        p.bytes_examined() <= 2 * input,
        "{} for {input}",
        p.bytes_examined()
    );
    assert!(max_buffered < 4096, "{max_buffered}");
}
