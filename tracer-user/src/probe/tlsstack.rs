//! Which TLS stack a process uses, and whether llm-tracer's probes cover it.
//!
//! A process is classified from two things the kernel shows without tracing: the libraries it
//! has mapped (`/proc/PID/maps`: libssl, libgnutls, libnspr4/libssl3, libjvm) and its executable
//! (a Go program, an executable that carries OpenSSL/BoringSSL itself, or rustls). The verdict
//! says, in one phrase, why a stack is not covered, so "no spans" can be told apart from "no
//! LLM calls".

use std::path::Path;

use object::{Object, ObjectSymbol};
use serde::Serialize;

use super::gobin::{self, GoBinary};

/// The TLS implementations we can recognise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StackKind {
    /// libssl.so mapped from a file.
    #[serde(rename = "openssl_dynamic")]
    OpenSslDynamic,
    /// OpenSSL linked into the executable (node, static builds).
    #[serde(rename = "openssl_static")]
    OpenSslStatic,
    /// BoringSSL linked into the executable (Bun, Envoy, Chromium-based programs).
    #[serde(rename = "boringssl_static")]
    BoringSslStatic,
    /// Go's crypto/tls.
    GoCryptoTls,
    #[serde(rename = "gnutls")]
    GnuTls,
    Nss,
    Rustls,
    /// Java's JSSE (TLS written in Java).
    JavaJsse,
}

impl StackKind {
    /// The stable machine name (as in `check --json`): `openssl_dynamic`, `go_crypto_tls`, ...
    pub fn id(self) -> &'static str {
        match self {
            Self::OpenSslDynamic => "openssl_dynamic",
            Self::OpenSslStatic => "openssl_static",
            Self::BoringSslStatic => "boringssl_static",
            Self::GoCryptoTls => "go_crypto_tls",
            Self::GnuTls => "gnutls",
            Self::Nss => "nss",
            Self::Rustls => "rustls",
            Self::JavaJsse => "java_jsse",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::OpenSslDynamic => "OpenSSL (shared)",
            Self::OpenSslStatic => "OpenSSL (static)",
            Self::BoringSslStatic => "BoringSSL (static)",
            Self::GoCryptoTls => "Go crypto/tls",
            Self::GnuTls => "GnuTLS",
            Self::Nss => "NSS",
            Self::Rustls => "rustls",
            Self::JavaJsse => "Java JSSE",
        }
    }
}

/// Which stacks the agent's probes hook. A stack the agent does not hook is reported as not
/// covered with the reason "<stack>: not supported".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Support {
    pub openssl_dynamic: bool,
    pub openssl_static: bool,
    pub go: bool,
    pub gnutls: bool,
    pub nss: bool,
}

impl Support {
    /// What this build of the agent attaches to.
    pub const CURRENT: Support = Support {
        openssl_dynamic: true,
        openssl_static: true,
        go: true,
        gnutls: true,
        nss: true,
    };

    /// Every stack with a probe family in this project (for tests of the classification).
    pub const ALL_PROBES: Support = Support {
        openssl_dynamic: true,
        openssl_static: true,
        go: true,
        gnutls: true,
        nss: true,
    };
}

/// One stack found in a process, and its verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackVerdict {
    pub stack: StackKind,
    /// Library or runtime version, when known (`3.0.19`, `go1.19.8`, `libgnutls.so.30`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The file that carries the stack (a library, or the executable).
    pub path: String,
    pub covered: bool,
    /// Why not, in one phrase, when `covered` is false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the executable itself tells about TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExeTls {
    pub go: Option<GoBinary>,
    /// `SSL_write` and `SSL_read` are defined in the executable (dynamic or static symbols).
    pub ssl_symbols: bool,
    /// Any TLS-library marker of OpenSSL/BoringSSL in the bytes, even without symbols.
    pub openssl_marker: bool,
    pub boringssl: bool,
    /// `OpenSSL x.y.z` found in the bytes.
    pub openssl_version: Option<String>,
    /// The executable contains rustls (its crate path survives in panic locations even when
    /// stripped).
    pub rustls: bool,
}

