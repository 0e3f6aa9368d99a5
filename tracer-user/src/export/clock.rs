//! Capture-clock (kernel `CLOCK_MONOTONIC`, as `bpf_ktime_get_ns`) to wall-clock conversion.
//!
//! The offset `realtime - monotonic` is read once at the edge. The monotonic clock does not
//! count suspend and is not stepped by NTP, so one offset serves a whole run; a replay uses the
//! offset recorded with the capture instead of today's.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts capture timestamps (monotonic ns) to wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WallClock {
    /// Unix time in ns at monotonic 0 (may be negative in theory, hence i128).
    offset_ns: i128,
}

fn read_clock(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it. Both
    // clocks used here exist on every Linux kernel, so the call cannot fail.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl WallClock {
    /// The live offset of this machine. Two monotonic reads bracket the realtime read; their
    /// midpoint makes the error at most half the (sub-microsecond) gap between them.
    pub fn live() -> Self {
        let m1 = read_clock(libc::CLOCK_MONOTONIC);
        let real = read_clock(libc::CLOCK_REALTIME);
        let m2 = read_clock(libc::CLOCK_MONOTONIC);
        WallClock {
            offset_ns: real - (m1 + m2) / 2,
        }
    }

    /// A known offset: unix ns at monotonic 0 (replays, tests).
    pub fn from_offset_ns(offset_ns: i128) -> Self {
        WallClock { offset_ns }
    }

    pub fn offset_ns(&self) -> i128 {
        self.offset_ns
    }

    /// Unix time in ns of a capture timestamp (0 when it would fall before 1970).
    pub fn unix_ns(&self, mono_ns: u64) -> u64 {
        let t = mono_ns as i128 + self.offset_ns;
        t.clamp(0, u64::MAX as i128) as u64
    }

    pub fn system_time(&self, mono_ns: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.unix_ns(mono_ns))
    }

    /// The capture clock now (for calls given up on, idle expiry).
    pub fn monotonic_now_ns() -> u64 {
        read_clock(libc::CLOCK_MONOTONIC).max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_offset_maps_monotonic_now_to_wall_now() {
        let clock = WallClock::live();
        let mono = WallClock::monotonic_now_ns();
        let wall = clock.system_time(mono);
        let now = SystemTime::now();
        let diff = match now.duration_since(wall) {
            Ok(d) => d,
            Err(e) => e.duration(),
        };
        assert!(diff < Duration::from_millis(50), "off by {diff:?}");
    }

    #[test]
    fn fixed_offset_is_exact() {
        let clock = WallClock::from_offset_ns(1_700_000_000_000_000_000);
        assert_eq!(clock.unix_ns(5), 1_700_000_000_000_000_005);
        assert_eq!(
            clock.system_time(1_000_000_000),
            UNIX_EPOCH + Duration::from_secs(1_700_000_001)
        );
        // Before the epoch clamps rather than wrapping.
        assert_eq!(WallClock::from_offset_ns(-10).unix_ns(3), 0);
    }
}
