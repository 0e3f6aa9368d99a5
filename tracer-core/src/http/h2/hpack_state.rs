//! HPACK state of one direction of a connection, on top of the `loona-hpack` decoder.
//!
//! Exact mode: the direction was seen from its first header block, the decoder's dynamic table
//! is the encoder's.
//!
//! Late mode (attached mid-connection, or state lost after a gap / a dropped header block): the
//! table held entries we never saw. We pre-fill the decoder's dynamic table with *unknown*
//! placeholder entries (empty name and value, the smallest possible entry: 32 octets) so that:
//! - entries inserted after the attach sit at the front of the table, at exactly the indices the
//!   encoder uses (HPACK indexes the dynamic table from the newest entry), and are known;
//! - an index past them lands on a placeholder and is reported as unknown, never as a value;
//! - a literal whose name is indexed to a placeholder yields an unknown name, and if it is
//!   inserted, the new entry's name stays unknown too.
//!
//! Entries inserted after the attach are newer than every unknown one, so real eviction removes
//! all unknown entries before any known one. Our placeholders are never larger than the real
//! entries they stand for, and an unknown-name entry is never larger in our copy than in the
//! encoder's, so our copy never evicts a known entry the encoder still has: a known entry is
//! either right or absent. A reference past the placeholders (the encoder's table was larger than
//! we assumed) fails the block; we then start over with a larger table of placeholders and decode
//! the block again (previously known entries become unknown: lost, never wrong).

use loona_hpack::Decoder;

/// Initial HPACK dynamic table size (RFC 7541 §4.2, RFC 9113 §6.5.2).
pub const DEFAULT_TABLE_SIZE: usize = 4096;
/// The largest dynamic table we are prepared to mirror in late mode.
const MAX_LATE_TABLE_SIZE: usize = 65_536;
/// Size of an entry with empty name and value (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// One decoded header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Known {
        name: Vec<u8>,
        value: Vec<u8>,
    },
    /// The name came from a dynamic table entry we never saw; the value is literal.
    UnknownName {
        value: Vec<u8>,
    },
    /// The whole field came from a dynamic table entry we never saw.
    Unknown,
}

/// A decoded header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    pub fields: Vec<Field>,
    /// The block was decoded with a table holding unknown entries.
    pub late: bool,
}

/// Why a block could not be decoded (the direction's state is then reset to late mode).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HpackError {
    #[error("HPACK decoding failed: {0}")]
    Decode(#[from] loona_hpack::decoder::DecoderError),
}

pub struct HpackState {
    decoder: Decoder<'static>,
    late: bool,
    /// Dynamic table size assumed for placeholders in late mode: at least the peer's
    /// SETTINGS_HEADER_TABLE_SIZE when we saw it.
    late_table_size: usize,
    /// Largest header list we keep (sum of name + value + 32 per field); past it, fields are
    /// still decoded (to keep the table right) but not kept.
    max_list_size: usize,
}

impl std::fmt::Debug for HpackState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HpackState")
            .field("late", &self.late)
            .field("late_table_size", &self.late_table_size)
            .finish()
    }
}

impl HpackState {
    /// A decoder that saw the direction from its start.
    pub fn exact(max_list_size: usize) -> HpackState {
        HpackState {
            decoder: Decoder::new(),
            late: false,
            late_table_size: DEFAULT_TABLE_SIZE,
            max_list_size,
        }
    }

    /// A decoder attached mid-connection.
    pub fn late(max_list_size: usize) -> HpackState {
        let mut s = HpackState::exact(max_list_size);
        s.reset_late();
        s
    }

    pub fn is_late(&self) -> bool {
        self.late
    }

    /// The decoding side advertised SETTINGS_HEADER_TABLE_SIZE: the encoder may use a table up to
    /// that size. (Exact mode follows the encoder's own size updates, which it must send.)
    pub fn peer_table_size(&mut self, size: u32) {
        let size = (size as usize).min(MAX_LATE_TABLE_SIZE);
        self.late_table_size = self.late_table_size.max(size);
    }

    /// About how much memory the dynamic table may hold (its size bound; an entry's 32 octets of
    /// accounting roughly cover our per-entry overhead).
    pub fn table_bytes(&self) -> usize {
        self.late_table_size
    }

    /// Forget the table: from now on only entries inserted after this point are known.
    pub fn reset_late(&mut self) {
        self.late = true;
        let size = self.late_table_size;
        let mut decoder = Decoder::new();
        decoder.set_max_table_size(size);
        // A header block of `size / 32` literals with incremental indexing, empty name, empty
        // value (0x40 0x00 0x00 each): fills the table exactly with placeholders.
        let block: Vec<u8> = [0x40u8, 0x00, 0x00].repeat(size / ENTRY_OVERHEAD);
        // Cannot fail: every representation is complete and valid.
        let _ = decoder.decode_with_cb(&block, |_, _| {});
        self.decoder = decoder;
    }

    /// Decode one complete header block (HEADERS + CONTINUATION fragments, or PUSH_PROMISE).
    /// On error the state is reset to late mode and the error returned (the block is lost).
    pub fn decode(&mut self, block: &[u8]) -> Result<Block, HpackError> {
        // Huffman literals made plain first: same fields, a fraction of loona-hpack's cost.
        let plain = super::plain_literals::rewrite(block);
        let block = plain.as_deref().unwrap_or(block);
        match self.decode_once(block) {
            Ok(b) => Ok(b),
            Err(loona_hpack::decoder::DecoderError::HeaderIndexOutOfBounds)
                if self.late && self.late_table_size < MAX_LATE_TABLE_SIZE =>
            {
                // The encoder's table is larger than we assumed: assume more and retry once.
                self.late_table_size = (self.late_table_size * 4).min(MAX_LATE_TABLE_SIZE);
                self.reset_late();
                self.decode_once(block).map_err(|e| {
                    self.reset_late();
                    HpackError::from(e)
                })
            }
            Err(e) => {
                self.reset_late();
                Err(e.into())
            }
        }
    }

    fn decode_once(&mut self, block: &[u8]) -> Result<Block, loona_hpack::decoder::DecoderError> {
        let late = self.late;
        let max = self.max_list_size;
        let mut size = 0usize;
        let mut fields = Vec::new();
        self.decoder.decode_with_cb(block, |name, value| {
            size = size.saturating_add(name.len() + value.len() + ENTRY_OVERHEAD);
            if size > max {
                return;
            }
            // Only a placeholder (or an entry built on one) has an empty name; a real header
            // name is never empty (RFC 9113 §8.2), so this never hides a known field we need.
            let field = if late && name.is_empty() {
                if value.is_empty() {
                    Field::Unknown
                } else {
                    Field::UnknownName {
                        value: value.into_owned(),
                    }
                }
            } else {
                Field::Known {
                    name: name.into_owned(),
                    value: value.into_owned(),
                }
            };
            fields.push(field);
        })?;
        Ok(Block { fields, late })
    }
}
