//! Newline-delimited JSON (Ollama native streams): one JSON value per `\n`-terminated line; blank
//! lines are skipped, a trailing `\r` is trimmed.

#[derive(Debug)]
pub struct NdjsonDecoder {
    max_line: usize,
    line: Vec<u8>,
    oversized: bool,
    dropped: u64,
}

impl NdjsonDecoder {
    pub fn new(max_line: usize) -> Self {
        NdjsonDecoder {
            max_line,
            line: Vec::new(),
            oversized: false,
            dropped: 0,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<Vec<u8>>) {
        while !input.is_empty() {
            match input.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.append(&input[..i]);
                    input = &input[i + 1..];
                    self.end_line(out);
                }
                None => {
                    self.append(input);
                    input = &[];
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        self.end_line(out);
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.oversized {
            return;
        }
        if self.line.len() + bytes.len() > self.max_line {
            self.oversized = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<Vec<u8>>) {
        if self.oversized {
            self.oversized = false;
            self.dropped += 1;
            return;
        }
        if self.line.iter().all(u8::is_ascii_whitespace) {
            self.line.clear();
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        out.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_in_any_split() {
        let input = b"{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
        for step in 1..=input.len() {
            let mut d = NdjsonDecoder::new(100);
            let mut out = Vec::new();
            for p in input.chunks(step) {
                d.push(p, &mut out);
            }
            d.finish(&mut out);
            assert_eq!(
                out,
                vec![
                    b"{\"a\":1}".to_vec(),
                    b"{\"b\":2}".to_vec(),
                    b"{\"c\":3}".to_vec()
                ]
            );
        }
    }

    #[test]
    fn oversized_line_dropped_and_counted() {
        let mut d = NdjsonDecoder::new(4);
        let mut out = Vec::new();
        d.push(b"0123456789\n{}\n", &mut out);
        assert_eq!(out, vec![b"{}".to_vec()]);
        assert_eq!(d.dropped(), 1);
    }
}