/// BoringSSL's version text ends in `(compatible; BoringSSL)`. Markers are stored reversed so
/// that this program's own bytes never contain them (see [`marker`]).
const BORINGSSL_MARKER: &[u8] = b")LSSgniroB ;elbitapmoc(";
/// rustls's crate path (`.../rustls-0.23.12/src/...`) survives in panic locations of stripped
/// Rust binaries.
const RUSTLS_MARKER: &[u8] = b".0-sltsur/";

/// A marker in reading order, built at run time: were it a literal, the agent's own binary
/// would contain it and classify itself.
fn marker(reversed: &[u8]) -> Vec<u8> {
    reversed.iter().rev().copied().collect()
}

/// Analyses an executable's bytes. Non-ELF input (a script) yields the default (nothing).
pub fn analyze_exe(data: &[u8]) -> ExeTls {
    analyze_exe_windowed(data, usize::MAX, |_, _| {})
}

/// Bytes past a window's end that its searches also read: the longest marker, or a banner and
/// its version text.
const WINDOW_OVERLAP: usize = 64;

/// [`analyze_exe`] whose whole-file byte searches go through `data` one window of `window`
/// bytes at a time, calling `done(offset, len)` after each window and once after the ELF
/// tables were read (`done(0, data.len())`). A caller reading a file mapping drops those pages
/// from its resident set there, so scanning a large executable does not make the agent's RSS
/// the size of the file. Same result as [`analyze_exe`] whatever the window.
pub fn analyze_exe_windowed(
    data: &[u8],
    window: usize,
    mut done: impl FnMut(usize, usize),
) -> ExeTls {
    let Ok(elf) = object::File::parse(data) else {
        return ExeTls::default();
    };
    let go = gobin::analyze(data).ok().flatten();
    let defined = |name: &str| {
        let hit = |s: object::Symbol| s.name() == Ok(name) && !s.is_undefined();
        elf.dynamic_symbols().any(hit) || elf.symbols().any(hit)
    };
    let ssl_symbols = defined("SSL_write") && defined("SSL_read");
    let mut boringssl = defined("BORINGSSL_self_test");
    done(0, data.len());
    let (boring, rustls_marker) = (marker(BORINGSSL_MARKER), marker(RUSTLS_MARKER));
    let (mut rustls, mut openssl_version) = (false, None);
    let window = window.max(WINDOW_OVERLAP);
    let mut start = 0;
    while start < data.len() {
        let end = start.saturating_add(window).min(data.len());
        let w = &data[start..end.saturating_add(WINDOW_OVERLAP).min(data.len())];
        boringssl = boringssl || memchr::memmem::find(w, &boring).is_some();
        rustls = rustls || memchr::memmem::find(w, &rustls_marker).is_some();
        if openssl_version.is_none() {
            // Banners starting in the overlap belong to the next window, which sees them whole.
            openssl_version = banner_version(w, b"OpenSSL ", 2, end - start);
        }
        done(start, end - start);
        start = end;
    }
    ExeTls {
        // A Go binary's own TLS is crypto/tls; strings in it say nothing about OpenSSL.
        openssl_marker: go.is_none() && (ssl_symbols || boringssl || openssl_version.is_some()),
        rustls: go.is_none() && rustls,
        go,
        ssl_symbols,
        boringssl,
        openssl_version,
    }
}

/// `3.0.19` from the first `OpenSSL 3.0.19 ...` in `data` (OpenSSL's version banner).
pub fn openssl_version(data: &[u8]) -> Option<String> {
    banner_version(data, b"OpenSSL ", 2, data.len())
}

