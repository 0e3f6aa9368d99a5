//! The kernel/user ABI: record header, record kinds, map names and size limits.
#![no_std]
