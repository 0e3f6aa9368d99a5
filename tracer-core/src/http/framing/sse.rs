//! Server-Sent Events (WHATWG grammar): `event:`, `data:`, `id:`, `retry:` fields, `:` comments,
//! multi-line `data` joined with `\n`, lines ended by LF, CRLF or CR, an event ended by an empty
//! line.
//!
//! One leniency: lines that are not SSE fields (a raw JSON error some servers print in the middle
//! of a stream, e.g. Gemini) are gathered and, when an event ends without any `data`, handed out
//! as the event's data so the caller can still read the error.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when present.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n` (or the stray non-field lines, see the module doc).
    pub data: Vec<u8>,
    pub id: Option<String>,
}

#[derive(Debug)]
pub struct SseDecoder {
    max_event: usize,
    line: Vec<u8>,
    /// The current line has bytes (even discarded ones: an oversized line is not an empty line).
    line_seen: bool,
    /// The previous line ended with CR: a LF right after it belongs to that line end.
    after_cr: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
    stray: Vec<u8>,
    id: Option<String>,
    /// The event being assembled went past `max_event`: discard it up to its end.
    oversized: bool,
    dropped: u64,
}

impl SseDecoder {
    pub fn new(max_event: usize) -> Self {
        SseDecoder {
            max_event,
            line: Vec::new(),
            line_seen: false,
            after_cr: false,
            event: None,
            data: Vec::new(),
            has_data: false,
            stray: Vec::new(),
            id: None,
            oversized: false,
            dropped: 0,
        }
    }

    /// Events skipped because they exceeded the cap.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Hand back a dispatched event's data buffer for the next event (saves an allocation per
    /// event on a long stream).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.data.capacity() == 0 && buf.capacity() <= self.max_event {
            buf.clear();
            self.data = buf;
        }
    }

    /// Bytes held for the event being assembled.
    pub fn buffered(&self) -> usize {
        self.line.len() + self.data.len() + self.stray.len()
    }

    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<SseEvent>) {
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match memchr::memchr2(b'\n', b'\r', input) {
                Some(i) => {
                    let line = &input[..i];
                    self.after_cr = input[i] == b'\r';
                    input = &input[i + 1..];
                    if self.line.is_empty()
                        && !self.oversized
                        && self.buffered() + line.len() <= self.max_event
                    {
                        // The whole line is in this input: read it in place, no copy.
                        self.line_seen |= !line.is_empty();
                        self.field(line, out);
                    } else {
                        self.append_line(line);
                        self.end_line(out);
                    }
                }
                None => {
                    self.append_line(input);
                    input = &[];
                }
            }
        }
    }

    /// The body ended: a last line without terminator and a last event without the empty line
    /// are still processed (a stream cut right after its last event is common).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if self.line_seen {
            self.end_line(out);
        }
        self.dispatch(out);
        self.after_cr = false;
    }

    fn append_line(&mut self, bytes: &[u8]) {
        self.line_seen |= !bytes.is_empty();
        if self.oversized {
            return;
        }
        if self.buffered() + bytes.len() > self.max_event {
            self.oversized = true;
            self.line.clear();
            self.data.clear();
            self.stray.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        self.field(&line, out);
        // Reuse the allocation.
        self.line = line;
        self.line.clear();
    }

    /// A complete line (`line_seen` says whether it had bytes, even discarded ones).
    fn field(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if !std::mem::take(&mut self.line_seen) {
            self.dispatch(out);
            return;
        }
        if self.oversized {
            return;
        }
        if line[0] == b':' {
            // comment (keep-alive, `: OPENROUTER PROCESSING`)
        } else {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
                }
                None => (line, &b""[..]),
            };
            match name {
                b"data" => {
                    if self.has_data {
                        self.data.push(b'\n');
                    }
                    self.data.extend_from_slice(value);
                    self.has_data = true;
                }
                b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
                b"id" if !value.contains(&0) => {
                    self.id = Some(String::from_utf8_lossy(value).into_owned())
                }
                b"id" | b"retry" => {}
                _ => {
                    if !self.stray.is_empty() {
                        self.stray.push(b'\n');
                    }
                    self.stray.extend_from_slice(line);
                }
            }
        }
        // The `\n` joining data (or stray) lines is not in the line that was checked against the
        // cap: an event of many short lines could pass it by one byte per line.
        if self.data.len() + self.stray.len() > self.max_event {
            self.oversized = true;
            self.data.clear();
            self.stray.clear();
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.oversized {
            self.oversized = false;
            self.dropped += 1;
        } else if self.has_data || !self.stray.is_empty() {
            let data = if self.has_data {
                std::mem::take(&mut self.data)
            } else {
                std::mem::take(&mut self.stray)
            };
            out.push(SseEvent {
                event: self.event.take(),
                data,
                id: self.id.clone(),
            });
        }
        self.event = None;
        self.data.clear();
        self.stray.clear();
        self.has_data = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], step: usize) -> (Vec<SseEvent>, u64) {
        let mut d = SseDecoder::new(64);
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            d.push(piece, &mut out);
        }
        d.finish(&mut out);
        (out, d.dropped())
    }

    #[test]
    fn joined_lines_cannot_pass_the_cap() {
        // found by fuzzing: each stray (or data) line adds a joining `\n` the line check did
        // not see
        let mut d = SseDecoder::new(16);
        let mut out = Vec::new();
        for line in [&b"abcdefghijklmno\n"[..], b"x\n", b"y\n"] {
            d.push(line, &mut out);
            assert!(d.buffered() <= 16, "{} bytes held", d.buffered());
        }
        d.push(b"\ndata: ok\n\n", &mut out);
        assert_eq!(d.dropped(), 1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data, b"ok");
    }

    #[test]
    fn fields_comments_multiline_and_line_ends() {
        let input = b": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\ndata:x\ndata: y\n\nid: 7\rdata: z\r\rdata: [DONE]\n\n";
        for step in 1..input.len() + 1 {
            let (ev, dropped) = decode_split(input, step);
            assert_eq!(dropped, 0);
            assert_eq!(ev.len(), 4, "step {step}");
            assert_eq!(ev[0].event.as_deref(), Some("message_start"));
            assert_eq!(ev[0].data, b"{\"a\":1}");
            assert_eq!(ev[1].event, None);
            assert_eq!(ev[1].data, b"x\ny");
            assert_eq!(ev[2].id.as_deref(), Some("7"));
            assert_eq!(ev[2].data, b"z");
            assert_eq!(ev[3].data, b"[DONE]");
        }
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_tail_is_flushed() {
        let (ev, _) = decode_split(b"event: ping\n\ndata: last", 3);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].data, b"last");
        assert_eq!(ev[0].event, None);
    }

    #[test]
    fn stray_json_lines_become_data() {
        let (ev, _) = decode_split(b"{\n  \"error\": {\n    \"code\": 429\n  }\n}\n", 5);
        assert_eq!(ev.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&ev[0].data).unwrap();
        assert_eq!(v["error"]["code"], 429);
    }

    #[test]
    fn oversized_event_is_dropped_and_counted_then_decoding_resumes() {
        let mut input = b"data: ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200));
        input.extend_from_slice(b"\ndata: more\n\ndata: ok\n\n");
        for step in [1, 7, 1000] {
            let (ev, dropped) = decode_split(&input, step);
            assert_eq!(dropped, 1);
            assert_eq!(ev.len(), 1);
            assert_eq!(ev[0].data, b"ok");
        }
    }
}