/// The version after the first `prefix` in `data` (starting before `limit`) that is followed
/// by a dotted version (`3.0.19`, `1.1.1w`) with at least `min_dots` dots.
fn banner_version(data: &[u8], prefix: &[u8], min_dots: usize, limit: usize) -> Option<String> {
    for at in memchr::memmem::find_iter(data, prefix).take_while(|&at| at < limit) {
        let rest = &data[at + prefix.len()..];
        let n = rest
            .iter()
            .take(16)
            .take_while(|b| b.is_ascii_digit() || **b == b'.' || b.is_ascii_lowercase())
            .count();
        let v = &rest[..n];
        let dots = v.iter().filter(|&&b| b == b'.').count();
        if v.first().is_some_and(u8::is_ascii_digit) && dots >= min_dots {
            return std::str::from_utf8(v).ok().map(str::to_owned);
        }
    }
    None
}

/// A TLS library recognised by its file name in the process's maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedLib {
    pub kind: StackKind,
    /// The path as the process sees it.
    pub path: String,
    /// Version, when the name or the library's bytes give one.
    pub version: Option<String>,
}

/// Recognises a TLS library by its mapped path (as in `/proc/PID/maps`).
pub fn lib_kind(path: &str) -> Option<StackKind> {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.starts_with("libssl3.so") || name.starts_with("libnspr4.so") {
        Some(StackKind::Nss)
    } else if name.starts_with("libssl.so") || name.starts_with("libssl-") {
        Some(StackKind::OpenSslDynamic)
    } else if name.starts_with("libgnutls.so") {
        Some(StackKind::GnuTls)
    } else if name.starts_with("libjvm.so") {
        Some(StackKind::JavaJsse)
    } else {
        None
    }
}

/// The verdicts for one process, from its executable and its TLS libraries.
pub fn classify(
    exe_path: &str,
    exe: &ExeTls,
    libs: &[MappedLib],
    support: Support,
) -> Vec<StackVerdict> {
    let mut out = Vec::new();
    let verdict = |stack, version, path: &str, why_not: Option<String>| StackVerdict {
        stack,
        version,
        path: path.to_owned(),
        covered: why_not.is_none(),
        reason: why_not,
    };
    let unsupported = |k: StackKind| Some(format!("{}: not supported", k.label()));

    if let Some(go) = &exe.go {
        let why = match go.attachable() {
            Ok(_) if support.go => None,
            Ok(_) => unsupported(StackKind::GoCryptoTls),
            // A Go program that does not link crypto/tls has no TLS to see.
            Err("Go binary without crypto/tls") => return out_with_libs(out, libs, support),
            Err(e) => Some(e.to_owned()),
        };
        out.push(verdict(
            StackKind::GoCryptoTls,
            go.version_string.clone(),
            exe_path,
            why,
        ));
    } else if exe.openssl_marker {
        let kind = if exe.boringssl {
            StackKind::BoringSslStatic
        } else {
            StackKind::OpenSslStatic
        };
        let why = if !exe.ssl_symbols {
            Some(format!(
                "{} without SSL_read/SSL_write symbols (stripped)",
                kind.label()
            ))
        } else if !support.openssl_static {
            unsupported(kind)
        } else {
            None
        };
        // A program that maps libssl and merely mentions OpenSSL is the dynamic case below.
        let dynamic = libs.iter().any(|l| l.kind == StackKind::OpenSslDynamic);
        if exe.ssl_symbols || !dynamic {
            out.push(verdict(kind, exe.openssl_version.clone(), exe_path, why));
        }
    } else if exe.rustls {
        out.push(verdict(
            StackKind::Rustls,
            None,
            exe_path,
            unsupported(StackKind::Rustls),
        ));
    }
    out_with_libs(out, libs, support)
}

fn out_with_libs(
    mut out: Vec<StackVerdict>,
    libs: &[MappedLib],
    support: Support,
) -> Vec<StackVerdict> {
    let mut seen = Vec::new();
    for lib in libs {
        if seen.contains(&lib.kind) {
            continue; // NSS maps two libraries; one verdict is enough
        }
        seen.push(lib.kind);
        let supported = match lib.kind {
            StackKind::OpenSslDynamic => support.openssl_dynamic,
            StackKind::GnuTls => support.gnutls,
            StackKind::Nss => support.nss,
            _ => false,
        };
        out.push(StackVerdict {
            stack: lib.kind,
            version: lib.version.clone(),
            path: lib.path.clone(),
            covered: supported,
            reason: (!supported).then(|| format!("{}: not supported", lib.kind.label())),
        });
    }
    out
}

