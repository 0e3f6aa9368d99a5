//! Unit tests of the HTTP/2 pieces. Whole-connection tests on generated fixtures are in
//! `tracer-core/tests/h2_*.rs`.

use super::frames::{self, FrameHeader, FrameReader, Step};
use super::hpack_state::{Field, HpackState};
use super::*;

/// A tiny deterministic generator (xorshift), so the tests need no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn frame(kind: u8, flags: u8, sid: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    frames::write_header(&mut v, payload.len() as u32, kind, flags, sid);
    v.extend_from_slice(payload);
    v
}

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Frame(u8, u32, Vec<u8>),
    Lost(u8, u32),
    Data(u32, Vec<u8>),
    End(u32, bool),
    Desync,
    Resynced(u64),
}

fn read_all(from_client: bool, chunks: &[&[u8]]) -> Vec<Seen> {
    let mut r = FrameReader::new(from_client, 1024);
    let mut seen = Vec::new();
    for c in chunks {
        r.feed(c, &mut |s| {
            seen.push(match s {
                Step::Frame { hdr, payload } => {
                    Seen::Frame(hdr.kind, hdr.stream_id, payload.to_vec())
                }
                Step::Lost { hdr } => Seen::Lost(hdr.kind, hdr.stream_id),
                Step::Data { stream_id, data } => Seen::Data(stream_id, data.to_vec()),
                Step::DataEnd {
                    stream_id,
                    end_stream,
                } => Seen::End(stream_id, end_stream),
                Step::Desync { .. } => Seen::Desync,
                Step::Resynced { skipped } => Seen::Resynced(skipped),
            })
        });
    }
    // Merge adjacent data pieces of one stream so that split points do not matter.
    let mut merged: Vec<Seen> = Vec::new();
    for s in seen {
        if let (Some(Seen::Data(a, buf)), Seen::Data(b, d)) = (merged.last_mut(), &s) {
            if a == b {
                buf.extend_from_slice(d);
                continue;
            }
        }
        merged.push(s);
    }
    merged
}

#[test]
fn reader_handles_preface_padding_and_oversize_at_any_split() {
    let mut wire = frames::PREFACE.to_vec();
    wire.extend(frame(frames::SETTINGS, 0, 0, &[0, 1, 0, 0, 0x10, 0]));
    // Padded DATA: pad length 3, "hello", 3 bytes of padding.
    wire.extend(frame(
        frames::DATA,
        frames::FLAG_PADDED | frames::FLAG_END_STREAM,
        1,
        b"\x03hello\0\0\0",
    ));
    wire.extend(frame(frames::PING, 0, 0, b"12345678"));
    wire.extend(frame(
        frames::HEADERS,
        frames::FLAG_END_HEADERS,
        3,
        &[0x82; 2000],
    ));
    wire.extend(frame(frames::DATA, 0, 3, b""));
    let whole = read_all(true, &[&wire]);
    assert_eq!(
        whole,
        vec![
            Seen::Frame(frames::SETTINGS, 0, vec![0, 1, 0, 0, 0x10, 0]),
            Seen::Data(1, b"hello".to_vec()),
            Seen::End(1, true),
            Seen::Frame(frames::PING, 0, b"12345678".to_vec()),
            Seen::Lost(frames::HEADERS, 3),
            Seen::End(3, false),
        ]
    );
    let mut rng = Rng(7);
    for _ in 0..200 {
        let mut chunks = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len() as u64) as usize % 40;
            let n = n.min(rest.len());
            chunks.push(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(read_all(true, &chunks), whole);
    }
}

#[test]
fn reader_resyncs_mid_connection_on_confirmed_headers_only() {
    // Late attach: the capture starts inside a DATA payload that holds text.
    let mut wire = b"rest of a body: {\"x\": 1}\n\n".to_vec();
    wire.extend(frame(frames::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]));
    wire.extend(frame(frames::DATA, frames::FLAG_END_STREAM, 5, b"tail"));
    let seen = read_all(true, &[&wire]);
    assert_eq!(
        seen,
        vec![
            Seen::Desync,
            Seen::Resynced(26),
            Seen::Frame(frames::WINDOW_UPDATE, 0, vec![0, 0, 1, 0]),
            Seen::Data(5, b"tail".to_vec()),
            Seen::End(5, true),
        ]
    );
    // One byte at a time: the same (the decision depends on bytes only).
    let bytes: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(read_all(true, &bytes), seen);
}

