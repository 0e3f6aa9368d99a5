//! Reading an ELF file's dynamic symbols (what a uprobe can be attached to by name).

use std::{collections::HashSet, fs::File, path::Path};

use object::{read::ReadCache, Object as _, ObjectSymbol as _};

#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot open: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a readable ELF file: {0}")]
    Parse(#[from] object::Error),
}

/// Which of `wanted` the file defines in its dynamic symbol table. Reads only the parts of the
/// file it needs (a node binary is ~100 MB).
pub fn defined_dynamic_symbols<'a>(
    path: &Path,
    wanted: &[&'a str],
) -> Result<HashSet<&'a str>, ElfError> {
    let cache = ReadCache::new(File::open(path)?);
    let file = object::File::parse(&cache)?;
    let mut found = HashSet::new();
    for sym in file.dynamic_symbols() {
        if !sym.is_definition() {
            continue;
        }
        if let Ok(name) = sym.name() {
            // Versioned names ("SSL_write@@OPENSSL_3.0.0") are reported without the version.
            if let Some(w) = wanted.iter().find(|w| **w == name) {
                found.insert(*w);
            }
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
        assert!(found.contains("malloc"));
        assert!(!found.contains("no_such_symbol_xyz"));
        let me = std::env::current_exe().unwrap();
        let found = defined_dynamic_symbols(&me, &["malloc"]).unwrap();
        assert!(!found.contains("malloc"), "an import is not a definition");
        let dir = std::env::temp_dir().join(format!("elf-test-{}", std::process::id()));
        std::fs::write(&dir, b"not an elf").unwrap();
        assert!(defined_dynamic_symbols(&dir, &["malloc"]).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}
