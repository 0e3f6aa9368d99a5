//! Incremental `Content-Encoding` decoding (gzip, deflate as zlib or raw, br, zstd) with bounds.
//!
//! Bytes are pushed as they arrive and decoded output comes back at once, so a compressed stream
//! (SSE over gzip) is still seen piece by piece. Two bounds stop compression bombs without
//! decompressing them: an output cap, and a ratio cap (output may not exceed `max_ratio` times
//! the input so far, once past `ratio_floor` bytes). Either one stops decoding for good and is
//! reported by [`BodyDecoder::capped`]. A corrupt stream stops decoding and is reported by
//! [`BodyDecoder::failed`]; the parser carries on with the next message either way.

use std::io::{self, Write};

/// Bounds of one body's decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most decoded bytes this body may produce.
    pub max_output: usize,
    /// Most decoded bytes per encoded byte (checked once the output passes `ratio_floor`).
    pub max_ratio: u64,
    /// Output below this is never stopped by the ratio cap (small, very compressible bodies).
    pub ratio_floor: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_output: 64 << 20,
            max_ratio: 200,
            ratio_floor: 1 << 20,
        }
    }
}

/// A `Content-Encoding` this module decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding named by a `Content-Encoding` value; `Err` for unknown or stacked codings
    /// (`gzip, br`), which this module does not undo.
    pub fn from_header(value: Option<&str>) -> Result<Coding, UnsupportedEncoding> {
        let Some(value) = value else {
            return Ok(Coding::Identity);
        };
        let mut found = Coding::Identity;
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let c = match token.to_ascii_lowercase().as_str() {
                "identity" => continue,
                "gzip" | "x-gzip" => Coding::Gzip,
                "deflate" => Coding::Deflate,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                _ => return Err(UnsupportedEncoding),
            };
            if found != Coding::Identity {
                return Err(UnsupportedEncoding);
            }
            found = c;
        }
        Ok(found)
    }
}

/// The body uses a content coding that is not decoded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported or stacked content-encoding")]
pub struct UnsupportedEncoding;

/// Collects decoder output; refuses bytes past `room`, which is how the caps stop a decoder in
/// the middle of a single huge expansion.
#[derive(Default)]
struct Sink {
    buf: Vec<u8>,
    room: usize,
    refused: bool,
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.room == 0 {
            self.refused = true;
            return Err(io::Error::other("decode cap"));
        }
        let n = b.len().min(self.room);
        self.buf.extend_from_slice(&b[..n]);
        self.room -= n;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const BROTLI_BUFFER: usize = 16 << 10;
/// zstd frames may ask for windows up to 2^31; 8 MiB is plenty for API bodies and bounds memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

enum Inner {
    Identity,
    /// Deflate before its first two bytes tell zlib from raw deflate.
    DeflateUndecided(Vec<u8>),
    Gzip(Box<flate2::write::GzDecoder<Sink>>),
    Zlib(Box<flate2::write::ZlibDecoder<Sink>>),
    RawDeflate(Box<flate2::write::DeflateDecoder<Sink>>),
    Brotli(Box<brotli::DecompressorWriter<Sink>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Sink>>),
    /// Stopped: finished, capped, failed or interrupted by a gap.
    Done,
}

/// Decodes one body.
pub struct BodyDecoder {
    coding: Coding,
    inner: Inner,
    limits: DecodeLimits,
    input_total: u64,
    output_total: u64,
    capped: bool,
    failed: bool,
}

impl BodyDecoder {
    pub fn new(coding: Coding, limits: DecodeLimits) -> Self {
        let inner = match coding {
            Coding::Identity => Inner::Identity,
            Coding::Deflate => Inner::DeflateUndecided(Vec::new()),
            Coding::Gzip => Inner::Gzip(Box::new(flate2::write::GzDecoder::new(Sink::default()))),
            Coding::Brotli => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(
                Sink::default(),
                BROTLI_BUFFER,
            ))),
            Coding::Zstd => match zstd::stream::write::Decoder::new(Sink::default()) {
                Ok(mut d) => match d.window_log_max(ZSTD_WINDOW_LOG_MAX) {
                    Ok(()) => Inner::Zstd(Box::new(d)),
                    Err(_) => Inner::Done,
                },
                Err(_) => Inner::Done,
            },
        };
        let failed = matches!(inner, Inner::Done);
        BodyDecoder {
            coding,
            inner,
            limits,
            input_total: 0,
            output_total: 0,
            capped: false,
            failed,
        }
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Decoding stopped at the output or ratio cap.
    pub fn capped(&self) -> bool {
        self.capped
    }

