//! The recording format (`llm-tracer record` / `replay`): one JSON object per [`TlsEvent`], one
//! per line (JSON Lines).
//!
//! ```json
//! {"pid":4242,"tid":4242,"comm":"python3","conn":93824992235120,"direction":"write",
//!  "ts_ns":123456789,"offset":0,"len":5,"data_b64":"aGVsbG8=","flags":0}
//! ```
//!
//! `len` is what the whole call moved; `data_b64` holds the bytes captured in this record, which
//! may be fewer (a call split over several records, or truncated: see [`crate::event::flags`]).
//! Unknown fields are ignored on read, so the format can grow.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::event::{Direction, TlsEvent};

/// One line of a recording, as serialised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordLine {
    pub pid: u32,
    pub tid: u32,
    pub comm: String,
    pub conn: u64,
    pub direction: Direction,
    pub ts_ns: u64,
    pub offset: u64,
    pub len: u32,
    pub data_b64: String,
    pub flags: u32,
}

/// Why a line could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("data_b64 is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("captured {captured} bytes but the call moved only len={len}")]
    LongerThanCall { captured: usize, len: u32 },
}

impl From<&TlsEvent> for RecordLine {
    fn from(e: &TlsEvent) -> Self {
        RecordLine {
            pid: e.pid,
            tid: e.tid,
            comm: e.comm.clone(),
            conn: e.conn,
            direction: e.direction,
            ts_ns: e.ts_ns,
            offset: e.offset,
            len: e.len,
            data_b64: B64.encode(&e.data),
            flags: e.flags,
        }
    }
}

impl TryFrom<RecordLine> for TlsEvent {
    type Error = RecordError;

    fn try_from(r: RecordLine) -> Result<Self, Self::Error> {
        let data = B64.decode(r.data_b64.as_bytes())?;
        if data.len() > r.len as usize {
            return Err(RecordError::LongerThanCall {
                captured: data.len(),
                len: r.len,
            });
        }
        Ok(TlsEvent {
            pid: r.pid,
            tid: r.tid,
            comm: r.comm,
            conn: r.conn,
            direction: r.direction,
            ts_ns: r.ts_ns,
            offset: r.offset,
            len: r.len,
            data,
            flags: r.flags,
        })
    }
}

/// One event as one line of JSON (without the newline).
pub fn encode_line(event: &TlsEvent) -> String {
    // Serialising plain strings and integers cannot fail.
    serde_json::to_string(&RecordLine::from(event)).unwrap_or_default()
}

/// Reads one line back. Blank lines are not records; callers skip them.
pub fn decode_line(line: &str) -> Result<TlsEvent, RecordError> {
    let rec: RecordLine = serde_json::from_str(line)?;
    TlsEvent::try_from(rec)
}

/// Reads a whole recording held in memory: the events in order, and the lines that failed
/// (1-based line number and the reason). A bad line never hides the good ones.
pub fn decode_all(text: &str) -> (Vec<TlsEvent>, Vec<(usize, RecordError)>) {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match decode_line(line) {
            Ok(e) => events.push(e),
            Err(err) => errors.push((i + 1, err)),
        }
    }
    (events, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::flags;

    fn event(data: &[u8], len: u32, flags: u32, direction: Direction) -> TlsEvent {
        TlsEvent {
            pid: 4242,
            tid: 4243,
            comm: "python3".into(),
            conn: 0x5555_5555_a0b0,
            direction,
            ts_ns: 1_234_567_890_123,
            offset: 16384,
            len,
            data: data.to_vec(),
            flags,
        }
    }

    #[test]
    fn round_trips_every_field() {
        let all_bytes: Vec<u8> = (0..=255u8).collect();
        let cases = [
            event(
                b"POST /v1/chat/completions HTTP/1.1\r\n",
                36,
                0,
                Direction::Write,
            ),
            event(&all_bytes, 1_000_000, flags::TRUNCATED, Direction::Read),
            event(b"", 0, flags::PROCESS_EXIT, Direction::Write),
            event(
                b"x",
                7,
                flags::LOST_BEFORE | flags::TRUNCATED,
                Direction::Read,
            ),
        ];
        for e in cases {
            let line = encode_line(&e);
            assert!(!line.contains('\n'), "one record per line: {line}");
            assert_eq!(decode_line(&line).unwrap(), e);
        }
    }

    #[test]
    fn writes_the_documented_field_names() {
        let line = encode_line(&event(b"hello", 5, 0, Direction::Write));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["direction"], "write");
        assert_eq!(v["data_b64"], "aGVsbG8=");
        assert_eq!(v["comm"], "python3");
        assert_eq!(v["pid"], 4242);
        assert_eq!(v["tid"], 4243);
        assert_eq!(v["conn"], 0x5555_5555_a0b0u64);
        assert_eq!(v["ts_ns"], 1_234_567_890_123u64);
        assert_eq!(v["offset"], 16384);
        assert_eq!(v["len"], 5);
        assert_eq!(v["flags"], 0);
        let read = encode_line(&event(b"", 0, 0, Direction::Read));
        assert!(read.contains("\"direction\":\"read\""), "{read}");
    }

    #[test]
    fn reads_lines_written_by_hand_and_ignores_unknown_fields() {
        let line = r#"{"pid":1,"tid":2,"comm":"curl","conn":3,"direction":"read","ts_ns":4,"offset":5,"len":3,"data_b64":"YWJj","flags":1,"future":true}"#;
        let e = decode_line(line).unwrap();
        assert_eq!(e.data, b"abc");
        assert_eq!(e.direction, Direction::Read);
        assert!(e.has(flags::TRUNCATED));
    }

    #[test]
    fn bad_lines_are_errors_not_panics_and_do_not_hide_good_ones() {
        let good = encode_line(&event(b"ok", 2, 0, Direction::Write));
        let text = format!(
            "{good}\n\nnot json\n{{\"pid\":1}}\n{}\n{}\n{good}\n",
            good.replace("b2s=", "!!!"),
            good.replace("\"len\":2", "\"len\":1"),
        );
        let (events, errors) = decode_all(&text);
        assert_eq!(events.len(), 2);
        let lines: Vec<usize> = errors.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, vec![3, 4, 5, 6]);
        assert!(matches!(errors[2].1, RecordError::Base64(_)));
        assert!(matches!(errors[3].1, RecordError::LongerThanCall { .. }));
    }
}
