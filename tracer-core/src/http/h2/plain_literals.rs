//! Rewrites the Huffman-coded string literals of an HPACK header block as plain literals, before
//! the block goes to the HPACK decoder.
//!
//! Why: `loona-hpack` (the decoder we use for its dynamic table) builds its Huffman decoding
//! table, 257 entries in nested hash maps, for every Huffman-coded string, then decodes bit by bit
//! through hash lookups: measured 1.25 ms for one typical 21-field LLM API response header block
//! (589 bytes), so HPACK dominated the agent's CPU on HTTP/2 traffic. `httlib-huffman` decodes
//! with a flattened table, 4 bits per step. Plain literals (`H` bit clear) are copied by
//! `loona-hpack` without that work.
//!
//! The rewrite changes nothing the decoder can observe: every representation keeps its kind, its
//! index and its position; only the string encoding changes, and HPACK's dynamic table accounts
//! for decoded lengths (RFC 7541 §4.1), not encoded ones. Whatever this walker does not
//! understand (a truncated integer, a string past the end, invalid Huffman) makes it give up and
//! return `None`: the caller then passes the original block, and the decoder reports the error as
//! before.

use httlib_huffman::DecoderSpeed;

/// Integers longer than this many continuation octets are refused (a u32 needs 5).
const MAX_INT_OCTETS: usize = 5;

/// The block with every Huffman-coded literal replaced by its plain form, or `None` when the
/// block has none (nothing to do) or cannot be walked (malformed: let the decoder report it).
/// One pass: real servers Huffman-code nearly every literal, so a block is rarely copied for
/// nothing.
pub fn rewrite(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(block.len() + block.len() / 2);
    let mut rewritten = false;
    let mut pos = 0;
    while pos < block.len() {
        let first = block[pos];
        let (prefix, strings) = representation(first);
        let (index, end) = read_int(block, pos, prefix)?;
        out.extend_from_slice(&block[pos..end]);
        pos = end;
        // A literal with a new name (index 0) carries a name string, then the value string.
        let count = match strings {
            Strings::None => 0,
            Strings::ValueOrNameAndValue if index == 0 => 2,
            Strings::ValueOrNameAndValue => 1,
        };
        for _ in 0..count {
            let (next, huffman) = copy_string(block, pos, &mut out)?;
            rewritten |= huffman;
            pos = next;
        }
    }
    rewritten.then_some(out)
}

enum Strings {
    /// Indexed field or dynamic table size update: no string follows.
    None,
    /// A literal: a value string, preceded by a name string when the name index is 0.
    ValueOrNameAndValue,
}

/// The integer prefix length of a representation and which strings follow it (RFC 7541 §6).
fn representation(first: u8) -> (u8, Strings) {
    if first & 0x80 != 0 {
        (7, Strings::None) // indexed header field
    } else if first & 0x40 != 0 {
        (6, Strings::ValueOrNameAndValue) // literal with incremental indexing
    } else if first & 0x20 != 0 {
        (5, Strings::None) // dynamic table size update
    } else {
        (4, Strings::ValueOrNameAndValue) // literal without indexing / never indexed
    }
}

/// Copies the string literal at `pos` to `out`, plain; returns the position after it and whether
/// it was Huffman coded.
fn copy_string(block: &[u8], pos: usize, out: &mut Vec<u8>) -> Option<(usize, bool)> {
    let huffman = *block.get(pos)? & 0x80 != 0;
    let (len, start) = read_int(block, pos, 7)?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    let bytes = block.get(start..end)?;
    if huffman {
        let mut plain = Vec::with_capacity(bytes.len() * 8 / 5 + 1);
        httlib_huffman::decode(bytes, &mut plain, DecoderSpeed::FourBits).ok()?;
        write_int(out, 0x00, 7, plain.len() as u64);
        out.extend_from_slice(&plain);
    } else {
        out.extend_from_slice(&block[pos..end]);
    }
    Some((end, huffman))
}

