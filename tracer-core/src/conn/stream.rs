//! One direction of a connection: records in, ordered bytes and gaps out.
//!
//! Records normally arrive in order and pass straight through. A record ahead of the expected
//! offset is held briefly (bounded by count, bytes and time) in case the missing one is only late
//! (records of one connection can come from different CPUs); when the bound is hit, the hole
//! becomes a gap of known size. A loss the capture itself reports (`LOST_BEFORE`, or the record
//! before was `TRUNCATED`) is a gap at once. Bytes already delivered are never delivered twice.

use std::collections::BTreeMap;

use crate::http::{count_drop, DropCounts};

/// What one direction delivers to the protocol parser, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Data { ts_ns: u64, data: Vec<u8> },
    Gap { ts_ns: u64, missing: u64 },
}

/// Bounds of the reordering buffer of one direction.
#[derive(Debug, Clone, Copy)]
pub struct ReorderLimits {
    pub window_ns: u64,
    pub max_bytes: usize,
    pub max_records: usize,
}

struct Held {
    ts_ns: u64,
    data: Vec<u8>,
    truncated: bool,
}

#[derive(Default)]
pub struct DirStream {
    /// Offset of the next byte expected. Streams start at 0 (the first byte the capture saw),
    /// so a first record above 0 is held like any record ahead of a hole: the lower ones may
    /// only be late.
    next: Option<u64>,
    /// The last delivered record was cut short: a jump after it is a known loss.
    truncated: bool,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// Capture time of the oldest held record.
    held_since: u64,
}

impl DirStream {
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Records are waiting for a hole before them to fill.
    pub fn is_holding(&self) -> bool {
        !self.held.is_empty()
    }

    /// Offset of the next byte expected, when the stream has started and holds nothing (every
    /// byte before it was delivered or passed on as a gap).
    pub fn settled_end(&self) -> Option<u64> {
        if self.held.is_empty() {
            self.next
        } else {
            None
        }
    }

    /// Whether bytes from offset 0 on were delivered (held records do not count: offset 0 is
    /// what they wait for).
    pub fn started(&self) -> bool {
        self.next.is_some_and(|n| n > 0)
    }

