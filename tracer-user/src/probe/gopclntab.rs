//! Go's function table (`pclntab`): the runtime needs it for stack traces and the GC, so the
//! linker keeps it even in stripped binaries (`-ldflags=-s -w`). It maps every function name to
//! its entry address and lets us find `crypto/tls.(*Conn).Write` without a symbol table.
//!
//! Layouts read here (all little-endian; header word size = `ptr_size`):
//! - Go 1.16/1.17 (magic `0xfffffffa`): `nfunc, nfiles, funcnameOffset, cuOffset, filetabOffset,
//!   pctabOffset, pclnOffset`; the function table holds `(entry, funcoff)` pairs of words.
//! - Go 1.18/1.19 (`0xfffffff0`) and Go 1.20+ (`0xfffffff1`): as above with `textStart` after
//!   `nfiles`; the function table holds `(entryoff u32, funcoff u32)` pairs relative to
//!   `textStart`.
//!
//! In both, `funcoff` points from the start of the function table to a `_func` record whose
//! `nameoff` (an `i32` after the entry field) indexes the function name table.
//! Older tables (Go <= 1.15) are not read: those Go versions predate the register ABI that the
//! probes rely on anyway.

/// Which layout the table uses (named after the first Go release that wrote it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PclnVersion {
    Go116,
    Go118,
    Go120,
}

impl PclnVersion {
    fn from_magic(magic: u32) -> Option<Self> {
        match magic {
            0xffff_fffa => Some(Self::Go116),
            0xffff_fff0 => Some(Self::Go118),
            0xffff_fff1 => Some(Self::Go120),
            _ => None,
        }
    }
}

/// Every magic this module reads, as the bytes that start a table.
pub const MAGICS: [[u8; 4]; 3] = [
    0xffff_fffau32.to_le_bytes(),
    0xffff_fff0u32.to_le_bytes(),
    0xffff_fff1u32.to_le_bytes(),
];

/// Upper bound on functions in one binary, to reject random bytes that look like a header.
const MAX_FUNCS: usize = 10_000_000;

/// A parsed view of a pclntab. Every read is bounds-checked: a corrupt table yields `None`,
/// never a panic.
#[derive(Debug, Clone)]
pub struct Pclntab<'a> {
    data: &'a [u8],
    pub version: PclnVersion,
    ptr_size: usize,
    nfunc: usize,
    /// Address the 1.18+ entry offsets are relative to (`runtime.text`).
    text_start: u64,
    funcname_off: usize,
    functab_off: usize,
}

/// One function found in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FuncRange {
    /// Virtual address of the first instruction.
    pub entry: u64,
    /// Virtual address just past the function (the next function's entry, so it may include
    /// alignment padding).
    pub end: u64,
}