/// An HPACK integer (RFC 7541 §5.1) with an N-bit prefix starting at `pos`: its value and the
/// position after it.
fn read_int(block: &[u8], pos: usize, prefix: u8) -> Option<(u64, usize)> {
    let max = (1u64 << prefix) - 1;
    let mut value = u64::from(*block.get(pos)?) & max;
    let mut pos = pos + 1;
    if value < max {
        return Some((value, pos));
    }
    for i in 0..MAX_INT_OCTETS {
        let b = *block.get(pos)?;
        pos += 1;
        value += u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, pos));
        }
    }
    None
}

/// Writes an HPACK integer with an N-bit prefix; `flags` are the bits above the prefix.
fn write_int(out: &mut Vec<u8>, flags: u8, prefix: u8, value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fields = Vec<(Vec<u8>, Vec<u8>)>;

    fn decode_all(block: &[u8]) -> Result<Fields, String> {
        let mut d = loona_hpack::Decoder::new();
        d.decode(block)
            .map_err(|e| format!("{e:?}"))
            .map(|v| v.into_iter().collect())
    }

    // RFC 7541 C.4.1 (request with Huffman), C.6.1 (response with Huffman).
    const C41: &str = "828684418cf1e3c2e5f23a6ba0ab90f4ff";
    const C61: &str = "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn rfc_examples_decode_the_same_after_the_rewrite() {
        for block in [hex(C41), hex(C61)] {
            let plain = rewrite(&block).expect("has Huffman literals");
            assert_eq!(rewrite(&plain), None, "no Huffman literal left");
            assert_eq!(decode_all(&plain).unwrap(), decode_all(&block).unwrap());
        }
        assert_eq!(
            decode_all(&rewrite(&hex(C41)).unwrap()).unwrap()[3],
            (b":authority".to_vec(), b"www.example.com".to_vec())
        );
    }

    #[test]
    fn dynamic_table_state_is_kept_across_blocks() {
        // C.6.1 then C.6.2 (which indexes entries C.6.1 inserted): decoding the rewritten
        // blocks with one decoder gives what the originals give.
        let c62 = hex("4883640effc1c0bf");
        let mut a = loona_hpack::Decoder::new();
        let mut b = loona_hpack::Decoder::new();
        a.set_max_table_size(256);
        b.set_max_table_size(256);
        let first = hex(C61);
        let want1 = a.decode(&first).unwrap();
        let got1 = b.decode(&rewrite(&first).unwrap()).unwrap();
        assert_eq!(got1, want1);
        let want2 = a.decode(&c62).unwrap();
        let got2 = b.decode(&rewrite(&c62).unwrap_or(c62.clone())).unwrap();
        assert_eq!(got2, want2);
    }

    #[test]
    fn plain_blocks_are_left_alone() {
        // RFC 7541 C.3.1: no Huffman.
        let block = hex("828684410f7777772e6578616d706c652e636f6d");
        assert_eq!(rewrite(&block), None);
    }

    #[test]
    fn malformed_blocks_are_not_rewritten() {
        let good = hex(C41);
        for cut in 1..good.len() {
            // Whatever it says about a prefix, it never panics, and a rewrite it returns decodes
            // like the original.
            if let Some(r) = rewrite(&good[..cut]) {
                assert_eq!(decode_all(&r).ok(), decode_all(&good[..cut]).ok());
            }
        }
        // An integer that never ends; a string longer than the block; invalid Huffman (EOS).
        for bad in [
            vec![0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            vec![0x40, 0x85, 0xf1],
            vec![0x40, 0x84, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61],
        ] {
            assert_eq!(rewrite(&bad), None, "{bad:x?}");
        }
    }

    #[test]
    fn integers_round_trip() {
        for prefix in 1..=8u8 {
            for v in [0u64, 1, 30, 31, 127, 128, 255, 1337, 65_535, 1 << 28] {
                let mut out = Vec::new();
                write_int(&mut out, 0, prefix, v);
                assert_eq!(
                    read_int(&out, 0, prefix),
                    Some((v, out.len())),
                    "{prefix} {v}"
                );
            }
        }
    }
}