    /// The encoded stream was corrupt (or could not be set up); decoding stopped.
    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn output_total(&self) -> u64 {
        self.output_total
    }

    /// Rough bytes held by the decoder state, for memory accounting. The crates do not report
    /// it; these are the usual sizes: a 32 KiB deflate window plus buffers, brotli's 4 MiB
    /// window (lgwin 22, the encoders' default), a 2 MiB zstd window (levels up to 5). A stream
    /// may ask for more (brotli up to 16 MiB, zstd up to the 8 MiB limit set here).
    pub fn buffered_bytes(&self) -> usize {
        match &self.inner {
            Inner::Identity | Inner::Done => 0,
            Inner::DeflateUndecided(v) => v.len(),
            Inner::Gzip(_) | Inner::Zlib(_) | Inner::RawDeflate(_) => 64 << 10,
            Inner::Brotli(_) => (4 << 20) + BROTLI_BUFFER,
            Inner::Zstd(_) => 2 << 20,
        }
    }

    /// Bytes went missing from the encoded stream: a compressed stream cannot go on after a hole
    /// (identity bodies can).
    pub fn interrupt(&mut self) {
        if !matches!(self.inner, Inner::Identity) {
            self.inner = Inner::Done;
        }
    }

    /// How many more output bytes the caps allow now.
    fn room(&self) -> usize {
        let by_cap = (self.limits.max_output as u64).saturating_sub(self.output_total);
        let by_ratio = if matches!(self.inner, Inner::Identity) {
            u64::MAX
        } else {
            self.input_total
                .saturating_mul(self.limits.max_ratio)
                .max(self.limits.ratio_floor as u64)
                .saturating_sub(self.output_total)
        };
        by_cap.min(by_ratio).min(usize::MAX as u64) as usize
    }

    /// Decode `input`, appending the decoded bytes to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if input.is_empty() || matches!(self.inner, Inner::Done) {
            return;
        }
        self.input_total += input.len() as u64;
        if let Inner::Identity = self.inner {
            let n = input.len().min(self.room());
            out.extend_from_slice(&input[..n]);
            self.output_total += n as u64;
            if n < input.len() {
                self.capped = true;
                self.inner = Inner::Done;
            }
            return;
        }
        if let Inner::DeflateUndecided(held) = &mut self.inner {
            held.extend_from_slice(input);
            if held.len() < 2 {
                return;
            }
            let held = std::mem::take(held);
            // RFC 1950: CM = 8 and the 16-bit header is a multiple of 31. Servers sending raw
            // deflate under `deflate` exist, so both are accepted.
            let zlib =
                held[0] & 0x0f == 8 && (u16::from(held[0]) << 8 | u16::from(held[1])) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(Box::new(flate2::write::ZlibDecoder::new(Sink::default())))
            } else {
                Inner::RawDeflate(Box::new(
                    flate2::write::DeflateDecoder::new(Sink::default()),
                ))
            };
            self.input_total -= input.len() as u64;
            return self.push(&held, out);
        }
        let room = self.room();
        let before = out.len();
        let result = match &mut self.inner {
            Inner::Gzip(d) => drive(d.as_mut(), input, room, out, |d| d.get_mut()),
            Inner::Zlib(d) => drive(d.as_mut(), input, room, out, |d| d.get_mut()),
            Inner::RawDeflate(d) => drive(d.as_mut(), input, room, out, |d| d.get_mut()),
            Inner::Brotli(d) => drive(d.as_mut(), input, room, out, |d| d.get_mut()),
            Inner::Zstd(d) => drive(d.as_mut(), input, room, out, |d| d.get_mut()),
            Inner::Identity | Inner::DeflateUndecided(_) | Inner::Done => Ok(Progress::More),
        };
        self.output_total += (out.len() - before) as u64;
        match result {
            Ok(Progress::More) => {}
            // The encoded stream says it ended: check it (gzip CRC and length).
            Ok(Progress::End) => self.finish(out),
            Err(refused) => {
                if refused {
                    self.capped = true;
                } else {
                    self.failed = true;
                }
                self.inner = Inner::Done;
            }
        }
    }
}