    /// Take one record; push what can be delivered now to `steps`.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        offset: u64,
        ts_ns: u64,
        data: Vec<u8>,
        lost_before: bool,
        truncated: bool,
        limits: &ReorderLimits,
        steps: &mut Vec<Step>,
        drops: &mut DropCounts,
    ) {
        let next = *self.next.get_or_insert(0);
        if offset > next && !(lost_before || self.truncated) {
            if self.held.is_empty() {
                self.held_since = ts_ns;
            }
            self.held_bytes += data.len();
            if let Some(old) = self.held.insert(
                offset,
                Held {
                    ts_ns,
                    data,
                    truncated,
                },
            ) {
                self.held_bytes -= old.data.len();
                count_drop(drops, "conn_duplicate_record");
            }
            if self.held_bytes > limits.max_bytes || self.held.len() > limits.max_records {
                count_drop(drops, "conn_reorder_overflow");
                self.flush(steps, drops);
            }
            return;
        }
        if offset > next {
            steps.push(Step::Gap {
                ts_ns,
                missing: offset - next,
            });
            self.next = Some(offset);
        }
        self.deliver(offset, ts_ns, data, truncated, steps, drops);
        self.drain(steps, drops);
    }

    /// Deliver a record at or before `next` (trimming what was already delivered).
    fn deliver(
        &mut self,
        offset: u64,
        ts_ns: u64,
        mut data: Vec<u8>,
        truncated: bool,
        steps: &mut Vec<Step>,
        drops: &mut DropCounts,
    ) {
        let next = self.next.unwrap_or(offset);
        let end = offset.saturating_add(data.len() as u64);
        if end <= next {
            if !data.is_empty() {
                count_drop(drops, "conn_stale_record");
            }
            // An empty truncated record still says bytes are missing after `next`.
            self.truncated |= truncated && data.is_empty();
            return;
        }
        if offset < next {
            count_drop(drops, "conn_overlap_trimmed");
            data.drain(..(next - offset) as usize);
        }
        self.next = Some(end);
        self.truncated = truncated;
        steps.push(Step::Data { ts_ns, data });
    }

    /// Deliver held records that have become next in line.
    fn drain(&mut self, steps: &mut Vec<Step>, drops: &mut DropCounts) {
        while let Some(entry) = self.held.first_entry() {
            let next = self.next.unwrap_or(*entry.key());
            if *entry.key() > next && !self.truncated {
                break;
            }
            let (offset, h) = entry.remove_entry();
            self.held_bytes -= h.data.len();
            if offset > next {
                steps.push(Step::Gap {
                    ts_ns: h.ts_ns,
                    missing: offset - next,
                });
                self.next = Some(offset);
            }
            self.deliver(offset, h.ts_ns, h.data, h.truncated, steps, drops);
        }
    }

    /// Give up waiting: every hole before a held record becomes a gap.
    pub fn flush(&mut self, steps: &mut Vec<Step>, drops: &mut DropCounts) {
        while let Some((&offset, h)) = self.held.first_key_value() {
            let next = self.next.unwrap_or(offset);
            if offset > next {
                steps.push(Step::Gap {
                    ts_ns: h.ts_ns,
                    missing: offset - next,
                });
                self.next = Some(offset);
            }
            self.drain(steps, drops);
        }
    }

    /// Flush if the oldest held record has waited longer than the window.
    pub fn expire(
        &mut self,
        now_ns: u64,
        limits: &ReorderLimits,
        steps: &mut Vec<Step>,
        drops: &mut DropCounts,
    ) {
        if !self.held.is_empty() && now_ns.saturating_sub(self.held_since) > limits.window_ns {
            count_drop(drops, "conn_reorder_timeout");
            self.flush(steps, drops);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReorderLimits = ReorderLimits {
        window_ns: 100,
        max_bytes: 1000,
        max_records: 4,
    };

    fn push(s: &mut DirStream, offset: u64, data: &[u8], flags: (bool, bool)) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut drops = DropCounts::new();
        s.push(
            offset,
            offset,
            data.to_vec(),
            flags.0,
            flags.1,
            &LIMITS,
            &mut steps,
            &mut drops,
        );
        steps
    }

    fn data(ts: u64, d: &[u8]) -> Step {
        Step::Data {
            ts_ns: ts,
            data: d.to_vec(),
        }
    }

    #[test]
    fn in_order_passes_through() {
        let mut s = DirStream::default();
        assert_eq!(
            push(&mut s, 0, b"abc", (false, false)),
            vec![data(0, b"abc")]
        );
        assert_eq!(push(&mut s, 3, b"de", (false, false)), vec![data(3, b"de")]);
    }

    #[test]
    fn a_first_record_above_zero_waits_for_the_lower_ones() {
        let mut s = DirStream::default();
        assert!(push(&mut s, 3, b"de", (false, false)).is_empty());
        assert_eq!(
            push(&mut s, 0, b"abc", (false, false)),
            vec![data(0, b"abc"), data(3, b"de")]
        );
        // None come: after the window, the start is a gap.
        let mut s = DirStream::default();
        assert!(push(&mut s, 100, b"x", (false, false)).is_empty());
        let (mut steps, mut drops) = (Vec::new(), DropCounts::new());
        s.expire(1_000, &LIMITS, &mut steps, &mut drops);
        assert_eq!(
            steps,
            vec![
                Step::Gap {
                    ts_ns: 100,
                    missing: 100
                },
                data(100, b"x")
            ]
        );
    }

    #[test]
    fn reordering_is_repaired() {
        let mut s = DirStream::default();
        push(&mut s, 0, b"ab", (false, false));
        assert!(push(&mut s, 4, b"ef", (false, false)).is_empty());
        assert!(push(&mut s, 6, b"g", (false, false)).is_empty());
        assert_eq!(
            push(&mut s, 2, b"cd", (false, false)),
            vec![data(2, b"cd"), data(4, b"ef"), data(6, b"g")]
        );
        assert_eq!(s.held_bytes(), 0);
        // Already delivered: dropped; overlapping: trimmed.
        assert!(push(&mut s, 3, b"de", (false, false)).is_empty());
        assert_eq!(
            push(&mut s, 6, b"ghi", (false, false)),
            vec![data(6, b"hi")]
        );
    }

    #[test]
    fn reported_losses_are_gaps_at_once() {
        let mut s = DirStream::default();
        push(&mut s, 0, b"ab", (false, false));
        assert_eq!(
            push(&mut s, 10, b"k", (true, false)),
            vec![
                Step::Gap {
                    ts_ns: 10,
                    missing: 8
                },
                data(10, b"k")
            ]
        );
        push(&mut s, 11, b"l", (false, true)); // truncated
        assert_eq!(
            push(&mut s, 20, b"u", (false, false)),
            vec![
                Step::Gap {
                    ts_ns: 20,
                    missing: 8
                },
                data(20, b"u")
            ]
        );
    }

    #[test]
    fn holes_become_gaps_on_bounds_and_time() {
        let mut s = DirStream::default();
        push(&mut s, 0, b"a", (false, false));
        for i in 0..4 {
            assert!(push(&mut s, 10 + i, b"x", (false, false)).is_empty());
        }
        let steps = push(&mut s, 14, b"x", (false, false));
        assert_eq!(
            steps[0],
            Step::Gap {
                ts_ns: 10,
                missing: 9
            }
        );
        assert_eq!(steps.len(), 6);
        assert_eq!(s.held_bytes(), 0);

        let mut s = DirStream::default();
        push(&mut s, 0, b"a", (false, false));
        push(&mut s, 5, b"f", (false, false));
        let mut steps = Vec::new();
        let mut drops = DropCounts::new();
        s.expire(50, &LIMITS, &mut steps, &mut drops);
        assert!(steps.is_empty());
        s.expire(200, &LIMITS, &mut steps, &mut drops);
        assert_eq!(
            steps,
            vec![
                Step::Gap {
                    ts_ns: 5,
                    missing: 4
                },
                data(5, b"f")
            ]
        );
    }
}
