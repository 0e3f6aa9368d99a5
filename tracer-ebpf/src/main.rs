//! Kernel side of llm-tracer: uprobes on TLS libraries copy plaintext into a ring buffer, and
//! scheduler tracepoints tell the agent when processes start and end.
//!
//! One file per hooked library family (`openssl.rs`, `gotls.rs`, `nss.rs`); `emit.rs` holds what they share: the maps
//! and the chunked copy into the ring buffer. Nothing here may panic: a panic compiles into a
//! call that never returns and the verifier rejects the program.
//!
//! On the host (`cargo check --workspace`) it builds as an ordinary program that does nothing,
//! so workspace-wide checks and clippy work; the real build is for `bpfel-unknown-none`.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]

mod bench;
mod emit;
mod gotls;
mod nss;
mod openssl;
mod sched;

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// `bpf_probe_read_user` and the ring buffer helpers are GPL-only.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
