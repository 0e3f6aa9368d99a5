//! HTTP/1.1 through the connection tracker, on hand-written byte streams fed whole, one byte at a
//! time and at many random split points.

mod common;

use common::*;
use tracer_core::http::EndReason;

const CANARY: &str = "CANARY-fake-key-000";

fn sse(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("data: {{\"id\":\"c1\",\"choices\":[{{\"delta\":{{\"content\":\"tok{i}\"}}}}]}}\n\n").into_bytes())
        .collect()
}

fn json_body() -> Vec<u8> {
    br#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}"#.to_vec()
}

fn keep_alive_script() -> (Vec<Item>, Vec<u8>, Vec<u8>) {
    let stream = sse(40);
    let answer = br#"{"id":"x","usage":{"prompt_tokens":9,"completion_tokens":12}}"#.repeat(20);
    let gz_req = gzip(&json_body());
    let script = vec![
        // 0: JSON request with Content-Length, secrets in headers and query.
        msg(
            W,
            request(
                "POST",
                &format!("/v1/chat/completions?key={CANARY}&alt=sse"),
                &[
                    ("Authorization", &format!("Bearer {CANARY}")),
                    ("X-Api-Key", CANARY),
                    ("Content-Type", "application/json"),
                ],
                &json_body(),
            ),
        ),
        // 100 Continue then a chunked SSE stream.
        msg(R, response(100, &[], b"")),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Type", "text/event-stream"),
                    ("Transfer-Encoding", "chunked"),
                    ("Set-Cookie", CANARY),
                ],
                &chunked(&[&stream[..100], &stream[100..1000], &stream[1000..]]),
            ),
        ),
        // 1: chunked, gzip request body; gzip Content-Length response.
        msg(
            W,
            request(
                "POST",
                "/v1/embeddings",
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Content-Encoding", "gzip"),
                ],
                &chunked(&[&gz_req[..5], &gz_req[5..]]),
            ),
        ),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Encoding", "gzip"),
                    ("Content-Length", &gzip(&answer).len().to_string()),
                ],
                &gzip(&answer),
            ),
        ),
        // 2: GET -> 204, no body.
        msg(W, request("GET", "/v1/models", &[], b"")),
        msg(R, response(204, &[], b"")),
        // 3: HEAD -> Content-Length but no body.
        msg(W, request("HEAD", "/v1/models", &[], b"")),
        msg(R, response(200, &[("Content-Length", "1234")], b"")),
        // 4: brotli, 5: zstd chunked, 6: raw deflate.
        msg(W, request("POST", "/v1/messages", &[], &json_body())),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Encoding", "br"),
                    ("Content-Length", &brotli(&answer).len().to_string()),
                ],
                &brotli(&answer),
            ),
        ),
        msg(W, request("POST", "/api/chat", &[], &json_body())),
        msg(R, {
            let z = zstd(&stream);
            response(
                200,
                &[
                    ("Content-Encoding", "zstd"),
                    ("Transfer-Encoding", "chunked"),
                ],
                &chunked(&[&z[..10], &z[10..]]),
            )
        }),
        msg(W, request("POST", "/x", &[], b"{}")),
        msg(
            R,
            response(
                200,
                &[
                    ("Content-Encoding", "deflate"),
                    ("Content-Length", &deflate_raw(&answer).len().to_string()),
                ],
                &deflate_raw(&answer),
            ),
        ),
        // 7: 304, then 8: a close-delimited response ended by the end of the capture.
        msg(W, request("GET", "/cached", &[], b"")),
        msg(R, response(304, &[("ETag", "\"x\"")], b"")),
        msg(W, request("GET", "/old", &[], b"")),
        msg(
            R,
            response(200, &[("Connection", "close")], b"until the end"),
        ),
    ];
    (script, stream, answer)
}

