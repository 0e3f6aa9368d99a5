//! Where to attach: attach targets as data, binary analysis, discovery of TLS libraries in
//! running and newly started processes, attach bookkeeping.
pub mod coverage;
pub mod discovery;
pub mod elf;
pub mod gobin;
pub mod gopclntab;
pub mod maps;
pub mod targets;
pub mod tlsstack;
