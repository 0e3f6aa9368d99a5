//! HTTP/1.1 start lines and heads: collected line by line (each byte copied once), the start
//! line checked byte by byte as it grows so that a candidate that cannot be one is dropped at
//! its first wrong byte.

use memchr::memchr;

/// Longest start line looked at while searching for a message start.
pub(super) const MAX_START_LINE: usize = 16 << 10;
const METHODS: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE",
];

/// Checks a start line byte by byte while it is collected, so that a candidate that cannot be a
/// start line is dropped at its first wrong byte (and the next write/read start is tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LineCheck {
    /// Request line: method letters so far.
    Method(u8),
    /// Request line: in the target (`true` once it has a byte).
    Target(bool),
    /// Request line: bytes of `HTTP/1.x` matched; status line: bytes of `HTTP/1.x DDD` matched.
    Version(u8),
    /// Status line: in the reason phrase.
    Reason,
    Cr,
}

const VERSION: &[u8] = b"HTTP/1.";

impl LineCheck {
    pub(super) fn request() -> Self {
        LineCheck::Method(0)
    }

    pub(super) fn status() -> Self {
        LineCheck::Version(0)
    }

    /// Take the next byte (not `\n`); `false`: this cannot be a start line.
    fn step(&mut self, c: u8, request: bool) -> bool {
        *self = match *self {
            LineCheck::Method(n) if c.is_ascii_uppercase() && n < 7 => LineCheck::Method(n + 1),
            LineCheck::Method(n) if c == b' ' && n > 0 => LineCheck::Target(false),
            LineCheck::Target(_) if c > b' ' && c != 0x7f => LineCheck::Target(true),
            LineCheck::Target(true) if c == b' ' => LineCheck::Version(0),
            LineCheck::Version(n) if (n as usize) < VERSION.len() && c == VERSION[n as usize] => {
                LineCheck::Version(n + 1)
            }
            LineCheck::Version(7) if c == b'0' || c == b'1' => LineCheck::Version(8),
            LineCheck::Version(8) if request && c == b'\r' => LineCheck::Cr,
            LineCheck::Version(8) if !request && c == b' ' => LineCheck::Version(9),
            LineCheck::Version(n @ 9..=11) if !request && c.is_ascii_digit() => {
                LineCheck::Version(n + 1)
            }
            LineCheck::Version(12) | LineCheck::Reason if !request => LineCheck::Reason,
            _ => return false,
        };
        true
    }
}

/// One direction's head collector.
pub(super) struct HeadBuf {
    pub(super) buf: Vec<u8>,
    /// Where the line being collected starts in `buf`.
    pub(super) line_start: usize,
    /// Capture time of the first byte of the message.
    pub(super) start_ns: u64,
    /// Validity of the start line being collected.
    pub(super) check: LineCheck,
}

impl HeadBuf {
    pub(super) fn new() -> Self {
        HeadBuf {
            buf: Vec::new(),
            line_start: 0,
            start_ns: 0,
            check: LineCheck::Cr,
        }
    }

    pub(super) fn clear(&mut self) {
        self.buf.clear();
        self.line_start = 0;
        // Give back a buffer a header flood made large.
        if self.buf.capacity() > 64 << 10 {
            self.buf = Vec::new();
        }
    }

    /// Append `input` up to and including the next `\n`; returns (consumed, line complete).
    pub(super) fn take_line(&mut self, input: &[u8]) -> (usize, bool) {
        match memchr(b'\n', input) {
            Some(i) => {
                self.buf.extend_from_slice(&input[..=i]);
                (i + 1, true)
            }
            None => {
                self.buf.extend_from_slice(input);
                (input.len(), false)
            }
        }
    }

    /// Collect a start line byte by byte (checked as it grows): `Some(true)` complete,
    /// `Some(false)` not a start line (the rest of the line is left in `input`), `None` more
    /// needed. Returns the bytes consumed too.
    pub(super) fn take_start_line(&mut self, input: &[u8], request: bool) -> (usize, Option<bool>) {
        for (i, &c) in input.iter().enumerate() {
            if c == b'\n' {
                self.buf.push(c);
                return (i + 1, Some(true));
            }
            if !self.check.step(c, request) {
                return (i, Some(false));
            }
            self.buf.push(c);
        }
        (input.len(), None)
    }

    pub(super) fn last_line(&self) -> &[u8] {
        &self.buf[self.line_start..]
    }
}

pub(super) fn is_blank_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// `METHOD SP target SP HTTP/1.x`, with a known method.
pub(super) fn is_request_line(line: &[u8]) -> bool {
    let line = trim_eol(line);
    let mut parts = line.split(|&c| c == b' ');
    let (Some(m), Some(t), Some(v), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    METHODS.contains(&m)
        && !t.is_empty()
        && t.iter().all(|&c| c > b' ' && c != 0x7f)
        && (v == b"HTTP/1.1" || v == b"HTTP/1.0")
}

/// `HTTP/1.x DDD[ reason]`.
pub(super) fn is_status_line(line: &[u8]) -> bool {
    let line = trim_eol(line);
    line.len() >= 12
        && (line.starts_with(b"HTTP/1.1 ") || line.starts_with(b"HTTP/1.0 "))
        && line[9..12].iter().all(u8::is_ascii_digit)
        && (line.len() == 12 || line[12] == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(line: &[u8], request: bool) -> Option<bool> {
        let mut h = HeadBuf::new();
        h.check = if request {
            LineCheck::request()
        } else {
            LineCheck::status()
        };
        let mut rest = line;
        while !rest.is_empty() {
            let (n, r) = h.take_start_line(&rest[..1], request);
            rest = &rest[n.max(1)..];
            if r.is_some() {
                return r.map(|ok| {
                    ok && if request {
                        is_request_line(&h.buf)
                    } else {
                        is_status_line(&h.buf)
                    }
                });
            }
        }
        None
    }

    #[test]
    fn start_lines() {
        for ok in [
            &b"POST /v1/chat/completions HTTP/1.1\r\n"[..],
            b"GET / HTTP/1.0\n",
            b"OPTIONS * HTTP/1.1\r\n",
        ] {
            assert_eq!(
                collect(ok, true),
                Some(true),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b"post / HTTP/1.1\r\n"[..],
            b"POST  / HTTP/1.1\r\n",
            b"POST / HTTP/2.0\r\n",
            b"POST / HTTP/1.1 x\r\n",
            b"FOO / HTTP/1.1\r\n",
            b"{\"a\":1}\n",
        ] {
            assert_eq!(
                collect(bad, true),
                Some(false),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        for ok in [
            &b"HTTP/1.1 200 OK\r\n"[..],
            b"HTTP/1.0 404\r\n",
            b"HTTP/1.1 500 Internal Server Error\n",
        ] {
            assert_eq!(
                collect(ok, false),
                Some(true),
                "{:?}",
                String::from_utf8_lossy(ok)
            );
        }
        for bad in [
            &b"HTTP/2 200\r\n"[..],
            b"HTTP/1.1 20 OK\r\n",
            b"HTTP/1.1 2000\r\n",
            b"data: x\n",
        ] {
            assert_eq!(
                collect(bad, false),
                Some(false),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