impl BodyDecoder {
    /// The body ended by its framing: a compressed stream that is cut short or fails its
    /// checksum is reported by [`BodyDecoder::failed`] (output still pending goes to `out`).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let room = self.room();
        let before = out.len();
        let res = match &mut self.inner {
            Inner::Gzip(d) => {
                finish_with(d.as_mut(), room, out, |d| d.try_finish(), |d| d.get_mut())
            }
            Inner::Zlib(d) => {
                finish_with(d.as_mut(), room, out, |d| d.try_finish(), |d| d.get_mut())
            }
            Inner::RawDeflate(d) => {
                finish_with(d.as_mut(), room, out, |d| d.try_finish(), |d| d.get_mut())
            }
            Inner::Brotli(d) => finish_with(d.as_mut(), room, out, |d| d.close(), |d| d.get_mut()),
            // Two bytes of deflate never make a stream.
            Inner::DeflateUndecided(held) if !held.is_empty() => Err(false),
            // zstd's writer has no end check; a cut frame shows as missing output only.
            Inner::Zstd(_) | Inner::Identity | Inner::DeflateUndecided(_) | Inner::Done => Ok(()),
        };
        self.output_total += (out.len() - before) as u64;
        if let Err(refused) = res {
            if refused {
                self.capped = true;
            } else {
                self.failed = true;
            }
        }
        if !matches!(self.inner, Inner::Identity) {
            self.inner = Inner::Done;
        }
    }
}

/// Run a decoder's end check, moving what it still outputs to `out`.
fn finish_with<D, E>(
    dec: &mut D,
    room: usize,
    out: &mut Vec<u8>,
    end: impl FnOnce(&mut D) -> Result<(), E>,
    sink: impl Fn(&mut D) -> &mut Sink,
) -> Result<(), bool> {
    {
        let s = sink(dec);
        s.room = room;
        s.refused = false;
    }
    let res = end(dec).map_err(|_| sink(dec).refused);
    out.append(&mut sink(dec).buf);
    res
}

enum Progress {
    More,
    /// The encoded stream ended (bytes after its end are ignored).
    End,
}

