//! Content-Encoding of HTTP/2 bodies.
//!
//! Seam: the shared incremental decoder (`crate::http::decode`, owned by the HTTP/1.1 work) takes
//! over when it lands; this is the same idea kept minimal: writer-style decoders from flate2,
//! brotli and zstd, fed as bytes arrive, writing into a bounded sink (a bomb stops at the cap).

use std::io::{self, Write};

/// Decoded bytes one body may produce here (the caller applies its own, smaller, caps too).
const MAX_OUTPUT: usize = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Coding {
    #[default]
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
    /// A coding we do not undo (or stacked codings): the body is not passed on.
    Unsupported,
}

impl Coding {
    pub fn from_header(value: &str) -> Coding {
        let mut found = Coding::Identity;
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let c = match token.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                _ => return Coding::Unsupported,
            };
            if found != Coding::Identity {
                return Coding::Unsupported;
            }
            found = c;
        }
        found
    }

    /// Guess from a body's first bytes (used only when the head was not fully known).
    pub fn sniff(first: &[u8]) -> Coding {
        if first.starts_with(&[0x1f, 0x8b]) {
            Coding::Gzip
        } else if first.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Coding::Zstd
        } else {
            Coding::Identity
        }
    }
}

/// Collects decoder output up to `room` bytes; refuses more (which stops the decoder).
#[derive(Debug, Default)]
struct Sink {
    buf: Vec<u8>,
    room: usize,
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.room == 0 {
            return Err(io::Error::other("output cap"));
        }
        let n = data.len().min(self.room);
        self.buf.extend_from_slice(&data[..n]);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Identity,
    /// Deflate: zlib-wrapped or raw, decided on the first byte.
    DeflateUndecided,
    Gzip(Box<flate2::write::MultiGzDecoder<Sink>>),
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    Raw(Box<flate2::write::DeflateDecoder<Sink>>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Sink>>),
    Done,
}

pub struct ContentDecoder {
    inner: Inner,
    produced: usize,
    failed: bool,
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentDecoder")
            .field("produced", &self.produced)
            .field("failed", &self.failed)
            .finish()
    }
}

fn sink() -> Sink {
    Sink {
        buf: Vec::new(),
        room: MAX_OUTPUT,
    }
}

impl ContentDecoder {
    pub fn new(coding: Coding) -> ContentDecoder {
        let inner = match coding {
            Coding::Identity => Inner::Identity,
            Coding::Gzip => Inner::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink()))),
            Coding::Deflate => Inner::DeflateUndecided,
            Coding::Brotli => {
                Inner::Brotli(Box::new(brotli::DecompressorWriter::new(sink(), 4096)))
            }
            Coding::Zstd => match zstd::stream::write::Decoder::new(sink()) {
                Ok(d) => Inner::Zstd(Box::new(d)),
                Err(_) => Inner::Done,
            },
            Coding::Unsupported => Inner::Done,
        };
        let failed = matches!(inner, Inner::Done);
        ContentDecoder {
            inner,
            produced: 0,
            failed,
        }
    }

    /// The body could not be (fully) decoded: corrupt, unsupported, capped or interrupted.
    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn buffered_bytes(&self) -> usize {
        match &self.inner {
            Inner::Identity | Inner::DeflateUndecided | Inner::Done => 0,
            // Window and state of a running decompressor: a fixed order of magnitude.
            _ => 64 << 10,
        }
    }

    /// A hole in the input: a compressed stream cannot go on.
    pub fn interrupt(&mut self) {
        if !matches!(self.inner, Inner::Identity) {
            self.inner = Inner::Done;
            self.failed = true;
        }
    }

    /// Decode `input`, appending what it yields to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() {
            return;
        }
        if let Inner::DeflateUndecided = self.inner {
            // zlib: CM = 8 in the low nibble and the 16-bit header a multiple of 31.
            let zlib = input[0] & 0x0f == 8
                && input.len() >= 2
                && (u16::from(input[0]) << 8 | u16::from(input[1])) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(Box::new(flate2::write::ZlibDecoder::new(sink())))
            } else {
                Inner::Raw(Box::new(flate2::write::DeflateDecoder::new(sink())))
            };
        }
        let res = match &mut self.inner {
            Inner::Identity => {
                out.extend_from_slice(input);
                self.produced += input.len();
                return;
            }
            Inner::Done | Inner::DeflateUndecided => return,
            Inner::Gzip(d) => write_all_flush(d.as_mut(), input).map(|_| take(d.get_mut())),
            Inner::Zlib(d) => write_all_flush(d.as_mut(), input).map(|_| take(d.get_mut())),
            Inner::Raw(d) => write_all_flush(d.as_mut(), input).map(|_| take(d.get_mut())),
            Inner::Brotli(d) => write_all_flush(d.as_mut(), input).map(|_| take(d.get_mut())),
            Inner::Zstd(d) => write_all_flush(d.as_mut(), input).map(|_| take(d.get_mut())),
        };
        match res {
            Ok(bytes) => {
                self.produced += bytes.len();
                out.extend_from_slice(&bytes);
            }
            Err(_) => {
                // Salvage what was decoded before the error.
                let bytes = match &mut self.inner {
                    Inner::Gzip(d) => take(d.get_mut()),
                    Inner::Zlib(d) => take(d.get_mut()),
                    Inner::Raw(d) => take(d.get_mut()),
                    Inner::Brotli(d) => take(d.get_mut()),
                    Inner::Zstd(d) => take(d.get_mut()),
                    _ => Vec::new(),
                };
                out.extend_from_slice(&bytes);
                self.inner = Inner::Done;
                self.failed = true;
            }
        }
    }
}

fn write_all_flush<W: Write + ?Sized>(w: &mut W, input: &[u8]) -> io::Result<()> {
    w.write_all(input)?;
    w.flush()
}

fn take(s: &mut Sink) -> Vec<u8> {
    std::mem::take(&mut s.buf)
}
