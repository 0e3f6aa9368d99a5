//! AWS event stream (`application/vnd.amazon.eventstream`, Bedrock streaming): length-prefixed
//! binary frames, big-endian:
//!
//! ```text
//! total_len u32 | headers_len u32 | prelude_crc u32 | headers | payload | message_crc u32
//! ```
//!
//! `prelude_crc` = CRC-32 of the first 8 bytes, `message_crc` = CRC-32 of everything before it.
//! A frame whose prelude does not check out is not trusted: the decoder slides one byte and looks
//! for the next valid prelude (counted in `corrupt()`); a frame whose message CRC fails is
//! dropped (counted too).

use crc32fast::hash;

const PRELUDE: usize = 12;
const MIN_FRAME: usize = 16;

/// One decoded message: the standard headers and the payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventStreamMessage {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: Option<String>,
    /// `:event-type` (`messageStart`, `contentBlockDelta`, `metadata`, `chunk`, ...).
    pub event_type: Option<String>,
    /// `:exception-type` (`throttlingException`, `modelStreamErrorException`, ...).
    pub exception_type: Option<String>,
    /// `:error-code`, for `error` messages.
    pub error_code: Option<String>,
    pub content_type: Option<String>,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct EventStreamDecoder {
    max_frame: usize,
    buf: Vec<u8>,
    /// Bytes of an oversized frame still to skip.
    skip: usize,
    dropped: u64,
    corrupt: u64,
}

impl EventStreamDecoder {
    pub fn new(max_frame: usize) -> Self {
        EventStreamDecoder {
            max_frame: max_frame.max(MIN_FRAME),
            buf: Vec::new(),
            skip: 0,
            dropped: 0,
            corrupt: 0,
        }
    }