/// Writes `input` into a writer-style decoder whose inner writer is a [`Sink`], flushing so that
/// the output of this input is available now, and moves that output to `out`. `Err(true)`:
/// refused by the caps (`room` bytes); `Err(false)`: corrupt input.
fn drive<D: Write>(
    dec: &mut D,
    mut input: &[u8],
    room: usize,
    out: &mut Vec<u8>,
    sink: impl Fn(&mut D) -> &mut Sink,
) -> Result<Progress, bool> {
    {
        let s = sink(dec);
        s.room = room;
        s.refused = false;
    }
    let mut res = Ok(Progress::More);
    while !input.is_empty() {
        match dec.write(input) {
            Ok(0) => {
                res = Ok(Progress::End);
                break;
            }
            Ok(n) => input = &input[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                res = Err(sink(dec).refused);
                break;
            }
        }
    }
    if res.is_ok() && dec.flush().is_err() {
        res = Err(sink(dec).refused);
    }
    out.append(&mut sink(dec).buf);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn all_codings(data: &[u8]) -> Vec<(Coding, Vec<u8>)> {
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(data).unwrap();
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(data).unwrap();
        let mut br = Vec::new();
        {
            let mut w = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
            w.write_all(data).unwrap();
        }
        vec![
            (Coding::Identity, data.to_vec()),
            (Coding::Gzip, gzip(data)),
            (Coding::Deflate, zl.finish().unwrap()),
            (Coding::Deflate, raw.finish().unwrap()),
            (Coding::Brotli, br),
            (Coding::Zstd, zstd::encode_all(data, 3).unwrap()),
        ]
    }

    fn decode_split(
        coding: Coding,
        enc: &[u8],
        step: usize,
        limits: DecodeLimits,
    ) -> (Vec<u8>, BodyDecoder) {
        let mut d = BodyDecoder::new(coding, limits);
        let mut out = Vec::new();
        for piece in enc.chunks(step.max(1)) {
            d.push(piece, &mut out);
        }
        (out, d)
    }

    #[test]
    fn every_coding_any_split() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| format!("data: {{\"i\":{i}}}\n\n").into_bytes())
            .collect();
        for (coding, enc) in all_codings(&data) {
            for step in [1, 7, 4096, enc.len()] {
                let (out, d) = decode_split(coding, &enc, step, DecodeLimits::default());
                assert!(!d.failed() && !d.capped(), "{coding:?} step {step}");
                assert_eq!(out.len(), data.len(), "{coding:?} step {step}");
                assert!(out == data, "{coding:?} step {step}");
            }
        }
    }

    #[test]
    fn output_is_available_as_input_arrives() {
        // A streamed gzip body: each flushed piece must decode before the stream ends.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let mut d = BodyDecoder::new(Coding::Gzip, DecodeLimits::default());
        let mut out = Vec::new();
        for i in 0..5 {
            let msg = format!("data: piece {i}\n\n");
            e.write_all(msg.as_bytes()).unwrap();
            e.flush().unwrap();
            let new = std::mem::take(e.get_mut());
            let before = out.len();
            d.push(&new, &mut out);
            assert_eq!(&out[before..], msg.as_bytes());
        }
    }

    #[test]
    fn bombs_stop_at_the_caps() {
        let zeros = vec![0u8; 16 << 20];
        let limits = DecodeLimits {
            max_output: 4 << 20,
            max_ratio: 1_000_000,
            ratio_floor: 1 << 20,
        };
        for (coding, enc) in all_codings(&zeros) {
            let (out, d) = decode_split(coding, &enc, 1 << 16, limits);
            assert!(d.capped(), "{coding:?}");
            assert_eq!(out.len(), 4 << 20, "{coding:?}");
        }
        // Ratio cap: 16 MiB of zeros is ~16 KiB of gzip, far beyond 200:1 after the floor.
        let (out, d) = decode_split(
            Coding::Gzip,
            &gzip(&zeros),
            1 << 16,
            DecodeLimits::default(),
        );
        assert!(d.capped());
        assert!(out.len() < 16 << 20, "{}", out.len());
    }

    #[test]
    fn corrupt_streams_fail_without_panic() {
        let garbage: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli, Coding::Zstd] {
            let (_out, d) = decode_split(coding, &garbage, 100, DecodeLimits::default());
            assert!(d.failed() || d.output_total() <= DecodeLimits::default().ratio_floor as u64);
        }
        // A valid gzip stream broken in the middle.
        let mut enc = gzip(&vec![b'a'; 100_000]);
        let mid = enc.len() / 2;
        enc[mid..mid + 8].copy_from_slice(b"\xff\xff\xff\xff\xff\xff\xff\xff");
        let (out, mut d) = decode_split(Coding::Gzip, &enc, 64, DecodeLimits::default());
        let mut rest = Vec::new();
        d.finish(&mut rest);
        assert!(out.len() + rest.len() < 100_000);
        assert!(d.failed());
        // Cut short: only the end check can tell.
        let enc = gzip(&vec![b'a'; 100_000]);
        for coding_enc in all_codings(b"some body that is long enough to be cut somewhere") {
            let (coding, enc2) = coding_enc;
            if coding == Coding::Identity || coding == Coding::Zstd {
                continue;
            }
            let (_out, mut d) =
                decode_split(coding, &enc2[..enc2.len() - 3], 5, DecodeLimits::default());
            d.finish(&mut Vec::new());
            assert!(d.failed(), "{coding:?}");
        }
        let (out, mut d) = decode_split(Coding::Gzip, &enc, 7, DecodeLimits::default());
        let mut rest = Vec::new();
        d.finish(&mut rest);
        assert!(!d.failed() && out.len() + rest.len() == 100_000);
    }

    #[test]
    fn encoding_header() {
        assert_eq!(Coding::from_header(None), Ok(Coding::Identity));
        assert_eq!(Coding::from_header(Some("GZIP")), Ok(Coding::Gzip));
        assert_eq!(
            Coding::from_header(Some("identity, br")),
            Ok(Coding::Brotli)
        );
        assert_eq!(
            Coding::from_header(Some("gzip, br")),
            Err(UnsupportedEncoding)
        );
        assert_eq!(
            Coding::from_header(Some("compress")),
            Err(UnsupportedEncoding)
        );
    }
}
