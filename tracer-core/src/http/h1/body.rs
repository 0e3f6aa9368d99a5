//! HTTP/1.1 message body framing: Content-Length, chunked (chunk-size lines split anywhere,
//! extensions and trailers bounded) and close-delimited. Body bytes are handed out as slices of
//! the input, never copied here.

/// Longest chunk extension and trailer section accepted.
const MAX_CHUNK_EXT: usize = 4 << 10;
const MAX_TRAILERS: usize = 16 << 10;

/// Malformed body framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub(super) struct FramingError;

/// How a body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// This many bytes remain.
    Length(u64),
    Chunked(Chunked),
    /// Until the connection closes (responses only).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunked {
    Size { value: u64, digits: u8, ext: usize },
    Data(u64),
    DataEnd { cr: bool },
    Trailer { line: usize, total: usize },
}

impl Chunked {
    pub(super) fn start() -> Self {
        Chunked::Size {
            value: 0,
            digits: 0,
            ext: 0,
        }
    }
}

impl Framing {
    /// Consume body bytes from `input`, handing body data to `emit`. Returns the bytes consumed
    /// and whether the body ended (the rest of `input` is the next message).
    pub(super) fn step(
        &mut self,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<(usize, bool), FramingError> {
        match self {
            Framing::Close => {
                emit(input);
                Ok((input.len(), false))
            }
            Framing::Length(left) => {
                let n = (*left).min(input.len() as u64) as usize;
                emit(&input[..n]);
                *left -= n as u64;
                Ok((n, *left == 0))
            }
            Framing::Chunked(state) => {
                let mut i = 0;
                while i < input.len() {
                    match state {
                        Chunked::Data(left) => {
                            let n = (*left).min((input.len() - i) as u64) as usize;
                            emit(&input[i..i + n]);
                            i += n;
                            *left -= n as u64;
                            if *left == 0 {
                                *state = Chunked::DataEnd { cr: false };
                            }
                            continue;
                        }
                        Chunked::Size { value, digits, ext } => {
                            let c = input[i];
                            match c {
                                b'\n' => {
                                    if *digits == 0 {
                                        return Err(FramingError);
                                    }
                                    *state = if *value == 0 {
                                        Chunked::Trailer { line: 0, total: 0 }
                                    } else {
                                        Chunked::Data(*value)
                                    };
                                }
                                b'\r' => {}
                                _ if *ext > 0 => {
                                    *ext += 1;
                                    if *ext > MAX_CHUNK_EXT {
                                        return Err(FramingError);
                                    }
                                }
                                b';' | b' ' | b'\t' if *digits > 0 => *ext = 1,
                                _ => {
                                    let d = (c as char).to_digit(16).ok_or(FramingError)?;
                                    *digits += 1;
                                    if *digits > 15 {
                                        return Err(FramingError);
                                    }
                                    *value = *value * 16 + u64::from(d);
                                }
                            }
                        }
                        Chunked::DataEnd { cr } => match input[i] {
                            b'\r' if !*cr => *cr = true,
                            b'\n' => *state = Chunked::start(),
                            _ => return Err(FramingError),
                        },
                        Chunked::Trailer { line, total } => match input[i] {
                            b'\n' if *line == 0 => return Ok((i + 1, true)),
                            b'\n' => *line = 0,
                            b'\r' => {}
                            _ => {
                                *line += 1;
                                *total += 1;
                                if *total > MAX_TRAILERS {
                                    return Err(FramingError);
                                }
                            }
                        },
                    }
                    i += 1;
                }
                Ok((input.len(), false))
            }
        }
    }

    /// `missing` body bytes were not captured. `Ok(rest)`: the body goes on (or ended with
    /// `rest` missing bytes belonging to what follows); `Err`: the framing is lost.
    pub(super) fn skip(&mut self, missing: u64) -> Result<Option<u64>, FramingError> {
        match self {
            Framing::Close => Ok(None),
            Framing::Length(left) if missing < *left => {
                *left -= missing;
                Ok(None)
            }
            Framing::Length(left) => Ok(Some(missing - *left)),
            Framing::Chunked(_) => Err(FramingError),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dechunk(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), FramingError> {
        let mut f = Framing::Chunked(Chunked::start());
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let (n, done) = f.step(piece, &mut |d| out.extend_from_slice(d))?;
            used += n;
            if done {
                return Ok((out, used));
            }
        }
        Err(FramingError)
    }

    #[test]
    fn chunked_at_every_split() {
        let body = b"5;name=v\r\nhello\r\nB\r\n, the world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        for step in 1..body.len() {
            let (out, used) = dechunk(body, step).unwrap();
            assert_eq!(out, b"hello, the world");
            assert_eq!(&body[used..], b"NEXT", "step {step}");
        }
        // Bare LF line ends are accepted.
        assert_eq!(dechunk(b"3\nabc\n0\n\n", 1).unwrap().0, b"abc");
    }

    #[test]
    fn malformed_chunks_are_errors() {
        for bad in [
            &b"\r\n"[..],
            b"g\r\n",
            b"-1\r\n",
            b"1234567890abcdef0\r\n",
            b"3\r\nabcX",
            b";\r\n",
        ] {
            assert!(
                dechunk(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long_ext = [&b"1;"[..], &vec![b'x'; MAX_CHUNK_EXT + 1], b"\r\n"].concat();
        assert!(dechunk(&long_ext, 100).is_err());
        let trailers = [&b"0\r\n"[..], &b"X: y\r\n".repeat(MAX_TRAILERS / 4)].concat();
        assert!(dechunk(&trailers, 100).is_err());
    }

    #[test]
    fn length_and_gaps() {
        let mut f = Framing::Length(10);
        let mut out = Vec::new();
        assert_eq!(
            f.step(b"0123", &mut |d| out.extend_from_slice(d)),
            Ok((4, false))
        );
        assert_eq!(f.skip(2), Ok(None));
        assert_eq!(
            f.step(b"6789XY", &mut |d| out.extend_from_slice(d)),
            Ok((4, true))
        );
        assert_eq!(out, b"01236789");
        assert_eq!(Framing::Length(3).skip(5), Ok(Some(2)));
        assert_eq!(
            Framing::Chunked(Chunked::start()).skip(1),
            Err(FramingError)
        );
        assert_eq!(Framing::Close.skip(1 << 40), Ok(None));
    }
}
