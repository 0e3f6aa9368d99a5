//! Incremental body framings used by LLM streams: SSE ([`sse`]), NDJSON ([`ndjson`]), AWS event
//! stream ([`eventstream`]) and a streamed JSON array ([`json_array`]).
//!
//! Every decoder is fed the decoded body piece by piece, in any split (down to one byte at a
//! time), keeps only the message being assembled (bounded by `max_message` bytes: a bigger one is
//! skipped whole and counted in `dropped()`), and runs in linear time: each input byte is looked at
//! a bounded number of times, never rescanned per push.

pub mod eventstream;
pub mod json_array;
pub mod ndjson;
pub mod sse;

/// Default cap of one framed message (one SSE event, one NDJSON line, one event-stream frame,
/// one array element).
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;