#[test]
fn plausibility_rejects_text_and_wrong_direction() {
    let h = |b: &[u8]| FrameHeader::parse(b.try_into().unwrap());
    // ASCII text never has a zero first length byte.
    assert!(!h(b"data: {\"i").plausible(true, 1 << 20));
    // Client HEADERS on an even stream, server PUSH_PROMISE from the client.
    let mut v = Vec::new();
    frames::write_header(&mut v, 10, frames::HEADERS, frames::FLAG_END_HEADERS, 2);
    assert!(!h(&v).plausible(true, 16384));
    assert!(h(&v).plausible(false, 16384));
    v.clear();
    frames::write_header(
        &mut v,
        10,
        frames::PUSH_PROMISE,
        frames::FLAG_END_HEADERS,
        1,
    );
    assert!(!h(&v).plausible(true, 16384));
    // Undefined flags, wrong fixed lengths.
    v.clear();
    frames::write_header(&mut v, 8, frames::PING, 0x2, 0);
    assert!(!h(&v).plausible(false, 16384));
    v.clear();
    frames::write_header(&mut v, 7, frames::SETTINGS, 0, 0);
    assert!(!h(&v).plausible(false, 16384));
}

#[test]
fn sniff_classifies_first_bytes() {
    assert_eq!(sniff(frames::PREFACE), Sniff::Preface);
    assert_eq!(sniff(&frames::PREFACE[..5]), Sniff::NeedMore);
    assert_eq!(
        sniff(b"POST /v1/chat/completions HTTP/1.1\r\n"),
        Sniff::NotH2
    );
    let mut f = frame(frames::WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]);
    assert_eq!(sniff(&f), Sniff::NeedMore);
    f.extend(frame(frames::DATA, 0, 1, b"x"));
    assert_eq!(sniff(&f), Sniff::Frames);
}

/// Header lists with repeats (so the encoder indexes into its dynamic table) and churn (so
/// entries get evicted).
fn header_lists(rng: &mut Rng, n: usize) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let paths = [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/responses",
        "/v1/embeddings",
    ];
    (0..n)
        .map(|i| {
            let mut h: Vec<(Vec<u8>, Vec<u8>)> = vec![
                (b":method".to_vec(), b"POST".to_vec()),
                (
                    b":path".to_vec(),
                    paths[rng.below(4) as usize].as_bytes().to_vec(),
                ),
                (b":authority".to_vec(), b"api.example.test".to_vec()),
                (
                    b"x-request-tag".to_vec(),
                    format!("t{}", rng.below(6)).into_bytes(),
                ),
                (b"x-stainless-lang".to_vec(), b"go".to_vec()),
            ];
            if i % 5 == 0 {
                h.push((b"x-churn".to_vec(), vec![b'a' + (i % 26) as u8; 300 + i]));
            }
            h
        })
        .collect()
}

#[test]
fn hpack_late_mode_never_attributes_a_wrong_field() {
    let mut rng = Rng(0x5eed);
    let lists = header_lists(&mut rng, 60);
    let mut enc = loona_hpack::Encoder::new();
    let blocks: Vec<Vec<u8>> = lists
        .iter()
        .map(|l| enc.encode(l.iter().map(|(n, v)| (&n[..], &v[..]))))
        .collect();

    // Exact: everything known and right.
    let mut exact = HpackState::exact(1 << 20);
    for (b, l) in blocks.iter().zip(&lists) {
        let got = exact.decode(b).expect("decodes");
        assert!(!got.late);
        let want: Vec<Field> = l
            .iter()
            .map(|(n, v)| Field::Known {
                name: n.clone(),
                value: v.clone(),
            })
            .collect();
        assert_eq!(got.fields, want);
    }

    // Attached before block k: known fields are right, the rest is reported unknown.
    let mut recovered = 0;
    for k in 1..blocks.len() {
        let mut late = HpackState::late(1 << 20);
        for (b, l) in blocks[k..].iter().zip(&lists[k..]) {
            let got = late.decode(b).expect("late decode");
            assert!(got.late);
            assert_eq!(got.fields.len(), l.len());
            for (f, (n, v)) in got.fields.iter().zip(l) {
                match f {
                    Field::Known { name, value } => {
                        assert_eq!((name, value), (n, v), "attach at {k}");
                        recovered += 1;
                    }
                    Field::UnknownName { value } => assert_eq!(value, v),
                    Field::Unknown => {}
                }
            }
        }
    }
    assert!(recovered > 1000, "late mode recovers fields ({recovered})");
}

