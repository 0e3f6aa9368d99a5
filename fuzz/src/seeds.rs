//! The seed corpus of every target, built from the project's test fixtures
//! (`tracer-core/fixtures/genai/*`, `tracer-core/tests/fixtures/h2/*.json`): the fuzzer starts
//! from real provider traffic and mutates from there.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracer_core::genai::fixture::Fixture;

use crate::script::Script;
use crate::targets::{content_type_index, endpoints, genai_input};

/// All fuzz target names (the binaries under `fuzz/fuzz_targets/`).
pub const TARGETS: &[&str] = &[
    "http1",
    "h2",
    "decode",
    "sse",
    "ndjson",
    "eventstream",
    "json_array",
    "pipeline",
    "genai_openai",
    "genai_anthropic",
    "genai_gemini",
    "genai_bedrock",
    "genai_ollama",
    "genai_cohere",
    "genai_azure",
];

/// Run target `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    use crate::targets::*;
    match name {
        "http1" => http1(data),
        "h2" => h2(data),
        "decode" => decode(data),
        "sse" => sse(data),
        "ndjson" => ndjson(data),
        "eventstream" => eventstream(data),
        "json_array" => json_array(data),
        "pipeline" => pipeline(data),
        "genai_openai" => genai_openai(data),
        "genai_anthropic" => genai_anthropic(data),
        "genai_gemini" => genai_gemini(data),
        "genai_bedrock" => genai_bedrock(data),
        "genai_ollama" => genai_ollama(data),
        "genai_cohere" => genai_cohere(data),
        "genai_azure" => genai_azure(data),
        other => panic!("no fuzz target {other}"),
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("fuzz/ is inside the workspace")
        .to_path_buf()
}

/// The genai fixtures: (name, parsed fixture).
pub fn fixtures() -> Vec<(String, Fixture)> {
    let dir = repo().join("tracer-core/fixtures/genai");
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for path in entries {
        let (Ok(req), Ok(resp)) = (
            std::fs::read(path.join("request.http")),
            std::fs::read(path.join("response.http")),
        ) else {
            continue;
        };
        let fx = Fixture::parse(&req, &resp)
            .unwrap_or_else(|e| panic!("fixture {}: {e}", path.display()));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.push((name, fx));
    }
    out
}

/// Records of the HTTP/2 fixtures: (write side bytes, read side bytes) per file.
fn h2_streams() -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = repo().join("tracer-core/tests/fixtures/h2");
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return out;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let (mut w, mut r) = (Vec::new(), Vec::new());
        for rec in v["records"].as_array().into_iter().flatten() {
            let bytes = hex(rec["hex"].as_str().unwrap_or(""));
            match rec["dir"].as_str() {
                Some("write") => w.extend(bytes),
                _ => r.extend(bytes),
            }
        }
        out.push((w, r));
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("in memory");
    }
    out
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).expect("in memory")
}

