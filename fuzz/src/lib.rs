//! Fuzzing the pure core of llm-tracer.
//!
//! The target bodies ([`targets`]) live in this library: the libFuzzer binaries under
//! `fuzz_targets/` only call them (built by `cargo xtask fuzz`, nightly), and the same bodies run
//! on every seed of the corpus ([`seeds`], built from the project's fixtures) and on every
//! crash input kept under `fuzz/regressions/` as plain tests on stable (`cargo test -p
//! tracer-fuzz`).

pub mod script;
pub mod seeds;
pub mod targets;
