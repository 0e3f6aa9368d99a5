//! Turning raw ring buffer records into values.

use tracer_common::{direction, kind, RecordHeader, HEADER_LEN};
use tracer_core::event::{flags, Direction, TlsEvent};

/// One record from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelRecord {
    /// TLS plaintext, or (with `flags::PROCESS_EXIT`) the end of a process, or (with
    /// `flags::CONN_CLOSED`) the end of a connection.
    Event(TlsEvent),
    /// A process called exec: look at its libraries.
    Exec { pid: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record says {said} data bytes but carries {has}")]
    Length { said: u32, has: usize },
    #[error("unknown record kind {0}")]
    Kind(u32),
    #[error("unknown direction {0}")]
    Direction(u32),
}

fn comm_string(comm: &[u8]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

/// Decodes one record (header + data). Never panics on malformed input.
pub fn decode(bytes: &[u8]) -> Result<KernelRecord, DecodeError> {
    let h = RecordHeader::read_from(bytes).ok_or(DecodeError::Short(bytes.len()))?;
    let data = &bytes[HEADER_LEN..];
    match h.kind {
        kind::EXEC => Ok(KernelRecord::Exec { pid: h.pid }),
        kind::EXIT => Ok(KernelRecord::Event(TlsEvent {
            pid: h.pid,
            tid: h.tid,
            comm: comm_string(&h.comm),
            conn: 0,
            direction: Direction::Write,
            ts_ns: h.ts_ns,
            offset: 0,
            len: 0,
            data: Vec::new(),
            flags: flags::PROCESS_EXIT,
        })),
        kind::CLOSE => Ok(KernelRecord::Event(TlsEvent {
            pid: h.pid,
            tid: h.tid,
            comm: comm_string(&h.comm),
            conn: h.conn,
            direction: Direction::Write,
            ts_ns: h.ts_ns,
            offset: 0,
            len: 0,
            data: Vec::new(),
            flags: flags::CONN_CLOSED,
        })),
        kind::DATA => {
            // The ring buffer rounds records up to 8 bytes; cap_len says how many are data.
            let n = h.cap_len as usize;
            if n > data.len() || n > h.len as usize {
                return Err(DecodeError::Length {
                    said: h.cap_len,
                    has: data.len(),
                });
            }
            let direction = match h.direction {
                direction::WRITE => Direction::Write,
                direction::READ => Direction::Read,
                d => return Err(DecodeError::Direction(d)),
            };
            Ok(KernelRecord::Event(TlsEvent {
                pid: h.pid,
                tid: h.tid,
                comm: comm_string(&h.comm),
                conn: h.conn,
                direction,
                ts_ns: h.ts_ns,
                offset: h.offset,
                len: h.len,
                data: data[..n].to_vec(),
                flags: h.flags,
            }))
        }
        k => Err(DecodeError::Kind(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32, cap_len: u32, len: u32) -> RecordHeader {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        RecordHeader {
            ts_ns: 99,
            conn: 0xdead_beef,
            offset: 42,
            pid: 10,
            tid: 11,
            len,
            cap_len,
            flags: flags::TRUNCATED,
            direction: direction::READ,
            kind,
            _pad: 0,
            comm,
        }
    }

    fn bytes(h: &RecordHeader, data: &[u8]) -> Vec<u8> {
        // SAFETY: RecordHeader is plain #[repr(C)] data without implicit padding.
        let raw = unsafe {
            std::slice::from_raw_parts((h as *const RecordHeader).cast::<u8>(), HEADER_LEN)
        };
        let mut v = raw.to_vec();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn decodes_data_records_and_ignores_ring_padding() {
        let rec = bytes(&header(kind::DATA, 3, 100), b"abc\0\0\0\0\0");
        let KernelRecord::Event(e) = decode(&rec).unwrap() else {
            panic!("not an event")
        };
        assert_eq!(e.data, b"abc");
        assert_eq!(
            (e.pid, e.tid, e.conn, e.offset, e.len),
            (10, 11, 0xdead_beef, 42, 100)
        );
        assert_eq!(e.comm, "curl");
        assert_eq!(e.direction, Direction::Read);
        assert!(e.has(flags::TRUNCATED));
    }

    #[test]
    fn exit_and_exec() {
        let KernelRecord::Event(e) = decode(&bytes(&header(kind::EXIT, 0, 0), b"")).unwrap() else {
            panic!("not an event")
        };
        assert!(e.has(flags::PROCESS_EXIT));
        assert_eq!(
            decode(&bytes(&header(kind::EXEC, 0, 0), b"")).unwrap(),
            KernelRecord::Exec { pid: 10 }
        );
    }

    #[test]
    fn close_carries_the_connection() {
        let KernelRecord::Event(e) = decode(&bytes(&header(kind::CLOSE, 0, 0), b"")).unwrap()
        else {
            panic!("not an event")
        };
        assert!(e.has(flags::CONN_CLOSED));
        assert!(!e.has(flags::PROCESS_EXIT));
        assert_eq!((e.pid, e.conn), (10, 0xdead_beef));
        assert!(e.data.is_empty());
    }

    #[test]
    fn malformed_records_are_errors() {
        assert_eq!(decode(b"short"), Err(DecodeError::Short(5)));
        assert!(matches!(
            decode(&bytes(&header(kind::DATA, 9, 100), b"abc")),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            decode(&bytes(&header(kind::DATA, 3, 2), b"abc")),
            Err(DecodeError::Length { .. })
        ));
        assert_eq!(
            decode(&bytes(&header(7, 0, 0), b"")),
            Err(DecodeError::Kind(7))
        );
    }
}
