//! Attach targets, declared as data: library family -> symbols -> programs.
//!
//! Adding a library family is adding an entry here (and its programs in tracer-ebpf).

use crate::capture::ebpf::programs;

/// One hooked function.
#[derive(Debug, Clone, Copy)]
pub struct Hook {
    pub symbol: &'static str,
    /// Program run at function entry (stashes the arguments), if any.
    pub entry: Option<&'static str>,
    /// Program run at function return (copies the data), if any.
    pub ret: Option<&'static str>,
    /// Without a required hook the family is not usable in that file.
    pub required: bool,
}

/// A TLS library family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    /// A file that exports this symbol (defined, in its dynamic symbols) belongs to the family.
    pub marker: &'static str,
    /// File names worth attaching even when no running process maps them yet (looked for in
    /// the standard library directories), so processes started later are seen from their first
    /// call without waiting for discovery.
    pub library_prefixes: &'static [&'static str],
    pub hooks: &'static [Hook],
}

/// OpenSSL and ABI-compatible builds (libssl.so.*, node's statically linked copy).
pub const OPENSSL: Family = Family {
    name: "openssl",
    marker: "SSL_write",
    library_prefixes: &["libssl.so"],
    hooks: &[
        Hook {
            symbol: "SSL_write",
            entry: Some(programs::SSL_WRITE_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: true,
        },
        Hook {
            symbol: "SSL_read",
            entry: Some(programs::SSL_READ_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: true,
        },
        // The _ex pair exists since OpenSSL 1.1.1; python uses only these.
        Hook {
            symbol: "SSL_write_ex",
            entry: Some(programs::SSL_WRITE_EX_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: false,
        },
        Hook {
            symbol: "SSL_read_ex",
            entry: Some(programs::SSL_READ_EX_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: false,
        },
        // The end of a connection: its state is freed at once and a new connection at the
        // same address starts fresh.
        Hook {
            symbol: "SSL_free",
            entry: Some(programs::SSL_FREE_ENTRY),
            ret: None,
            required: false,
        },
    ],
};

/// GnuTLS (gnutls-cli, and programs linked against libgnutls such as wget, some curl builds):
/// - `ssize_t gnutls_record_send(gnutls_session_t session, const void *data, size_t len)`
/// - `ssize_t gnutls_record_recv(gnutls_session_t session, void *data, size_t len)`
///
/// Both return the bytes moved, or a negative error code. That is the shape of `SSL_write` /
/// `SSL_read` (object, buffer, length; count or <= 0), so the OpenSSL programs serve as they
/// are; the connection is the `gnutls_session_t`. (Return values above 2 GiB cannot occur: one
/// call moves at most one TLS record.)
pub const GNUTLS: Family = Family {
    name: "gnutls",
    marker: "gnutls_record_send",
    library_prefixes: &["libgnutls.so"],
    hooks: &[
        Hook {
            symbol: "gnutls_record_send",
            entry: Some(programs::SSL_WRITE_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: true,
        },
        Hook {
            symbol: "gnutls_record_recv",
            entry: Some(programs::SSL_READ_ENTRY),
            ret: Some(programs::SSL_RW_RETURN),
            required: true,
        },
        // `void gnutls_deinit(gnutls_session_t session)`: the shape of `SSL_free`.
        Hook {
            symbol: "gnutls_deinit",
            entry: Some(programs::SSL_FREE_ENTRY),
            ret: None,
            required: false,
        },
    ],
};

/// NSS, part 1 (libssl3): `PRFileDesc *SSL_ImportFD(PRFileDesc *model, PRFileDesc *fd)` makes
/// a descriptor an SSL socket; its return tells the NSPR probes which descriptors to copy.
pub const NSS: Family = Family {
    name: "nss",
    marker: "SSL_ImportFD",
    // Not attached ahead: only once a process maps NSS (see NSPR below).
    library_prefixes: &[],
    hooks: &[Hook {
        symbol: "SSL_ImportFD",
        entry: None,
        ret: Some(programs::NSS_IMPORT_FD_RETURN),
        required: true,
    }],
};

/// NSS, part 2 (libnspr4): the plaintext goes through NSPR's generic I/O calls, which serve
/// every descriptor; the programs copy only those `SSL_ImportFD` returned (see tracer-ebpf's
/// nss.rs). `PR_Close` forgets a descriptor before its memory is reused. All are required: the
/// reads and writes are useless without the close that keeps the filter exact.
pub const NSPR: Family = Family {
    name: "nspr",
    marker: "PR_Write",
    // Not attached ahead of use, unlike libssl: its ten probes would be attached (and detached,
    // which the kernel serialises at 0.1-0.25 s per probe here) on every start of the agent on
    // any host with NSS installed, and every NSPR file read/write of every process would pay
    // the probe pair. Attached when a process maps it (discovery follows each exec), so an NSS
    // program started after the agent is seen from a few ms after its exec, later ones from
    // their first call.
    library_prefixes: &[],
    hooks: &[
        Hook {
            symbol: "PR_Close",
            entry: Some(programs::NSS_CLOSE_ENTRY),
            ret: None,
            required: true,
        },
        Hook {
            symbol: "PR_Write",
            entry: Some(programs::NSS_WRITE_ENTRY),
            ret: Some(programs::NSS_RW_RETURN),
            required: true,
        },
        Hook {
            symbol: "PR_Read",
            entry: Some(programs::NSS_READ_ENTRY),
            ret: Some(programs::NSS_RW_RETURN),
            required: true,
        },
        Hook {
            symbol: "PR_Send",
            entry: Some(programs::NSS_WRITE_ENTRY),
            ret: Some(programs::NSS_RW_RETURN),
            required: true,
        },
        Hook {
            symbol: "PR_Recv",
            entry: Some(programs::NSS_READ_ENTRY),
            ret: Some(programs::NSS_RW_RETURN),
            required: true,
        },
    ],
};

/// Every family the agent knows (Go binaries are found by `probe::gobin`, not by symbols).
pub const FAMILIES: &[Family] = &[OPENSSL, GNUTLS, NSS, NSPR];

/// Standard directories searched for libraries of [`Family::library_prefixes`].
pub const LIBRARY_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/lib64",
    "/usr/lib",
    "/usr/local/lib",
    "/usr/local/lib64",
];