impl<'a> Pclntab<'a> {
    /// Parses a table that starts at `data[0]`. `data` may extend past the table (e.g. to the
    /// end of the file). Returns `None` unless the header is consistent and the first function
    /// has a readable name.
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let magic = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?);
        let version = PclnVersion::from_magic(magic)?;
        let [pad1, pad2, min_lc, ptr_size]: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        if pad1 != 0 || pad2 != 0 || !matches!(min_lc, 1 | 2 | 4) || !matches!(ptr_size, 4 | 8) {
            return None;
        }
        let ptr_size = ptr_size as usize;
        let word = |i: usize| read_word(data, 8 + i * ptr_size, ptr_size);
        let nfunc = usize::try_from(word(0)?).ok()?;
        let (text_start, rest) = match version {
            PclnVersion::Go116 => (0, 2),
            PclnVersion::Go118 | PclnVersion::Go120 => (word(2)?, 3),
        };
        // rest: funcnameOffset, cuOffset, filetabOffset, pctabOffset, pclnOffset
        let funcname_off = usize::try_from(word(rest)?).ok()?;
        let functab_off = usize::try_from(word(rest + 4)?).ok()?;
        if nfunc == 0 || nfunc > MAX_FUNCS || funcname_off >= data.len() {
            return None;
        }
        let table = Self {
            data,
            version,
            ptr_size,
            nfunc,
            text_start,
            funcname_off,
            functab_off,
        };
        // The whole function table must be inside the data, and the first name readable.
        table.functab_field(nfunc, 0)?;
        let first = table.name(0)?;
        if first.is_empty() {
            return None;
        }
        Some(table)
    }

    /// Number of functions in the table.
    pub fn len(&self) -> usize {
        self.nfunc
    }

    pub fn is_empty(&self) -> bool {
        self.nfunc == 0
    }

    /// Size in bytes of one function table field (entry or funcoff).
    fn field_size(&self) -> usize {
        match self.version {
            PclnVersion::Go116 => self.ptr_size,
            PclnVersion::Go118 | PclnVersion::Go120 => 4,
        }
    }

    /// Field `which` (0 = entry, 1 = funcoff) of function table row `i`.
    fn functab_field(&self, i: usize, which: usize) -> Option<u64> {
        let size = self.field_size();
        let at = self
            .functab_off
            .checked_add(i.checked_mul(2 * size)?)?
            .checked_add(which * size)?;
        read_word(self.data, at, size)
    }

    /// Virtual address of function `i` (row `nfunc` is the end marker).
    fn entry(&self, i: usize) -> Option<u64> {
        let raw = self.functab_field(i, 0)?;
        match self.version {
            PclnVersion::Go116 => Some(raw),
            PclnVersion::Go118 | PclnVersion::Go120 => self.text_start.checked_add(raw),
        }
    }

    /// Name of function `i`, without its terminating NUL.
    pub fn name(&self, i: usize) -> Option<&'a [u8]> {
        let funcoff = usize::try_from(self.functab_field(i, 1)?).ok()?;
        let func = self.functab_off.checked_add(funcoff)?;
        // _func starts with the entry (u32 offset in 1.18+, a word in 1.16), then nameoff i32.
        let nameoff = read_word(self.data, func.checked_add(self.field_size())?, 4)? as u32 as i32;
        let start = self
            .funcname_off
            .checked_add(usize::try_from(nameoff).ok()?)?;
        let tail = self.data.get(start..)?;
        let len = memchr::memchr(0, tail)?;
        Some(&tail[..len])
    }

    /// Finds a function by its full name (e.g. `crypto/tls.(*Conn).Write`).
    pub fn find(&self, name: &str) -> Option<FuncRange> {
        let i = (0..self.nfunc).find(|&i| self.name(i) == Some(name.as_bytes()))?;
        let entry = self.entry(i)?;
        let end = self.entry(i + 1)?;
        (end > entry).then_some(FuncRange { entry, end })
    }

    /// The `textStart` the header declares (0 for the 1.16 layout, which has absolute entries).
    pub fn text_start(&self) -> u64 {
        self.text_start
    }
}

/// Little-endian unsigned integer of `size` bytes (4 or 8) at `at`.
fn read_word(data: &[u8], at: usize, size: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(size)?)?;
    Some(match size {
        4 => u32::from_le_bytes(bytes.try_into().ok()?) as u64,
        8 => u64::from_le_bytes(bytes.try_into().ok()?),
        _ => return None,
    })
}