#[test]
fn hpack_grows_the_unknown_table_when_the_encoder_had_a_larger_one() {
    // The encoder used a 16 KiB table before we attached; a reference deep into it is unknown
    // (never wrong, never a failure).
    let mut enc = loona_hpack::Encoder::new();
    enc.set_max_table_size(16 << 10);
    let mut blocks = Vec::new();
    for i in 0..200u32 {
        let v = format!("value-{i}");
        blocks.push(enc.encode([(&b"x-n"[..], v.as_bytes())]));
    }
    // An indexed reference to the 150th newest entry (beyond the 128 placeholders of a default
    // 4 KiB table).
    let mut r = loona_hpack::encoder::encode_integer(62 + 150, 7);
    r[0] |= 0x80;
    blocks.push(r);
    let mut late = HpackState::late(1 << 20);
    let got = late
        .decode(blocks.last().unwrap())
        .expect("decodes after growing");
    assert_eq!(got.fields, vec![Field::Unknown]);
}

#[test]
fn hpack_errors_reset_to_late_mode_without_panicking() {
    let mut rng = Rng(99);
    let mut st = HpackState::exact(1 << 16);
    for _ in 0..5000 {
        let len = rng.below(40) as usize;
        let block: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = st.decode(&block);
    }
    // Truncated dynamic table size updates (a panic in older versions of the hpack crate).
    for b in [
        &[0x3f][..],
        &[0x3f, 0xff],
        &[0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    ] {
        assert!(HpackState::exact(1 << 16).decode(b).is_err());
    }
}

#[test]
fn connection_basic_request_response() {
    let mut enc_c = loona_hpack::Encoder::new();
    let mut enc_s = loona_hpack::Encoder::new();
    let mut client = frames::PREFACE.to_vec();
    client.extend(frame(frames::SETTINGS, 0, 0, &[]));
    let req = enc_c.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"https"),
        (b":path", b"/v1/chat/completions"),
        (b":authority", b"api.openai.com"),
        (b"authorization", b"Bearer fake-key-for-tests"),
        (b"content-type", b"application/json"),
    ]);
    client.extend(frame(frames::HEADERS, frames::FLAG_END_HEADERS, 1, &req));
    client.extend(frame(
        frames::DATA,
        frames::FLAG_END_STREAM,
        1,
        b"{\"model\":\"m\"}",
    ));
    let mut server = frame(frames::SETTINGS, 0, 0, &[]);
    let resp = enc_s.encode([
        (&b":status"[..], &b"200"[..]),
        (b"content-type", b"text/event-stream"),
    ]);
    server.extend(frame(frames::HEADERS, frames::FLAG_END_HEADERS, 1, &resp));
    server.extend(frame(frames::DATA, 0, 1, b"data: 1\n\n"));
    server.extend(frame(
        frames::DATA,
        frames::FLAG_END_STREAM,
        1,
        b"data: [DONE]\n\n",
    ));

    let mut c = H2Connection::new(H2Config::default());
    let mut out = Vec::new();
    c.feed(Direction::Write, 10, &client, &mut out);
    c.feed(Direction::Read, 20, &server[..server.len() - 20], &mut out);
    c.feed(Direction::Read, 30, &server[server.len() - 20..], &mut out);
    assert_eq!(out.len(), 5, "{out:#?}");
    match &out[0] {
        ExchangeEvent::Request {
            exchange,
            head,
            body,
            late_attach,
            ..
        } => {
            assert_eq!(*exchange, 1);
            assert_eq!(head.method, "POST");
            assert_eq!(head.target, "/v1/chat/completions");
            assert_eq!(head.authority.as_deref(), Some("api.openai.com"));
            assert_eq!(head.version, "2");
            assert_ne!(
                head.headers.get("authorization"),
                Some("Bearer fake-key-for-tests")
            );
            assert!(head.headers.get("authorization").is_some());
            assert_eq!(body.bytes, b"{\"model\":\"m\"}");
            assert!(!late_attach);
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(
        matches!(&out[1], ExchangeEvent::ResponseHead { head, ts_ns: 20, .. } if head.status == 200)
    );
    assert!(
        matches!(&out[2], ExchangeEvent::ResponseData { data, ts_ns: 20, .. } if data == b"data: 1\n\n")
    );
    assert!(matches!(
        &out[4],
        ExchangeEvent::ResponseEnd {
            reason: EndReason::Complete,
            ts_ns: 30,
            ..
        }
    ));
    assert_eq!(c.open_streams(), 0);
}

/// A client preface + one request, and a server SETTINGS + response head, for the stress tests.
fn exchange_prelude() -> (Vec<u8>, Vec<u8>) {
    let mut enc_c = loona_hpack::Encoder::new();
    let mut enc_s = loona_hpack::Encoder::new();
    let mut client = frames::PREFACE.to_vec();
    client.extend(frame(frames::SETTINGS, 0, 0, &[]));
    let req = enc_c.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":path", b"/v1/chat/completions"),
        (b":authority", b"api.openai.com"),
    ]);
    client.extend(frame(
        frames::HEADERS,
        frames::FLAG_END_HEADERS | frames::FLAG_END_STREAM,
        1,
        &req,
    ));
    let mut server = frame(frames::SETTINGS, 0, 0, &[]);
    let resp = enc_s.encode([(&b":status"[..], &b"200"[..])]);
    server.extend(frame(frames::HEADERS, frames::FLAG_END_HEADERS, 1, &resp));
    (client, server)
}

