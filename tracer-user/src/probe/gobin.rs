//! Go executables: where `crypto/tls.(*Conn).Write` / `Read` are, the file offsets of their
//! RET instructions, and which Go built the binary.
//!
//! Go moves goroutine stacks, so a uretprobe (which overwrites the return address on the stack)
//! corrupts Go programs. Instead the kernel side attaches plain uprobes at the function entry
//! (to stash the arguments) and at every RET instruction of the function (to read the return
//! value), which is what this module finds. The functions come from the ELF symbol table, or,
//! when the binary is stripped, from the pclntab that the Go runtime itself needs.

use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};
use object::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use serde::Serialize;

use super::gopclntab::{self, Pclntab};

/// The two functions the Go probes hook.
pub const TLS_WRITE: &str = "crypto/tls.(*Conn).Write";
pub const TLS_READ: &str = "crypto/tls.(*Conn).Read";
/// Hooked at its entry only (optional): the connection is over, its kernel state is freed.
pub const TLS_CLOSE: &str = "crypto/tls.(*Conn).Close";

/// Magic that starts Go's build information blob (`.go.buildinfo`).
const BUILDINFO_MAGIC: &[u8] = b"\xff Go buildinf:";

/// Functions larger than this are not disassembled (a real `(*Conn).Read` is a few KiB).
const MAX_FUNC_SIZE: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("not an ELF file: {0}")]
    Elf(#[from] object::Error),
}

/// A Go release, from the build info (`go1.19.8` -> 1.19.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    /// Parses the version out of strings such as `go1.19.8`, `go1.21rc2`,
    /// `go1.22.0 X:boringcrypto` or `devel go1.23-abcdef`.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = &s[s.find("go1.")? + 2..];
        let mut nums = rest.split(|c: char| !c.is_ascii_digit());
        let major = nums.next()?.parse().ok()?;
        let minor = nums.next()?.parse().ok()?;
        // A patch number only if it directly follows "1.N.".
        let after_minor = &rest[rest.find('.')? + 1..];
        let digits = after_minor.trim_start_matches(|c: char| c.is_ascii_digit());
        let patch = match digits.strip_prefix('.') {
            Some(p) => p
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|d| d.parse().ok())
                .unwrap_or(0),
            None => 0,
        };
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// Go 1.17 introduced the register-based calling convention on amd64 (arguments in RAX,
    /// RBX, RCX, ..., the current goroutine in R14), which the probes read.
    pub fn has_register_abi(&self) -> bool {
        (self.major, self.minor) >= (1, 17)
    }
}

impl std::fmt::Display for GoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Where the function addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolSource {
    /// The ELF `.symtab` (an unstripped binary).
    Symtab,
    /// Go's pclntab found by its section name.
    PclntabSection,
    /// Go's pclntab found by scanning for its magic (no section names it).
    PclntabScan,
}

/// One hooked function and its attach points, as file offsets (what a uprobe attaches to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoFunction {
    pub name: &'static str,
    /// Virtual address of the entry.
    pub address: u64,
    /// Bytes from the entry to the next function.
    pub size: u64,
    /// File offset of the entry instruction.
    pub entry_offset: u64,
    /// File offsets of every RET instruction in the function.
    pub ret_offsets: Vec<u64>,
}

/// What the analysis learnt about a Go executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoBinary {
    /// The raw version string from the build info (`go1.19.8`), if the build info is there.
    pub version_string: Option<String>,
    pub version: Option<GoVersion>,
    /// `x86_64`, `aarch64`, ...
    pub arch: String,
    /// Where the functions below were found, if anywhere.
    pub symbols: Option<SymbolSource>,
    /// Whether a pclntab was found at all.
    pub has_pclntab: bool,
    pub write: Option<GoFunction>,
    pub read: Option<GoFunction>,
    /// `(*Conn).Close` (only its entry is used).
    pub close: Option<GoFunction>,
}

impl GoBinary {
    /// Whether the probes can hook this binary's crypto/tls.
    pub fn attachable(&self) -> Result<(&GoFunction, &GoFunction), &'static str> {
        if self.arch != "x86_64" {
            return Err("Go on this CPU architecture is not supported (x86-64 only)");
        }
        if let Some(v) = self.version {
            if !v.has_register_abi() {
                return Err("Go older than 1.17 (stack calling convention) is not supported");
            }
        }
        let (Some(w), Some(r)) = (&self.write, &self.read) else {
            return Err(if self.symbols.is_none() && !self.has_pclntab {
                "stripped Go binary without pclntab"
            } else {
                "Go binary without crypto/tls"
            });
        };
        if w.ret_offsets.is_empty() || r.ret_offsets.is_empty() {
            return Err("no RET instruction found in crypto/tls.(*Conn) Read/Write");
        }
        Ok((w, r))
    }
}