/// Scans `data` for a pclntab header (for binaries whose section headers do not name it, e.g.
/// a stripped PIE where it sits inside `.data.rel.ro`). Returns the offset of the first
/// candidate that parses and whose function addresses fall in `text` (start, end).
pub fn locate(data: &[u8], text: Option<(u64, u64)>) -> Option<(usize, Pclntab<'_>)> {
    for magic in MAGICS {
        for at in memchr::memmem::find_iter(data, &magic) {
            // The linker aligns the table to the pointer size at least.
            if !at.is_multiple_of(4) {
                continue;
            }
            let Some(table) = Pclntab::parse(&data[at..]) else {
                continue;
            };
            let plausible = match (text, table.entry(0)) {
                (Some((lo, hi)), Some(first)) => (lo..hi).contains(&first),
                (None, Some(_)) => true,
                _ => false,
            };
            if plausible {
                return Some((at, table));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny Go 1.18-layout table with the given functions (name, entry offset).
    fn synthetic(funcs: &[(&str, u32)], end: u32) -> Vec<u8> {
        let ptr = 8usize;
        let header = 8 + 8 * ptr;
        let mut names = Vec::new();
        let mut nameoffs = Vec::new();
        for (n, _) in funcs {
            nameoffs.push(names.len() as u32);
            names.extend_from_slice(n.as_bytes());
            names.push(0);
        }
        let funcname_off = header;
        let functab_off = funcname_off + names.len();
        let rows = funcs.len() + 1;
        let funcs_start = rows * 8; // relative to functab
        let mut out = Vec::new();
        out.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        out.extend_from_slice(&[0, 0, 1, 8]);
        for w in [
            funcs.len() as u64,
            0,
            0x40_1000,
            funcname_off as u64,
            0,
            0,
            0,
            functab_off as u64,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&names);
        for (i, (_, entry)) in funcs.iter().enumerate() {
            out.extend_from_slice(&entry.to_le_bytes());
            out.extend_from_slice(&((funcs_start + i * 8) as u32).to_le_bytes());
        }
        out.extend_from_slice(&end.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        for (i, (_, entry)) in funcs.iter().enumerate() {
            out.extend_from_slice(&entry.to_le_bytes());
            out.extend_from_slice(&nameoffs[i].to_le_bytes());
        }
        out
    }

    #[test]
    fn finds_functions_in_a_synthetic_table() {
        let data = synthetic(
            &[("main.main", 0), ("crypto/tls.(*Conn).Write", 0x40)],
            0x90,
        );
        let t = Pclntab::parse(&data).expect("parses");
        assert_eq!(t.len(), 2);
        assert_eq!(t.version, PclnVersion::Go118);
        assert_eq!(
            t.find("crypto/tls.(*Conn).Write"),
            Some(FuncRange {
                entry: 0x40_1040,
                end: 0x40_1090
            })
        );
        assert_eq!(t.find("crypto/tls.(*Conn).Read"), None);
    }

    #[test]
    fn every_truncation_of_a_table_is_rejected_or_consistent_never_a_panic() {
        let data = synthetic(
            &[("main.main", 0), ("crypto/tls.(*Conn).Write", 0x40)],
            0x90,
        );
        for cut in 0..data.len() {
            if let Some(t) = Pclntab::parse(&data[..cut]) {
                // Whatever parses must not claim a function it cannot name.
                let _ = t.find("crypto/tls.(*Conn).Write");
            }
        }
        // Corrupt every byte in turn: still no panic.
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0xa5;
            if let Some(t) = Pclntab::parse(&bad) {
                let _ = t.find("crypto/tls.(*Conn).Write");
            }
        }
    }

    #[test]
    fn locate_finds_a_table_after_unrelated_bytes() {
        let table = synthetic(&[("main.main", 0)], 0x10);
        let mut data = vec![0x11u8; 64];
        // A false magic first: header bytes that do not parse.
        data.extend_from_slice(&0xffff_fff0u32.to_le_bytes());
        data.extend_from_slice(&[7, 7, 7, 7]);
        while !data.len().is_multiple_of(8) {
            data.push(0);
        }
        let at = data.len();
        data.extend_from_slice(&table);
        let (found, t) = locate(&data, Some((0x40_0000, 0x50_0000))).expect("found");
        assert_eq!(found, at);
        assert_eq!(t.name(0), Some(&b"main.main"[..]));
        // A text range that excludes the functions rejects the candidate.
        assert!(locate(&data, Some((0x10, 0x20))).is_none());
    }
}