/// A chunked response with the given content encoding.
fn http1_response(fx: &Fixture, coding: Option<&str>, chunk: usize) -> Vec<u8> {
    let body = match coding {
        Some("gzip") => gzip(&fx.response_body),
        Some("br") => brotli(&fx.response_body),
        Some("zstd") => zstd(&fx.response_body),
        Some("deflate") => zlib(&fx.response_body),
        _ => fx.response_body.clone(),
    };
    let mut out = format!("HTTP/1.1 {} X\r\n", fx.response.status).into_bytes();
    for (n, v) in &fx.response.headers.0 {
        if ["content-length", "transfer-encoding", "content-encoding"].contains(&n.as_str()) {
            continue;
        }
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    if let Some(c) = coding {
        out.extend_from_slice(format!("content-encoding: {c}\r\n").as_bytes());
    }
    out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    for piece in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Which provider family's endpoints a fixture belongs to (by its host and path).
fn family(fx: &Fixture) -> Option<(&'static str, usize)> {
    let host = fx.request.authority.clone().unwrap_or_default();
    let host = fx
        .request
        .headers
        .get("host")
        .map(str::to_string)
        .unwrap_or(host);
    let target = &fx.request.target;
    for fam in [
        "bedrock",
        "gemini",
        "azure",
        "ollama",
        "cohere",
        "anthropic",
        "openai",
    ] {
        let eps = endpoints(fam);
        let path = target.split('?').next().unwrap_or("");
        if let Some(i) = eps
            .iter()
            .position(|(h, t)| *h == host && t.split('?').next() == Some(path))
        {
            return Some((fam, i));
        }
    }
    let fam = if host.contains("bedrock-mantle") || target.contains("anthropic") {
        "anthropic"
    } else if host.contains("bedrock") {
        "bedrock"
    } else if host.contains("googleapis") {
        "gemini"
    } else if host.contains("azure") {
        "azure"
    } else if host.contains("11434") {
        "ollama"
    } else if host.contains("cohere") {
        "cohere"
    } else if target.contains("/messages") {
        "anthropic"
    } else {
        "openai"
    };
    Some((fam, 0))
}

/// The seeds of `target`.
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let fxs = fixtures();
    let mut out = Vec::new();
    match target {
        "http1" => {
            for (i, (_, fx)) in fxs.iter().enumerate() {
                let coding = [
                    None,
                    Some("gzip"),
                    Some("br"),
                    Some("zstd"),
                    Some("deflate"),
                ][i % 5];
                let resp = http1_response(fx, coding, 97 + i * 13);
                let req = fx.request_http1();
                out.push(Script::encode(i as u64, &[&req, &resp]));
                if i % 7 == 0 {
                    // keep-alive: two exchanges on the connection
                    out.push(Script::encode(
                        i as u64 + 2,
                        &[&req, &fx.response_http1(), &req, &resp],
                    ));
                }
            }
        }
        "h2" => {
            for (i, (w, r)) in h2_streams().iter().enumerate() {
                out.push(Script::encode(i as u64, &[w, r]));
                out.push(Script::encode(i as u64 + 1, &[w, r]));
            }
        }
        "decode" => {
            for (i, (_, fx)) in fxs.iter().enumerate().step_by(3) {
                let b = &fx.response_body;
                for (c, enc) in [
                    (0u8, b.clone()),
                    (1, gzip(b)),
                    (2, zlib(b)),
                    (2, raw_deflate(b)),
                    (3, brotli(b)),
                    (4, zstd(b)),
                ] {
                    let mut first = vec![c];
                    first.extend_from_slice(&enc);
                    out.push(Script::encode(i as u64 + u64::from(c), &[&first]));
                }
            }
        }
        "sse" | "ndjson" | "eventstream" | "json_array" => {
            let want = match target {
                "sse" => "text/event-stream",
                "ndjson" => "ndjson",
                "eventstream" => "eventstream",
                _ => "application/json",
            };
            for (i, (_, fx)) in fxs.iter().enumerate() {
                let ct = fx
                    .response
                    .headers
                    .get("content-type")
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let is_es = target == "eventstream" && fx.request.target.contains("stream");
                if ct.contains(want) || is_es {
                    out.push(Script::encode(i as u64, &[&fx.response_body]));
                }
            }
        }
        "pipeline" => {
            for (i, (_, fx)) in fxs.iter().enumerate() {
                let req = fx.request_http1();
                let resp = fx.response_http1();
                let mut parts: Vec<&[u8]> = vec![&req, &resp];
                if i % 4 == 0 {
                    parts.extend([&req[..], &resp[..]]);
                }
                // seed low bits: split mode; bits 8..: connections
                out.push(Script::encode((i as u64) << 8 | (i as u64 % 4), &parts));
            }
            for (i, (w, r)) in h2_streams().iter().enumerate() {
                out.push(Script::encode(i as u64, &[w, r]));
            }
        }
        t if t.starts_with("genai_") => {
            let fam = &t["genai_".len()..];
            for (i, (_, fx)) in fxs.iter().enumerate() {
                let Some((f, ep)) = family(fx) else { continue };
                if f != fam {
                    continue;
                }
                let ct = fx.response.headers.get("content-type").unwrap_or("");
                let ct = if ct.is_empty() && fx.request.target.contains("stream") {
                    "application/vnd.amazon.eventstream"
                } else {
                    ct
                };
                let x = (
                    &fx.request_body[..],
                    fx.response.status,
                    content_type_index(ct),
                    &fx.response_body[..],
                );
                for capture in [0u64, 1] {
                    let seed = (i as u64 % 4) | (ep as u64) << 8 | capture << 16;
                    out.push(genai_input(seed, &[x]));
                }
                out.push(genai_input(1 | (ep as u64) << 8, &[x, x]));
            }
        }
        other => panic!("no fuzz target {other}"),
    }
    out
}
