//! Where to attach: binary analysis and per-process TLS stack discovery.
pub mod coverage;
pub mod gobin;
pub mod gopclntab;
pub mod tlsstack;
