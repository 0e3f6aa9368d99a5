//! Split invariance of the stream framings: for random inputs built from the characters that
//! matter to each grammar, decoding in random pieces (down to one byte) gives exactly what
//! decoding the whole input gives, drop counts included.

use tracer_core::http::framing::eventstream::{encode_frame, EventStreamDecoder};
use tracer_core::http::framing::json_array::JsonArrayDecoder;
use tracer_core::http::framing::ndjson::NdjsonDecoder;
use tracer_core::http::framing::sse::SseDecoder;

fn random_input(rng: &mut fastrand::Rng, alphabet: &[&[u8]]) -> Vec<u8> {
    let n = rng.usize(0..400);
    let mut v = Vec::new();
    for _ in 0..n {
        v.extend_from_slice(alphabet[rng.usize(..alphabet.len())]);
    }
    v
}

fn pieces(rng: &mut fastrand::Rng, input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < input.len() {
        let n = if rng.bool() { 1 } else { rng.usize(1..=16) };
        let end = (at + n).min(input.len());
        out.push(input[at..end].to_vec());
        at = end;
    }
    out
}

#[test]
fn sse_is_split_invariant() {
    let alphabet: &[&[u8]] = &[
        b"data:",
        b"data: ",
        b"event: x",
        b"id: 1",
        b": c",
        b"\n",
        b"\r",
        b"\r\n",
        b"a",
        b"{}",
        b":",
        b" ",
        b"retry: 5",
        b"\n\n",
    ];
    let mut rng = fastrand::Rng::with_seed(1);
    for _ in 0..2000 {
        let input = random_input(&mut rng, alphabet);
        let whole = {
            let mut d = SseDecoder::new(64);
            let mut out = Vec::new();
            d.push(&input, &mut out);
            d.finish(&mut out);
            (out, d.dropped())
        };
        let split = {
            let mut d = SseDecoder::new(64);
            let mut out = Vec::new();
            for p in pieces(&mut rng, &input) {
                d.push(&p, &mut out);
            }
            d.finish(&mut out);
            (out, d.dropped())
        };
        assert_eq!(whole, split, "input {:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn ndjson_is_split_invariant() {
    let alphabet: &[&[u8]] = &[b"{\"a\":1}", b"\n", b"\r\n", b" ", b"x", b"{", b"}"];
    let mut rng = fastrand::Rng::with_seed(2);
    for _ in 0..2000 {
        let input = random_input(&mut rng, alphabet);
        let run = |ps: Vec<Vec<u8>>| {
            let mut d = NdjsonDecoder::new(40);
            let mut out = Vec::new();
            for p in ps {
                d.push(&p, &mut out);
            }
            d.finish(&mut out);
            (out, d.dropped())
        };
        let whole = run(vec![input.clone()]);
        let split = run(pieces(&mut rng, &input));
        assert_eq!(whole, split);
    }
}

#[test]
fn json_array_is_split_invariant_and_yields_valid_json_for_valid_arrays() {
    let alphabet: &[&[u8]] = &[
        b"[",
        b"]",
        b"{",
        b"}",
        b"\"",
        b"\\",
        b",",
        b"1",
        b" ",
        b"\n",
        b"\"s\"",
        b"{\"k\":[1,2]}",
    ];
    let mut rng = fastrand::Rng::with_seed(3);
    for _ in 0..3000 {
        let input = random_input(&mut rng, alphabet);
        let run = |ps: Vec<Vec<u8>>| {
            let mut d = JsonArrayDecoder::new(80);
            let mut out = Vec::new();
            for p in ps {
                d.push(&p, &mut out);
            }
            d.finish();
            (out, d.dropped())
        };
        let whole = run(vec![input.clone()]);
        let split = run(pieces(&mut rng, &input));
        assert_eq!(whole, split);
    }
    // Valid arrays of objects: every element comes out and parses.
    for n in 0..20 {
        let elems: Vec<String> = (0..n)
            .map(|i| format!("{{\"i\":{i},\"s\":\"a]}}\\\"[{{\",\"v\":[{i},{{}}]}}"))
            .collect();
        let input = format!("[{}]", elems.join(",\r\n"));
        let mut d = JsonArrayDecoder::new(1000);
        let mut out = Vec::new();
        for p in pieces(&mut rng, input.as_bytes()) {
            d.push(&p, &mut out);
        }
        assert_eq!(out.len(), n);
        for (i, e) in out.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_slice(e).unwrap();
            assert_eq!(v["i"], i);
        }
    }
}

#[test]
fn eventstream_is_split_invariant_with_noise() {
    let mut rng = fastrand::Rng::with_seed(4);
    for _ in 0..500 {
        let mut input = Vec::new();
        for _ in 0..rng.usize(0..6) {
            match rng.usize(0..4) {
                0 => input.extend((0..rng.usize(1..20)).map(|_| rng.u8(..))),
                1 => {
                    let mut f = encode_frame(&[(":event-type", "chunk")], b"{\"a\":1}");
                    let i = rng.usize(..f.len());
                    f[i] ^= 1 << rng.u8(0..8);
                    input.extend(f);
                }
                _ => input.extend(encode_frame(
                    &[
                        (":message-type", "event"),
                        (":event-type", "contentBlockDelta"),
                    ],
                    &vec![b'x'; rng.usize(0..200)],
                )),
            }
        }
        let run = |ps: Vec<Vec<u8>>| {
            let mut d = EventStreamDecoder::new(150);
            let mut out = Vec::new();
            for p in ps {
                d.push(&p, &mut out);
            }
            (out, d.dropped(), d.corrupt())
        };
        let whole = run(vec![input.clone()]);
        let split = run(pieces(&mut rng, &input));
        assert_eq!(whole, split);
    }
}