/// Reads a library's version from its bytes (`root_path`: the library as the agent can open
/// it, e.g. through `/proc/PID/root`): OpenSSL's banner (in libcrypto, next to libssl),
/// GnuTLS's `GnuTLS x.y.z`; else, for OpenSSL, the name's suffix (`libssl.so.3` -> `3`).
pub fn lib_version(kind: StackKind, path: &str, root_path: &Path) -> Option<String> {
    match kind {
        StackKind::OpenSslDynamic => {
            let name = root_path.file_name().and_then(|n| n.to_str());
            let crypto =
                name.map(|n| root_path.with_file_name(n.replacen("libssl", "libcrypto", 1)));
            for candidate in crypto.iter().chain([&root_path.to_path_buf()]) {
                if let Some(v) = std::fs::read(candidate)
                    .ok()
                    .and_then(|d| openssl_version(&d))
                {
                    return Some(v);
                }
            }
            let name = path.rsplit('/').next()?;
            let suffix = name.split_once(".so.")?.1;
            (!suffix.is_empty()).then(|| suffix.to_owned())
        }
        StackKind::GnuTls => {
            let data = std::fs::read(root_path).ok()?;
            banner_version(&data, b"GnuTLS ", 2, data.len())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib(kind: StackKind, path: &str) -> MappedLib {
        MappedLib {
            kind,
            path: path.into(),
            version: None,
        }
    }

    #[test]
    fn recognises_tls_libraries_by_name() {
        let k = lib_kind;
        assert_eq!(
            k("/usr/lib/x86_64-linux-gnu/libssl.so.3"),
            Some(StackKind::OpenSslDynamic)
        );
        assert_eq!(k("/usr/lib/libssl3.so"), Some(StackKind::Nss));
        assert_eq!(k("/usr/lib/libnspr4.so"), Some(StackKind::Nss));
        assert_eq!(
            k("/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3"),
            Some(StackKind::GnuTls)
        );
        assert_eq!(
            k("/site-packages/cryptography.libs/libssl-7f2b.so.3"),
            Some(StackKind::OpenSslDynamic)
        );
        assert_eq!(k("/usr/lib/x86_64-linux-gnu/libcurl-gnutls.so.4"), None);
        assert_eq!(k("/usr/lib/x86_64-linux-gnu/libc.so.6"), None);
    }

    #[test]
    fn stack_ids_are_the_json_names() {
        for k in [
            StackKind::OpenSslDynamic,
            StackKind::OpenSslStatic,
            StackKind::BoringSslStatic,
            StackKind::GoCryptoTls,
            StackKind::GnuTls,
            StackKind::Nss,
            StackKind::Rustls,
            StackKind::JavaJsse,
        ] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.id());
        }
    }

    #[test]
    fn finds_the_openssl_banner_version() {
        assert_eq!(
            openssl_version(b"xx\0OpenSSL 1.1.1w  11 Sep 2023\0"),
            Some("1.1.1w".into())
        );
        assert_eq!(
            openssl_version(b"OpenSSL %s\0OpenSSL 3.0.19 27 Jan 2026"),
            Some("3.0.19".into())
        );
        assert_eq!(openssl_version(b"OpenSSL is great"), None);
    }

    #[test]
    fn verdicts_name_the_reason() {
        let none = ExeTls::default();
        let all = Support {
            nss: false,
            ..Support::ALL_PROBES
        };
        // Nothing: no verdict at all (not "uncovered").
        assert!(classify("/bin/sleep", &none, &[], all).is_empty());

        let v = classify(
            "/usr/bin/python3",
            &none,
            &[lib(StackKind::OpenSslDynamic, "/usr/lib/libssl.so.3")],
            all,
        );
        assert_eq!(v.len(), 1);
        assert!(v[0].covered && v[0].reason.is_none());

        let rust = ExeTls {
            rustls: true,
            ..Default::default()
        };
        let v = classify("/usr/bin/codex", &rust, &[], all);
        assert_eq!(v[0].stack, StackKind::Rustls);
        assert_eq!(v[0].reason.as_deref(), Some("rustls: not supported"));

        let bun = ExeTls {
            openssl_marker: true,
            boringssl: true,
            ..Default::default()
        };
        let v = classify("/usr/bin/bun", &bun, &[], all);
        assert_eq!(v[0].stack, StackKind::BoringSslStatic);
        assert!(!v[0].covered);
        assert!(v[0].reason.as_deref().unwrap().contains("stripped"));

        let nss = [
            lib(StackKind::Nss, "/usr/lib/libnspr4.so"),
            lib(StackKind::Nss, "/usr/lib/libssl3.so"),
        ];
        let v = classify("/usr/bin/firefox", &none, &nss, all);
        assert_eq!(v.len(), 1, "one verdict per stack");
        assert_eq!(v[0].reason.as_deref(), Some("NSS: not supported"));
        // This build hooks NSS (tracer-ebpf's nss.rs).
        let v = classify("/usr/bin/firefox", &none, &nss, Support::CURRENT);
        assert!(v[0].covered && v[0].reason.is_none(), "{v:?}");
    }

    #[test]
    fn the_agent_itself_is_not_taken_for_a_tls_stack() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let tls = analyze_exe(&me);
        assert!(!tls.boringssl && !tls.rustls && !tls.ssl_symbols && tls.go.is_none());
        let mut fake = me.clone();
        fake.extend_from_slice(b"OpenSSL 1.1.1 ");
        fake.extend(marker(BORINGSSL_MARKER));
        fake.extend(marker(RUSTLS_MARKER));
        fake.extend(marker(b"sr.bil/crs/1.32"));
        let tls = analyze_exe(&fake);
        assert!(tls.boringssl && tls.rustls && tls.openssl_marker);
    }

    #[test]
    fn windowed_analysis_finds_what_the_whole_file_analysis_finds() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut fake = me.clone();
        // Markers and a banner at every distance from a 4096-byte window boundary.
        let pad = 4096 - fake.len() % 4096;
        fake.extend(std::iter::repeat_n(b'x', pad + 4096 - 3));
        fake.extend(marker(BORINGSSL_MARKER));
        fake.extend(std::iter::repeat_n(b'x', 4096 - 40));
        fake.extend_from_slice(b"OpenSSL 3.0.19 27 Jan 2026\0");
        fake.extend(std::iter::repeat_n(b'x', 4096 - 2));
        fake.extend(marker(RUSTLS_MARKER));
        let whole = analyze_exe(&fake);
        assert_eq!(whole.openssl_version.as_deref(), Some("3.0.19"));
        for window in [4096, 8192, 1 << 20] {
            let mut calls = Vec::new();
            let windowed = analyze_exe_windowed(&fake, window, |off, len| calls.push((off, len)));
            assert_eq!(windowed, whole, "window {window}");
            // The ELF tables' pages once, then each window once, in order, covering the file.
            assert_eq!(calls[0], (0, fake.len()));
            let mut next = 0;
            for &(off, len) in &calls[1..] {
                assert_eq!((off, len.min(window)), (next, len), "window {window}");
                next += len;
            }
            assert_eq!(next, fake.len());
        }
        // A banner cut by a window end is read from the next window, whole.
        let mut cut = vec![b'x'; 4096 - 12];
        cut.extend_from_slice(b"OpenSSL 1.1.1w  11 Sep 2023");
        assert_eq!(
            banner_version(&cut, b"OpenSSL ", 2, 4096).as_deref(),
            Some("1.1.1w")
        );
        assert_eq!(banner_version(&cut, b"OpenSSL ", 2, 4096 - 12), None);
    }
}