#[test]
fn large_body_one_byte_at_a_time_stays_bounded() {
    // 2 MiB of response in 16 KiB DATA frames, fed one byte per call: every byte is handled
    // once (no re-scan: the reader never holds DATA payload) and memory stays flat.
    let (client, mut server) = exchange_prelude();
    let chunk = vec![b'x'; 16 << 10];
    for i in 0..128 {
        let flags = if i == 127 { frames::FLAG_END_STREAM } else { 0 };
        server.extend(frame(frames::DATA, flags, 1, &chunk));
    }
    let mut c = H2Connection::new(H2Config::default());
    let mut out = Vec::new();
    c.feed(Direction::Write, 1, &client, &mut out);
    let mut total = 0usize;
    let mut max_buffered = 0usize;
    for b in server.chunks(1) {
        c.feed(Direction::Read, 2, b, &mut out);
        max_buffered = max_buffered.max(c.buffered_bytes());
        for e in out.drain(..) {
            if let ExchangeEvent::ResponseData { data, .. } = e {
                total += data.len();
            }
        }
    }
    assert_eq!(total, 128 * chunk.len());
    // Two HPACK tables of 4 KiB and no body bytes held.
    assert!(max_buffered < 12 << 10, "buffered {max_buffered}");
    assert_eq!(c.open_streams(), 0);
}

#[test]
fn garbage_one_byte_at_a_time_stays_bounded() {
    // A megabyte of noise as a late-attached connection: the resync scan keeps at most about
    // two maximal frames, whatever the feed size.
    let mut rng = Rng(0xdead_beef);
    let noise: Vec<u8> = (0..1 << 20).map(|_| rng.next() as u8).collect();
    let mut c = H2Connection::new(H2Config::default());
    let mut out = Vec::new();
    let mut max_buffered = 0;
    for (i, b) in noise.chunks(1).enumerate() {
        let dir = if i % 3 == 0 {
            Direction::Read
        } else {
            Direction::Write
        };
        c.feed(dir, i as u64, b, &mut out);
        max_buffered = max_buffered.max(c.buffered_bytes());
    }
    c.close(u64::MAX, EndReason::Abandoned, &mut out);
    assert!(max_buffered < 256 << 10, "buffered {max_buffered}");
    let mut drops = DropCounts::new();
    c.drain_drops(&mut drops);
    // Nearly all of it is counted as skipped (a few chance look-alike frames may pass).
    let skipped = drops.get("h2_resync_skipped_bytes").copied().unwrap_or(0);
    assert!(skipped > 900 << 10, "skipped {skipped}");
}

#[test]
fn interrupted_header_block_keeps_the_stream_with_an_unknown_head() {
    // HEADERS without END_HEADERS, then a DATA frame instead of CONTINUATION (a protocol error
    // a capture can also produce): the exchange still comes out, flagged, with its body.
    let mut enc = loona_hpack::Encoder::new();
    let mut client = frames::PREFACE.to_vec();
    client.extend(frame(frames::SETTINGS, 0, 0, &[]));
    let block = enc.encode([(&b":method"[..], &b"POST"[..]), (b":path", b"/v1/messages")]);
    client.extend(frame(frames::HEADERS, 0, 1, &block));
    client.extend(frame(
        frames::DATA,
        frames::FLAG_END_STREAM,
        1,
        b"{\"model\":\"m\"}",
    ));
    let mut c = H2Connection::new(H2Config::default());
    let mut out = Vec::new();
    c.feed(Direction::Write, 1, &client, &mut out);
    c.close(2, EndReason::ConnectionClosed, &mut out);
    match &out[0] {
        ExchangeEvent::Request {
            exchange: 1,
            head,
            body,
            late_attach: true,
            ..
        } => {
            assert_eq!((head.method.as_str(), head.target.as_str()), ("", ""));
            assert_eq!(body.bytes, b"{\"model\":\"m\"}");
        }
        e => panic!("unexpected {e:?}"),
    }
    assert!(matches!(
        out.last(),
        Some(ExchangeEvent::ResponseEnd {
            reason: EndReason::ConnectionClosed,
            ..
        })
    ));
    assert_eq!(c.drops().get("h2_header_block_interrupted"), Some(&1));
}
