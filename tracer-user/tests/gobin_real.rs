//! The Go binary analysis on real binaries built here with the system's Go toolchain.

mod support;

use std::path::Path;

use tracer_user::probe::gobin::{self, GoBinary, SymbolSource, TLS_READ, TLS_WRITE};

fn analyze(path: &Path) -> GoBinary {
    gobin::analyze_path(path)
        .expect("ELF")
        .unwrap_or_else(|| panic!("{} not recognised as Go", path.display()))
}

/// Every RET offset must point at a RET opcode inside the function.
fn assert_rets_are_rets(path: &Path, bin: &GoBinary) {
    let data = std::fs::read(path).unwrap();
    for f in [bin.write.as_ref().unwrap(), bin.read.as_ref().unwrap()] {
        assert!(!f.ret_offsets.is_empty(), "{}: no RET", f.name);
        for &off in &f.ret_offsets {
            assert!(off > f.entry_offset && off < f.entry_offset + f.size);
            assert_eq!(data[off as usize], 0xc3, "{} RET at {off:#x}", f.name);
        }
    }
}

#[test]
fn unstripped_stripped_and_pie_go_binaries_agree() {
    let dir = tempfile::tempdir().unwrap();
    let want_version = support::go_version();
    let plain = support::build_go(dir.path(), "client", support::GO_TLS_CLIENT, &[]);
    let stripped = support::build_go(
        dir.path(),
        "client_stripped",
        support::GO_TLS_CLIENT,
        &["-ldflags=-s -w"],
    );
    let pie = support::build_go(
        dir.path(),
        "client_pie",
        support::GO_TLS_CLIENT,
        &["-buildmode=pie", "-ldflags=-s -w"],
    );

    let a = analyze(&plain);
    assert_eq!(a.symbols, Some(SymbolSource::Symtab));
    assert_eq!(a.version_string.as_deref(), Some(want_version.as_str()));
    assert!(a.version.unwrap().has_register_abi());
    assert_eq!(a.arch, "x86_64");
    assert!(a.attachable().is_ok(), "{:?}", a.attachable());
    assert_eq!(a.write.as_ref().unwrap().name, TLS_WRITE);
    assert_eq!(a.read.as_ref().unwrap().name, TLS_READ);
    assert_rets_are_rets(&plain, &a);

    // The stripped build has the same code layout; its functions come from the pclntab and
    // must match the symbol table's exactly (a wrong pclntab reading would not).
    let b = analyze(&stripped);
    assert_eq!(b.symbols, Some(SymbolSource::PclntabSection));
    assert_eq!(b.version_string, a.version_string);
    for (x, y) in [(&a.write, &b.write), (&a.read, &b.read)] {
        let (x, y) = (x.as_ref().unwrap(), y.as_ref().unwrap());
        assert_eq!(x.address, y.address);
        assert_eq!(x.entry_offset, y.entry_offset);
        assert_eq!(x.ret_offsets, y.ret_offsets);
        assert!(y.size >= x.size, "pclntab size includes padding");
    }
    assert_rets_are_rets(&stripped, &b);

    let c = analyze(&pie);
    assert!(c.symbols.is_some());
    assert!(c.attachable().is_ok(), "{:?}", c.attachable());
    assert_rets_are_rets(&pie, &c);
}

#[test]
fn stripped_go_binary_whose_sections_do_not_name_the_pclntab_is_found_by_magic() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::build_go(
        dir.path(),
        "client",
        support::GO_TLS_CLIENT,
        &["-ldflags=-s -w"],
    );
    let mut data = std::fs::read(&path).unwrap();
    // Rename the section in the section-name string table so no section is called *gopclntab.
    let at = memchr::memmem::find(&data, b".gopclntab\0").expect("section name present");
    data[at..at + 10].copy_from_slice(b".xxpclntab");
    let renamed = dir.path().join("renamed");
    std::fs::write(&renamed, &data).unwrap();

    let orig = analyze(&path);
    let scan = analyze(&renamed);
    assert_eq!(scan.symbols, Some(SymbolSource::PclntabScan));
    assert_eq!(scan.write, orig.write);
    assert_eq!(scan.read, orig.read);
    assert!(scan.attachable().is_ok());
}

#[test]
fn go_program_without_crypto_tls_is_go_but_not_attachable() {
    let dir = tempfile::tempdir().unwrap();
    let path = support::build_go(dir.path(), "hello", support::GO_HELLO, &["-ldflags=-s -w"]);
    let bin = analyze(&path);
    assert!(bin.has_pclntab);
    assert!(bin.write.is_none() && bin.read.is_none());
    assert_eq!(
        bin.attachable().unwrap_err(),
        "Go binary without crypto/tls"
    );
}

#[test]
fn non_go_system_binaries_are_not_go() {
    for p in ["/usr/bin/curl", "/usr/bin/python3", "/usr/bin/node"] {
        let path = std::fs::canonicalize(p)
            .unwrap_or_else(|_| panic!("TEST CANNOT RUN: {p} missing (cargo xtask setup)"));
        assert_eq!(gobin::analyze_path(&path).unwrap(), None, "{p}");
    }
}