    /// Frames skipped because they were bigger than the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Bytes or frames discarded because a CRC or a length did not check out.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<EventStreamMessage>) {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(input.len());
                self.skip -= n;
                input = &input[n..];
                if self.skip > 0 {
                    return;
                }
            }
            // Take only what the current frame needs, so the buffer never holds more than one
            // frame (and each byte is copied once).
            let need = self.needed();
            let take = need.saturating_sub(self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.buf.len() < need {
                return;
            }
            self.step(out);
        }
    }

    /// The body ended: a partial frame left over is counted as dropped.
    pub fn finish(&mut self) {
        if !self.buf.is_empty() || self.skip > 0 {
            self.dropped += 1;
        }
        self.buf.clear();
        self.skip = 0;
    }

    /// Bytes the buffer must hold before the next step can run.
    fn needed(&self) -> usize {
        if self.buf.len() < PRELUDE {
            PRELUDE
        } else {
            be32(&self.buf[0..4]) as usize
        }
    }

    fn step(&mut self, out: &mut Vec<EventStreamMessage>) {
        if self.buf.len() == PRELUDE {
            let total = be32(&self.buf[0..4]) as usize;
            let headers = be32(&self.buf[4..8]) as usize;
            let valid = hash(&self.buf[0..8]) == be32(&self.buf[8..12])
                && total >= MIN_FRAME
                && headers <= total - MIN_FRAME;
            if !valid {
                // Resynchronise: drop one byte, look again at the next one.
                self.corrupt += 1;
                self.buf.remove(0);
                return;
            }
            if total > self.max_frame {
                self.dropped += 1;
                self.skip = total - PRELUDE;
                self.buf.clear();
            }
            return;
        }
        let frame = std::mem::take(&mut self.buf);
        let total = frame.len();
        if hash(&frame[..total - 4]) != be32(&frame[total - 4..]) {
            self.corrupt += 1;
            return;
        }
        let headers_len = be32(&frame[4..8]) as usize;
        let mut msg = EventStreamMessage {
            payload: frame[PRELUDE + headers_len..total - 4].to_vec(),
            ..Default::default()
        };
        if parse_headers(&frame[PRELUDE..PRELUDE + headers_len], &mut msg).is_none() {
            self.corrupt += 1;
            return;
        }
        out.push(msg);
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Header records: `name_len u8 | name | type u8 | value`. `None` when malformed.
fn parse_headers(mut h: &[u8], msg: &mut EventStreamMessage) -> Option<()> {
    while !h.is_empty() {
        let name_len = *h.first()? as usize;
        let name = h.get(1..1 + name_len)?;
        let kind = *h.get(1 + name_len)?;
        h = &h[2 + name_len..];
        let value_len = match kind {
            0 | 1 => 0,
            2 => 1,
            3 => 2,
            4 => 4,
            5 | 8 => 8,
            9 => 16,
            6 | 7 => {
                let l = h.get(0..2)?;
                2 + u16::from_be_bytes([l[0], l[1]]) as usize
            }
            _ => return None,
        };
        let value = h.get(..value_len)?;
        if kind == 7 {
            let s = String::from_utf8_lossy(&value[2..]).into_owned();
            match name {
                b":message-type" => msg.message_type = Some(s),
                b":event-type" => msg.event_type = Some(s),
                b":exception-type" => msg.exception_type = Some(s),
                b":error-code" => msg.error_code = Some(s),
                b":content-type" => msg.content_type = Some(s),
                _ => {}
            }
        }
        h = &h[value_len..];
    }
    Some(())
}

/// Encode one frame with string headers (fixtures and tests).
pub fn encode_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut hb = Vec::new();
    for (name, value) in headers {
        hb.push(name.len() as u8);
        hb.extend_from_slice(name.as_bytes());
        hb.push(7);
        hb.extend_from_slice(&(value.len() as u16).to_be_bytes());
        hb.extend_from_slice(value.as_bytes());
    }
    let total = PRELUDE + hb.len() + payload.len() + 4;
    let mut f = Vec::with_capacity(total);
    f.extend_from_slice(&(total as u32).to_be_bytes());
    f.extend_from_slice(&(hb.len() as u32).to_be_bytes());
    let prelude_crc = hash(&f[0..8]);
    f.extend_from_slice(&prelude_crc.to_be_bytes());
    f.extend_from_slice(&hb);
    f.extend_from_slice(payload);
    let crc = hash(&f);
    f.extend_from_slice(&crc.to_be_bytes());
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the wire-format reference (§8.4), byte for byte.
    const REFERENCE_FRAME: &str = "0000009f00000057c37babff0b3a6576656e742d747970650700116\
        36f6e74656e74426c6f636b44656c74610d3a636f6e74656e742d747970650700106170706c6963617469\
        6f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74426c6f636b\
        496e646578223a302c2264656c7461223a7b2274657874223a224869227d2c2270223a2261626364227df2\
        ace5ff";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn reference_frame_decodes_and_encoder_matches_it() {
        let frame = unhex(REFERENCE_FRAME);
        assert_eq!(frame.len(), 159);
        let encoded = encode_frame(
            &[
                (":event-type", "contentBlockDelta"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            br#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abcd"}"#,
        );
        assert_eq!(encoded, frame);
        for step in 1..=frame.len() {
            let mut d = EventStreamDecoder::new(1 << 20);
            let mut out = Vec::new();
            for p in frame.chunks(step) {
                d.push(p, &mut out);
            }
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].event_type.as_deref(), Some("contentBlockDelta"));
            assert_eq!(out[0].message_type.as_deref(), Some("event"));
            assert_eq!(out[0].content_type.as_deref(), Some("application/json"));
            assert!(out[0].payload.starts_with(b"{\"contentBlockIndex\""));
            assert_eq!(d.buffered(), 0);
        }
    }

    #[test]
    fn corrupt_bytes_are_skipped_and_bad_crc_frames_dropped() {
        let good = encode_frame(&[(":message-type", "event")], b"{}");
        let mut bad = encode_frame(&[(":message-type", "event")], b"{\"x\":1}");
        let n = bad.len();
        bad[n - 6] ^= 0xff; // payload byte: message CRC fails
        let mut input = b"garbage!".to_vec();
        input.extend_from_slice(&good);
        input.extend_from_slice(&bad);
        input.extend_from_slice(&good);
        let mut d = EventStreamDecoder::new(1 << 20);
        let mut out = Vec::new();
        for p in input.chunks(3) {
            d.push(p, &mut out);
        }
        assert_eq!(out.len(), 2);
        assert_eq!(d.corrupt(), 8 + 1);
    }

    #[test]
    fn oversized_frame_skipped_without_buffering() {
        let big = encode_frame(&[(":event-type", "chunk")], &[b'a'; 500]);
        let small = encode_frame(&[(":event-type", "chunk")], b"{}");
        let mut input = big.clone();
        input.extend_from_slice(&small);
        let mut d = EventStreamDecoder::new(100);
        let mut out = Vec::new();
        for p in input.chunks(7) {
            d.push(p, &mut out);
            assert!(d.buffered() <= 100);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(d.dropped(), 1);
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let len = rng.usize(0..300);
            let input: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let mut d = EventStreamDecoder::new(1 << 16);
            let mut out = Vec::new();
            d.push(&input, &mut out);
            d.finish();
        }
    }
}
