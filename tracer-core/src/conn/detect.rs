//! Which protocol a connection speaks, from its first captured bytes.
//!
//! HTTP/2 starts with the client preface; a connection seen mid-way (tracer attached late) starts
//! with frames, whose 9-byte header has a small length (so a zero first byte), a known type and
//! a clear reserved bit. Anything else is HTTP/1.1, whose parser resynchronises by itself.

use crate::event::Direction;

pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Largest frame payload before SETTINGS_MAX_FRAME_SIZE is raised (RFC 9113 §4.2).
const DEFAULT_MAX_FRAME: u32 = 16_384;
/// Bytes looked at before settling on HTTP/1.1.
const MAX_HELD: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// Whether `b` (at least 9 bytes) starts like an HTTP/2 frame header.
pub fn plausible_h2_frame(b: &[u8]) -> bool {
    if b.len() < 9 {
        return false;
    }
    let len = u32::from_be_bytes([0, b[0], b[1], b[2]]);
    let kind = b[3];
    len <= DEFAULT_MAX_FRAME && kind <= 0x9 && b[5] & 0x80 == 0
}

/// Decide from the bytes held so far (in arrival order); `None`: need more bytes.
pub fn detect(held: &[(Direction, u64, Vec<u8>)]) -> Option<Protocol> {
    let mut write = Vec::new();
    let mut read = Vec::new();
    for (d, _, data) in held {
        let v = if *d == Direction::Write {
            &mut write
        } else {
            &mut read
        };
        v.extend_from_slice(&data[..data.len().min(MAX_HELD)]);
    }
    let first = if write.is_empty() { &read } else { &write };
    if first.is_empty() {
        return None;
    }
    if !write.is_empty() {
        let n = write.len().min(H2_PREFACE.len());
        if write[..n] == H2_PREFACE[..n] {
            return (n == H2_PREFACE.len()).then_some(Protocol::Http2);
        }
    }
    if first[0] != 0 {
        return Some(Protocol::Http1);
    }
    if first.len() >= 9 {
        return Some(if plausible_h2_frame(first) {
            Protocol::Http2
        } else {
            Protocol::Http1
        });
    }
    (write.len() + read.len() > MAX_HELD).then_some(Protocol::Http1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(b: &[u8]) -> Vec<(Direction, u64, Vec<u8>)> {
        vec![(Direction::Write, 0, b.to_vec())]
    }

    #[test]
    fn decisions() {
        assert_eq!(detect(&w(H2_PREFACE)), Some(Protocol::Http2));
        assert_eq!(detect(&w(b"PRI * HT")), None);
        assert_eq!(detect(&w(b"P")), None);
        assert_eq!(detect(&w(b"POST / HTTP/1.1\r\n")), Some(Protocol::Http1));
        assert_eq!(detect(&w(b"{\"model\"")), Some(Protocol::Http1));
        // A HEADERS frame of 0x40 bytes on stream 3.
        assert_eq!(
            detect(&w(&[0, 0, 0x40, 1, 4, 0, 0, 0, 3])),
            Some(Protocol::Http2)
        );
        assert_eq!(detect(&w(&[0, 0, 0x40, 1])), None);
        assert_eq!(
            detect(&w(&[0, 0xff, 0xff, 1, 4, 0, 0, 0, 3])),
            Some(Protocol::Http1)
        );
        // Server bytes first (SETTINGS from the server).
        let r = vec![(Direction::Read, 0, vec![0, 0, 6, 4, 0, 0, 0, 0, 0])];
        assert_eq!(detect(&r), Some(Protocol::Http2));
        let r = vec![(Direction::Read, 0, b"HTTP/1.1 200 OK\r\n".to_vec())];
        assert_eq!(detect(&r), Some(Protocol::Http1));
    }
}
