//! A JSON array streamed element by element (Gemini `streamGenerateContent` without `alt=sse`
//! sends `[{…}\n,\r\n{…}\n]` progressively): each top-level element that is an object or array
//! is handed out as soon as its closing bracket arrives. A top-level object that is not inside an
//! array (an error body) is handed out as one element too. Scalars are skipped.

#[derive(Debug)]
pub struct JsonArrayDecoder {
    max_element: usize,
    /// Bracket depth, counting the outer array when there is one.
    depth: usize,
    /// The stream's outer value is an array (its elements are at depth 1).
    in_array: bool,
    in_string: bool,
    escape: bool,
    /// Inside an element being collected.
    collecting: bool,
    element: Vec<u8>,
    oversized: bool,
    dropped: u64,
}

impl JsonArrayDecoder {
    pub fn new(max_element: usize) -> Self {
        JsonArrayDecoder {
            max_element,
            depth: 0,
            in_array: false,
            in_string: false,
            escape: false,
            collecting: false,
            element: Vec::new(),
            oversized: false,
            dropped: 0,
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn buffered(&self) -> usize {
        self.element.len()
    }

    pub fn push(&mut self, input: &[u8], out: &mut Vec<Vec<u8>>) {
        let mut start = 0; // start of the element bytes in `input` not yet copied
        for (i, &b) in input.iter().enumerate() {
            if self.in_string {
                if self.escape {
                    self.escape = false;
                } else if b == b'\\' {
                    self.escape = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    if self.depth == 0 && b == b'[' && !self.in_array {
                        self.in_array = true;
                        self.depth = 1;
                        continue;
                    }
                    if !self.collecting && self.element_level() {
                        self.collecting = true;
                        start = i;
                    }
                    self.depth += 1;
                }
                b']' | b'}' => {
                    if self.depth == 0 {
                        continue; // stray closer: ignore
                    }
                    self.depth -= 1;
                    if self.collecting && self.element_level() {
                        self.copy(&input[start..=i]);
                        self.complete(out);
                    } else if self.in_array && self.depth == 0 {
                        self.in_array = false; // end of the outer array
                    }
                }
                _ => {}
            }
        }
        if self.collecting {
            self.copy(&input[start..]);
        }
    }

    /// The body ended: an unfinished element is dropped (and counted).
    pub fn finish(&mut self) {
        if self.collecting {
            self.dropped += 1;
            self.collecting = false;
            self.element.clear();
            self.oversized = false;
        }
    }

    /// At the depth where elements start (inside the outer array, or at the top level).
    fn element_level(&self) -> bool {
        self.depth == usize::from(self.in_array)
    }

    fn copy(&mut self, bytes: &[u8]) {
        if self.oversized {
            return;
        }
        if self.element.len() + bytes.len() > self.max_element {
            self.oversized = true;
            self.element.clear();
            return;
        }
        self.element.extend_from_slice(bytes);
    }

    fn complete(&mut self, out: &mut Vec<Vec<u8>>) {
        self.collecting = false;
        if self.oversized {
            self.oversized = false;
            self.dropped += 1;
        } else {
            out.push(std::mem::take(&mut self.element));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], step: usize, max: usize) -> (Vec<Vec<u8>>, u64) {
        let mut d = JsonArrayDecoder::new(max);
        let mut out = Vec::new();
        for p in input.chunks(step) {
            d.push(p, &mut out);
        }
        d.finish();
        (out, d.dropped())
    }

    #[test]
    fn elements_in_any_split() {
        let input = b"[{\"a\":\"x]}\\\"\"}\n,\r\n{\"b\":[1,{\"c\":2}]}\n, 5, \"s\"]";
        for step in 1..=input.len() {
            let (out, dropped) = run(input, step, 1000);
            assert_eq!(dropped, 0);
            assert_eq!(
                out,
                vec![
                    b"{\"a\":\"x]}\\\"\"}".to_vec(),
                    b"{\"b\":[1,{\"c\":2}]}".to_vec()
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn bare_object_is_one_element() {
        let (out, _) = run(b"{\"error\":{\"code\":400}}", 2, 1000);
        assert_eq!(out, vec![b"{\"error\":{\"code\":400}}".to_vec()]);
    }

    #[test]
    fn oversized_and_unfinished_elements_are_counted() {
        let (out, dropped) = run(b"[{\"a\":\"0123456789\"},{\"b\":1},{\"c\":", 3, 12);
        assert_eq!(out, vec![b"{\"b\":1}".to_vec()]);
        assert_eq!(dropped, 2);
    }
}