/// Analyses the executable at `path`. `Ok(None)`: an ELF file, but not a Go program.
pub fn analyze_path(path: &Path) -> Result<Option<GoBinary>, GoBinError> {
    let io = |source| GoBinError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    // SAFETY: the map is only read; if another process truncates the file meanwhile we may
    // read zeros or get SIGBUS, the usual caveat of mapping files, accepted here as every
    // binary-analysis tool does (the files are executables, which are rarely rewritten in place).
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    analyze(&map)
}

/// Analyses an executable held in memory. `Ok(None)`: an ELF file, but not a Go program.
pub fn analyze(data: &[u8]) -> Result<Option<GoBinary>, GoBinError> {
    let elf = object::File::parse(data)?;
    // Go's linker always writes these sections; only a binary whose section headers were
    // removed altogether is searched for the build info magic (a whole-file scan, which
    // would be a waste on every ordinary library).
    let go_section = elf.sections().any(|s| {
        s.name().is_ok_and(|n| {
            n == ".go.buildinfo" || n == ".note.go.buildid" || n.ends_with(".gopclntab")
        })
    });
    let no_sections = elf.sections().next().is_none();
    if !go_section && !no_sections {
        return Ok(None);
    }
    let version_string = build_version(&elf, data);
    if !go_section && version_string.is_none() {
        return Ok(None);
    }
    let pcln = find_pclntab(&elf, data);

    let mut symbols = None;
    let mut write = None;
    let mut read = None;
    let mut close = None;
    if elf.symbol_by_name(TLS_WRITE).is_some() || elf.symbol_by_name(TLS_READ).is_some() {
        symbols = Some(SymbolSource::Symtab);
        write = from_symtab(&elf, data, TLS_WRITE);
        read = from_symtab(&elf, data, TLS_READ);
        close = from_symtab(&elf, data, TLS_CLOSE);
    } else if let Some((source, table)) = &pcln {
        let w = from_pclntab(&elf, data, table, TLS_WRITE);
        let r = from_pclntab(&elf, data, table, TLS_READ);
        if w.is_some() || r.is_some() {
            symbols = Some(*source);
            close = from_pclntab(&elf, data, table, TLS_CLOSE);
        }
        (write, read) = (w, r);
    }

    Ok(Some(GoBinary {
        version: version_string.as_deref().and_then(GoVersion::parse),
        version_string,
        arch: format!("{:?}", elf.architecture()).to_lowercase(),
        symbols,
        has_pclntab: pcln.is_some(),
        write,
        read,
        close,
    }))
}

fn from_symtab(elf: &object::File, data: &[u8], name: &'static str) -> Option<GoFunction> {
    let sym = elf.symbol_by_name(name)?;
    function(elf, data, name, sym.address(), sym.size())
}

fn from_pclntab(
    elf: &object::File,
    data: &[u8],
    table: &Pclntab,
    name: &'static str,
) -> Option<GoFunction> {
    let range = table.find(name)?;
    function(elf, data, name, range.entry, range.end - range.entry)
}

/// Builds the attach points of a function at virtual address `address`.
fn function(
    elf: &object::File,
    data: &[u8],
    name: &'static str,
    address: u64,
    size: u64,
) -> Option<GoFunction> {
    if size == 0 || size > MAX_FUNC_SIZE {
        return None;
    }
    let entry_offset = vaddr_to_offset(elf, address)?;
    let start = usize::try_from(entry_offset).ok()?;
    let code = data.get(start..start.checked_add(usize::try_from(size).ok()?)?)?;
    Some(GoFunction {
        name,
        address,
        size,
        entry_offset,
        ret_offsets: ret_offsets(code, address, entry_offset),
    })
}

/// File offsets of the RET instructions in `code` (x86-64), which starts at virtual address
/// `address` and file offset `file_offset`.
pub fn ret_offsets(code: &[u8], address: u64, file_offset: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let mut out = Vec::new();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        if insn.mnemonic() == Mnemonic::Ret {
            out.push(file_offset + (insn.ip() - address));
        }
    }
    out
}

/// Maps a virtual address to its file offset through the loadable segments.
pub fn vaddr_to_offset(elf: &object::File, vaddr: u64) -> Option<u64> {
    elf.segments().find_map(|seg| {
        let (off, filesz) = seg.file_range();
        let start = seg.address();
        (vaddr >= start && vaddr < start.checked_add(filesz)?).then(|| off + (vaddr - start))
    })
}

/// The Go pclntab: by section name (`.gopclntab`, or `.data.rel.ro.gopclntab` in PIE builds),
/// else by scanning the file for its magic.
fn find_pclntab<'a>(elf: &object::File, data: &'a [u8]) -> Option<(SymbolSource, Pclntab<'a>)> {
    let text = elf
        .section_by_name(".text")
        .map(|s| (s.address(), s.address() + s.size()));
    for section in elf.sections() {
        if section.name().is_ok_and(|n| n.ends_with(".gopclntab")) {
            if let Some((off, _)) = section.file_range() {
                if let Some(table) = usize::try_from(off)
                    .ok()
                    .and_then(|o| data.get(o..))
                    .and_then(Pclntab::parse)
                {
                    return Some((SymbolSource::PclntabSection, table));
                }
            }
        }
    }
    gopclntab::locate(data, text).map(|(_, t)| (SymbolSource::PclntabScan, t))
}