#[test]
fn keep_alive_exchanges_pair_and_decode_at_any_split() {
    let (script, stream, answer) = keep_alive_script();
    let got = split_invariant(&script, 300);
    let dump = format!("{got:?}");
    assert!(!dump.contains(CANARY), "a secret left the parser: {dump}");

    let reqs: Vec<&N> = got.iter().filter(|n| matches!(n, N::Req { .. })).collect();
    assert_eq!(reqs.len(), 9);
    let N::Req {
        ex,
        method,
        target,
        authority,
        headers,
        body,
        truncated,
        gap,
        late,
    } = reqs[0]
    else {
        unreachable!()
    };
    assert_eq!((*ex, method.as_str()), (0, "POST"));
    assert_eq!(target, "/v1/chat/completions?key=[REDACTED]&alt=sse");
    assert_eq!(authority.as_deref(), Some("api.example.invalid"));
    assert!(headers.contains(&("authorization".into(), "[REDACTED]".into())));
    assert!(headers.contains(&("x-api-key".into(), "[REDACTED]".into())));
    assert!(headers.contains(&("content-type".into(), "application/json".into())));
    assert_eq!(body, &json_body());
    assert!(!truncated && !gap && !late);
    // The gzip, chunked request body is decoded whole.
    let N::Req { body, .. } = reqs[1] else {
        unreachable!()
    };
    assert_eq!(body, &json_body());

    use N::*;
    let expect_tail = |ex: u64, status: u16, data: Option<&[u8]>, reason: EndReason| {
        let mut v = Vec::new();
        let head = got
            .iter()
            .find(|n| matches!(n, Head { ex: e, .. } if *e == ex))
            .unwrap();
        let Head { status: s, .. } = head else {
            unreachable!()
        };
        assert_eq!(*s, status, "exchange {ex}");
        let d: Vec<u8> = got
            .iter()
            .filter_map(|n| match n {
                Data { ex: e, data } if *e == ex => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        match data {
            Some(want) => assert!(
                d == want,
                "exchange {ex}: body differs ({} vs {} bytes)",
                d.len(),
                want.len()
            ),
            None => assert!(d.is_empty(), "exchange {ex} has a body"),
        }
        let end = got
            .iter()
            .find(|n| matches!(n, End { ex: e, .. } if *e == ex))
            .unwrap();
        assert_eq!(
            end,
            &End {
                ex,
                reason,
                truncated: false,
                gap: false,
                capped: false
            }
        );
        v.push(());
    };
    expect_tail(0, 200, Some(&stream), EndReason::Complete);
    expect_tail(1, 200, Some(&answer), EndReason::Complete);
    expect_tail(2, 204, None, EndReason::Complete);
    expect_tail(3, 200, None, EndReason::Complete);
    expect_tail(4, 200, Some(&answer), EndReason::Complete);
    expect_tail(5, 200, Some(&stream), EndReason::Complete);
    expect_tail(6, 200, Some(&answer), EndReason::Complete);
    expect_tail(7, 304, None, EndReason::Complete);
    expect_tail(8, 200, Some(b"until the end"), EndReason::ConnectionClosed);
    // The Set-Cookie value never leaves the parser.
    let Head { headers, .. } = got
        .iter()
        .find(|n| matches!(n, Head { ex: 0, .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert!(headers.contains(&("set-cookie".into(), "[REDACTED]".into())));
    // Order: each exchange's request before its response events.
    let pos = |f: &dyn Fn(&N) -> bool| got.iter().position(f).unwrap();
    for ex in 0..9u64 {
        assert!(
            pos(&|n| matches!(n, Req { ex: e, .. } if *e == ex))
                < pos(&|n| matches!(n, Head { ex: e, .. } if *e == ex))
        );
    }
}

#[test]
fn response_data_arrives_as_it_is_captured() {
    // Each SSE event read in its own record comes out before the next record is fed.
    let stream = sse(5);
    let mut script = vec![msg(
        W,
        request("POST", "/v1/chat/completions", &[], &json_body()),
    )];
    script.push(msg(
        R,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    ));
    let events = stream
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>();
    for e in &events {
        let mut piece = e.to_vec();
        piece.extend_from_slice(b"\n\n");
        script.push(msg(
            R,
            chunked(&[&piece]).strip_suffix(b"0\r\n\r\n").unwrap(),
        ));
    }
    script.push(msg(R, b"0\r\n\r\n"));
    let out = run(records(&script, Split::Whole));
    let data: Vec<(u64, usize)> = out
        .iter()
        .filter_map(|e| match e {
            tracer_core::http::ExchangeEvent::ResponseData { ts_ns, data, .. } => {
                Some((*ts_ns, data.len()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(data.len(), events.len(), "one piece per captured read");
    assert!(
        data.windows(2).all(|w| w[0].0 < w[1].0),
        "each piece carries its own capture time"
    );
}

#[test]
fn pipelined_requests_pair_in_order() {
    let mut both = request("POST", "/a", &[], b"{\"a\":1}");
    both.extend(request("POST", "/b", &[], b"{\"b\":2}"));
    let mut answers = response(200, &[("Content-Length", "1")], b"A");
    answers.extend(response(500, &[("Content-Length", "1")], b"B"));
    let got = split_invariant(&[msg(W, both), msg(R, answers)], 100);
    use N::*;
    let heads: Vec<(u64, u16)> = got
        .iter()
        .filter_map(|n| match n {
            Head { ex, status, .. } => Some((*ex, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(heads, vec![(0, 200), (1, 500)]);
    let data: Vec<(u64, Vec<u8>)> = got
        .iter()
        .filter_map(|n| match n {
            Data { ex, data } => Some((*ex, data.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(data, vec![(0, b"A".to_vec()), (1, b"B".to_vec())]);
}

#[test]
fn late_attach_skips_to_the_next_request() {
    // The capture starts in the middle of a request body and then the middle of its chunked
    // response; the next exchange is parsed cleanly and marked late.
    let junk_req = b"tent\":\"POST /v1/fake HTTP/1.1 not a line\"}]}".to_vec();
    let junk_resp = b"a\r\ndata: {\"x\":1}\r\nHTTP/1.1 200 OK in a body\r\n\r\n0\r\n\r\n".to_vec();
    let script = vec![
        msg(W, junk_req),
        msg(R, junk_resp),
        msg(W, request("POST", "/v1/messages", &[], &json_body())),
        msg(R, response(200, &[("Content-Length", "2")], b"ok")),
        msg(W, request("POST", "/v1/messages", &[], &json_body())),
        msg(R, response(201, &[("Content-Length", "2")], b"ok")),
    ];
    let got = split_invariant(&script, 200);
    use N::*;
    let reqs: Vec<(u64, String, bool)> = got
        .iter()
        .filter_map(|n| match n {
            Req {
                ex, target, late, ..
            } => Some((*ex, target.clone(), *late)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reqs,
        vec![
            (0, "/v1/messages".into(), true),
            (1, "/v1/messages".into(), false)
        ]
    );
    let heads: Vec<(u64, u16)> = got
        .iter()
        .filter_map(|n| match n {
            Head { ex, status, .. } => Some((*ex, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(heads, vec![(0, 200), (1, 201)]);
}

#[test]
fn late_attach_mid_response_yields_nothing_wrong() {
    // Only a response tail and nothing asked: no event at all, counted as dropped.
    let script = vec![msg(R, response(200, &[("Content-Length", "5")], b"hello"))];
    let r = run_with(Default::default(), records(&script, Split::Bytes(3)), true);
    assert!(r.events.is_empty(), "{:?}", r.events);
    let mut drops = Default::default();
    let mut t = r.tracker;
    t.drain_drops(&mut drops);
    assert!(
        drops
            .get("h1_response_without_request")
            .copied()
            .unwrap_or(0)
            > 0,
        "{drops:?}"
    );
}

#[test]
fn gaps_are_flagged_never_glued() {
    use N::*;
    // A hole inside a Content-Length response body: the rest is still delivered, flagged.
    let body = b"0123456789abcdefghij";
    let head = response(200, &[("Content-Length", "20")], b"");
    let script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(R, [&head[..], &body[..5]].concat()),
        Item::Lost(R, 5),
        msg(R, &body[10..]),
        msg(W, request("POST", "/b", &[], b"{}")),
        msg(R, response(200, &[("Content-Length", "1")], b"B")),
    ];
    let got = split_invariant(&script, 100);
    let data: Vec<Vec<u8>> = got
        .iter()
        .filter_map(|n| match n {
            Data { ex: 0, data } => Some(data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(data.concat(), [&body[..5], &body[10..]].concat());
    assert_has(&got, &ended(0, EndReason::Complete, &["gap"]));
    assert_has(&got, &ended(1, EndReason::Complete, &[]));

    // A hole in a chunked body: the exchange ends flagged, the next one is parsed.
    let c = chunked(&[b"hello", b"world"]);
    let script = vec![
        msg(W, request("POST", "/a", &[], b"{}")),
        msg(
            R,
            [
                &response(200, &[("Transfer-Encoding", "chunked")], b"")[..],
                &c[..6],
            ]
            .concat(),
        ),
        Item::Lost(R, 6),
        msg(R, &c[12..]),
        msg(W, request("POST", "/b", &[], b"{}")),
        msg(R, response(200, &[("Content-Length", "1")], b"B")),
    ];
    let got = split_invariant(&script, 100);
    assert_has(&got, &ended(0, EndReason::Abandoned, &["gap"]));
    assert_has(&got, &response_data(1, b"B"));

    // A hole in a request body: the request goes out flagged; a hole in a request head loses
    // that request only.
    let script = vec![
        msg(
            W,
            &[&request("POST", "/a", &[], b"0123456789")[..]].concat()[..60],
        ),
        Item::Lost(W, 1000),
        msg(W, request("POST", "/b", &[], b"{}")),
        msg(R, response(200, &[("Content-Length", "1")], b"B")),
    ];
    let got = split_invariant(&script, 50);
    let reqs: Vec<String> = got
        .iter()
        .filter_map(|n| match n {
            Req { target, .. } => Some(target.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(reqs, vec!["/b".to_string()], "{got:?}");
}

#[test]
fn truncated_records_become_gaps() {
    use tracer_core::event::flags;
    let mut recs = records(
        &[
            msg(W, request("POST", "/a", &[], b"{}")),
            msg(R, response(200, &[("Content-Length", "10")], b"01234")),
            Item::Lost(R, 5),
            msg(W, request("POST", "/b", &[], b"{}")),
            msg(R, response(200, &[("Content-Length", "1")], b"B")),
        ],
        Split::Whole,
    );
    // The kernel captured 5 of 10 bytes of that read: TRUNCATED, no LOST_BEFORE on the next.
    recs[1].flags = flags::TRUNCATED;
    recs[1].len += 5;
    for r in recs.iter_mut() {
        r.flags &= !flags::LOST_BEFORE;
    }
    let got = normalize(&run(recs));
    assert_has(&got, &ended(0, EndReason::Complete, &["gap"]));
    assert_has(&got, &response_data(1, b"B"));
}

#[test]
fn switching_protocols_stops_parsing() {
    let script = vec![
        msg(
            W,
            request(
                "GET",
                "/ws",
                &[("Upgrade", "websocket"), ("Connection", "Upgrade")],
                b"",
            ),
        ),
        msg(
            R,
            response(101, &[("Upgrade", "websocket")], b"\x81\x05hello"),
        ),
        msg(W, b"\x81\x85GET / HTTP/1.1\r\n\r\n"),
    ];
    let got = split_invariant(&script, 30);
    use N::*;
    assert_eq!(got.iter().filter(|n| matches!(n, Req { .. })).count(), 1);
    assert_has(&got, &ended(0, EndReason::Complete, &[]));
}

#[test]
fn process_exit_abandons_open_calls() {
    use tracer_core::event::{flags, TlsEvent};
    let mut recs = records(
        &[
            msg(W, request("POST", "/a", &[], b"{}")),
            msg(
                R,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            ),
        ],
        Split::Whole,
    );
    recs.push(TlsEvent {
        pid: 42,
        tid: 42,
        comm: "python3".into(),
        conn: 0,
        direction: R,
        ts_ns: 99_000,
        offset: 0,
        len: 0,
        data: vec![],
        flags: flags::PROCESS_EXIT,
    });
    let r = run_with(Default::default(), recs, false);
    assert_eq!(r.tracker.open_connections(), 0);
    let got = normalize(&r.events);
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
    assert_has(&got, &response_data(0, b"hello"));
    assert!(r
        .origins
        .iter()
        .all(|o| o.pid == 42 && o.conn == 0xfeed && o.comm == "python3"));
}

#[test]
fn records_after_process_exit_do_not_reopen_the_connection() {
    use tracer_core::event::{flags, TlsEvent};
    let mut recs = records(
        &[
            msg(W, request("POST", "/a", &[], b"{}")),
            msg(R, response(200, &[("Content-Length", "10")], b"01234")),
        ],
        Split::Whole,
    );
    let late = recs.pop().unwrap();
    let exit = TlsEvent {
        pid: 42,
        tid: 42,
        comm: "python3".into(),
        conn: 0,
        direction: R,
        ts_ns: late.ts_ns + 10,
        offset: 0,
        len: 0,
        data: vec![],
        flags: flags::PROCESS_EXIT,
    };
    recs.push(exit);
    recs.push(late.clone());
    // The pid is reused later by a new process: its records are taken.
    let mut reuse = records(&[msg(W, request("POST", "/new", &[], b"{}"))], Split::Whole);
    reuse[0].ts_ns = late.ts_ns + 100;
    recs.extend(reuse);
    let mut r = run_with(Default::default(), recs, false);
    assert_eq!(r.tracker.open_connections(), 1);
    let mut drops = Default::default();
    r.tracker.drain_drops(&mut drops);
    assert_eq!(drops.get("conn_record_after_exit"), Some(&1), "{drops:?}");
    let got = normalize(&r.events);
    assert_has(&got, &ended(0, EndReason::Abandoned, &[]));
    assert!(
        got.iter()
            .any(|n| matches!(n, N::Req { target, .. } if target == "/new")),
        "{got:?}"
    );
}

#[test]
fn a_reused_connection_address_starts_a_new_connection() {
    // Same pid and connection object, offsets from 0 again: the old one is over.
    let first = records(
        &[
            msg(W, request("POST", "/a", &[], b"{}")),
            msg(R, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234"),
        ],
        Split::Whole,
    );
    let mut second = records(
        &[
            msg(W, request("POST", "/b", &[], b"{}")),
            msg(R, response(200, &[("Content-Length", "1")], b"B")),
        ],
        Split::Whole,
    );
    for r in second.iter_mut() {
        r.ts_ns += 1_000_000;
    }
    let mut recs = first;
    recs.extend(second);
    let r = run_with(Default::default(), recs, true);
    assert_eq!(r.tracker.stats().connections_reused, 1);
    let got = normalize(&r.events);
    assert_has(&got, &ended(0, EndReason::ConnectionClosed, &[]));
    assert_has(&got, &response_data(0, b"B"));
}

#[test]
fn idle_connections_expire() {
    use tracer_core::conn::{Tracker, TrackerConfig};
    let recs = records(&[msg(W, request("POST", "/a", &[], b"{}"))], Split::Whole);
    let mut t = Tracker::new(TrackerConfig {
        idle_timeout_ns: 1_000_000,
        ..Default::default()
    });
    let mut sink: Vec<(tracer_core::call::Origin, tracer_core::http::ExchangeEvent)> = Vec::new();
    for r in recs {
        t.feed(r, &mut sink);
    }
    t.tick(500_000, &mut sink);
    assert_eq!(t.open_connections(), 1);
    t.tick(10_000_000, &mut sink);
    assert_eq!(t.open_connections(), 0);
    assert!(matches!(
        sink.last(),
        Some((
            _,
            tracer_core::http::ExchangeEvent::ResponseEnd {
                reason: EndReason::Abandoned,
                ..
            }
        ))
    ));
    assert_eq!(t.stats().connections_expired, 1);
}

#[test]
fn records_reordered_across_cpus_give_the_in_order_result() {
    let (script, _, _) = keep_alive_script();
    for seed in 0..200u64 {
        let recs = records(&script, Split::Random(seed));
        let want = normalize(&run(recs.clone()));
        // Swap neighbouring records of the same direction (as two CPUs committing out of order).
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut shuffled = recs;
        let mut i = 0;
        let mut swaps = 0;
        while i + 1 < shuffled.len() {
            if shuffled[i].direction == shuffled[i + 1].direction && rng.below(3) == 0 {
                shuffled.swap(i, i + 1);
                swaps += 1;
                i += 2;
            } else {
                i += 1;
            }
        }
        assert!(swaps > 0 || seed > 0);
        let mut r = run_with(Default::default(), shuffled, true);
        assert_eq!(normalize(&r.events), want, "seed {seed}");
        let mut drops = tracer_core::http::DropCounts::new();
        r.tracker.drain_drops(&mut drops);
        assert!(
            !drops.keys().any(|k| k.starts_with("conn_")),
            "seed {seed}: {drops:?}"
        );
    }
}

#[test]
fn an_early_answer_sends_the_incomplete_request_first() {
    // The server answers (413) before the request body is complete: the Request goes out at
    // once, flagged truncated, before the response; the rest of the body is skipped and the
    // next exchange pairs normally.
    let req = request(
        "POST",
        "/v1/files",
        &[("Expect", "100-continue")],
        b"0123456789",
    );
    let cut = req.len() - 5;
    let script = vec![
        msg(W, &req[..cut]),
        msg(R, response(413, &[("Content-Length", "3")], b"big")),
        msg(W, &req[cut..]),
        msg(W, request("POST", "/b", &[], b"{}")),
        msg(R, response(200, &[("Content-Length", "1")], b"B")),
    ];
    let got = split_invariant(&script, 100);
    use N::*;
    let N::Req {
        ex: 0,
        body,
        truncated: true,
        ..
    } = &got[0]
    else {
        panic!("{got:?}")
    };
    assert_eq!(body, b"01234");
    assert!(
        matches!(
            got[1],
            Head {
                ex: 0,
                status: 413,
                ..
            }
        ),
        "{got:?}"
    );
    assert_has(&got, &ended(0, EndReason::Complete, &[]));
    assert!(
        got.iter()
            .any(|n| matches!(n, Req { ex: 1, target, truncated: false, .. } if target == "/b")),
        "{got:?}"
    );
    assert_has(&got, &response_data(1, b"B"));
}
