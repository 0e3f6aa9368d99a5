//! Reading an ELF file's dynamic symbols (what a uprobe can be attached to by name).

use std::{collections::HashMap, fs::File, path::Path};

use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a readable ELF file: {0}")]
    Parse(#[from] object::Error),
}

/// Which of `wanted` the file defines in its dynamic symbol table, with the file offset of each
/// (what a uprobe is attached at). The file is mapped, not read (a node binary is ~100 MB,
/// and only its symbol tables are touched): resolving the offsets here once, instead of by name in every attach, keeps
/// start-up fast.
pub fn defined_dynamic_symbols<'a>(
    path: &Path,
    wanted: &[&'a str],
) -> Result<HashMap<&'a str, u64>, ElfError> {
    let f = File::open(path)?;
    // SAFETY: a read-only private mapping of a library/binary file. If another process
    // truncated the file while we read it, the access could fault; executables in use are
    // not truncated in place (the kernel refuses writes to running binaries: ETXTBSY).
    let map = unsafe { memmap2::Mmap::map(&f)? };
    let file = object::File::parse(&*map)?;
    // (virtual address, size, file offset) of the loadable segments.
    let segments: Vec<(u64, u64, u64)> = file
        .segments()
        .filter_map(|s| {
            let (offset, size) = s.file_range();
            (size > 0).then_some((s.address(), size, offset))
        })
        .collect();
    let mut found = HashMap::new();
    // The static table too: a program may link a TLS library without exporting it (rustup's
    // cargo has SSL_write in .symtab only); aya attaches there all the same.
    for sym in file.dynamic_symbols().chain(file.symbols()) {
        if !sym.is_definition() {
            continue;
        }
        let Ok(name) = sym.name() else { continue };
        // Versioned names ("SSL_write@@OPENSSL_3.0.0") are reported without the version.
        let Some(w) = wanted.iter().find(|w| **w == name) else {
            continue;
        };
        let addr = sym.address();
        let offset = segments
            .iter()
            .find(|(va, size, _)| addr >= *va && addr - va < *size)
            .map(|(va, _, off)| addr - va + off);
        if let Some(offset) = offset {
            found.insert(*w, offset);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libc_exports_and_rejects_non_elf() {
        // Our own binary imports malloc but does not define it; libc defines it.
        let libc = ["/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib64/libc.so.6"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists());
        let Some(libc) = libc else {
            eprintln!("SKIPPED: no libc.so.6 at a known path");
            return;
        };
        let found = defined_dynamic_symbols(libc, &["malloc", "no_such_symbol_xyz"]).unwrap();
        assert!(!found.contains_key("no_such_symbol_xyz"));
        // The offset points at the function's code in the file: libc is position independent
        // (vaddr == file offset for its text), so the offset equals nm's address there.
        let off = found["malloc"];
        assert!(off > 0 && off < std::fs::metadata(libc).unwrap().len());
        let me = std::env::current_exe().unwrap();
        let found = defined_dynamic_symbols(&me, &["malloc"]).unwrap();
        assert!(
            !found.contains_key("malloc"),
            "an import is not a definition"
        );
        let dir = std::env::temp_dir().join(format!("elf-test-{}", std::process::id()));
        std::fs::write(&dir, b"not an elf").unwrap();
        assert!(defined_dynamic_symbols(&dir, &["malloc"]).is_err());
        let _ = std::fs::remove_file(&dir);
    }

    #[test]
    fn finds_statically_linked_openssl_that_is_not_exported() {
        // rustup's cargo links OpenSSL statically: SSL_write is in .symtab, not in .dynsym.
        // `cargo test` runs us with CARGO set to that binary.
        let cargo = std::env::var_os("CARGO").expect("run under cargo");
        let found = defined_dynamic_symbols(Path::new(&cargo), &["SSL_write", "SSL_read"]).unwrap();
        assert_eq!(found.len(), 2, "{cargo:?}: {found:?}");
    }
}
