//! Recording files: JSON Lines of [`tracer_core::record`], written and read back.

use std::{
    fs::File,
    io::{self, BufRead, BufReader, BufWriter, Write as _},
    path::Path,
};

use tracer_core::{
    event::TlsEvent,
    record::{decode_line, encode_line, RecordError},
};

/// Writes events to a recording, one line each.
pub struct RecordWriter {
    out: BufWriter<File>,
    pub records: u64,
    pub bytes: u64,
}

impl RecordWriter {
    pub fn create(path: &Path) -> io::Result<Self> {
        Ok(RecordWriter {
            out: BufWriter::with_capacity(1 << 20, File::create(path)?),
            records: 0,
            bytes: 0,
        })
    }

    pub fn write(&mut self, event: &TlsEvent) -> io::Result<()> {
        self.out.write_all(encode_line(event).as_bytes())?;
        self.out.write_all(b"\n")?;
        self.records += 1;
        self.bytes += event.data.len() as u64;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads a recording line by line; bad lines are returned as errors with their line number
/// and do not stop the reading.
pub struct RecordReader {
    lines: io::Lines<BufReader<File>>,
    line_no: usize,
}

impl RecordReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(RecordReader {
            lines: BufReader::new(File::open(path)?).lines(),
            line_no: 0,
        })
    }
}

/// Why one line of a recording was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("line {0}: {1}")]
    Record(usize, RecordError),
    #[error("line {0}: {1}")]
    Io(usize, io::Error),
}

impl Iterator for RecordReader {
    type Item = Result<TlsEvent, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = self.lines.next()?;
            self.line_no += 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(ReadError::Io(self.line_no, e))),
            };
            if line.trim().is_empty() {
                continue;
            }
            return Some(decode_line(&line).map_err(|e| ReadError::Record(self.line_no, e)));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_core::event::{flags, Direction};

    use super::*;

    #[test]
    fn file_round_trip_keeps_order_and_reports_bad_lines() {
        let path = std::env::temp_dir().join(format!("rec-test-{}.jsonl", std::process::id()));
        let events: Vec<TlsEvent> = (0..50u32)
            .map(|i| TlsEvent {
                pid: 100 + i % 3,
                tid: 7,
                comm: "node".into(),
                conn: 0x1000 + u64::from(i % 2),
                direction: if i % 2 == 0 {
                    Direction::Write
                } else {
                    Direction::Read
                },
                ts_ns: u64::from(i) * 1000,
                offset: u64::from(i) * 16384,
                len: 20000,
                data: vec![i as u8; (i as usize * 37) % 300],
                flags: if i == 49 { flags::TRUNCATED } else { 0 },
            })
            .collect();
        let mut w = RecordWriter::create(&path).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
        w.flush().unwrap();
        assert_eq!(w.records, 50);
        drop(w);
        // Append a bad line and a good one after it.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{broken\n");
        text.push_str(&encode_line(&events[0]));
        text.push('\n');
        std::fs::write(&path, text).unwrap();

        let read: Vec<_> = RecordReader::open(&path).unwrap().collect();
        let _ = std::fs::remove_file(&path);
        assert_eq!(read.len(), 52);
        for (got, want) in read.iter().zip(&events) {
            assert_eq!(got.as_ref().unwrap(), want);
        }
        assert!(matches!(read[50], Err(ReadError::Record(51, _))));
        assert_eq!(read[51].as_ref().unwrap(), &events[0]);
    }
}
