//! Sources of TLS events: the live ring buffer, and recordings (writer and reader).
pub mod decode;
pub mod ebpf;
pub mod file;
pub mod live;
pub mod preflight;
