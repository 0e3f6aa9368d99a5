//! Every fixture under `fixtures/genai/<name>/` (request.http, response.http, expected.json) is
//! fed to a `Recognizer`:
//! - one byte at a time: the `LlmCall` must equal `expected.json` field for field;
//! - whole, and at many random split points: the call must be identical, except the time of
//!   first output, which must be the timestamp of the piece holding the byte that completed the
//!   first output message (predicted from the one-byte run);
//! - with content capture off: identical but `content` is None.
//!
//! `BLESS=1 cargo test -p tracer-core --test genai_fixtures` rewrites `expected.json` from the
//! one-byte run (review the diff!).

use std::path::{Path, PathBuf};

use tracer_core::call::{LlmCall, Origin};
use tracer_core::genai::fixture::{Fixture, BODY_BASE_NS};
use tracer_core::genai::{Recognizer, RecognizerConfig};
use tracer_core::http::EndReason;

const CONTENT_CAP: usize = 4096;

fn origin() -> Origin {
    Origin {
        pid: 4242,
        tid: 4243,
        comm: "python3".into(),
        conn: 0xdead_beef,
    }
}

fn fixtures() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/genai");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures/genai exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("request.http").exists())
        .collect();
    dirs.sort();
    dirs
}

fn load(dir: &Path) -> Fixture {
    let req = std::fs::read(dir.join("request.http")).unwrap();
    let resp = std::fs::read(dir.join("response.http")).unwrap();
    Fixture::parse(&req, &resp).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

fn run(f: &Fixture, cuts: &[usize], capture: Option<usize>) -> LlmCall {
    let mut r = Recognizer::new(RecognizerConfig {
        capture_content: capture,
        ..Default::default()
    });
    let mut calls = Vec::new();
    for ev in f.events(1, cuts, EndReason::Complete) {
        calls.extend(r.on_event(&origin(), ev));
    }
    calls.extend(r.finish(u64::MAX));
    assert_eq!(calls.len(), 1, "exactly one call per claimed exchange");
    calls.pop().unwrap()
}

/// The first-output time a split must give: the end of the piece holding byte `p - 1`, where
/// the one-byte run says the completing byte ended at `p`.
fn predicted(one_byte: &LlmCall, cuts: &[usize], len: usize) -> Option<u64> {
    let p = (one_byte.timing.first_output_ns? - BODY_BASE_NS) as usize;
    let end = cuts
        .iter()
        .copied()
        .chain(std::iter::once(len))
        .filter(|&c| c >= p)
        .min()
        .unwrap_or(len);
    Some(BODY_BASE_NS + end as u64)
}

#[test]
fn fixtures_match_expected_at_every_split() {
    let dirs = fixtures();
    assert!(dirs.len() >= 2, "fixtures found: {}", dirs.len());
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let f = load(dir);
        let len = f.response_body.len();
        let every: Vec<usize> = (1..len).collect();
        let one_byte = run(&f, &every, Some(CONTENT_CAP));
        let expected_path = dir.join("expected.json");
        if bless {
            let mut s = serde_json::to_string_pretty(&one_byte).unwrap();
            s.push('\n');
            std::fs::write(&expected_path, s).unwrap();
        }
        let expected: LlmCall = serde_json::from_slice(
            &std::fs::read(&expected_path)
                .unwrap_or_else(|_| panic!("{name}: no expected.json (run with BLESS=1)")),
        )
        .unwrap();
        if one_byte != expected {
            failures.push(format!(
                "{name}: one-byte run differs from expected.json\n got: {}\nwant: {}",
                serde_json::to_string(&one_byte).unwrap(),
                serde_json::to_string(&expected).unwrap()
            ));
            continue;
        }
        let mut rng = fastrand::Rng::with_seed(0x5eed ^ len as u64);
        let mut splits: Vec<Vec<usize>> = vec![vec![]];
        for _ in 0..60 {
            let n = rng.usize(1..=8.min(len.max(1)));
            let mut cuts: Vec<usize> = (0..n).map(|_| rng.usize(0..=len)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            splits.push(cuts);
        }
        for cuts in &splits {
            for capture in [Some(CONTENT_CAP), None] {
                let got = run(&f, cuts, capture);
                let mut want = expected.clone();
                want.timing.first_output_ns = predicted(&expected, cuts, len);
                if capture.is_none() {
                    want.content = None;
                }
                if got != want {
                    failures.push(format!(
                        "{name}: split {cuts:?} capture {capture:?}\n got: {}\nwant: {}",
                        serde_json::to_string(&got).unwrap(),
                        serde_json::to_string(&want).unwrap()
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