/// The Go version recorded by the linker in the build info blob: from the `.go.buildinfo`
/// section, else from the first 16-byte aligned copy of its magic that holds a Go version
/// (the magic alone also appears in programs that look for it, like this one).
pub fn build_version(elf: &object::File, data: &[u8]) -> Option<String> {
    if let Some((off, _)) = elf
        .section_by_name(".go.buildinfo")
        .and_then(|s| s.file_range())
    {
        return buildinfo_version(elf, data, data.get(usize::try_from(off).ok()?..)?);
    }
    memchr::memmem::find_iter(data, BUILDINFO_MAGIC)
        .filter(|at| at.is_multiple_of(16))
        .find_map(|at| buildinfo_version(elf, data, &data[at..]))
}

fn buildinfo_version(elf: &object::File, data: &[u8], blob: &[u8]) -> Option<String> {
    if !blob.starts_with(BUILDINFO_MAGIC) {
        return None;
    }
    let ptr_size = *blob.get(14)? as usize;
    let flags = *blob.get(15)?;
    let s = if flags & 2 != 0 {
        // Go 1.18+: the version string follows the 32-byte header, varint-length-prefixed.
        let (len, used) = uvarint(blob.get(32..)?)?;
        let start = 32 + used;
        blob.get(start..start.checked_add(usize::try_from(len).ok()?)?)?
    } else {
        // Before 1.18: a pointer to a Go string header (data pointer, length).
        if flags & 1 != 0 || !matches!(ptr_size, 4 | 8) {
            return None; // big-endian targets are not ours
        }
        let word = |b: &[u8], at: usize| -> Option<u64> {
            let mut buf = [0u8; 8];
            buf[..ptr_size].copy_from_slice(b.get(at..at.checked_add(ptr_size)?)?);
            Some(u64::from_le_bytes(buf))
        };
        let header = usize::try_from(vaddr_to_offset(elf, word(blob, 16)?)?).ok()?;
        let str_ptr = word(data, header)?;
        let str_len = usize::try_from(word(data, header.checked_add(ptr_size)?)?).ok()?;
        let at = usize::try_from(vaddr_to_offset(elf, str_ptr)?).ok()?;
        data.get(at..at.checked_add(str_len)?)?
    };
    let s = std::str::from_utf8(s).ok()?;
    (s.len() < 128 && GoVersion::parse(s).is_some()).then(|| s.to_owned())
}

/// Unsigned LEB128 as Go's `encoding/binary.Uvarint` writes it: (value, bytes used).
fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_version_strings() {
        let v = |s| GoVersion::parse(s);
        assert_eq!(
            v("go1.19.8"),
            Some(GoVersion {
                major: 1,
                minor: 19,
                patch: 8
            })
        );
        assert_eq!(v("go1.21rc2").map(|v| (v.minor, v.patch)), Some((21, 0)));
        assert_eq!(
            v("go1.22.0 X:boringcrypto").map(|v| (v.minor, v.patch)),
            Some((22, 0))
        );
        assert_eq!(v("devel go1.23-abcdef").map(|v| v.minor), Some(23));
        assert_eq!(v("go1.16.15").map(|v| v.has_register_abi()), Some(false));
        assert_eq!(v("go1.17").map(|v| v.has_register_abi()), Some(true));
        assert_eq!(v("python3"), None);
    }

    #[test]
    fn uvarint_reads_go_varints() {
        assert_eq!(uvarint(&[0x08]), Some((8, 1)));
        assert_eq!(uvarint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(uvarint(&[0x80; 11]), None);
        assert_eq!(uvarint(&[]), None);
    }

    #[test]
    fn finds_ret_instructions_not_c3_bytes_inside_other_instructions() {
        // mov eax, 0xc3c3c3c3 ; ret ; int3 ; ret 8
        let code = [0xb8, 0xc3, 0xc3, 0xc3, 0xc3, 0xc3, 0xcc, 0xc2, 0x08, 0x00];
        assert_eq!(ret_offsets(&code, 0x1000, 0x500), vec![0x505, 0x507]);
    }

    #[test]
    fn rejects_non_elf_input() {
        assert!(analyze(b"#!/bin/sh\necho hi\n").is_err());
    }

    #[test]
    fn a_program_that_merely_contains_the_buildinfo_magic_is_not_go() {
        // This test binary holds BUILDINFO_MAGIC in its read-only data.
        let me = std::env::current_exe().unwrap();
        assert!(memchr::memmem::find(&std::fs::read(&me).unwrap(), BUILDINFO_MAGIC).is_some());
        assert_eq!(analyze_path(&me).unwrap(), None);
    }
}
