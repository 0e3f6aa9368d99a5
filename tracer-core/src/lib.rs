//! The pure core of llm-tracer.
//!
//! Bytes with timestamps go in, values come out: [`event::TlsEvent`] (one captured chunk of TLS
//! plaintext) -> [`conn`] (per-connection ordered streams) -> [`http`] ([`http::ExchangeEvent`]s)
//! -> [`genai`] ([`call::LlmCall`]s) -> [`spend`]. Nothing in this crate does I/O, spawns, sleeps or
//! reads a clock: every time is the capture's own monotonic timestamp. That is what lets every
//! stage be tested on recorded byte streams split at random points, without root.

pub mod call;
pub mod conn;
pub mod event;
pub mod genai;
pub mod http;
pub mod pipeline;
pub mod record;
pub mod redact;
pub mod spend;
